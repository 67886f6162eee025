import { float32 } from '../../tensor.js';
import type { Sampler } from '../types.js';
import { addNoise, addScaled, toD } from '../tensor-math.js';
import {
  ancestralStep,
  callModel,
  drawNoise,
  expf,
  f32,
  lerp,
  logf,
  numberOption,
  throwIfCancelled,
  workingCopy,
} from './common.js';

/** k-diffusion sample_dpm_2_ancestral: a DPM-Solver-2 step to sigma_down, then noise up to sigma_next. */
export const sampleDpm2Ancestral: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const eta = numberOption(ctx, 'eta', 1);
  const sNoise = numberOption(ctx, 's_noise', 1);
  const x = workingCopy(x0);
  const d = new Float32Array(x.data.length);
  const x2 = float32(x.shape);
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigma = sigmas[i]!;
    const denoised = await callModel(ctx, x, sigma);
    const [sigmaDown, sigmaUp] = ancestralStep(sigma, sigmas[i + 1]!, eta);
    toD(d, x.data, denoised.data, sigma);
    if (sigmaDown === 0) {
      addScaled(x.data, x.data, f32(sigmaDown - sigma), d);
    } else {
      const sigmaMid = expf(lerp(logf(sigma), logf(sigmaDown), 0.5));
      addScaled(x2.data, x.data, f32(sigmaMid - sigma), d);
      const denoised2 = await callModel(ctx, x2, sigmaMid);
      toD(d, x2.data, denoised2.data, sigmaMid);
      addScaled(x.data, x.data, f32(sigmaDown - sigma), d);
      addNoise(x.data, drawNoise(ctx, x), sNoise, sigmaUp);
    }
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
