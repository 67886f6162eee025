/** Pieces every k-diffusion sampler shares: option reading, cancellation, model calls, float32 scalars. */
import { DarkroomError } from '../../errors.js';

// Samplers check for a cancel between steps with the one cancellation every layer throws.
export { throwIfCancelled } from '../../errors.js';
import { float32, type Float32Tensor } from '../../tensor.js';
import type { SamplerContext } from '../types.js';
import { torchExpf, torchExpm1f, torchLogf } from './torch-scalar-math.js';

/** float32 rounding: torch does the samplers' scalar arithmetic on 0-dim float32 tensors. */
export const f32 = Math.fround;

export function numberOption(ctx: SamplerContext, name: string, fallback: number): number {
  const v = ctx.options?.[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || Number.isNaN(v)) {
    throw new DarkroomError('SAMPLER_BAD_OPTION', `sampler option ${name} must be a number, got ${String(v)}`, {
      option: name,
    });
  }
  return v;
}

export function stringOption(ctx: SamplerContext, name: string, fallback: string): string {
  const v = ctx.options?.[name];
  if (v === undefined) return fallback;
  return String(v);
}

/** A working copy of the start latent: samplers update it in place and return it. */
export function workingCopy(x: Float32Tensor): Float32Tensor {
  return float32(x.shape, new Float32Array(x.data));
}

/** Calls the denoiser at one scalar sigma for every batch item. */
export function callModel(ctx: SamplerContext, x: Float32Tensor, sigma: number): Promise<Float32Tensor> {
  const batch = x.shape[0] ?? 1;
  return ctx.denoise(x, new Float32Array(batch).fill(f32(sigma)));
}

/** One draw of the per-image generators whose value the step needs. */
export function drawNoise(ctx: SamplerContext, like: Float32Tensor): Float32Array {
  const n = ctx.noise();
  if (n.data.length !== like.data.length) {
    throw new DarkroomError('SAMPLER_NOISE_SHAPE', `noise has ${n.data.length} values, latent ${like.data.length}`);
  }
  return n.data;
}

/** A draw the step consumes but does not use (keeps the generators in step with A1111). */
export function skipNoise(ctx: SamplerContext): void {
  if (ctx.skipNoise) ctx.skipNoise();
  else ctx.noise();
}

/** k-diffusion get_ancestral_step in float32: [sigma_down, sigma_up]. */
export function ancestralStep(sigmaFrom: number, sigmaTo: number, eta: number): [number, number] {
  if (!eta) return [sigmaTo, 0];
  const from2 = f32(sigmaFrom * sigmaFrom);
  const to2 = f32(sigmaTo * sigmaTo);
  const up = f32(f32(eta) * f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2))));
  const sigmaUp = Math.min(sigmaTo, up);
  const sigmaDown = f32(Math.sqrt(f32(to2 - f32(sigmaUp * sigmaUp))));
  return [sigmaDown, sigmaUp];
}

/** Brownian-noise samplers' interval: smallest positive and largest sigma of the schedule. */
export function positiveSigmaRange(sigmas: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of sigmas) {
    if (s > 0 && s < lo) lo = s;
    if (s > hi) hi = s;
  }
  return [lo, hi];
}

/** torch.lerp for float32 scalars (weight 0.5 takes the `end - (end - start) * (1 - w)` branch). */
export function lerp(start: number, end: number, w: number): number {
  const diff = f32(end - start);
  return w < 0.5 ? f32(start + f32(f32(w) * diff)) : f32(end - f32(diff * f32(1 - w)));
}

export const logf = torchLogf;
export const expf = torchExpf;
export const expm1f = torchExpm1f;
export const sqrtf = (x: number): number => f32(Math.sqrt(x));
