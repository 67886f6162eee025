import { float32 } from '../../tensor.js';
import type { Sampler } from '../types.js';
import { addScaled, toD } from '../tensor-math.js';
import { churn, churnOptions } from './churn.js';
import { callModel, expf, f32, lerp, logf, throwIfCancelled, workingCopy } from './common.js';

/** k-diffusion sample_dpm_2: DPM-Solver-2 midpoint (geometric mean of the sigmas), Euler for the last step. */
export const sampleDpm2: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const opts = churnOptions(ctx);
  const x = workingCopy(x0);
  const d = new Float32Array(x.data.length);
  const x2 = float32(x.shape);
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigmaHat = churn(ctx, x, sigmas, i, opts);
    const denoised = await callModel(ctx, x, sigmaHat);
    toD(d, x.data, denoised.data, sigmaHat);
    const next = sigmas[i + 1]!;
    if (next === 0) {
      addScaled(x.data, x.data, f32(next - sigmaHat), d);
    } else {
      const sigmaMid = expf(lerp(logf(sigmaHat), logf(next), 0.5));
      addScaled(x2.data, x.data, f32(sigmaMid - sigmaHat), d);
      const denoised2 = await callModel(ctx, x2, sigmaMid);
      toD(d, x2.data, denoised2.data, sigmaMid);
      addScaled(x.data, x.data, f32(next - sigmaHat), d);
    }
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
