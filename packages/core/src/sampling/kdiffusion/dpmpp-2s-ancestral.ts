import { float32 } from '../../tensor.js';
import type { Sampler } from '../types.js';
import { addNoise, addScaled, scaleSub, toD } from '../tensor-math.js';
import {
  ancestralStep,
  callModel,
  drawNoise,
  expf,
  expm1f,
  f32,
  logf,
  numberOption,
  throwIfCancelled,
  workingCopy,
} from './common.js';

const tFn = (sigma: number): number => -logf(sigma);
const sigmaFn = (t: number): number => expf(-t);

/** k-diffusion sample_dpmpp_2s_ancestral: DPM-Solver++(2S) to sigma_down, then ancestral noise. */
export const sampleDpmpp2sAncestral: Sampler = async (x0, ctx) => {
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
    const next = sigmas[i + 1]!;
    const denoised = await callModel(ctx, x, sigma);
    const [sigmaDown, sigmaUp] = ancestralStep(sigma, next, eta);
    if (sigmaDown === 0) {
      toD(d, x.data, denoised.data, sigma);
      addScaled(x.data, x.data, f32(sigmaDown - sigma), d);
    } else {
      const t = tFn(sigma);
      const tNext = tFn(sigmaDown);
      const r = 0.5;
      const h = f32(tNext - t);
      const s = f32(t + f32(r * h));
      const sigmaT = sigmaFn(t);
      // x_2 = (sigma_fn(s) / sigma_fn(t)) * x - (-h * r).expm1() * denoised
      scaleSub(x2.data, f32(sigmaFn(s) / sigmaT), x.data, expm1f(f32(-h * r)), denoised.data);
      const denoised2 = await callModel(ctx, x2, sigmaFn(s));
      scaleSub(x.data, f32(sigmaFn(tNext) / sigmaT), x.data, expm1f(-h), denoised2.data);
    }
    if (next > 0) addNoise(x.data, drawNoise(ctx, x), sNoise, sigmaUp);
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
