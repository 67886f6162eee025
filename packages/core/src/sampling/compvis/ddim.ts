/**
 * A1111's DDIM and DDIM CFG++ (modules/sd_samplers_timesteps_impl.py): walks the timesteps backwards calling the
 * eps model, float32 like torch, with alphas_prev in float64 and the eta sigmas computed as A1111's numpy/torch mix.
 * One noise draw per step even at eta 0 (A1111 draws it and multiplies by 0), so the generators advance as there.
 */
import { float32, type Float32Tensor } from '../../tensor.js';
import type { EpsModel, GuidedEps, GuidedEpsModel } from '../types.js';
import { sdDiscreteSchedule } from '../schedules/discrete.js';
import { throwIfCancelled } from '../../errors.js';
import { f, perItem, type CompVisRunOptions } from './common.js';

export type { GuidedEpsModel } from '../types.js';

/** A1111's CFG scale multiplier for DDIM CFG++ (`cond_scale_miltiplier`): maps CFG [0, 12.5] to [0, 1]. */
export const DDIM_CFGPP_SCALE_MULTIPLIER = 1 / 12.5;

/** One step's model answer: the eps for pred_x0 and the eps for the direction term. */
type StepEps = (x: Float32Tensor, t: Float32Array) => Promise<GuidedEps>;

export interface DdimOptions extends CompVisRunOptions {
  /** opts.eta_ddim (A1111 default 0). */
  readonly eta?: number;
}

interface DdimTables {
  alphas: number[];
  alphasPrev: number[];
  sqrtOneMinusAlphas: number[];
  sigmas: number[];
}

function ddimTables(timesteps: ArrayLike<number>, acp: Float32Array, eta: number): DdimTables {
  const ts = Array.from(timesteps);
  const alphas = ts.map((t) => acp[t]!);
  const alphasPrev = [0, ...ts.slice(0, -1)].map((t) => acp[t]!);
  const sqrtOneMinusAlphas = alphas.map((a) => f(Math.sqrt(f(1 - a))));
  // eta * sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev)): the division is torch's reciprocal (float32) times the
  // float64 numpy array; the rest float64
  const sigmas = alphas.map((a, i) => {
    const ap = alphasPrev[i]!;
    const recip = f(1 / f(1 - a));
    return eta * Math.sqrt(recip * (1 - ap) * (1 - a / ap));
  });
  return { alphas, alphasPrev, sqrtOneMinusAlphas, sigmas };
}

async function ddimLoop(
  x: Float32Tensor,
  timesteps: ArrayLike<number>,
  model: StepEps,
  noise: () => Float32Tensor,
  opts: DdimOptions,
): Promise<Float32Tensor> {
  const acp = opts.alphasCumprod ?? sdDiscreteSchedule().alphasCumprod;
  const { alphas, alphasPrev, sqrtOneMinusAlphas, sigmas } = ddimTables(timesteps, acp, opts.eta ?? 0);
  const batch = x.shape[0]!;
  const steps = timesteps.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(opts.signal);
    const index = timesteps.length - 1 - i;
    const { eps, uncondEps } = await model(x, perItem(timesteps[index]!, batch));
    const aT = f(alphas[index]!);
    const aPrev = f(alphasPrev[index]!);
    const sigmaT = f(sigmas[index]!);
    const s1m = f(sqrtOneMinusAlphas[index]!);
    const sqrtAT = f(Math.sqrt(aT));
    const sqrtAPrev = f(Math.sqrt(aPrev));
    const dirScale = f(Math.sqrt(f(f(1 - aPrev) - f(sigmaT * sigmaT))));
    const nd = noise().data;
    const cd = x.data;
    const ed = eps.data;
    const ud = uncondEps.data;
    // pred_x0 and the next x in one pass (plain loop: a per-element callback costs several times more)
    const p0 = new Float32Array(cd.length);
    const next = new Float32Array(cd.length);
    for (let k = 0; k < cd.length; k++) {
      const p = f(f(cd[k]! - f(s1m * ed[k]!)) / sqrtAT);
      p0[k] = p;
      const dir = f(dirScale * ud[k]!);
      next[k] = f(f(f(sqrtAPrev * p) + dir) + f(sigmaT * nd[k]!));
    }
    const predX0 = float32(x.shape, p0);
    x = float32(x.shape, next);
    opts.onStep?.({ step: i, steps, x, denoised: predX0 });
  }
  return x;
}

/**
 * DDIM from x (the initial noise, unscaled) over ascending integer `timesteps` (compVisTimesteps): n timesteps make
 * n - 1 model calls, ending at alphas_cumprod[timesteps[0]].
 */
export function sampleDdim(
  x: Float32Tensor,
  timesteps: ArrayLike<number>,
  eps: EpsModel,
  noise: () => Float32Tensor,
  opts: DdimOptions = {},
): Promise<Float32Tensor> {
  return ddimLoop(
    x,
    timesteps,
    async (xi, t) => {
      const e = await eps(xi, t);
      return { eps: e, uncondEps: e };
    },
    noise,
    opts,
  );
}

/**
 * DDIM CFG++ (A1111 ddim_cfgpp): as DDIM, but pred_x0 comes from the eps guided at cfg / 12.5 and the direction
 * term renoises with the unconditional eps (`last_noise_uncond`). The model is asked for that scale on every call.
 */
export function sampleDdimCfgpp(
  x: Float32Tensor,
  timesteps: ArrayLike<number>,
  model: GuidedEpsModel,
  noise: () => Float32Tensor,
  opts: DdimOptions = {},
): Promise<Float32Tensor> {
  const guidance = { cfgScaleMultiplier: DDIM_CFGPP_SCALE_MULTIPLIER };
  return ddimLoop(x, timesteps, (xi, t) => model(xi, t, guidance), noise, opts);
}
