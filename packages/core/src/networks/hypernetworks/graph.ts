/**
 * Hypernetworks inside the UNet graph. The hook emits each hypernetwork's MLPs with their weights and the
 * multiplier as graph *inputs*, so the UNet is compiled once per chain of architectures and any hypernetworks
 * of those architectures run on it by changing feeds. A1111 semantics (`apply_hypernetworks`), in every
 * attention (self-attention included), with the module pair picked by the context's last dimension:
 *
 *   for hn in chain:  k = k + mlp_k(k) · m_hn;  v = v + mlp_v(v) · m_hn
 */
import { DarkroomError } from '../../errors.js';
import type { GraphBuilder, Value } from '../../graph/builder.js';
import type { UNetVariant } from '../../models/load.js';
import type { AttentionContextHook } from '../../models/unet.js';
import { float32, type Float32Tensor, type HostTensor } from '../../tensor.js';
import { RRELU_EVAL_SLOPE } from './activations.js';
import { moduleLayers, type Hypernetwork, type HypernetworkArchitecture, type HypernetworkLayer } from './hypernetwork.js';

/** The layers that compute something: dropout is the identity at inference and takes no input. */
function computeLayers(arch: HypernetworkArchitecture, width: number): HypernetworkLayer[] {
  return moduleLayers(width, arch).filter((l) => l.kind !== 'dropout');
}

/** A stable key for a chain of architectures: equal keys build identical graphs. */
export function hypernetworkGraphKey(chain: readonly HypernetworkArchitecture[]): string {
  const parts = chain.map((arch) =>
    arch.sizes.map((w) => `${w}:${computeLayers(arch, w).map((l) => (l.kind === 'linear' ? `L${l.inFeatures}x${l.outFeatures}` : l.kind === 'layernorm' ? `N${l.width}` : `A${l.kind === 'activation' ? l.fn : ''}`)).join(',')}`).join(';'),
  );
  return `hn[${parts.join('|')}]`;
}

/** One graph input the hook declares, and where its value comes from. */
export interface HypernetworkInput {
  readonly name: string;
  /** Position of the hypernetwork in the chain. */
  readonly slot: number;
  readonly width?: number;
  readonly stream?: 'k' | 'v';
  /** Sequential index in A1111's state dict (`linear.<index>`). */
  readonly layerIndex?: number;
  /** `weightT` is a Linear weight transposed to (in, out); `multiplier` is the slot's strength (shape [1]). */
  readonly param: 'weightT' | 'weight' | 'bias' | 'multiplier';
  readonly shape: readonly number[];
}

function paramName(slot: number, width: number, stream: 'k' | 'v', index: number, param: string): string {
  return `hn${slot}_d${width}_${stream}_${index}_${param}`;
}

/** Every input the hook declares for a chain (in a fixed order), for feeds and for training gradients. */
export function hypernetworkInputs(chain: readonly HypernetworkArchitecture[]): HypernetworkInput[] {
  const out: HypernetworkInput[] = [];
  chain.forEach((arch, slot) => {
    out.push({ name: `hn${slot}_multiplier`, slot, param: 'multiplier', shape: [1] });
    for (const width of arch.sizes) {
      for (const stream of ['k', 'v'] as const) {
        for (const l of computeLayers(arch, width)) {
          const base = { slot, width, stream, layerIndex: l.index };
          if (l.kind === 'linear') {
            out.push({ ...base, name: paramName(slot, width, stream, l.index, 'weightT'), param: 'weightT', shape: [l.inFeatures, l.outFeatures] });
            out.push({ ...base, name: paramName(slot, width, stream, l.index, 'bias'), param: 'bias', shape: [l.outFeatures] });
          } else if (l.kind === 'layernorm') {
            out.push({ ...base, name: paramName(slot, width, stream, l.index, 'weight'), param: 'weight', shape: [l.width] });
            out.push({ ...base, name: paramName(slot, width, stream, l.index, 'bias'), param: 'bias', shape: [l.width] });
          } else if (l.kind === 'activation' && l.fn === 'prelu') {
            out.push({ ...base, name: paramName(slot, width, stream, l.index, 'weight'), param: 'weight', shape: [1] });
          }
        }
      }
    }
  });
  return out;
}

function activation(b: GraphBuilder, fn: string, x: Value, slope: Value | undefined): Value {
  switch (fn) {
    case 'relu':
      return b.relu(x);
    case 'leakyrelu':
      return b.leakyRelu(x, 0.01);
    case 'elu':
      return b.elu(x, 1);
    case 'celu':
      return b.celu(x, 1);
    case 'selu':
      return b.selu(x);
    case 'swish':
    case 'hardswish':
      return b.hardSwish(x);
    case 'tanh':
      return b.tanh(x);
    case 'sigmoid':
      return b.sigmoid(x);
    case 'mish':
      return b.mish(x);
    case 'gelu':
      return b.gelu(x);
    case 'silu':
      return b.silu(x);
    case 'softsign':
      return b.softsign(x);
    case 'softplus':
      return b.softplus(x);
    case 'relu6':
      return b.clip(x, 0, 6);
    case 'hardsigmoid':
      return b.hardSigmoid(x);
    case 'hardtanh':
      return b.clip(x, -1, 1);
    case 'logsigmoid':
      return b.neg(b.softplus(b.neg(x)));
    case 'tanhshrink':
      return b.sub(x, b.tanh(x));
    case 'rrelu':
      return b.leakyRelu(x, RRELU_EVAL_SLOPE);
    case 'prelu':
      return b.add(b.relu(x), b.mul(slope!, b.min(x, 0)));
    case 'hardshrink':
      return b.where(b.greater(b.abs(x), 0.5), x, 0);
    case 'softshrink':
      return b.sub(x, b.clip(x, -0.5, 0.5));
    // torch's implicit softmax dim on a 3-D context is 0, the batch axis (A1111 behaviour, kept as is).
    case 'softmax':
    case 'softmax2d':
      return b.softmax(x, 0);
    case 'softmin':
      return b.softmax(b.neg(x), 0);
    case 'logsoftmax':
      return b.log(b.softmax(x, 0));
    case 'glu': {
      const half = Math.floor(x.shape[x.shape.length - 1]! / 2);
      const [a, g] = b.split(x, [half, half], -1) as [Value, Value];
      return b.mul(a, b.sigmoid(g));
    }
    default:
      throw new DarkroomError('HYPERNETWORK_BAD_ACTIVATION', `activation "${fn}" has no graph form`);
  }
}

/** Per-graph cache of declared inputs: every attention of one width shares the same weight inputs. */
const declared = new WeakMap<GraphBuilder, Map<string, Value>>();

function inputOnce(b: GraphBuilder, name: string, shape: readonly number[]): Value {
  let m = declared.get(b);
  if (!m) declared.set(b, (m = new Map()));
  let v = m.get(name);
  if (!v) m.set(name, (v = b.input(name, 'float32', shape)));
  return v;
}

/** The hypernetwork inputs the hook declared in `b`, by name: what training takes gradients with respect to. */
export function declaredHypernetworkInputs(b: GraphBuilder): ReadonlyMap<string, Value> {
  return declared.get(b) ?? new Map();
}

function mlp(b: GraphBuilder, x: Value, arch: HypernetworkArchitecture, slot: number, width: number, stream: 'k' | 'v'): Value {
  let h = x;
  for (const l of computeLayers(arch, width)) {
    const name = (p: string): string => paramName(slot, width, stream, l.index, p);
    if (l.kind === 'linear') {
      const inW = h.shape[h.shape.length - 1]!;
      if (inW !== l.inFeatures) {
        throw new DarkroomError('HYPERNETWORK_SHAPE_MISMATCH', `hypernetwork layer ${l.index} expects width ${l.inFeatures} but gets ${inW}`);
      }
      h = b.add(b.matmul(h, inputOnce(b, name('weightT'), [l.inFeatures, l.outFeatures])), inputOnce(b, name('bias'), [l.outFeatures]));
    } else if (l.kind === 'layernorm') {
      h = b.layerNorm(h, inputOnce(b, name('weight'), [l.width]), inputOnce(b, name('bias'), [l.width]), 1e-5);
    } else if (l.kind === 'activation') {
      h = activation(b, l.fn, h, l.fn === 'prelu' ? inputOnce(b, name('weight'), [1]) : undefined);
    }
  }
  if (h.shape[h.shape.length - 1] !== width) {
    throw new DarkroomError('HYPERNETWORK_SHAPE_MISMATCH', `hypernetwork output width ${h.shape[h.shape.length - 1]} differs from ${width}`);
  }
  return h;
}

/** The UNet attention hook for a chain of hypernetwork architectures (weights and multipliers are inputs). */
export function hypernetworkHook(chain: readonly HypernetworkArchitecture[]): AttentionContextHook {
  return (b, sources, width) => {
    // Declare every input up front, so the feeds from feedsFor always match the graph's inputs even when the
    // model has no attention of some width a hypernetwork covers.
    for (const input of hypernetworkInputs(chain)) inputOnce(b, input.name, input.shape);
    if (!chain.some((arch) => arch.sizes.includes(width))) return sources;
    // The MLPs run in float32 (their weights are float32 inputs) even inside a float16 UNet.
    let k = b.cast(sources.k, 'float32');
    let v = b.cast(sources.v, 'float32');
    chain.forEach((arch, slot) => {
      if (!arch.sizes.includes(width)) return;
      const m = inputOnce(b, `hn${slot}_multiplier`, [1]);
      k = b.add(k, b.mul(mlp(b, k, arch, slot, width, 'k'), m));
      v = b.add(v, b.mul(mlp(b, v, arch, slot, width, 'v'), m));
    });
    return { k: b.cast(k, sources.k.dtype), v: b.cast(v, sources.v.dtype) };
  };
}

function transpose2d(t: Float32Tensor): Float32Tensor {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return float32([c, r], out);
}

/** The feeds that run `hypernetworks` (in chain order) at `multipliers` on a graph built by hypernetworkHook. */
export function feedsFor(hypernetworks: readonly Hypernetwork[], multipliers: readonly number[]): Record<string, HostTensor> {
  if (multipliers.length !== hypernetworks.length) {
    throw new DarkroomError('HYPERNETWORK_BAD_INPUT', `${hypernetworks.length} hypernetworks but ${multipliers.length} multipliers`);
  }
  const feeds: Record<string, HostTensor> = {};
  for (const input of hypernetworkInputs(hypernetworks)) {
    const hn = hypernetworks[input.slot]!;
    if (input.param === 'multiplier') {
      feeds[input.name] = float32([1], Float32Array.of(multipliers[input.slot]!));
      continue;
    }
    const pair = hn.layers.get(input.width!)!;
    const p = pair[input.stream === 'k' ? 0 : 1].params.get(input.layerIndex!)!;
    feeds[input.name] = input.param === 'weightT' ? transpose2d(p.weight) : input.param === 'bias' ? p.bias! : p.weight;
  }
  return feeds;
}

/** A UNet variant running `applications` in order: compiled once per chain of architectures. */
export function hypernetworkVariant(applications: ReadonlyArray<{ hypernetwork: Hypernetwork; multiplier: number }>): UNetVariant {
  const chain = applications.map((a) => a.hypernetwork);
  return {
    key: hypernetworkGraphKey(chain),
    attentionContext: hypernetworkHook(chain),
    feeds: feedsFor(chain, applications.map((a) => a.multiplier)),
  };
}
