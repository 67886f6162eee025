/** The "churn" prologue Euler, Heun and DPM2 share (Karras et al. 2022, Algorithm 2). */
import type { Float32Tensor } from '../../tensor.js';
import type { SamplerContext } from '../types.js';
import { addNoise } from '../tensor-math.js';
import { drawNoise, f32, numberOption, skipNoise, sqrtf } from './common.js';

export interface ChurnOptions {
  readonly sChurn: number;
  readonly sTmin: number;
  readonly sTmax: number;
  readonly sNoise: number;
}

export function churnOptions(ctx: SamplerContext): ChurnOptions {
  const sTmax = numberOption(ctx, 's_tmax', 0);
  return {
    sChurn: numberOption(ctx, 's_churn', 0),
    sTmin: numberOption(ctx, 's_tmin', 0),
    // A1111 passes `opts.s_tmax or inf`: 0 means no upper bound.
    sTmax: sTmax === 0 ? Infinity : sTmax,
    sNoise: numberOption(ctx, 's_noise', 1),
  };
}

/**
 * Draws this step's noise (always: the generators advance even with s_churn 0), raises x to sigma_hat when
 * gamma > 0, and returns sigma_hat.
 */
export function churn(ctx: SamplerContext, x: Float32Tensor, sigmas: Float32Array, i: number, o: ChurnOptions): number {
  const sigma = sigmas[i]!;
  const gamma = o.sTmin <= sigma && sigma <= o.sTmax ? Math.min(o.sChurn / (sigmas.length - 1), 2 ** 0.5 - 1) : 0;
  if (!(gamma > 0)) {
    skipNoise(ctx);
    return f32(sigma * f32(gamma + 1));
  }
  const eps = drawNoise(ctx, x);
  const sigmaHat = f32(sigma * f32(gamma + 1));
  const scale = sqrtf(f32(f32(sigmaHat * sigmaHat) - f32(sigma * sigma)));
  // eps = randn * s_noise, then x + eps * scale: the same float32 rounding order as addNoise.
  addNoise(x.data, eps, o.sNoise, scale);
  return sigmaHat;
}
