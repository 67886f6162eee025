/**
 * A1111's LCM sampler (modules/sd_samplers_lcm.py sample_lcm): each step takes the consistency model's
 * prediction and, except at the end, re-noises it to the next sigma with a fresh draw. Call it with the LCM
 * denoiser (denoisers.ts lcmDenoiser) and x = noise * sigmas[0].
 */
import { float32, type Float32Tensor } from '../../tensor.js';
import type { Denoiser } from '../types.js';
import { throwIfCancelled } from '../../errors.js';
import { f, perItem, type CompVisRunOptions } from './common.js';

export async function sampleLcm(
  x: Float32Tensor,
  sigmas: Float32Array,
  denoise: Denoiser,
  noise: () => Float32Tensor,
  opts: Omit<CompVisRunOptions, 'alphasCumprod'> = {},
): Promise<Float32Tensor> {
  const batch = x.shape[0]!;
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(opts.signal);
    const denoised = await denoise(x, perItem(sigmas[i]!, batch));
    opts.onStep?.({ step: i, steps, x, denoised });
    x = denoised;
    const next = sigmas[i + 1]!;
    if (next > 0) {
      const n = noise().data;
      const xs = x.data;
      const out = new Float32Array(xs.length);
      for (let k = 0; k < out.length; k++) out[k] = f(xs[k]! + f(next * n[k]!));
      x = float32(x.shape, out);
    }
  }
  return x;
}
