/**
 * How the UNet and VAE attentions are built: the plain MatMul/Softmax form (the reference), split or
 * sub-quadratic chunks that never hold a whole score matrix, or onnxruntime's fused MultiHeadAttention.
 * A worker or engine picks one mode; it changes memory and speed, not the image beyond float rounding, so it
 * is part of the compile-cache key and never of the infotext.
 */
import { DarkroomError } from '../errors.js';
import { planSplit, planSubQuad, scoreBlockBytes, wholeScoresUpTo, type ScoreShape } from './attention-plan.js';
import type { Provider } from '../runtime/session.js';

import type { AttentionForm, AttentionMode } from '../catalog/engine-flags.js';

export { ATTENTION_MODES, parseAttentionMode, type AttentionForm, type AttentionMode } from '../catalog/engine-flags.js';

/** Score blocks of one chunk stay within this by default: a few of them beside a UNet's own activations. */
export const DEFAULT_ATTENTION_CHUNK_BYTES = 256 * 1024 ** 2;

/**
 * `auto` on the CPU keeps the plain reference only for attentions whose whole float32 score tensor (every batch row
 * and head) is at most this: the tiny models' and the lowest UNet levels', where the scores cost nothing beside the
 * convolutions. Anything larger goes to the fused kernel, which measured both leaner and faster on the CPU provider
 * at every size tried (bench/README.md, attention-memory): with the earlier bound (half a chunk target, 128 MiB),
 * the plain attentions kept at SD 1.5's lower levels at 1024x1024 cost 0.3 GiB and put the step above 6 GB.
 */
export const AUTO_CPU_PLAIN_SCORE_BYTES = 16 * 1024 ** 2;

/** What the graph builders are given: the form for large attentions and the memory target of one chunk. */
export interface AttentionBuild {
  readonly form: AttentionForm;
  /** Bytes the float32 score blocks of one chunk (and what is derived from them) may take. */
  readonly chunkBytes: number;
  /**
   * Attentions whose whole float32 score tensor (batch x heads x queries x keys) is at most this many bytes use the
   * plain form (the reference) whatever `form` is; 0 for none. The memory estimate reads the same number.
   */
  readonly plainUpToBytes: number;
}

export const PLAIN_ATTENTION: AttentionBuild = {
  form: 'plain', chunkBytes: DEFAULT_ATTENTION_CHUNK_BYTES, plainUpToBytes: Number.POSITIVE_INFINITY,
};

/**
 * The build for a mode on a provider. `auto`: the fused kernels on GPU providers (memory-efficient there);
 * on the CPU the plain reference for the small attentions (AUTO_CPU_PLAIN_SCORE_BYTES) and the fused kernel for
 * the rest (onnxruntime's CPU MultiHeadAttention works in blocks and is the fastest of the lean forms there).
 */
export function attentionBuild(mode: AttentionMode, provider: Provider = 'cpu', chunkBytes = DEFAULT_ATTENTION_CHUNK_BYTES): AttentionBuild {
  if (!Number.isFinite(chunkBytes) || chunkBytes <= 0) {
    throw new DarkroomError('ATTENTION_CHUNK_BYTES', `the attention chunk target must be a positive number of bytes, got ${chunkBytes}`);
  }
  if (mode === 'auto') return { form: 'fused', chunkBytes, plainUpToBytes: provider === 'cpu' ? AUTO_CPU_PLAIN_SCORE_BYTES : 0 };
  if (mode === 'plain') return { form: 'plain', chunkBytes, plainUpToBytes: Number.POSITIVE_INFINITY };
  return { form: mode, chunkBytes, plainUpToBytes: mode === 'fused' ? 0 : wholeScoresUpTo(chunkBytes) };
}

/**
 * The memory-lean modes also run the UNet's feed-forwards in token chunks within the same target: once attention
 * no longer holds whole score matrices, the GEGLU activations (eight times the width) are the largest tensors
 * left at 1024x1024. Same values, so the plain reference graph is left as it is.
 */
export function feedForwardChunkBytes(a: AttentionBuild): number | undefined {
  return a.form === 'plain' ? undefined : a.chunkBytes;
}

/** The cache-key facts of a build: what changes the graph, nothing else. */
export function attentionKey(a: AttentionBuild): Readonly<Record<string, unknown>> {
  if (a.form === 'plain') return { form: 'plain' };
  return { form: a.form, chunkBytes: a.chunkBytes, plainUpToBytes: a.plainUpToBytes };
}

/** How one attention layer of the given score shape is built. */
export type LayerAttention =
  | { readonly form: 'plain' }
  | { readonly form: 'fused' }
  | { readonly form: 'split'; readonly queries: readonly number[] }
  | { readonly form: 'subquad'; readonly queries: readonly number[]; readonly keys: readonly number[] };

export function layerAttention(a: AttentionBuild, shape: ScoreShape): LayerAttention {
  if (a.form === 'plain' || scoreBlockBytes(shape, shape.queries, shape.keys) <= a.plainUpToBytes) return { form: 'plain' };
  if (a.form === 'fused') return { form: 'fused' };
  if (a.form === 'split') return { form: 'split', queries: planSplit(shape, a.chunkBytes) };
  return { form: 'subquad', ...planSubQuad(shape, a.chunkBytes) };
}
