/** Where the SDE samplers get their Brownian noise, and how they add it. */
import { DarkroomError } from '../../errors.js';
import type { Float32Tensor } from '../../tensor.js';
import type { NoiseSampler, SamplerContext } from '../types.js';
import { BatchedBrownianTree } from './brownian-tree.js';
import { positiveSigmaRange } from './common.js';

/**
 * The noise sampler over the schedule's positive range: the caller's factory when given, otherwise one
 * Brownian tree per batch item seeded from `ctx.seeds` with `ctx.randnLocal` (A1111's create_noise_sampler).
 */
export function brownianNoise(ctx: SamplerContext, x: Float32Tensor): NoiseSampler {
  const [sigmaMin, sigmaMax] = positiveSigmaRange(ctx.sigmas);
  if (ctx.brownian) return ctx.brownian(x, sigmaMin, sigmaMax);
  if (!ctx.seeds || !ctx.randnLocal) {
    throw new DarkroomError(
      'SAMPLER_NEEDS_SEEDS',
      'SDE samplers need per-image seeds and randnLocal (or a brownian noise factory) for their Brownian tree',
    );
  }
  const batch = x.shape[0] ?? 1;
  if (ctx.seeds.length !== batch) {
    throw new DarkroomError('SAMPLER_NEEDS_SEEDS', `${ctx.seeds.length} seeds for a batch of ${batch}`);
  }
  const tree = new BatchedBrownianTree(x.shape, sigmaMin, sigmaMax, ctx.seeds, ctx.randnLocal);
  return (sigma, sigmaNext) => tree.noise(sigma, sigmaNext);
}

/** x += noise * sigma_next * scale * s_noise, rounded left to right as upstream's expression. */
export function addSdeNoise(x: Float32Array, noise: Float32Tensor, sigmaNext: number, scale: number, sNoise: number): void {
  const nd = noise.data;
  if (nd.length !== x.length) {
    throw new DarkroomError('SAMPLER_NOISE_SHAPE', `noise has ${nd.length} values, latent ${x.length}`);
  }
  const f = Math.fround;
  const a = f(sigmaNext);
  const b = f(scale);
  const c = f(sNoise);
  for (let k = 0; k < x.length; k++) x[k] = x[k]! + f(f(f(nd[k]! * a) * b) * c);
}
