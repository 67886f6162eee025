import { linspaceF32, linspaceF64 } from './linspace.js';

const f = Math.fround;

/** ldm's scaled-linear betas for SD v1/v2: linspace(sqrt(0.00085), sqrt(0.012), 1000, float64) ** 2. */
export function scaledLinearBetas(linearStart = 0.00085, linearEnd = 0.012, timesteps = 1000): Float64Array {
  const roots = linspaceF64(Math.sqrt(linearStart), Math.sqrt(linearEnd), timesteps);
  return Float64Array.from(roots, (r) => r * r);
}

/**
 * alphas_cumprod as ldm registers it: the float64 cumulative product of 1 - beta, stored as a float32 buffer
 * (A1111 keeps it float32 unless "Downcast alphas_cumprod" is on).
 */
export function alphasCumprodF32(betas: Float64Array = scaledLinearBetas()): Float32Array {
  const out = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= 1 - betas[i]!;
    out[i] = acc;
  }
  return out;
}

/**
 * k-diffusion's DiscreteSchedule over a float32 alphas_cumprod (CompVisDenoiser): the sigma table indexed by
 * timestep, and the conversions between sigma and (possibly fractional) timestep, in float32 as torch does them.
 */
export class DiscreteSchedule {
  /** sigma of each timestep, increasing: ((1 - acp) / acp) ** 0.5 in float32. */
  readonly sigmas: Float32Array;
  readonly logSigmas: Float32Array;

  constructor(readonly alphasCumprod: Float32Array) {
    const n = alphasCumprod.length;
    this.sigmas = new Float32Array(n);
    this.logSigmas = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const a = alphasCumprod[i]!;
      this.sigmas[i] = Math.sqrt(f(f(1 - a) / a));
      this.logSigmas[i] = Math.log(this.sigmas[i]!);
    }
  }

  get sigmaMin(): number {
    return this.sigmas[0]!;
  }

  get sigmaMax(): number {
    return this.sigmas[this.sigmas.length - 1]!;
  }

  /**
   * sigma -> timestep. Unquantized: piecewise-linear in log sigma between the two table entries around it,
   * clamped to [0, len-1]. Quantized: the nearest entry in log space (first index on ties).
   */
  sigmaToT(sigma: number, quantize = false): number {
    const logSigma = f(Math.log(sigma));
    const ls = this.logSigmas;
    if (quantize) return nearestLogIndex(ls, logSigma);
    // torch: dists.ge(0).cumsum(0).argmax(0): the last index whose log sigma is <= log(sigma), else 0.
    let count = 0;
    for (let i = 0; i < ls.length; i++) if (f(logSigma - ls[i]!) >= 0) count = i + 1;
    const low = Math.min(Math.max(count - 1, 0), ls.length - 2);
    const high = low + 1;
    const lo = ls[low]!;
    const hi = ls[high]!;
    let w = f(f(lo - logSigma) / f(lo - hi));
    w = Math.min(Math.max(w, 0), 1);
    return f(f(f(1 - w) * low) + f(w * high));
  }

  /** timestep -> sigma: exp of the linear interpolation of log sigma between floor(t) and ceil(t). */
  tToSigma(t: number): number {
    const tf = f(t);
    const low = Math.floor(tf);
    const high = Math.ceil(tf);
    const w = f(tf - low);
    const logSigma = f(f(f(1 - w) * this.logSigmas[low]!) + f(w * this.logSigmas[high]!));
    return f(Math.exp(logSigma));
  }

  /** The model's own discrete schedule (A1111 "Uniform"/"Automatic"): t = linspace(len-1, 0, n), then a 0. */
  getSigmas(n: number): Float32Array {
    const ts = linspaceF32(this.sigmas.length - 1, 0, n);
    const out = new Float32Array(n + 1);
    ts.forEach((t, i) => (out[i] = this.tToSigma(t)));
    return out;
  }
}

/** argmin_j |logSigma - table[j]| in float32, first index on ties (torch.argmin). */
export function nearestLogIndex(table: Float32Array, logSigma: number): number {
  let best = 0;
  let bestDist = Infinity;
  for (let j = 0; j < table.length; j++) {
    const d = Math.abs(f(logSigma - table[j]!));
    if (d < bestDist) {
      bestDist = d;
      best = j;
    }
  }
  return best;
}

let sdV1: DiscreteSchedule | undefined;

/** The SD v1/v2 (eps and v) discrete schedule: 1000 scaled-linear steps, beta 0.00085..0.012. */
export function sdDiscreteSchedule(): DiscreteSchedule {
  sdV1 ??= new DiscreteSchedule(alphasCumprodF32());
  return sdV1;
}
