/**
 * A1111 `sd_emphasis.py`: how per-token multipliers act on the text encoder output of one chunk batch.
 * "Original" scales each token's vector and restores the mean of the whole (B,77,C) batch tensor, so the
 * texts encoded together (cond and uncond of one call, or the schedule texts of one prompt) share one mean.
 *
 * The two means are float32 sums in torch's CPU summation order (torch-sum.ts), so the result matches A1111 on
 * CPU bit for bit; on CUDA torch sums in another order and results differ in the last bits.
 */
import { DarkroomError } from '../errors.js';
import type { EmphasisMode } from './chunking.js';
import { torchMeanF32 } from './torch-sum.js';

export type { EmphasisMode } from './chunking.js';

export const EMPHASIS_MODES: readonly EmphasisMode[] = ['Original', 'None', 'Ignore', 'No norm'];

/**
 * Applies emphasis to `z` (shape [B, T, C], row-major) with `multipliers` (B*T values, token-major).
 * Returns a new array; "None" and "Ignore" return a copy of `z`.
 */
export function applyEmphasis(
  mode: EmphasisMode,
  z: Float32Array,
  shape: readonly [number, number, number],
  multipliers: ArrayLike<number>,
): Float32Array {
  const [b, t, c] = shape;
  if (z.length !== b * t * c) throw new DarkroomError('EMPHASIS_SHAPE', `z has ${z.length} values, shape says ${b * t * c}`);
  if (multipliers.length !== b * t) {
    throw new DarkroomError('EMPHASIS_SHAPE', `${multipliers.length} multipliers for ${b * t} tokens`);
  }
  if (mode === 'None' || mode === 'Ignore') return Float32Array.from(z);
  if (mode !== 'Original' && mode !== 'No norm') throw new DarkroomError('EMPHASIS_UNKNOWN', `unknown emphasis mode "${String(mode)}"`);

  const scaled = new Float32Array(z.length);
  for (let token = 0; token < b * t; token++) {
    const m = Math.fround(multipliers[token]!);
    const base = token * c;
    for (let k = 0; k < c; k++) scaled[base + k] = z[base + k]! * m;
  }
  if (mode === 'No norm') return scaled;

  const ratio = Math.fround(torchMeanF32(z) / torchMeanF32(scaled));
  for (let i = 0; i < scaled.length; i++) scaled[i] = scaled[i]! * ratio;
  return scaled;
}

/** The infotext/option names A1111 accepts ("No norm" is written with a space). */
export function parseEmphasisMode(name: string): EmphasisMode {
  const found = EMPHASIS_MODES.find((m) => m === name);
  if (!found) throw new DarkroomError('EMPHASIS_UNKNOWN', `unknown emphasis mode "${name}"; expected one of ${EMPHASIS_MODES.join(', ')}`);
  return found;
}
