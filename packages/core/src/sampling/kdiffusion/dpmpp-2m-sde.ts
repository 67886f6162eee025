import { DarkroomError } from '../../errors.js';
import type { Sampler } from '../types.js';
import { addSdeNoise, brownianNoise } from './brownian-noise.js';
import { callModel, expf, expm1f, f32, logf, numberOption, sqrtf, stringOption, throwIfCancelled, workingCopy } from './common.js';

/** k-diffusion sample_dpmpp_2m_sde (solver_type 'midpoint' or 'heun'), Brownian noise. */
export const sampleDpmpp2mSde: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const eta = numberOption(ctx, 'eta', 1);
  const sNoise = numberOption(ctx, 's_noise', 1);
  const solver = stringOption(ctx, 'solver_type', 'midpoint');
  if (solver !== 'midpoint' && solver !== 'heun') {
    throw new DarkroomError('SAMPLER_BAD_OPTION', `solver_type must be 'heun' or 'midpoint', got '${solver}'`);
  }
  const x = workingCopy(x0);
  const noiseAt = brownianNoise(ctx, x);
  const n = x.data.length;
  let old: Float32Array | undefined;
  let hLast = 0;
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigma = sigmas[i]!;
    const next = sigmas[i + 1]!;
    const denoised = await callModel(ctx, x, sigma);
    const den = denoised.data;
    const xd = x.data;
    let h = 0;
    if (next === 0) {
      xd.set(den);
      h = Infinity;
    } else {
      const t = -logf(sigma);
      const s = -logf(next);
      h = f32(s - t);
      const etaH = f32(f32(eta) * h);
      // x = sigma_next / sigma * exp(-eta_h) * x + (-h - eta_h).expm1().neg() * denoised
      const a = f32(f32(next / sigma) * expf(-etaH));
      const hh = f32(-h - etaH);
      const b = -expm1f(hh);
      for (let k = 0; k < n; k++) xd[k] = f32(a * xd[k]!) + f32(b * den[k]!);
      if (old !== undefined) {
        const invR = f32(1 / f32(hLast / h));
        const c = solver === 'heun' ? f32(f32(f32(b / hh) + 1) * invR) : f32(f32(0.5 * b) * invR);
        for (let k = 0; k < n; k++) xd[k] = xd[k]! + f32(c * f32(den[k]! - old[k]!));
      }
      if (eta) {
        addSdeNoise(xd, noiseAt(sigma, next), next, sqrtf(-expm1f(f32(-2 * etaH))), sNoise);
      }
    }
    old = den;
    hLast = h;
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
