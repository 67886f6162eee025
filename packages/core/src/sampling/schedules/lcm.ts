import { DiscreteSchedule, sdDiscreteSchedule } from './discrete.js';
import { linspaceF32 } from './linspace.js';

/** LCM's original schedule: 50 timesteps, every 20th of the 1000. */
export const LCM_ORIGINAL_STEPS = 50;
export const LCM_SKIP_STEPS = 20;

/** The 50-entry table of A1111's LCMCompVisDenoiser: acp_lcm[49 - j] = acp[999 - 20 j]. */
export function lcmAlphasCumprod(acp: Float32Array = sdDiscreteSchedule().alphasCumprod): Float32Array {
  const total = acp.length;
  const out = new Float32Array(LCM_ORIGINAL_STEPS);
  for (let x = 0; x < LCM_ORIGINAL_STEPS; x++) out[LCM_ORIGINAL_STEPS - 1 - x] = acp[total - 1 - x * LCM_SKIP_STEPS]!;
  return out;
}

let cached: DiscreteSchedule | undefined;

/** The LCM sigma table (50 entries) as a DiscreteSchedule; its sigmaMin/sigmaMax feed every scheduler under LCM. */
export function lcmSchedule(): DiscreteSchedule {
  cached ??= new DiscreteSchedule(lcmAlphasCumprod());
  return cached;
}

/** LCM's sigma for a 1000-grid timestep: t -> clamp((t - 19) / 20, 0, 49) on its own table. */
export function lcmTToSigma(t: number, schedule: DiscreteSchedule = lcmSchedule()): number {
  const idx = Math.fround((t - (LCM_SKIP_STEPS - 1)) / LCM_SKIP_STEPS);
  return schedule.tToSigma(Math.min(Math.max(idx, 0), schedule.sigmas.length - 1));
}

/** LCMCompVisDenoiser.get_sigmas(n): t = linspace(999, 19, n) on the 1000 grid, mapped through its table, then 0. */
export function lcmGetSigmas(n: number, schedule: DiscreteSchedule = lcmSchedule()): Float32Array {
  const start = (schedule.sigmas.length - 1) * LCM_SKIP_STEPS + (LCM_SKIP_STEPS - 1);
  const ts = linspaceF32(start, LCM_SKIP_STEPS - 1, n);
  const out = new Float32Array(n + 1);
  ts.forEach((t, i) => (out[i] = lcmTToSigma(t, schedule)));
  return out;
}
