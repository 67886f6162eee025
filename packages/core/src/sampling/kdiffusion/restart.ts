import { float32 } from '../../tensor.js';
import type { Float32Tensor } from '../../tensor.js';
import type { Sampler, SamplerContext } from '../types.js';
import { addNoise, addScaled, toD } from '../tensor-math.js';
import { callModel, drawNoise, f32, numberOption, throwIfCancelled, workingCopy } from './common.js';
import { karrasSigmas } from './karras.js';

/** Index of the sigma nearest `value` (torch.argmin of |sigmas - value| in float32: the first wins ties). */
function nearestIndex(sigmas: Float32Array, value: number): number {
  const v = f32(value);
  let best = 0;
  let bestDist = Infinity;
  for (let i = 0; i < sigmas.length; i++) {
    const dist = Math.abs(f32(sigmas[i]! - v));
    if (dist < bestDist) {
      bestDist = dist;
      best = i;
    }
  }
  return best;
}

/**
 * The (sigma, sigma_next) steps of A1111's restart_sampler: for 20+ steps a Karras schedule over
 * `steps - restart_steps * restart_times` sigmas, plus `restart_times` passes back up over [~0.1, ~2].
 */
export function restartStepList(schedule: Float32Array): Array<[number, number]> {
  let sigmas = schedule;
  const steps = sigmas.length - 1;
  const restarts = new Map<number, [number, number, number]>();
  if (steps >= 20) {
    let restartSteps = 9;
    let restartTimes = 1;
    if (steps >= 36) {
      restartSteps = Math.floor(steps / 4);
      restartTimes = 2;
    }
    sigmas = karrasSigmas(steps - restartSteps * restartTimes, sigmas[sigmas.length - 2]!, sigmas[0]!);
    restarts.set(nearestIndex(sigmas, 0.1), [restartSteps + 1, restartTimes, 2]);
  }
  const list: Array<[number, number]> = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    list.push([sigmas[i]!, sigmas[i + 1]!]);
    const restart = restarts.get(i + 1);
    if (!restart) continue;
    const [restartSteps, restartTimesInit, restartMax] = restart;
    const minIdx = i + 1;
    const maxIdx = nearestIndex(sigmas, restartMax);
    if (maxIdx < minIdx) {
      const seg = karrasSigmas(restartSteps, sigmas[minIdx]!, sigmas[maxIdx]!).subarray(0, restartSteps);
      for (let r = 0; r < restartTimesInit; r++) {
        for (let j = 0; j < seg.length - 1; j++) list.push([seg[j]!, seg[j + 1]!]);
      }
    }
  }
  return list;
}

async function heunStep(ctx: SamplerContext, x: Float32Tensor, scratch: Scratch, oldSigma: number, newSigma: number) {
  const denoised = await callModel(ctx, x, oldSigma);
  toD(scratch.d, x.data, denoised.data, oldSigma);
  const dt = f32(newSigma - oldSigma);
  if (newSigma === 0) {
    addScaled(x.data, x.data, dt, scratch.d);
  } else {
    addScaled(scratch.x2.data, x.data, dt, scratch.d);
    const denoised2 = await callModel(ctx, scratch.x2, newSigma);
    toD(scratch.d2, scratch.x2.data, denoised2.data, newSigma);
    const xd = x.data;
    const d = scratch.d;
    const d2 = scratch.d2;
    for (let k = 0; k < xd.length; k++) xd[k] = xd[k]! + f32(f32(f32(d[k]! + d2[k]!) / 2) * dt);
  }
  return denoised;
}

interface Scratch {
  readonly d: Float32Array;
  readonly d2: Float32Array;
  readonly x2: Float32Tensor;
}

/** A1111's restart_sampler (Restart Sampling, Xu et al. 2023) with its automatic restart list. */
export const sampleRestart: Sampler = async (x0, ctx) => {
  const sNoise = numberOption(ctx, 's_noise', 1);
  const x = workingCopy(x0);
  const n = x.data.length;
  const scratch: Scratch = { d: new Float32Array(n), d2: new Float32Array(n), x2: float32(x.shape) };
  const list = restartStepList(ctx.sigmas);
  let lastSigma: number | undefined;
  for (let i = 0; i < list.length; i++) {
    throwIfCancelled(ctx.signal);
    const [oldSigma, newSigma] = list[i]!;
    if (lastSigma === undefined) lastSigma = oldSigma;
    else if (lastSigma < oldSigma) {
      addNoise(x.data, drawNoise(ctx, x), sNoise, f32(Math.sqrt(f32(f32(oldSigma * oldSigma) - f32(lastSigma * lastSigma)))));
    }
    const denoised = await heunStep(ctx, x, scratch, oldSigma, newSigma);
    lastSigma = newSigma;
    ctx.onStep?.({ step: i, steps: list.length, x, denoised });
  }
  return x;
};
