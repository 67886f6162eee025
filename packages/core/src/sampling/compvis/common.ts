/** Shared pieces of the CompVis-family samplers: options, per-step plumbing and float32 helpers. */
import { float32, type Float32Tensor } from '../../tensor.js';
import type { StepCallback } from '../types.js';

export const f = Math.fround;

/** What every CompVis-style sampler run may be given besides the model. */
export interface CompVisRunOptions {
  /** The model's float32 alphas_cumprod (default: SD's scaled-linear 1000-step table). */
  readonly alphasCumprod?: Float32Array;
  readonly onStep?: StepCallback;
  readonly signal?: AbortSignal;
}


/** A per-batch-item timestep vector as the samplers pass it (`value * s_in`, float32). */
export function perItem(value: number, batch: number): Float32Array {
  return new Float32Array(batch).fill(value);
}

/** out[i] = fn(i), a new tensor of x's shape. */
export function mapTensor(like: Float32Tensor, fn: (i: number) => number): Float32Tensor {
  const out = new Float32Array(like.data.length);
  for (let i = 0; i < out.length; i++) out[i] = fn(i);
  return float32(like.shape, out);
}
