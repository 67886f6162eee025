import type { Sampler } from '../types.js';
import { toD } from '../tensor-math.js';
import { callModel, f32, numberOption, throwIfCancelled, workingCopy } from './common.js';

// 5-point Gauss-Legendre: exact for the degree <= 3 Lagrange basis polynomials of order-4 LMS (upstream's
// adaptive scipy quad is exact there too, up to rounding).
const GL_NODES = [0, -0.5384693101056831, 0.5384693101056831, -0.906179845938664, 0.906179845938664];
const GL_WEIGHTS = [0.5688888888888889, 0.47862867049936647, 0.47862867049936647, 0.23692688505618908, 0.23692688505618908];

/**
 * k-diffusion linear_multistep_coeff: the integral over [t_i, t_{i+1}] of the j-th Lagrange basis polynomial
 * through t_i, t_{i-1}, ... (t = the float32 sigmas). As upstream runs it on numpy float32 scalars, each
 * denominator `t[i-j] - t[i-k]` is a float32 subtraction and the rest is float64.
 */
export function linearMultistepCoeff(order: number, t: Float32Array, i: number, j: number): number {
  if (order - 1 > i) throw new RangeError(`LMS order ${order} too high for step ${i}`);
  const a = t[i]!;
  const b = t[i + 1]!;
  const half = (b - a) / 2;
  const mid = (a + b) / 2;
  let sum = 0;
  for (let q = 0; q < GL_NODES.length; q++) {
    const tau = mid + half * GL_NODES[q]!;
    let prod = 1;
    for (let k = 0; k < order; k++) {
      if (k === j) continue;
      prod *= (tau - t[i - k]!) / f32(t[i - j]! - t[i - k]!);
    }
    sum += GL_WEIGHTS[q]! * prod;
  }
  return sum * half;
}

/** k-diffusion sample_lms: linear multistep (order 4) over the last derivatives. */
export const sampleLms: Sampler = async (x0, ctx) => {
  const { sigmas } = ctx;
  const order = numberOption(ctx, 'order', 4);
  const x = workingCopy(x0);
  const n = x.data.length;
  // Ring of the last `order` derivatives; ds[(i - j) % order] is the j-th most recent.
  const ds: Float32Array[] = Array.from({ length: order }, () => new Float32Array(n));
  const acc = new Float32Array(n);
  const steps = sigmas.length - 1;
  for (let i = 0; i < steps; i++) {
    throwIfCancelled(ctx.signal);
    const sigma = sigmas[i]!;
    const denoised = await callModel(ctx, x, sigma);
    toD(ds[i % order]!, x.data, denoised.data, sigma);
    const curOrder = Math.min(i + 1, order);
    // x + sum(coeff_j * d_{i-j}), summed left to right in float32 with each product rounded first.
    for (let j = 0; j < curOrder; j++) {
      const c = f32(linearMultistepCoeff(curOrder, sigmas, i, j));
      const dj = ds[(i - j) % order]!;
      if (j === 0) for (let k = 0; k < n; k++) acc[k] = dj[k]! * c;
      else for (let k = 0; k < n; k++) acc[k] = acc[k]! + f32(dj[k]! * c);
    }
    const xd = x.data;
    for (let k = 0; k < n; k++) xd[k] = xd[k]! + acc[k]!;
    ctx.onStep?.({ step: i, steps, x, denoised });
  }
  return x;
};
