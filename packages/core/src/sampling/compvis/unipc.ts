/**
 * A1111's UniPC (modules/models/diffusion/uni_pc/uni_pc.py, as A1111 configures it: data prediction, multistep,
 * B(h) variants bh1/bh2, time-uniform steps from t=1 to 1/1000) with the discrete VP noise schedule, in float32
 * as torch runs it. The small linear solves for the rho coefficients run in float64 and are rounded to float32.
 */
import { float32, type Float32Tensor } from '../../tensor.js';
import { DarkroomError, throwIfCancelled } from '../../errors.js';
import type { EpsModel } from '../types.js';
import { sdDiscreteSchedule } from '../schedules/discrete.js';
import { linspaceF32 } from '../schedules/linspace.js';
import { perItem, type CompVisRunOptions } from './common.js';

const f = Math.fround;

export type UniPcVariant = 'bh1' | 'bh2';

export interface UniPcOptions extends CompVisRunOptions {
  /** opts.uni_pc_variant (default bh1). */
  readonly variant?: UniPcVariant;
  /** opts.uni_pc_order (default 3). */
  readonly order?: number;
  /** opts.uni_pc_lower_order_final (default true). */
  readonly lowerOrderFinal?: boolean;
  /** img2img: start time t_start = timesteps[-1]/1000 + 1/1000 as A1111 passes it; undefined = 1. */
  readonly tStart?: number;
}

/** NoiseScheduleVP('discrete'): piecewise-linear log alpha over t = (i + 1) / N. */
export class DiscreteVpSchedule {
  readonly tArray: number[];
  readonly logAlphaArray: Float32Array;
  readonly totalN: number;

  constructor(alphasCumprod: Float32Array) {
    this.totalN = alphasCumprod.length;
    this.tArray = linspaceF32(0, 1, this.totalN + 1).slice(1);
    this.logAlphaArray = Float32Array.from(alphasCumprod, (a) => f(0.5 * f(Math.log(a))));
  }

  /** interpolate_fn(t, t_array, log_alpha_array): linear, extrapolated from the end segments. */
  marginalLogMeanCoeff(t: number): number {
    const xp = this.tArray;
    const yp = this.logAlphaArray;
    const K = xp.length;
    let idx = 0;
    while (idx < K && xp[idx]! < t) idx++;
    const j = idx === 0 ? 0 : idx === K ? K - 2 : idx - 1;
    const sx = xp[j]!;
    const ex = xp[j + 1]!;
    const sy = yp[j]!;
    const ey = yp[j + 1]!;
    return f(sy + f(f(f(t - sx) * f(ey - sy)) / f(ex - sx)));
  }

  marginalAlpha(t: number): number {
    return f(Math.exp(this.marginalLogMeanCoeff(t)));
  }

  marginalStd(t: number): number {
    return f(Math.sqrt(f(1 - f(Math.exp(f(2 * this.marginalLogMeanCoeff(t)))))));
  }

  marginalLambda(t: number): number {
    const lmc = this.marginalLogMeanCoeff(t);
    const logStd = f(0.5 * f(Math.log(f(1 - f(Math.exp(f(2 * lmc)))))));
    return f(lmc - logStd);
  }

  /** The model's timestep for a continuous time: (t - 1/N) * 1000. */
  modelInputTime(t: number): number {
    return f(f(t - f(1 / this.totalN)) * 1000);
  }
}

/** Gaussian elimination with partial pivoting (float64), for the tiny rho systems. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row.slice(0, n), b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = c + 1; r < n; r++) {
      const factor = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k]! -= factor * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / m[r]![r]!;
  }
  return x;
}

/**
 * UniPC as A1111 runs it for `steps` (= the number of A1111 timesteps, compVisTimesteps(n).length): `steps` model
 * calls at t = 1, 1 - 0.999/steps, ... (the model sees (t - 1/1000) * 1000). x is the unscaled initial noise.
 */
export async function sampleUnipc(
  x: Float32Tensor,
  steps: number,
  eps: EpsModel,
  opts: UniPcOptions = {},
): Promise<Float32Tensor> {
  const ns = new DiscreteVpSchedule(opts.alphasCumprod ?? sdDiscreteSchedule().alphasCumprod);
  const order = opts.order ?? 3;
  const variant = opts.variant ?? 'bh1';
  const lowerOrderFinal = opts.lowerOrderFinal ?? true;
  if (steps < order) {
    throw new DarkroomError('UNIPC_TOO_FEW_STEPS', `UniPC order ${order} needs at least ${order} steps, got ${steps}`, {
      steps,
      order,
    });
  }
  const batch = x.shape[0]!;
  const t0 = 1 / ns.totalN;
  const tT = opts.tStart ?? 1;
  const timesteps = linspaceF32(tT, t0, steps + 1);

  const dataPrediction = async (xi: Float32Tensor, t: number): Promise<Float32Tensor> => {
    const noise = await eps(xi, perItem(ns.modelInputTime(t), batch));
    const alpha = ns.marginalAlpha(t);
    const sigma = ns.marginalStd(t);
    const xs = xi.data;
    const e = noise.data;
    const out = new Float32Array(xs.length);
    for (let k = 0; k < out.length; k++) out[k] = f(f(xs[k]! - f(sigma * e[k]!)) / alpha);
    return float32(xi.shape, out);
  };

  const update = async (
    xc: Float32Tensor,
    modelPrev: Float32Tensor[],
    tPrev: number[],
    t: number,
    stepOrder: number,
    useCorrector: boolean,
  ): Promise<[Float32Tensor, Float32Tensor | undefined]> => {
    const tPrev0 = tPrev[tPrev.length - 1]!;
    const lambdaPrev0 = ns.marginalLambda(tPrev0);
    const lambdaT = ns.marginalLambda(t);
    const model0 = modelPrev[modelPrev.length - 1]!;
    const sigmaPrev0 = ns.marginalStd(tPrev0);
    const sigmaT = ns.marginalStd(t);
    const alphaT = f(Math.exp(ns.marginalLogMeanCoeff(t)));
    const h = f(lambdaT - lambdaPrev0);
    const rks: number[] = [];
    const mis: Float32Array[] = [];
    for (let i = 1; i < stepOrder; i++) {
      const tPrevI = tPrev[tPrev.length - 1 - i]!;
      rks.push(f(f(ns.marginalLambda(tPrevI) - lambdaPrev0) / h));
      mis.push(modelPrev[modelPrev.length - 1 - i]!.data);
    }
    const nd = mis.length;
    rks.push(1);
    const hh = f(-h);
    const hPhi1 = f(Math.expm1(hh));
    let hPhiK = f(f(hPhi1 / hh) - 1);
    let factorial = 1;
    const bH = variant === 'bh1' ? hh : f(Math.expm1(hh));
    const R: number[][] = [];
    const b: number[] = [];
    for (let i = 1; i <= stepOrder; i++) {
      R.push(rks.map((r) => (i === 1 ? 1 : f(r ** (i - 1)))));
      b.push(f(f(hPhiK * factorial) / bH));
      factorial *= i + 1;
      hPhiK = f(f(hPhiK / hh) - f(1 / factorial));
    }
    let rhosP: number[] | undefined;
    if (nd > 0) {
      rhosP =
        stepOrder === 2
          ? [0.5]
          : solve(
              R.slice(0, -1).map((row) => row.slice(0, -1)),
              b.slice(0, -1),
            ).map(f);
    }
    const rhosC = stepOrder === 1 ? [0.5] : solve(R, b).map(f);
    const sRatio = f(sigmaT / sigmaPrev0);
    const aPhi = f(alphaT * hPhi1);
    const aB = f(alphaT * bH);
    const xs = xc.data;
    const m0 = model0.data;
    const n = xs.length;
    // One pass for what the predictor needs, each value with the operations of the separate passes in their
    // order: D1_i = (m_i - m0) / r_i (kept for the corrector), base = sRatio x - aPhi m0, and
    // x_t = base - aB * sum_i rhosP_i D1_i (the sum accumulated in float32 in order of i).
    const d1s: Float32Array[] = mis.map(() => new Float32Array(n));
    const base = new Float32Array(n);
    const predicted = rhosP ? new Float32Array(n) : undefined;
    for (let k = 0; k < n; k++) {
      const m0k = m0[k]!;
      let acc = 0;
      for (let i = 0; i < nd; i++) {
        const d = f(f(mis[i]![k]! - m0k) / rks[i]!);
        d1s[i]![k] = d;
        if (rhosP) acc = i === 0 ? f(rhosP[0]! * d) : f(acc + f(rhosP[i]! * d));
      }
      const bk = f(f(sRatio * xs[k]!) - f(aPhi * m0k));
      base[k] = bk;
      if (predicted) predicted[k] = f(bk - f(aB * acc));
    }
    const xT = float32(xc.shape, predicted ?? base);
    if (!useCorrector) return [xT, undefined];
    const modelT = await dataPrediction(xT, t);
    const rLast = rhosC[rhosC.length - 1]!;
    const mT = modelT.data;
    const corrected = new Float32Array(n);
    // x = base - aB * (sum_i rhosC_i D1_i + rLast (m_t - m0)), the sum in float32 in order of i, in one pass
    for (let k = 0; k < n; k++) {
      const last = f(rLast * f(mT[k]! - m0[k]!));
      let v: number;
      if (nd > 0) {
        let c = f(rhosC[0]! * d1s[0]![k]!);
        for (let i = 1; i < nd; i++) c = f(c + f(rhosC[i]! * d1s[i]![k]!));
        v = f(c + last);
      } else {
        v = last;
      }
      corrected[k] = f(base[k]! - f(aB * v));
    }
    return [float32(xc.shape, corrected), modelT];
  };

  let stepIndex = 0;
  const after = (xi: Float32Tensor, modelX: Float32Tensor | undefined): void => {
    opts.onStep?.({ step: stepIndex++, steps, x: xi, ...(modelX ? { denoised: modelX } : {}) });
  };

  const modelPrev: Float32Tensor[] = [await dataPrediction(x, timesteps[0]!)];
  const tPrev: number[] = [timesteps[0]!];
  for (let initOrder = 1; initOrder < order; initOrder++) {
    throwIfCancelled(opts.signal);
    const t = timesteps[initOrder]!;
    let modelX: Float32Tensor | undefined;
    [x, modelX] = await update(x, modelPrev, tPrev, t, initOrder, true);
    modelX ??= await dataPrediction(x, t);
    after(x, modelX);
    modelPrev.push(modelX);
    tPrev.push(t);
  }
  for (let step = order; step <= steps; step++) {
    throwIfCancelled(opts.signal);
    const t = timesteps[step]!;
    const stepOrder = lowerOrderFinal ? Math.min(order, steps + 1 - step) : order;
    const useCorrector = step !== steps;
    let modelX: Float32Tensor | undefined;
    [x, modelX] = await update(x, modelPrev, tPrev, t, stepOrder, useCorrector);
    after(x, modelX);
    for (let i = 0; i < order - 1; i++) {
      tPrev[i] = tPrev[i + 1]!;
      modelPrev[i] = modelPrev[i + 1]!;
    }
    tPrev[tPrev.length - 1] = t;
    if (step < steps) {
      modelX ??= await dataPrediction(x, t);
      modelPrev[modelPrev.length - 1] = modelX;
    }
  }
  return x;
}
