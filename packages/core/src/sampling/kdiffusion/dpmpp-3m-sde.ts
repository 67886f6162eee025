import type { Sampler } from '../types.js';
import { addSdeNoise, brownianNoise } from './brownian-noise.js';
import { callModel, expf, expm1f, f32, logf, numberOption, sqrtf, throwIfCancelled, workingCopy } from './common.js';

/** k-diffusion sample_dpmpp_3m_sde: DPM-Solver++(3M) SDE, Brownian noise. */
export const sampleDpmpp3mSde: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const eta = numberOption(ctx, 'eta', 1);
  const sNoise = numberOption(ctx, 's_noise', 1);
  const x = workingCopy(x0);
  const noiseAt = brownianNoise(ctx, x);
  const n = x.data.length;
  let den1: Float32Array | undefined;
  let den2: Float32Array | undefined;
  let h1: number | undefined;
  let h2: number | undefined;
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigma = sigmas[i]!;
    const next = sigmas[i + 1]!;
    const denoised = await callModel(ctx, x, sigma);
    const den = denoised.data;
    const xd = x.data;
    let h = Infinity;
    if (next === 0) {
      xd.set(den);
    } else {
      const t = -logf(sigma);
      const s = -logf(next);
      h = f32(s - t);
      const hEta = f32(h * f32(eta + 1));
      const a = expf(-hEta);
      const b = -expm1f(-hEta);
      for (let k = 0; k < n; k++) xd[k] = f32(a * xd[k]!) + f32(b * den[k]!);
      if (h2 !== undefined && den1 && den2) {
        const r0 = f32(h1! / h);
        const r1 = f32(h2 / h);
        const phi2 = f32(f32(expm1f(-hEta) / hEta) + 1);
        const phi3 = f32(f32(phi2 / hEta) - 0.5);
        const r01 = f32(r0 + r1);
        for (let k = 0; k < n; k++) {
          const d10 = f32(f32(den[k]! - den1[k]!) / r0);
          const d11 = f32(f32(den1[k]! - den2[k]!) / r1);
          const diff = f32(d10 - d11);
          // d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1); d2 = (d1_0 - d1_1) / (r0 + r1)
          const d1 = f32(d10 + f32(f32(diff * r0) / r01));
          const d2 = f32(diff / r01);
          xd[k] = f32(xd[k]! + f32(phi2 * d1)) - f32(phi3 * d2);
        }
      } else if (h1 !== undefined && den1) {
        const r = f32(h1 / h);
        const phi2 = f32(f32(expm1f(-hEta) / hEta) + 1);
        for (let k = 0; k < n; k++) xd[k] = xd[k]! + f32(phi2 * f32(f32(den[k]! - den1[k]!) / r));
      }
      if (eta) {
        addSdeNoise(xd, noiseAt(sigma, next), next, sqrtf(-expm1f(f32(f32(-2 * h) * f32(eta)))), sNoise);
      }
    }
    den2 = den1;
    den1 = den;
    h2 = h1;
    h1 = h;
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
