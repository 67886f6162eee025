/**
 * A plain TypeScript forward of hypernetworks, the reference the ONNX graph is checked against and what
 * parity runs on: `context_k = context + mlp_k(context) · multiplier` (same for v), chained over several
 * hypernetworks in order, with the module pair chosen by the context's last dimension.
 */
import { DarkroomError } from '../../errors.js';
import { float32, type Float32Tensor } from '../../tensor.js';
import { activate } from './activations.js';
import type { Hypernetwork, HypernetworkModule } from './hypernetwork.js';

/** Rows of width `w`, float64, for one MLP pass. */
interface Rows {
  readonly batch: number;
  readonly rows: number; // per batch item
  width: number;
  data: Float64Array;
}

function shapeError(source: string, reason: string): never {
  throw new DarkroomError('HYPERNETWORK_SHAPE_MISMATCH', `${source}: ${reason}`, { file: source });
}

/** Runs one module over a (B, T, W) context, returning mlp(context) in float64. */
export function runModule(module: HypernetworkModule, context: Float32Tensor, source = 'hypernetwork'): Rows {
  const [batch, rows, width] = context.shape as [number, number, number];
  let x: Rows = { batch, rows, width, data: Float64Array.from(context.data) };
  const n = batch * rows;
  for (const layer of module.layers) {
    const p = module.params.get(layer.index);
    switch (layer.kind) {
      case 'linear': {
        if (x.width !== layer.inFeatures) {
          shapeError(source, `layer ${layer.index} expects width ${layer.inFeatures} but gets ${x.width} (cannot multiply ${n}x${x.width} and ${layer.inFeatures}x${layer.outFeatures})`);
        }
        const w = p!.weight.data;
        const b = p!.bias!.data;
        const out = new Float64Array(n * layer.outFeatures);
        for (let r = 0; r < n; r++) {
          const xi = r * x.width;
          for (let o = 0; o < layer.outFeatures; o++) {
            let s = b[o]!;
            const wo = o * layer.inFeatures;
            for (let i = 0; i < layer.inFeatures; i++) s += x.data[xi + i]! * w[wo + i]!;
            out[r * layer.outFeatures + o] = s;
          }
        }
        x = { batch, rows, width: layer.outFeatures, data: out };
        break;
      }
      case 'layernorm': {
        const g = p!.weight.data;
        const b = p!.bias!.data;
        const W = x.width;
        for (let r = 0; r < n; r++) {
          let mean = 0;
          for (let i = 0; i < W; i++) mean += x.data[r * W + i]!;
          mean /= W;
          let v = 0;
          for (let i = 0; i < W; i++) v += (x.data[r * W + i]! - mean) ** 2;
          const inv = 1 / Math.sqrt(v / W + 1e-5);
          for (let i = 0; i < W; i++) x.data[r * W + i] = (x.data[r * W + i]! - mean) * inv * g[i]! + b[i]!;
        }
        break;
      }
      case 'dropout':
        break; // identity in eval mode
      case 'activation':
        x = applyActivation(layer.fn, x, p?.weight.data[0]);
        break;
    }
  }
  return x;
}

function applyActivation(fn: string, x: Rows, slope: number | undefined): Rows {
  const { batch, rows, width, data } = x;
  if (fn === 'glu') {
    const half = Math.floor(width / 2);
    const out = new Float64Array(batch * rows * half);
    for (let r = 0; r < batch * rows; r++) {
      for (let i = 0; i < half; i++) {
        out[r * half + i] = data[r * width + i]! / (1 + Math.exp(-data[r * width + half + i]!));
      }
    }
    return { batch, rows, width: half, data: out };
  }
  if (fn === 'softmax' || fn === 'softmin' || fn === 'logsoftmax' || fn === 'softmax2d') {
    // torch's implicit dim for 3-D input is 0: the normalisation runs across the batch.
    const per = rows * width;
    const out = new Float64Array(data.length);
    const sign = fn === 'softmin' ? -1 : 1;
    for (let j = 0; j < per; j++) {
      let max = -Infinity;
      for (let b = 0; b < batch; b++) max = Math.max(max, sign * data[b * per + j]!);
      let sum = 0;
      for (let b = 0; b < batch; b++) sum += Math.exp(sign * data[b * per + j]! - max);
      for (let b = 0; b < batch; b++) {
        const z = sign * data[b * per + j]! - max;
        out[b * per + j] = fn === 'logsoftmax' ? z - Math.log(sum) : Math.exp(z) / sum;
      }
    }
    return { batch, rows, width, data: out };
  }
  const f = fn as Parameters<typeof activate>[0];
  for (let i = 0; i < data.length; i++) data[i] = activate(f, data[i]!, slope);
  return x;
}

export interface HypernetworkApplication {
  readonly hypernetwork: Hypernetwork;
  readonly multiplier: number;
}

/**
 * A1111 `apply_hypernetworks`: the (k, v) contexts after every hypernetwork in order. Widths without a module
 * leave the context unchanged. Arithmetic follows torch's float32 steps: mlp output rounded, times the
 * multiplier, rounded, added.
 */
export function applyHypernetworks(
  applications: readonly HypernetworkApplication[],
  context: Float32Tensor,
): { contextK: Float32Tensor; contextV: Float32Tensor } {
  let k = context;
  let v = context;
  const width = context.shape[context.shape.length - 1]!;
  for (const { hypernetwork: hn, multiplier } of applications) {
    const pair = hn.layers.get(width);
    if (!pair) continue;
    k = residual(k, runModule(pair[0], k, hn.filename), multiplier);
    v = residual(v, runModule(pair[1], v, hn.filename), multiplier);
  }
  return { contextK: k, contextV: v };
}

function residual(x: Float32Tensor, mlp: Rows, multiplier: number): Float32Tensor {
  if (mlp.width !== x.shape[x.shape.length - 1]) {
    throw new DarkroomError('HYPERNETWORK_SHAPE_MISMATCH', `hypernetwork output width ${mlp.width} differs from the context width`);
  }
  const out = new Float32Array(x.data.length);
  const m = Math.fround(multiplier);
  for (let i = 0; i < out.length; i++) out[i] = x.data[i]! + Math.fround(Math.fround(mlp.data[i]!) * m);
  return float32(x.shape, out);
}
