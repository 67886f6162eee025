/**
 * The DDPM noise schedule of ldm's LatentDiffusion ('linear' in ldm, 'scaled_linear' in diffusers): betas are
 * linspace(sqrt(start), sqrt(end), T)**2 in float64 and alphas_cumprod their cumulative product of (1 - beta),
 * stored as float32. Checkpoints usually carry the buffer; when they don't it is computed the same way.
 */
import type { ScheduleConfig } from '../model-files/config.js';

export function computeAlphasCumprod(schedule: ScheduleConfig): Float32Array {
  return Float32Array.from(computeAlphasCumprod64(schedule));
}

/** The float64 cumulative products, before ldm stores them as float32 (its sqrt buffers are taken from these). */
export function computeAlphasCumprod64(schedule: ScheduleConfig): Float64Array {
  const { linearStart, linearEnd, timesteps } = schedule;
  const a = Math.sqrt(linearStart);
  const b = Math.sqrt(linearEnd);
  const out = new Float64Array(timesteps);
  let prod = 1;
  for (let i = 0; i < timesteps; i++) {
    // torch.linspace computes start + i*step for the first half and end - (T-1-i)*step for the second.
    const step = (b - a) / (timesteps - 1);
    const s = i < timesteps / 2 ? a + step * i : b - step * (timesteps - 1 - i);
    prod *= 1 - s * s;
    out[i] = prod;
  }
  return out;
}
