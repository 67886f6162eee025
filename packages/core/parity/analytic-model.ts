/**
 * The analytic "UNet" the samplers oracle was recorded with (samplers README, trajectories.json `coeffs`):
 *   eps(z, t) = (a*z + b*tanh(z)) + c*k[ch],  u = t/1000, a = a0 + a1*u, b = b0*(1 - u), c = c0*u,
 * elementwise in float32, ch = dim 1 of NCHW. Use `analyticEps` where A1111 calls apply_model directly (DDIM, PLMS,
 * UniPC) and `analyticDenoiser` / `analyticLcmDenoiser` where the k-diffusion samplers call D(x, sigma).
 */
import { float32 } from '../src/tensor.js';
import type { Denoiser, EpsModel } from '../src/sampling/types.js';
import { compVisDenoiser, lcmDenoiser } from '../src/sampling/denoisers.js';

export interface AnalyticCoeffs {
  readonly a0: number;
  readonly a1: number;
  readonly b0: number;
  readonly c0: number;
  readonly k: readonly number[];
}

/** The public coefficients (trajectories.json → coeffs). */
export const PUBLIC_COEFFS: AnalyticCoeffs = { a0: 0.5, a1: 0.5, b0: 0.25, c0: 0.125, k: [1.0, -0.5, 0.25, -0.125] };

const f = Math.fround;

/** eps(z, t) for NCHW float32 latents, `t` per batch item. */
export function analyticEps(coeffs: AnalyticCoeffs = PUBLIC_COEFFS): EpsModel {
  return async (z, t) => {
    const [batch, channels] = [z.shape[0]!, z.shape[1]!];
    const plane = z.data.length / (batch * channels);
    const out = new Float32Array(z.data.length);
    for (let b = 0; b < batch; b++) {
      const u = f(f(t[b]!) / 1000);
      const a = f(coeffs.a0 + f(coeffs.a1 * u));
      const bb = f(coeffs.b0 * f(1 - u));
      const c = f(coeffs.c0 * u);
      for (let ch = 0; ch < channels; ch++) {
        const shift = f(c * f(coeffs.k[ch]!));
        const base = (b * channels + ch) * plane;
        for (let i = base; i < base + plane; i++) {
          const x = z.data[i]!;
          out[i] = f(f(f(a * x) + f(bb * f(Math.tanh(x)))) + shift);
        }
      }
    }
    return float32(z.shape, out);
  };
}

/** CompVisDenoiser over the analytic eps: what the k-diffusion samplers saw in the oracle. */
export function analyticDenoiser(coeffs: AnalyticCoeffs = PUBLIC_COEFFS): Denoiser {
  return compVisDenoiser(analyticEps(coeffs));
}

/** LCMCompVisDenoiser over the analytic eps (the LCM sampler's model). */
export function analyticLcmDenoiser(coeffs: AnalyticCoeffs = PUBLIC_COEFFS): Denoiser {
  return lcmDenoiser(analyticEps(coeffs));
}
