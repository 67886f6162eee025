// biome-ignore-all lint/correctness/noPrecisionLoss: SELU's constants as PyTorch writes them
/**
 * The torch.nn activations a hypernetwork can use, elementwise in float64 for the reference forward.
 * Softmax-like activations with torch's implicit dim act on axis 0 of the 3-D context (the batch axis),
 * as they do in A1111, so they are not elementwise and are handled by the forward pass itself.
 */
import type { HypernetworkActivation } from './hypernetwork.js';

const SELU_ALPHA = 1.6732632423543772848170429916717;
const SELU_SCALE = 1.0507009873554804934193349852946;
/** RReLU in eval mode: the mean of its default bounds 1/8 and 1/3. */
export const RRELU_EVAL_SLOPE = (1 / 8 + 1 / 3) / 2;

/** Abramowitz-Stegun is too coarse for 1e-7; this is the W. J. Cody rational approximation via erfc. */
export function erf(x: number): number {
  // Series for small |x|, continued fraction (Lentz) for large |x|: both accurate to ~1e-15.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = x;
    let term = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(ax) by continued fraction
  let f = ax;
  let c = ax;
  let d = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    d = ax + an * d;
    d = d === 0 ? 1e-300 : 1 / d;
    c = ax + an / c;
    if (c === 0) c = 1e-300;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return x > 0 ? 1 - erfc : erfc - 1;
}

function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Elementwise activations; `slope` is PReLU's learned weight. */
export function activate(fn: HypernetworkActivation, x: number, slope = 0.25): number {
  switch (fn) {
    case 'relu':
      return x > 0 ? x : 0;
    case 'leakyrelu':
      return x >= 0 ? x : 0.01 * x;
    case 'elu':
      return x > 0 ? x : Math.expm1(x);
    case 'celu':
      return Math.max(0, x) + Math.min(0, Math.expm1(x));
    case 'selu':
      return SELU_SCALE * (x > 0 ? x : SELU_ALPHA * Math.expm1(x));
    case 'swish':
    case 'hardswish':
      return (x * Math.min(Math.max(x + 3, 0), 6)) / 6;
    case 'tanh':
      return Math.tanh(x);
    case 'sigmoid':
      return sigmoid(x);
    case 'mish':
      return x * Math.tanh(softplus(x));
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'silu':
      return x * sigmoid(x);
    case 'softsign':
      return x / (1 + Math.abs(x));
    case 'softplus':
      return softplus(x);
    case 'relu6':
      return Math.min(Math.max(x, 0), 6);
    case 'hardsigmoid':
      return x <= -3 ? 0 : x >= 3 ? 1 : x / 6 + 0.5;
    case 'hardtanh':
      return Math.min(Math.max(x, -1), 1);
    case 'logsigmoid':
      return Math.min(x, 0) - Math.log1p(Math.exp(-Math.abs(x)));
    case 'tanhshrink':
      return x - Math.tanh(x);
    case 'rrelu':
      return x >= 0 ? x : RRELU_EVAL_SLOPE * x;
    case 'prelu':
      return x >= 0 ? x : slope * x;
    case 'hardshrink':
      return Math.abs(x) > 0.5 ? x : 0;
    case 'softshrink':
      return x > 0.5 ? x - 0.5 : x < -0.5 ? x + 0.5 : 0;
    case 'softmax':
    case 'softmin':
    case 'logsoftmax':
    case 'softmax2d':
    case 'glu':
      throw new Error(`${fn} is not elementwise`);
  }
}
