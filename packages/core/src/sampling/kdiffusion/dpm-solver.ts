/**
 * k-diffusion's DPMSolver (DPM-Solver-1/2/3 steps in eps form, log-sigma time t = -log sigma) and the two
 * samplers built on it: DPM fast (fixed steps) and DPM adaptive (embedded 2/3 pair with a PID step size).
 * They ignore the schedule: A1111 gives them the model's sigma range (and n = steps for DPM fast).
 */
import type { Float32Tensor } from '../../tensor.js';
import { float32 } from '../../tensor.js';
import type { Sampler, SamplerContext } from '../types.js';
import { addNoise } from '../tensor-math.js';
import { ancestralStep, callModel, drawNoise, expf, expm1f, f32, logf, numberOption, throwIfCancelled } from './common.js';

const tOf = (sigma: number): number => -logf(sigma);
const sigmaOf = (t: number): number => expf(-t);

type EpsKey = 'eps' | 'eps_r1' | 'eps_r2';

/** One solver run: the model in eps form with upstream's per-step cache (the 2- and 3-step share eps_r1). */
class DpmSolver {
  private readonly cache = new Map<EpsKey, Float32Array>();
  readonly n: number;
  calls = 0;

  constructor(
    private readonly ctx: SamplerContext,
    readonly shape: readonly number[],
  ) {
    this.n = shape.reduce((a, b) => a * b, 1);
  }

  resetCache(): void {
    this.cache.clear();
  }

  /** eps = (x - D(x, sigma(t))) / sigma(t); `denoised` is kept for the step callback. */
  lastDenoised: Float32Tensor | undefined;

  async eps(key: EpsKey, x: Float32Array, t: number): Promise<Float32Array> {
    const hit = this.cache.get(key);
    if (hit) return hit;
    const sigma = sigmaOf(t);
    const denoised = await callModel(this.ctx, float32(this.shape, x), sigma);
    this.calls++;
    if (key === 'eps') this.lastDenoised = denoised;
    const out = new Float32Array(this.n);
    const dd = denoised.data;
    for (let k = 0; k < this.n; k++) out[k] = f32(x[k]! - dd[k]!) / sigma;
    this.cache.set(key, out);
    return out;
  }

  async step1(x: Float32Array, t: number, tNext: number): Promise<Float32Array> {
    const h = f32(tNext - t);
    const eps = await this.eps('eps', x, t);
    const a = f32(sigmaOf(tNext) * expm1f(h));
    const out = new Float32Array(this.n);
    for (let k = 0; k < this.n; k++) out[k] = x[k]! - f32(a * eps[k]!);
    return out;
  }

  async step2(x: Float32Array, t: number, tNext: number, r1 = 1 / 2): Promise<Float32Array> {
    const h = f32(tNext - t);
    const eps = await this.eps('eps', x, t);
    const s1 = f32(t + f32(f32(r1) * h));
    const a1 = f32(sigmaOf(s1) * expm1f(f32(f32(r1) * h)));
    const u1 = new Float32Array(this.n);
    for (let k = 0; k < this.n; k++) u1[k] = x[k]! - f32(a1 * eps[k]!);
    const epsR1 = await this.eps('eps_r1', u1, s1);
    const sn = sigmaOf(tNext);
    const em = expm1f(h);
    const a = f32(sn * em);
    const b = f32(f32(sn / f32(2 * r1)) * em);
    const out = u1;
    for (let k = 0; k < this.n; k++) out[k] = f32(x[k]! - f32(a * eps[k]!)) - f32(b * f32(epsR1[k]! - eps[k]!));
    return out;
  }

  async step3(x: Float32Array, t: number, tNext: number, r1 = 1 / 3, r2 = 2 / 3): Promise<Float32Array> {
    const h = f32(tNext - t);
    const eps = await this.eps('eps', x, t);
    const s1 = f32(t + f32(f32(r1) * h));
    const s2 = f32(t + f32(f32(r2) * h));
    const a1 = f32(sigmaOf(s1) * expm1f(f32(f32(r1) * h)));
    const u1 = new Float32Array(this.n);
    for (let k = 0; k < this.n; k++) u1[k] = x[k]! - f32(a1 * eps[k]!);
    const epsR1 = await this.eps('eps_r1', u1, s1);
    const r2h = f32(f32(r2) * h);
    const sig2 = sigmaOf(s2);
    const a2 = f32(sig2 * expm1f(r2h));
    const b2 = f32(f32(sig2 * f32(r2 / r1)) * f32(f32(expm1f(r2h) / r2h) - 1));
    const u2 = new Float32Array(this.n);
    for (let k = 0; k < this.n; k++) u2[k] = f32(x[k]! - f32(a2 * eps[k]!)) - f32(b2 * f32(epsR1[k]! - eps[k]!));
    const epsR2 = await this.eps('eps_r2', u2, s2);
    const sn = sigmaOf(tNext);
    const em = expm1f(h);
    const a = f32(sn * em);
    const b = f32(f32(sn / f32(r2)) * f32(f32(em / h) - 1));
    const out = u2;
    for (let k = 0; k < this.n; k++) out[k] = f32(x[k]! - f32(a * eps[k]!)) - f32(b * f32(epsR2[k]! - eps[k]!));
    return out;
  }
}

export interface DpmRange {
  readonly sigmaMin: number;
  readonly sigmaMax: number;
}

/** torch.linspace on float32 (scalar path: the first half counts up from start, the rest down from end). */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const step = f32(f32(end - start) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? f32(start + f32(step * i)) : f32(end - f32(step * (steps - i - 1)));
  }
  return out;
}

/** k-diffusion sample_dpm_fast / DPMSolver.dpm_solver_fast: `nfe` model calls in steps of order 3 (then 2, 1). */
export async function dpmSolverFast(
  x0: Float32Tensor,
  ctx: SamplerContext,
  range: DpmRange,
  nfe: number,
  eta: number,
  sNoise: number,
): Promise<Float32Tensor> {
  const solver = new DpmSolver(ctx, x0.shape);
  const tStart = tOf(f32(range.sigmaMax));
  const tEnd = tOf(f32(range.sigmaMin));
  const m = Math.floor(nfe / 3) + 1;
  const ts = linspaceF32(tStart, tEnd, m + 1);
  const orders = nfe % 3 === 0 ? [...Array<number>(m - 2).fill(3), 2, 1] : [...Array<number>(m - 1).fill(3), nfe % 3];
  let x: Float32Array = new Float32Array(x0.data);
  for (let i = 0; i < orders.length; i++) {
    throwIfCancelled(ctx.signal);
    solver.resetCache();
    const t = ts[i]!;
    const tNext = ts[i + 1]!;
    let tNext_ = tNext;
    let su = 0;
    if (eta) {
      const [sd] = ancestralStep(sigmaOf(t), sigmaOf(tNext), eta);
      tNext_ = Math.min(tEnd, tOf(sd));
      su = f32(Math.sqrt(f32(f32(sigmaOf(tNext) ** 2) - f32(sigmaOf(tNext_) ** 2))));
    }
    const order = orders[i]!;
    x =
      order === 1
        ? await solver.step1(x, t, tNext_)
        : order === 2
          ? await solver.step2(x, t, tNext_)
          : await solver.step3(x, t, tNext_);
    const noise = drawNoise(ctx, x0);
    addNoise(x, noise, sNoise, su);
    ctx.onStep?.({ step: i, steps: orders.length, x: float32(x0.shape, x), denoised: solver.lastDenoised });
  }
  return float32(x0.shape, x);
}

export interface AdaptiveOptions {
  readonly order: number;
  readonly rtol: number;
  readonly atol: number;
  readonly hInit: number;
  readonly pcoeff: number;
  readonly icoeff: number;
  readonly dcoeff: number;
  readonly acceptSafety: number;
  readonly eta: number;
  readonly sNoise: number;
}

/**
 * torch.linalg.norm of a contiguous float32 tensor on an AVX2 CPU: eight float32 lane accumulators
 * (acc += v * v, rounded twice) over whole vectors, lanes summed in order, then the scalar tail, then sqrt.
 * The adaptive step size feeds on this value, so its rounding decides the next step's times.
 */
export function torchNorm2(v: Float32Array): number {
  const lanes = new Float32Array(8);
  const whole = v.length - (v.length % 8);
  for (let d = 0; d < whole; d += 8) {
    for (let j = 0; j < 8; j++) {
      const x = v[d + j]!;
      lanes[j] = lanes[j]! + f32(x * x);
    }
  }
  let acc = lanes[0]!;
  for (let j = 1; j < 8; j++) acc = f32(acc + lanes[j]!);
  for (let d = whole; d < v.length; d++) acc = f32(acc + f32(v[d]! * v[d]!));
  return f32(Math.sqrt(acc));
}

/** k-diffusion's PIDStepSizeController (plain float64, as upstream keeps h a Python float). */
class PidStepSize {
  private readonly b1: number;
  private readonly b2: number;
  private readonly b3: number;
  private errs: number[] = [];
  constructor(
    public h: number,
    pcoeff: number,
    icoeff: number,
    dcoeff: number,
    order: number,
    private readonly acceptSafety: number,
    private readonly eps = 1e-8,
  ) {
    this.b1 = (pcoeff + icoeff + dcoeff) / order;
    this.b2 = -(pcoeff + 2 * dcoeff) / order;
    this.b3 = dcoeff / order;
  }

  propose(error: number): boolean {
    const inv = 1 / (error + this.eps);
    if (this.errs.length === 0) this.errs = [inv, inv, inv];
    this.errs[0] = inv;
    let factor = this.errs[0] ** this.b1 * this.errs[1]! ** this.b2 * this.errs[2]! ** this.b3;
    factor = 1 + Math.atan(factor - 1);
    const accept = factor >= this.acceptSafety;
    if (accept) {
      this.errs[2] = this.errs[1]!;
      this.errs[1] = this.errs[0];
    }
    this.h *= factor;
    return accept;
  }
}

/** k-diffusion sample_dpm_adaptive / DPMSolver.dpm_solver_adaptive (forward direction only, as sampling is). */
export async function dpmSolverAdaptive(
  x0: Float32Tensor,
  ctx: SamplerContext,
  range: DpmRange,
  o: AdaptiveOptions,
): Promise<Float32Tensor> {
  if (o.order !== 2 && o.order !== 3) throw new RangeError('DPM adaptive order should be 2 or 3');
  const solver = new DpmSolver(ctx, x0.shape);
  const tStart = tOf(f32(range.sigmaMax));
  const tEnd = tOf(f32(range.sigmaMin));
  const atol = f32(o.atol);
  const rtol = f32(o.rtol);
  const pid = new PidStepSize(Math.abs(o.hInit), o.pcoeff, o.icoeff, o.dcoeff, o.eta ? 1.5 : o.order, o.acceptSafety);
  const n = solver.n;
  const rootN = f32(Math.sqrt(n));
  const scaled = new Float32Array(n);
  let s = tStart;
  let x: Float32Array = new Float32Array(x0.data);
  let xPrev: Float32Array = x;
  let step = 0;
  while (s < tEnd - 1e-5) {
    throwIfCancelled(ctx.signal);
    solver.resetCache();
    const t = Math.min(tEnd, f32(s + f32(pid.h)));
    let t_ = t;
    let su = 0;
    if (o.eta) {
      const [sd] = ancestralStep(sigmaOf(s), sigmaOf(t), o.eta);
      t_ = Math.min(tEnd, tOf(sd));
      su = f32(Math.sqrt(f32(f32(sigmaOf(t) ** 2) - f32(sigmaOf(t_) ** 2))));
    }
    let xLow: Float32Array;
    let xHigh: Float32Array;
    if (o.order === 2) {
      xLow = await solver.step1(x, s, t_);
      xHigh = await solver.step2(x, s, t_);
    } else {
      xLow = await solver.step2(x, s, t_, 1 / 3);
      xHigh = await solver.step3(x, s, t_);
    }
    // error = ||(x_low - x_high) / max(atol, rtol * max(|x_low|, |x_prev|))|| / sqrt(numel)
    for (let k = 0; k < n; k++) {
      const delta = Math.max(atol, f32(rtol * Math.max(Math.abs(xLow[k]!), Math.abs(xPrev[k]!))));
      scaled[k] = f32(xLow[k]! - xHigh[k]!) / delta;
    }
    const error = f32(torchNorm2(scaled) / rootN);
    if (pid.propose(error)) {
      xPrev = xLow;
      addNoise(xHigh, drawNoise(ctx, x0), o.sNoise, su);
      x = xHigh;
      s = t;
    }
    ctx.onStep?.({ step, steps: 0, x: float32(x0.shape, x), denoised: solver.lastDenoised });
    step++;
  }
  return float32(x0.shape, x);
}

/**
 * The sigma range and step count: A1111's txt2img passes the model table's ends (options sigma_min /
 * sigma_max) and n = steps; img2img passes the schedule's sigmas[-2], sigmas[0] and len - 1, which is the
 * fallback here when the options are absent.
 */
function rangeFrom(ctx: SamplerContext): DpmRange & { n: number } {
  const s = ctx.sigmas;
  return {
    sigmaMin: numberOption(ctx, 'sigma_min', s[s.length - 2]!),
    sigmaMax: numberOption(ctx, 'sigma_max', s[0]!),
    n: numberOption(ctx, 'n', s.length - 1),
  };
}

/** k-diffusion sample_dpm_fast. */
export const sampleDpmFast: Sampler = (x, ctx) => {
  const r = rangeFrom(ctx);
  if (!(r.sigmaMin > 0 && r.sigmaMax > 0)) throw new RangeError('DPM fast: sigma_min and sigma_max must not be 0');
  return dpmSolverFast(x, ctx, r, r.n, numberOption(ctx, 'eta', 0), numberOption(ctx, 's_noise', 1));
};

/** k-diffusion sample_dpm_adaptive. */
export const sampleDpmAdaptive: Sampler = (x, ctx) => {
  const r = rangeFrom(ctx);
  if (!(r.sigmaMin > 0 && r.sigmaMax > 0)) throw new RangeError('DPM adaptive: sigma_min and sigma_max must not be 0');
  return dpmSolverAdaptive(x, ctx, r, {
    order: numberOption(ctx, 'order', 3),
    rtol: numberOption(ctx, 'rtol', 0.05),
    atol: numberOption(ctx, 'atol', 0.0078),
    hInit: numberOption(ctx, 'h_init', 0.05),
    pcoeff: numberOption(ctx, 'pcoeff', 0),
    icoeff: numberOption(ctx, 'icoeff', 1),
    dcoeff: numberOption(ctx, 'dcoeff', 0),
    acceptSafety: numberOption(ctx, 'accept_safety', 0.81),
    eta: numberOption(ctx, 'eta', 0),
    sNoise: numberOption(ctx, 's_noise', 1),
  });
};
