import { float32 } from '../../tensor.js';
import type { Sampler } from '../types.js';
import { addScaled, toD } from '../tensor-math.js';
import { churn, churnOptions } from './churn.js';
import { callModel, f32, throwIfCancelled, workingCopy } from './common.js';

/** k-diffusion sample_heun: Euler predictor, trapezoidal corrector; the last step (to sigma 0) is plain Euler. */
export const sampleHeun: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const opts = churnOptions(ctx);
  const x = workingCopy(x0);
  const n = x.data.length;
  const d = new Float32Array(n);
  const d2 = new Float32Array(n);
  const x2 = float32(x.shape);
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigmaHat = churn(ctx, x, sigmas, i, opts);
    const denoised = await callModel(ctx, x, sigmaHat);
    toD(d, x.data, denoised.data, sigmaHat);
    const next = sigmas[i + 1]!;
    const dt = f32(next - sigmaHat);
    if (next === 0) {
      addScaled(x.data, x.data, dt, d);
    } else {
      addScaled(x2.data, x.data, dt, d);
      const denoised2 = await callModel(ctx, x2, next);
      toD(d2, x2.data, denoised2.data, next);
      const xd = x.data;
      const fdt = f32(dt);
      // d_prime = (d + d_2) / 2; x = x + d_prime * dt
      for (let k = 0; k < n; k++) xd[k] = xd[k]! + f32(f32(f32(d[k]! + d2[k]!) / 2) * fdt);
    }
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
