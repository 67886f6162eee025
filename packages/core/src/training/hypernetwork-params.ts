/**
 * A hypernetwork's trainable tensors as a flat list in A1111's optimizer order (`Hypernetwork.weights()`: per
 * size, the k module then the v module, each Sequential's parameters in order, weight before bias) with A1111's
 * state-dict names (`<size>.<k|v>.linear.<index>.<weight|bias>`) and layouts (Linear weights (out, in)), and the
 * conversions to and from the graph inputs of `hypernetworkHook`, which take Linear weights transposed. The
 * `.optim` state is indexed by this order.
 */
import { DarkroomError } from '../errors.js';
import { hypernetworkInputs, type HypernetworkInput } from '../networks/hypernetworks/graph.js';
import type { Hypernetwork, HypernetworkArchitecture, HypernetworkModule } from '../networks/hypernetworks/hypernetwork.js';
import { float32, numel, type Float32Tensor, type HostTensor } from '../tensor.js';

export interface HypernetworkParam {
  /** A1111's state-dict name, e.g. `768.k.linear.0.weight`. */
  readonly name: string;
  readonly input: HypernetworkInput & { readonly width: number; readonly stream: 'k' | 'v'; readonly layerIndex: number };
  /** Shape as A1111 stores it. */
  readonly shape: readonly number[];
}

export function hypernetworkParams(arch: HypernetworkArchitecture): HypernetworkParam[] {
  return hypernetworkInputs([arch])
    .filter((i) => i.param !== 'multiplier')
    .map((input) => {
      const kind = input.param === 'bias' ? 'bias' : 'weight';
      const shape = input.param === 'weightT' ? [input.shape[1]!, input.shape[0]!] : [...input.shape];
      return { name: `${input.width}.${input.stream}.linear.${input.layerIndex}.${kind}`, input: input as HypernetworkParam['input'], shape };
    });
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j]!;
  return out;
}

/** Graph feeds for parameter values given in A1111's layout. */
export function paramFeeds(params: readonly HypernetworkParam[], values: readonly Float32Array[]): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  params.forEach((p, k) => {
    const v = values[k]!;
    feeds[p.input.name] = float32(p.input.shape, p.input.param === 'weightT' ? transpose(v, p.shape[0]!, p.shape[1]!) : v);
  });
  return feeds;
}

/** Gradients from the graph (by input name) in A1111's layout and order. */
export function paramGradients(params: readonly HypernetworkParam[], grads: ReadonlyMap<string, Float32Tensor>): Float32Array[] {
  return params.map((p) => {
    const g = grads.get(p.input.name);
    if (!g) throw new DarkroomError('MODEL_BAD_OUTPUT', `no gradient for ${p.name}`);
    return p.input.param === 'weightT' ? transpose(g.data, p.input.shape[0]!, p.input.shape[1]!) : g.data.slice();
  });
}

function moduleOf(hn: Hypernetwork, p: HypernetworkParam): HypernetworkModule {
  const pair = hn.layers.get(p.input.width);
  if (!pair) throw new DarkroomError('HYPERNETWORK_SHAPE_MISMATCH', `hypernetwork "${hn.name}" has no module for width ${p.input.width}`);
  return pair[p.input.stream === 'k' ? 0 : 1];
}

/** The current values of a hypernetwork's parameters, copied, in A1111's layout and order. */
export function paramValues(hn: Hypernetwork, params: readonly HypernetworkParam[]): Float32Array[] {
  return params.map((p) => {
    const entry = moduleOf(hn, p).params.get(p.input.layerIndex);
    const t = p.input.param === 'bias' ? entry?.bias : entry?.weight;
    if (!t || t.data.length !== numel(p.shape)) {
      throw new DarkroomError('HYPERNETWORK_SHAPE_MISMATCH', `hypernetwork "${hn.name}" lacks ${p.name} of shape [${p.shape}]`);
    }
    return t.data.slice();
  });
}

/** A copy of `hn` whose parameters are `values` (A1111's layout and order). */
export function withParamValues(hn: Hypernetwork, params: readonly HypernetworkParam[], values: readonly Float32Array[]): Hypernetwork {
  type MutableParams = Map<number, { weight: Float32Tensor; bias?: Float32Tensor }>;
  const copy = (m: HypernetworkModule): { layers: HypernetworkModule['layers']; params: MutableParams } => ({ layers: m.layers, params: new Map(m.params) });
  const layers = new Map<number, readonly [HypernetworkModule, HypernetworkModule]>();
  const mutable = new Map<number, readonly [MutableParams, MutableParams]>();
  for (const [width, [k, v]] of hn.layers) {
    const ck = copy(k);
    const cv = copy(v);
    layers.set(width, [ck, cv]);
    mutable.set(width, [ck.params, cv.params]);
  }
  params.forEach((p, k) => {
    const map = mutable.get(p.input.width)![p.input.stream === 'k' ? 0 : 1];
    const prev = map.get(p.input.layerIndex);
    const t = float32(p.shape, values[k]!.slice());
    map.set(p.input.layerIndex, p.input.param === 'bias' ? { ...prev!, bias: t } : { ...prev, weight: t });
  });
  return { ...hn, layers };
}

export interface NamedParameter {
  /** `<width>.<k|v>.linear.<index>.<weight|bias>`. */
  readonly name: string;
  readonly tensor: Float32Tensor;
}

/** The hypernetwork's parameters with their names, in optimizer order (what the `.optim` state is indexed by). */
export function hypernetworkParameters(hn: Hypernetwork): NamedParameter[] {
  const params = hypernetworkParams(hn);
  return paramValues(hn, params).map((data, k) => ({ name: params[k]!.name, tensor: float32(params[k]!.shape, data) }));
}
