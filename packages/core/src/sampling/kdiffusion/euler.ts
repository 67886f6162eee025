import type { Sampler } from '../types.js';
import { eulerUpdate } from '../tensor-math.js';
import { churn, churnOptions } from './churn.js';
import { callModel, f32, throwIfCancelled, workingCopy } from './common.js';

/** k-diffusion sample_euler (Karras Algorithm 2 with Euler steps). */
export const sampleEuler: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const opts = churnOptions(ctx);
  const x = workingCopy(x0);
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigmaHat = churn(ctx, x, sigmas, i, opts);
    const denoised = await callModel(ctx, x, sigmaHat);
    eulerUpdate(x.data, denoised.data, sigmaHat, f32(sigmas[i + 1]! - sigmaHat));
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
