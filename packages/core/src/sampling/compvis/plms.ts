/**
 * A1111's PLMS (modules/sd_samplers_timesteps_impl.py): pseudo improved Euler for the first step (two model
 * calls), then Adams-Bashforth of order 2, 3, 4 on the eps history; float32 like torch.
 */
import type { Float32Tensor } from '../../tensor.js';
import type { EpsModel } from '../types.js';
import { sdDiscreteSchedule } from '../schedules/discrete.js';
import { checkAbort, f, mapTensor, perItem, type CompVisRunOptions } from './common.js';

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
    const predX0 = mapTensor(cur, (k) => f(f(cur.data[k]! - f(s1m * e.data[k]!)) / sqrtAT));
    const xPrev = mapTensor(cur, (k) => f(f(sqrtAPrev * predX0.data[k]!) + f(dirScale * e.data[k]!)));
    return [xPrev, predX0];
  };

  for (let i = 0; i < steps; i++) {
    checkAbort(opts.signal);
    const index = ts.length - 1 - i;
    const tNext = ts[Math.max(index - 1, 0)]!;
    const eT = await eps(x, perItem(ts[index]!, batch));
    let ePrime: Float32Tensor;
    if (oldEps.length === 0) {
      const [xPrev] = xPrevAndPredX0(x, eT, index);
      const eNext = await eps(xPrev, perItem(tNext, batch));
      ePrime = mapTensor(eT, (k) => f(f(eT.data[k]! + eNext.data[k]!) / 2));
    } else if (oldEps.length === 1) {
      const e1 = oldEps[oldEps.length - 1]!;
      ePrime = mapTensor(eT, (k) => f(f(f(3 * eT.data[k]!) - e1.data[k]!) / 2));
    } else if (oldEps.length === 2) {
      const [e2, e1] = [oldEps[oldEps.length - 2]!, oldEps[oldEps.length - 1]!];
      ePrime = mapTensor(eT, (k) =>
        f(f(f(f(23 * eT.data[k]!) - f(16 * e1.data[k]!)) + f(5 * e2.data[k]!)) / 12),
      );
    } else {
      const [e3, e2, e1] = [oldEps[oldEps.length - 3]!, oldEps[oldEps.length - 2]!, oldEps[oldEps.length - 1]!];
      ePrime = mapTensor(eT, (k) =>
        f(f(f(f(f(55 * eT.data[k]!) - f(59 * e1.data[k]!)) + f(37 * e2.data[k]!)) - f(9 * e3.data[k]!)) / 24),
      );
    }
    const [xPrev, predX0] = xPrevAndPredX0(x, ePrime, index);
    oldEps.push(eT);
    if (oldEps.length >= 4) oldEps.shift();
    x = xPrev;
    opts.onStep?.({ step: i, steps, x, denoised: predX0 });
  }
  return x;
}
