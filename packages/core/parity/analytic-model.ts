/**
 * The analytic "UNet" the samplers oracle was recorded with (samplers README, trajectories.json `coeffs`):
 *   eps(z, t) = (a*z + b*tanh(z)) + c*k[ch],  u = t/1000, a = a0 + a1*u, b = b0*(1 - u), c = c0*u,
 * elementwise in float32, ch = dim 1 of NCHW. Use `analyticEps` where A1111 calls apply_model directly (DDIM, PLMS,
 * UniPC) and `analyticDenoiser` / `analyticLcmDenoiser` where the k-diffusion samplers call D(x, sigma).
 *
 * Parity runs take the coefficients from the folder (`coeffsFromJson`); the public ones are the defaults only
 * for unit tests that need some fixed model.
 */
import { DarkroomError } from '../src/errors.js';
import { float32 } from '../src/tensor.js';
import type { Denoiser, EpsModel } from '../src/sampling/types.js';
import { compVisDenoiser, lcmDenoiser } from '../src/sampling/denoisers.js';
import { sdDiscreteSchedule, type DiscreteSchedule } from '../src/sampling/schedules/discrete.js';
import { lcmSchedule } from '../src/sampling/schedules/lcm.js';

export interface AnalyticCoeffs {
  readonly a0: number;
  readonly a1: number;
  readonly b0: number;
  readonly c0: number;
  readonly k: readonly number[];
}

/** The public oracle's coefficients, for unit tests; parity reads each folder's own. */
export const PUBLIC_COEFFS: AnalyticCoeffs = { a0: 0.5, a1: 0.5, b0: 0.25, c0: 0.125, k: [1.0, -0.5, 0.25, -0.125] };

const f = Math.fround;

/** The `coeffs` object of a trajectories.json, checked: every scalar a finite number, k a list of them. */
export function coeffsFromJson(value: unknown, file: string): AnalyticCoeffs {
  const o = (value ?? {}) as Record<string, unknown>;
  const scalars = ['a0', 'a1', 'b0', 'c0'] as const;
  const bad = scalars.filter((k) => typeof o[k] !== 'number' || !Number.isFinite(o[k]));
  const k = o.k;
  const kOk = Array.isArray(k) && k.length > 0 && k.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (value === undefined || bad.length || !kOk) {
    throw new DarkroomError('PARITY_BAD_COEFFS', `${file}: no usable analytic-model coeffs (${value === undefined ? 'absent' : [...bad, ...(kOk ? [] : ['k'])].join(', ')})`, {
      file,
    });
  }
  return { a0: o.a0 as number, a1: o.a1 as number, b0: o.b0 as number, c0: o.c0 as number, k: k as number[] };
}

/** eps(z, t) for NCHW float32 latents, `t` per batch item. */
export function analyticEps(coeffs: AnalyticCoeffs = PUBLIC_COEFFS): EpsModel {
  return async (z, t) => {
    const [batch, channels] = [z.shape[0]!, z.shape[1]!];
    if (channels > coeffs.k.length) {
      throw new DarkroomError('PARITY_BAD_COEFFS', `the analytic model has ${coeffs.k.length} channel constants k, the latent ${channels} channels`, {
        channels,
      });
    }
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

/** CompVisDenoiser over the analytic eps on the model's schedule: what the k-diffusion samplers saw in the oracle. */
export function analyticDenoiser(coeffs: AnalyticCoeffs = PUBLIC_COEFFS, schedule: DiscreteSchedule = sdDiscreteSchedule()): Denoiser {
  return compVisDenoiser(analyticEps(coeffs), schedule);
}

/** LCMCompVisDenoiser over the analytic eps (the LCM sampler's model), on LCM's table of the model's schedule. */
export function analyticLcmDenoiser(coeffs: AnalyticCoeffs = PUBLIC_COEFFS, schedule: DiscreteSchedule = lcmSchedule()): Denoiser {
  return lcmDenoiser(analyticEps(coeffs), schedule);
}
