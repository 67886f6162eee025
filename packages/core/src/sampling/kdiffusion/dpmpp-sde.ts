import { float32 } from '../../tensor.js';
import type { Sampler } from '../types.js';
import { addNoise, addScaled, combine2, scaleSub, toD } from '../tensor-math.js';
import { brownianNoise } from './brownian-noise.js';
import { ancestralStep, callModel, expf, expm1f, f32, logf, numberOption, throwIfCancelled, workingCopy } from './common.js';

const tFn = (sigma: number): number => -logf(sigma);
const sigmaFn = (t: number): number => expf(-t);

/** k-diffusion sample_dpmpp_sde: stochastic DPM-Solver++ with a midpoint (r = 1/2) and Brownian noise. */
export const sampleDpmppSde: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const eta = numberOption(ctx, 'eta', 1);
  const sNoise = numberOption(ctx, 's_noise', 1);
  const r = numberOption(ctx, 'r', 0.5);
  const x = workingCopy(x0);
  const noiseAt = brownianNoise(ctx, x);
  const n = x.data.length;
  const x2 = float32(x.shape);
  const tmp = new Float32Array(n);
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigma = sigmas[i]!;
    const next = sigmas[i + 1]!;
    const denoised = await callModel(ctx, x, sigma);
    if (next === 0) {
      toD(tmp, x.data, denoised.data, sigma);
      addScaled(x.data, x.data, f32(next - sigma), tmp);
    } else {
      const t = tFn(sigma);
      const tNext = tFn(next);
      const h = f32(tNext - t);
      const s = f32(t + f32(h * f32(r)));
      const fac = 1 / (2 * r);
      const sigmaT = sigmaFn(t);
      const sigmaS = sigmaFn(s);

      const [sd1, su1] = ancestralStep(sigmaT, sigmaS, eta);
      const s_ = tFn(sd1);
      scaleSub(x2.data, f32(sigmaFn(s_) / sigmaT), x.data, expm1f(f32(t - s_)), denoised.data);
      addNoise(x2.data, noiseAt(sigmaT, sigmaS).data, sNoise, su1);
      const denoised2 = await callModel(ctx, x2, sigmaS);

      const sigmaNext = sigmaFn(tNext);
      const [sd2, su2] = ancestralStep(sigmaT, sigmaNext, eta);
      const tNext_ = tFn(sd2);
      combine2(tmp, 1 - fac, denoised.data, fac, denoised2.data);
      scaleSub(x.data, f32(sigmaFn(tNext_) / sigmaT), x.data, expm1f(f32(t - tNext_)), tmp);
      addNoise(x.data, noiseAt(sigmaT, sigmaNext).data, sNoise, su2);
    }
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
