/**
 * The precision of a worker's weights: float32 (the reference, every provider) or float16 (A1111's default on a
 * GPU: half the weights' memory, graphs built with float16 weights and compute and float32 inputs and outputs).
 *
 * float16 is refused on the CPU provider. onnxruntime's CPU execution provider has float16 kernels for few
 * operators: for the others it inserts Casts to float32 around them at session init, and a Cast of a weight is
 * constant-folded into a float32 copy, so those weights are held in float32 after all (no memory saved: the demo
 * UNet's session measured 390 MiB in float16 against 375 in float32), activations are rounded to half between
 * operators and the casts cost time. The float16 graph itself still runs there, which is how it is validated
 * without a GPU.
 */
import { DarkroomError } from '../errors.js';
import type { Provider } from '../runtime/session.js';
import type { ComputeDType } from './layers.js';

export const WEIGHTS_DTYPES: readonly ComputeDType[] = ['float32', 'float16'];

/** A1111's flag and the usual short names for the same choices (with or without the leading dashes). */
const ALIASES: Readonly<Record<string, ComputeDType>> = {
  fp32: 'float32',
  full: 'float32',
  'no-half': 'float32',
  'precision-full': 'float32',
  fp16: 'float16',
  half: 'float16',
};

/** A weights dtype from configuration text. */
export function parseWeightsDtype(raw: string): ComputeDType {
  const name = raw.trim().toLowerCase().replace(/^-+/, '');
  const dtype = (WEIGHTS_DTYPES as readonly string[]).includes(name) ? (name as ComputeDType) : ALIASES[name];
  if (!dtype) {
    throw new DarkroomError(
      'WEIGHTS_DTYPE_UNKNOWN',
      `unknown weights dtype "${raw}"; use ${WEIGHTS_DTYPES.join(', ')} or ${Object.keys(ALIASES).join(', ')}`,
      { dtype: raw },
    );
  }
  return dtype;
}

/** Refuses float16 weights on a provider that cannot compute in half precision (see the module comment). */
export function checkWeightsDtype(dtype: ComputeDType, provider: Provider): void {
  if (dtype === 'float16' && provider === 'cpu') {
    throw new DarkroomError(
      'WEIGHTS_DTYPE_UNSUPPORTED',
      'float16 weights need a GPU provider (cuda or webgpu): onnxruntime\'s CPU provider has few float16 kernels and ' +
        'casts the rest back to float32, which saves no memory and loses precision; use float32 on the CPU',
      { dtype, provider },
    );
  }
}
