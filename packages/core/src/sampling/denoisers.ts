/**
 * Wrappers that turn a UNet (an eps or v prediction on the VP latent at timestep t) into k-diffusion's
 * denoiser D(x, sigma), exactly as k-diffusion's CompVisDenoiser / CompVisVDenoiser and A1111's
 * LCMCompVisDenoiser do it, in float32.
 */
import { float32, type Float32Tensor } from '../tensor.js';
import type { Denoiser, EpsModel } from './types.js';
import { type DiscreteSchedule, nearestLogIndex, sdDiscreteSchedule } from './schedules/discrete.js';
import { lcmSchedule, LCM_SKIP_STEPS } from './schedules/lcm.js';

const f = Math.fround;

/** The UNet as a function of the (scaled) latent and the timestep per batch item; output in the model's parameterization. */
export type UNetFn = EpsModel;

function perItem(x: Float32Tensor): number {
  return x.data.length / x.shape[0]!;
}

/** k-diffusion's eps scalings: c_in = 1/sqrt(sigma^2 + 1), c_out = -sigma (float32). */
export function epsScalings(sigma: number): { cIn: number; cOut: number } {
  return { cIn: f(1 / Math.sqrt(f(f(sigma * sigma) + 1))), cOut: f(-sigma) };
}

/** x * c_in(sigma[b]) per batch item b, into a new tensor (the UNet may keep its input). */
function scaleInput(x: Float32Tensor, sigma: Float32Array): Float32Tensor {
  const n = perItem(x);
  const src = x.data;
  const out = new Float32Array(src.length);
  for (let b = 0, start = 0; b < x.shape[0]!; b++, start += n) {
    const c = epsScalings(sigma[b]!).cIn;
    const end = start + n;
    for (let i = start; i < end; i++) out[i] = src[i]! * c;
  }
  return float32(x.shape, out);
}

/**
 * CompVisDenoiser (DiscreteEpsDDPMDenoiser): D(x, sigma) = x + eps(x * c_in, sigma_to_t(sigma)) * c_out.
 * `quantize` mirrors A1111's "enable_quantization" option (off by default).
 */
export function compVisDenoiser(
  unet: UNetFn,
  schedule: DiscreteSchedule = sdDiscreteSchedule(),
  opts: { quantize?: boolean } = {},
): Denoiser {
  return async (x, sigma) => {
    const t = Float32Array.from(sigma, (s) => schedule.sigmaToT(s, opts.quantize ?? false));
    const eps = (await unet(scaleInput(x, sigma), t)).data;
    const n = perItem(x);
    const xs = x.data;
    // a fresh tensor every call: multistep samplers keep earlier denoised outputs
    const out = new Float32Array(xs.length);
    for (let b = 0, start = 0; b < x.shape[0]!; b++, start += n) {
      const cOut = epsScalings(sigma[b]!).cOut;
      const end = start + n;
      for (let i = start; i < end; i++) out[i] = xs[i]! + f(eps[i]! * cOut);
    }
    return float32(x.shape, out);
  };
}

/**
 * CompVisVDenoiser (DiscreteVDDPMDenoiser, SD 2.x 768-v): D = v(x * c_in, t) * c_out + x * c_skip with
 * c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1), c_in = 1/sqrt(sigma^2+1).
 */
export function compVisVDenoiser(
  unet: UNetFn,
  schedule: DiscreteSchedule = sdDiscreteSchedule(),
  opts: { quantize?: boolean } = {},
): Denoiser {
  return async (x, sigma) => {
    const t = Float32Array.from(sigma, (s) => schedule.sigmaToT(s, opts.quantize ?? false));
    const v = (await unet(scaleInput(x, sigma), t)).data;
    const n = perItem(x);
    const xs = x.data;
    const out = new Float32Array(xs.length);
    for (let b = 0, start = 0; b < x.shape[0]!; b++, start += n) {
      const s = sigma[b]!;
      const d = f(f(s * s) + 1);
      const cSkip = f(1 / d);
      const cOut = f(f(-s) / Math.sqrt(d));
      const end = start + n;
      for (let i = start; i < end; i++) out[i] = f(v[i]! * cOut) + f(xs[i]! * cSkip);
    }
    return float32(x.shape, out);
  };
}

/**
 * A1111's CompVisTimestepsVDenoiser: turns a v-prediction UNet into the eps model the CompVis samplers call,
 * eps = sqrt(acp[t]) * v + sqrt(1 - acp[t]) * x (t truncated to an integer index).
 */
export function vToEpsModel(unet: UNetFn, alphasCumprod: Float32Array = sdDiscreteSchedule().alphasCumprod): EpsModel {
  return async (x, t) => {
    const v = await unet(x, t);
    const n = perItem(x);
    const out = new Float32Array(x.data.length);
    for (let b = 0; b < x.shape[0]!; b++) {
      const a = alphasCumprod[Math.trunc(t[b]!)]!;
      const sa = f(Math.sqrt(a));
      const s1 = f(Math.sqrt(f(1 - a)));
      for (let i = b * n; i < (b + 1) * n; i++) out[i] = f(sa * v.data[i]!) + f(s1 * x.data[i]!);
    }
    return float32(x.shape, out);
  };
}

/**
 * LCM's timestep for a sigma: the nearest entry of the 50-entry LCM table in float32 log space (first index on
 * ties, as torch.argmin), mapped back to the 1000-step grid: j * 20 + 19.
 */
export function lcmSigmaToT(sigma: number, schedule: DiscreteSchedule = lcmSchedule()): number {
  return nearestLogIndex(schedule.logSigmas, f(Math.log(sigma))) * LCM_SKIP_STEPS + (LCM_SKIP_STEPS - 1);
}

/**
 * A1111's LCMCompVisDenoiser: eps = unet(x * c_in, t) with the quantized LCM timestep, then the consistency
 * output c_out * (x - sigma * eps) + c_skip * x, where s = 10 t, c_skip = 0.25/(s^2+0.25), c_out = s/sqrt(s^2+0.25).
 */
export function lcmDenoiser(unet: UNetFn, schedule: DiscreteSchedule = lcmSchedule()): Denoiser {
  return async (x, sigma) => {
    const t = Float32Array.from(sigma, (s) => lcmSigmaToT(s, schedule));
    const eps = await unet(scaleInput(x, sigma), t);
    const n = perItem(x);
    const out = new Float32Array(x.data.length);
    for (let b = 0; b < x.shape[0]!; b++) {
      const { cOut: minusSigma } = epsScalings(sigma[b]!);
      const s = f(t[b]! * 10);
      const d = f(f(s * s) + 0.25);
      const cSkip = f(0.25 / d);
      const cOut = f(s / Math.sqrt(d));
      for (let i = b * n; i < (b + 1) * n; i++) {
        const xi = x.data[i]!;
        const pred = f(xi + f(eps.data[i]! * minusSigma));
        out[i] = f(f(cOut * pred) + f(cSkip * xi));
      }
    }
    return float32(x.shape, out);
  };
}
