import type { Sampler } from '../types.js';
import { addScaled, toD } from '../tensor-math.js';
import { churn, churnOptions } from './churn.js';
import { callModel, f32, throwIfCancelled, workingCopy } from './common.js';

/** k-diffusion sample_euler (Karras Algorithm 2 with Euler steps). */
export const sampleEuler: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const opts = churnOptions(ctx);
  const x = workingCopy(x0);
  const d = new Float32Array(x.data.length);
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigmaHat = churn(ctx, x, sigmas, i, opts);
    const denoised = await callModel(ctx, x, sigmaHat);
    toD(d, x.data, denoised.data, sigmaHat);
    addScaled(x.data, x.data, f32(sigmas[i + 1]! - sigmaHat), d);
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
