import type { Sampler } from '../types.js';
import { scaleSub } from '../tensor-math.js';
import { callModel, expf, expm1f, f32, logf, throwIfCancelled, workingCopy } from './common.js';

const tFn = (sigma: number): number => -logf(sigma);
const sigmaFn = (t: number): number => expf(-t);

/** k-diffusion sample_dpmpp_2m: DPM-Solver++(2M), first order on the first and last steps. */
export const sampleDpmpp2m: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const x = workingCopy(x0);
  const n = x.data.length;
  let old: Float32Array | undefined;
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigma = sigmas[i]!;
    const denoised = await callModel(ctx, x, sigma);
    const t = tFn(sigma);
    const tNext = tFn(sigmas[i + 1]!);
    const h = f32(tNext - t);
    const a = f32(sigmaFn(tNext) / sigmaFn(t));
    const b = expm1f(-h);
    if (old === undefined || sigmas[i + 1] === 0) {
      scaleSub(x.data, a, x.data, b, denoised.data);
    } else {
      const hLast = f32(t - tFn(sigmas[i - 1]!));
      const r = f32(hLast / h);
      const c = f32(1 / f32(2 * r));
      const c1 = f32(1 + c);
      const den = denoised.data;
      const xd = x.data;
      const fa = f32(a);
      const fb = f32(b);
      // denoised_d = (1 + 1/(2r)) * denoised - (1/(2r)) * old_denoised, then the update, in one pass.
      for (let k = 0; k < n; k++) {
        const dd = f32(f32(den[k]! * c1) - f32(old[k]! * c));
        xd[k] = f32(xd[k]! * fa) - f32(dd * fb);
      }
    }
    old = denoised.data;
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
