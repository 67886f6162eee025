import type { Sampler } from '../types.js';
import { addNoise, eulerUpdate } from '../tensor-math.js';
import { ancestralStep, callModel, drawNoise, f32, numberOption, throwIfCancelled, workingCopy } from './common.js';

/** k-diffusion sample_euler_ancestral: an Euler step down to sigma_down, then fresh noise up to sigma_next. */
export const sampleEulerAncestral: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const eta = numberOption(ctx, 'eta', 1);
  const sNoise = numberOption(ctx, 's_noise', 1);
  const x = workingCopy(x0);
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigma = sigmas[i]!;
    const next = sigmas[i + 1]!;
    const denoised = await callModel(ctx, x, sigma);
    const [sigmaDown, sigmaUp] = ancestralStep(sigma, next, eta);
    eulerUpdate(x.data, denoised.data, sigma, f32(sigmaDown - sigma));
    if (next > 0) addNoise(x.data, drawNoise(ctx, x), sNoise, sigmaUp);
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
