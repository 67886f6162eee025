/**
 * A1111's PLMS (modules/sd_samplers_timesteps_impl.py): pseudo improved Euler for the first step (two model
 * calls), then Adams-Bashforth of order 2, 3, 4 on the eps history; float32 like torch.
 */
import { float32, type Float32Tensor } from '../../tensor.js';
import type { EpsModel } from '../types.js';
import { sdDiscreteSchedule } from '../schedules/discrete.js';
import { throwIfCancelled } from '../../errors.js';
import { f, perItem, type CompVisRunOptions } from './common.js';

/** PLMS from x (unscaled initial noise) over ascending integer timesteps; no noise draws. */
export async function samplePlms(
  x: Float32Tensor,
  timesteps: ArrayLike<number>,
  eps: EpsModel,
  opts: CompVisRunOptions = {},
): Promise<Float32Tensor> {
  const acp = opts.alphasCumprod ?? sdDiscreteSchedule().alphasCumprod;
  const ts = Array.from(timesteps);
  const alphas = ts.map((t) => acp[t]!);
  const alphasPrev = [0, ...ts.slice(0, -1)].map((t) => acp[t]!);
  const sqrtOneMinusAlphas = alphas.map((a) => f(Math.sqrt(f(1 - a))));
  const batch = x.shape[0]!;
  const steps = ts.length - 1;
  const oldEps: Float32Tensor[] = [];

  const xPrevAndPredX0 = (cur: Float32Tensor, e: Float32Tensor, index: number): [Float32Tensor, Float32Tensor] => {
    const sqrtAT = f(Math.sqrt(f(alphas[index]!)));
    const aPrev = f(alphasPrev[index]!);
    const s1m = f(sqrtOneMinusAlphas[index]!);
    const dirScale = f(Math.sqrt(f(1 - aPrev)));
    const sqrtAPrev = f(Math.sqrt(aPrev));
    const xs = cur.data;
    const es = e.data;
    const predX0 = new Float32Array(xs.length);
    const xPrev = new Float32Array(xs.length);
    for (let k = 0; k < xs.length; k++) {
      const p = f(f(xs[k]! - f(s1m * es[k]!)) / sqrtAT);
      predX0[k] = p;
      xPrev[k] = f(f(sqrtAPrev * p) + f(dirScale * es[k]!));
    }
    return [float32(cur.shape, xPrev), float32(cur.shape, predX0)];
  };

  for (let i = 0; i < steps; i++) {
    throwIfCancelled(opts.signal);
    const index = ts.length - 1 - i;
    const tNext = ts[Math.max(index - 1, 0)]!;
    const eT = await eps(x, perItem(ts[index]!, batch));
    const et = eT.data;
    const order = Math.min(oldEps.length, 3);
    // order 0 (the first step) asks the model once more, at the x the plain DDIM update would give
    const eNext = order === 0 ? (await eps(xPrevAndPredX0(x, eT, index)[0], perItem(tNext, batch))).data : et;
    const e1 = order >= 1 ? oldEps[oldEps.length - 1]!.data : et;
    const e2 = order >= 2 ? oldEps[oldEps.length - 2]!.data : et;
    const e3 = order >= 3 ? oldEps[oldEps.length - 3]!.data : et;
    const sqrtAT = f(Math.sqrt(f(alphas[index]!)));
    const aPrev = f(alphasPrev[index]!);
    const s1m = f(sqrtOneMinusAlphas[index]!);
    const dirScale = f(Math.sqrt(f(1 - aPrev)));
    const sqrtAPrev = f(Math.sqrt(aPrev));
    const xs = x.data;
    const p0 = new Float32Array(xs.length);
    const next = new Float32Array(xs.length);
    // e' (the linear multistep combination of this and the earlier eps) and the DDIM update in one pass, each
    // value with the float32 operations of the separate passes in their order
    for (let k = 0; k < xs.length; k++) {
      let e: number;
      if (order === 0) e = f(f(et[k]! + eNext[k]!) / 2);
      else if (order === 1) e = f(f(f(3 * et[k]!) - e1[k]!) / 2);
      else if (order === 2) e = f(f(f(f(23 * et[k]!) - f(16 * e1[k]!)) + f(5 * e2[k]!)) / 12);
      else e = f(f(f(f(f(55 * et[k]!) - f(59 * e1[k]!)) + f(37 * e2[k]!)) - f(9 * e3[k]!)) / 24);
      const p = f(f(xs[k]! - f(s1m * e)) / sqrtAT);
      p0[k] = p;
      next[k] = f(f(sqrtAPrev * p) + f(dirScale * e));
    }
    const xPrev = float32(x.shape, next);
    const predX0 = float32(x.shape, p0);
    oldEps.push(eT);
    if (oldEps.length >= 4) oldEps.shift();
    x = xPrev;
    opts.onStep?.({ step: i, steps, x, denoised: predX0 });
  }
  return x;
}
