/**
 * A1111's schedulers (modules/sd_schedulers.py and k-diffusion's get_sigmas_*): each turns a step count into a
 * float32 sigma list, computed with torch's float32 arithmetic where A1111 uses tensors and float64 where it uses
 * Python/numpy, so the lists match A1111 to the last bit or two.
 */
import { SCHEDULER_CATALOG, type SchedulerEntry } from '../../catalog/schedulers.js';
import type { DiscreteSchedule } from './discrete.js';
import { lcmGetSigmas, lcmSchedule, lcmTToSigma, LCM_SKIP_STEPS } from './lcm.js';
import { linspaceF32, numpyLinspace } from './linspace.js';
import { betaPpf } from './beta-ppf.js';
import { nearestLogIndex } from './discrete.js';

const f = Math.fround;

/**
 * What a scheduler may ask of the model's noise schedule (k-diffusion's model_wrap): its table, conversions and own
 * discrete schedule. The SD model and LCM's 50-entry variant differ in all of them.
 */
export interface SigmaModel {
  /** The sigma table, increasing (index = timestep for the 1000-step model). */
  readonly sigmas: Float32Array;
  sigmaToT(sigma: number): number;
  tToSigma(t: number): number;
  /** model_wrap.get_sigmas(n): the model's own schedule, with the trailing 0. */
  getSigmas(n: number): Float32Array;
}

/** The SD discrete schedule as a SigmaModel (CompVisDenoiser, unquantized). */
export function discreteSigmaModel(schedule: DiscreteSchedule, quantize = false): SigmaModel {
  return {
    sigmas: schedule.sigmas,
    sigmaToT: (s) => schedule.sigmaToT(s, quantize),
    tToSigma: (t) => schedule.tToSigma(t),
    getSigmas: (n) => schedule.getSigmas(n),
  };
}

/** LCMCompVisDenoiser as a SigmaModel: quantized 1000-grid timesteps over its 50-entry table. */
export function lcmSigmaModel(schedule: DiscreteSchedule = lcmSchedule()): SigmaModel {
  return {
    sigmas: schedule.sigmas,
    sigmaToT: (s) => nearestLogIndex(schedule.logSigmas, f(Math.log(s))) * LCM_SKIP_STEPS + (LCM_SKIP_STEPS - 1),
    tToSigma: (t) => lcmTToSigma(t, schedule),
    getSigmas: (n) => lcmGetSigmas(n, schedule),
  };
}

export interface SchedulerArgs {
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  /** Only where the scheduler has a rho (karras 7, polyexponential 1); undefined = its default. */
  readonly rho?: number;
  readonly model: SigmaModel;
  /** Align Your Steps picks the SDXL table for SDXL models. */
  readonly sdxl?: boolean;
  /** opts.beta_dist_alpha / beta_dist_beta (0.6 / 0.6). */
  readonly betaAlpha?: number;
  readonly betaBeta?: number;
}

export type SchedulerFn = (n: number, args: SchedulerArgs) => Float32Array;

function withZero(values: ArrayLike<number>): Float32Array {
  const out = new Float32Array(values.length + 1);
  out.set(Array.from(values, f));
  return out;
}

/** k-diffusion get_sigmas_karras (rho 7): (max^(1/rho) + ramp*(min^(1/rho) - max^(1/rho)))^rho in float32. */
export const karras: SchedulerFn = (n, { sigmaMin, sigmaMax, rho = 7 }) => {
  const ramp = linspaceF32(0, 1, n);
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  const span = f(minInv - maxInv);
  return withZero(ramp.map((r) => f(f(f(maxInv) + f(r * span)) ** rho)));
};

/** k-diffusion get_sigmas_exponential: exp(linspace(ln max, ln min, n)). */
export const exponential: SchedulerFn = (n, { sigmaMin, sigmaMax }) =>
  withZero(linspaceF32(Math.log(sigmaMax), Math.log(sigmaMin), n).map((v) => f(Math.exp(v))));

/** k-diffusion get_sigmas_polyexponential (rho 1). */
export const polyexponential: SchedulerFn = (n, { sigmaMin, sigmaMax, rho = 1 }) => {
  const lmax = Math.log(sigmaMax);
  const lmin = Math.log(sigmaMin);
  const span = f(lmax - lmin);
  return withZero(
    linspaceF32(1, 0, n).map((r) => {
      const ramp = f(r ** rho);
      return f(Math.exp(f(f(ramp * span) + f(lmin))));
    }),
  );
};

/** model_wrap.get_sigmas(n): the model's own schedule (A1111 "Uniform"). */
export const uniform: SchedulerFn = (n, { model }) => model.getSigmas(n);

function timestepSchedule(n: number, model: SigmaModel, sigmaMin: number, sigmaMax: number, sgm: boolean): Float32Array {
  const start = model.sigmaToT(f(sigmaMax));
  const end = model.sigmaToT(f(sigmaMin));
  const ts = sgm ? linspaceF32(start, end, n + 1).slice(0, n) : linspaceF32(start, end, n);
  return withZero(ts.map((t) => model.tToSigma(t)));
}

/** SGM Uniform: n of n+1 timesteps evenly spaced from t(max) to t(min). */
export const sgmUniform: SchedulerFn = (n, { model, sigmaMin, sigmaMax }) =>
  timestepSchedule(n, model, sigmaMin, sigmaMax, true);

/** Normal: n timesteps evenly spaced from t(max) to t(min). */
export const normal: SchedulerFn = (n, { model, sigmaMin, sigmaMax }) =>
  timestepSchedule(n, model, sigmaMin, sigmaMax, false);

/** KL Optimal: tan of evenly spaced arctan(sigma), n + 1 values ending at sigma_min (no trailing 0, as A1111). */
export const klOptimal: SchedulerFn = (n, { sigmaMin, sigmaMax }) => {
  const aMin = f(Math.atan(f(sigmaMin)));
  const aMax = f(Math.atan(f(sigmaMax)));
  const out = new Float32Array(n + 1);
  for (let i = 0; i <= n; i++) {
    const r = f(i / n);
    out[i] = Math.tan(f(f(r * aMin) + f(f(1 - r) * aMax)));
  }
  return out;
};

const AYS_SD15 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029];
const AYS_SDXL = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.38, 0.234, 0.113, 0.029];

/** numpy.interp for increasing xp. */
function npInterp(x: number, xp: readonly number[], fp: readonly number[]): number {
  const last = xp.length - 1;
  if (x <= xp[0]!) return x === xp[0]! ? fp[0]! : fp[0]!;
  if (x >= xp[last]!) return fp[last]!;
  let j = 0;
  while (!(xp[j]! <= x && x < xp[j + 1]!)) j++;
  const slope = (fp[j + 1]! - fp[j]!) / (xp[j + 1]! - xp[j]!);
  return slope * (x - xp[j]!) + fp[j]!;
}

/** Align Your Steps: NVIDIA's 11-point table, log-linearly interpolated (float64) to n points when n != 11. */
export const alignYourSteps: SchedulerFn = (n, { sdxl }) => {
  const table = sdxl ? AYS_SDXL : AYS_SD15;
  if (n === table.length) return withZero(table);
  const xs = numpyLinspace(0, 1, table.length);
  const ys = [...table].reverse().map(Math.log);
  const newXs = numpyLinspace(0, 1, n);
  const interped = newXs.map((x) => Math.exp(npInterp(x, xs, ys))).reverse();
  return withZero(interped);
};

/** Simple: every (1000/n)-th table sigma from the top. */
export const simple: SchedulerFn = (n, { model }) => {
  const len = model.sigmas.length;
  const ss = len / n;
  const out: number[] = [];
  for (let x = 0; x < n; x++) out.push(model.sigmas[len - 1 - Math.trunc(x * ss)]!);
  return withZero(out);
};

/** DDIM: table sigmas 1, 1 + ss, 1 + 2 ss, ... (ss = 1000 // n), reversed (may not be n values). */
export const ddimUniform: SchedulerFn = (n, { model }) => {
  const len = model.sigmas.length;
  const ss = Math.max(Math.floor(len / n), 1);
  const out: number[] = [];
  for (let x = 1; x < len; x += ss) out.push(model.sigmas[x]!);
  return withZero(out.reverse());
};

/** Beta (A1111 dev): t = t(min) + ppf(linspace(1, 0, n)) * (t(max) - t(min)) in float32, then sigma(t). */
export const beta: SchedulerFn = (n, { model, sigmaMin, sigmaMax, betaAlpha = 0.6, betaBeta = 0.6 }) => {
  const start = model.sigmaToT(f(sigmaMax));
  const end = model.sigmaToT(f(sigmaMin));
  const span = f(start - end);
  const curve = numpyLinspace(1, 0, n).map((q) => f(betaPpf(q, betaAlpha, betaBeta)));
  return withZero(curve.map((c) => model.tToSigma(f(f(end) + f(c * span)))));
};

/** Beta as A1111 v1.10.1 computes it: in sigma space, sigma_min + ppf(1 - i/(n-1)) * (sigma_max - sigma_min). */
export const betaV1101: SchedulerFn = (n, { sigmaMin, sigmaMax, betaAlpha = 0.6, betaBeta = 0.6 }) => {
  const ts = numpyLinspace(0, 1, n).map((x) => betaPpf(1 - x, betaAlpha, betaBeta));
  return withZero(ts.map((x) => sigmaMin + x * (sigmaMax - sigmaMin)));
};

export interface SchedulerInfo extends SchedulerEntry {
  /** undefined for 'automatic' (the sampler's own default decides). */
  readonly fn?: SchedulerFn;
}

/** The sigma function of each scheduler name; 'automatic' has none. */
const FUNCTIONS: Readonly<Partial<Record<string, SchedulerFn>>> = {
  uniform,
  karras,
  exponential,
  polyexponential,
  sgm_uniform: sgmUniform,
  kl_optimal: klOptimal,
  align_your_steps: alignYourSteps,
  simple,
  normal,
  ddim: ddimUniform,
  beta,
};

/** The catalog's scheduler list (A1111's order) with each scheduler's sigma function. */
export const SCHEDULERS: readonly SchedulerInfo[] = SCHEDULER_CATALOG.map((s) => {
  const fn = FUNCTIONS[s.name];
  return fn ? { ...s, fn } : s;
});

/** schedulers_map: by name, label or alias (exact, case-sensitive as A1111). */
export function findScheduler(nameOrLabel: string): SchedulerInfo | undefined {
  return SCHEDULERS.find((s) => s.name === nameOrLabel || s.label === nameOrLabel || s.aliases.includes(nameOrLabel));
}

/** The model-independent pieces of the sd_model: LCM's variant shares the API. */
export { lcmGetSigmas };
