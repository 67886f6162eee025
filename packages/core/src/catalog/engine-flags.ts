/**
 * The engine choices a worker reads from its configuration, under their own names or A1111's command-line flags
 * (with or without the leading dashes): the attention form, the memory mode and the weights dtype. Plain data,
 * importing no engine code, so the farm's configuration is checked without loading the engine; what each choice
 * does is in planning/attention.ts, models/memory-mode.ts and models/weights-dtype.ts.
 */
import { DarkroomError } from '../errors.js';

/** One of `names`, or the choice an A1111 flag in `aliases` stands for; anything else is `code`. */
function flagChoice<T extends string>(
  raw: string,
  names: readonly T[],
  aliases: Readonly<Record<string, T>>,
  refusal: { code: string; what: string; key: string; aliasesAre: string },
): T {
  const name = raw.trim().toLowerCase().replace(/^-+/, '');
  const choice = (names as readonly string[]).includes(name) ? (name as T) : aliases[name];
  if (!choice) {
    throw new DarkroomError(
      refusal.code,
      `unknown ${refusal.what} "${raw}"; use ${names.join(', ')} or ${refusal.aliasesAre}${Object.keys(aliases).join(', ')}${refusal.aliasesAre ? ')' : ''}`,
      { [refusal.key]: raw },
    );
  }
  return choice;
}

const A1111_FLAGS = "one of A1111's flags (";

export type AttentionForm = 'plain' | 'split' | 'subquad' | 'fused';
export type AttentionMode = 'auto' | AttentionForm;

export const ATTENTION_MODES: readonly AttentionMode[] = ['auto', 'plain', 'split', 'subquad', 'fused'];

/** A1111's command-line names for the same choices. */
const ATTENTION_FLAGS: Readonly<Record<string, AttentionMode>> = {
  'opt-split-attention': 'split',
  'opt-split-attention-v1': 'split',
  'opt-sub-quad-attention': 'subquad',
  'sub-quad': 'subquad',
  xformers: 'fused',
  'opt-sdp-attention': 'fused',
  'opt-sdp-no-mem-attention': 'fused',
  'disable-opt-split-attention': 'plain',
};

/** An attention mode from configuration text: a mode name or one of A1111's flag names. */
export function parseAttentionMode(raw: string): AttentionMode {
  return flagChoice(raw, ATTENTION_MODES, ATTENTION_FLAGS, { code: 'ATTENTION_MODE_UNKNOWN', what: 'attention mode', key: 'mode', aliasesAre: A1111_FLAGS });
}

export type MemoryMode = 'normal' | 'medvram' | 'lowvram';

export const MEMORY_MODES: readonly MemoryMode[] = ['normal', 'medvram', 'lowvram'];

/** A1111's flag spellings for the same choices. */
const MEMORY_FLAGS: Readonly<Record<string, MemoryMode>> = {
  'med-vram': 'medvram',
  'low-vram': 'lowvram',
  'always-low-vram': 'lowvram',
  'always-no-vram': 'lowvram',
  'medvram-sdxl': 'medvram',
  'always-high-vram': 'normal',
  'always-normal-vram': 'normal',
  highvram: 'normal',
};

/** A memory mode from configuration text: a mode name or one of A1111's flag names. */
export function parseMemoryMode(raw: string): MemoryMode {
  return flagChoice(raw, MEMORY_MODES, MEMORY_FLAGS, { code: 'MEMORY_MODE_UNKNOWN', what: 'memory mode', key: 'mode', aliasesAre: A1111_FLAGS });
}

export type WeightsDtype = 'float32' | 'float16';

export const WEIGHTS_DTYPES: readonly WeightsDtype[] = ['float32', 'float16'];

/** A1111's flag and the usual short names for the same choices. */
const DTYPE_NAMES: Readonly<Record<string, WeightsDtype>> = {
  fp32: 'float32',
  full: 'float32',
  'no-half': 'float32',
  'precision-full': 'float32',
  fp16: 'float16',
  half: 'float16',
};

/** A weights dtype from configuration text. */
export function parseWeightsDtype(raw: string): WeightsDtype {
  return flagChoice(raw, WEIGHTS_DTYPES, DTYPE_NAMES, { code: 'WEIGHTS_DTYPE_UNKNOWN', what: 'weights dtype', key: 'dtype', aliasesAre: '' });
}

/**
 * Refuses float16 weights on the CPU provider, whose few float16 kernels leave the rest cast back to float32
 * (models/weights-dtype.ts says what was measured).
 */
export function checkWeightsDtype(dtype: WeightsDtype, provider: string): void {
  if (dtype === 'float16' && provider === 'cpu') {
    throw new DarkroomError(
      'WEIGHTS_DTYPE_UNSUPPORTED',
      'float16 weights need a GPU provider (cuda or webgpu): onnxruntime\'s CPU provider has few float16 kernels and ' +
        'casts the rest back to float32, which saves no memory and loses precision; use float32 on the CPU',
      { dtype, provider },
    );
  }
}
