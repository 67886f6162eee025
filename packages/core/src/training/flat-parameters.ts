/**
 * Every float32 weight of a checkpoint in one flat array (checkpoint layout, key order), so that training the
 * whole model is elementwise work on one buffer: AdamW and EMA on the trained components' ranges, gradients
 * gathered into a buffer of the same shape.
 *
 * Graphs read weights in their own layout (Linear weights transposed, 1x1 convs as matrices) and may read one
 * checkpoint tensor through several graph weights. `graphLayout` learns the mapping without knowing any of
 * those rules: the graph is built once from "probe" weights whose values are their own flat indices, and each
 * trained graph input then lists, element by element, which flat element it holds.
 */
import { DarkroomError } from '../errors.js';
import type { GraphBuilder } from '../graph/builder.js';
import { float32, type Float32Tensor, type HostTensor } from '../tensor.js';

/** float32 holds every integer up to 2^24 exactly: the largest model whose indices a probe can carry. */
const MAX_PROBE_ELEMENTS = 2 ** 24;

export class FlatParameters {
  readonly keys: readonly string[];
  readonly shapes: ReadonlyMap<string, readonly number[]>;
  readonly offsets: ReadonlyMap<string, number>;
  readonly data: Float32Array;

  constructor(tensors: ReadonlyMap<string, HostTensor>) {
    const keys: string[] = [];
    const shapes = new Map<string, readonly number[]>();
    const offsets = new Map<string, number>();
    let n = 0;
    for (const [k, t] of tensors) {
      // The noise schedule is a buffer, not a weight.
      if (t.dtype !== 'float32' || k === 'alphas_cumprod') continue;
      keys.push(k);
      shapes.set(k, t.shape);
      offsets.set(k, n);
      n += t.data.length;
    }
    this.keys = keys;
    this.shapes = shapes;
    this.offsets = offsets;
    this.data = new Float32Array(n);
    for (const k of keys) this.data.set(tensors.get(k)!.data as Float32Array, offsets.get(k)!);
  }

  get size(): number {
    return this.data.length;
  }

  /** [start, end) of the contiguous block of keys under `prefix` (components are stored contiguously). */
  range(prefix: string): [number, number] {
    const keys = this.keys.filter((k) => k.startsWith(prefix));
    if (keys.length === 0) throw new DarkroomError('TRAINING_BAD_PARAMETER', `no weights under ${prefix}`);
    const start = this.offsets.get(keys[0]!)!;
    const last = keys[keys.length - 1]!;
    const end = this.offsets.get(last)! + sizeOf(this.shapes.get(last)!);
    const inside = keys.reduce((s, k) => s + sizeOf(this.shapes.get(k)!), 0);
    if (inside !== end - start) throw new DarkroomError('TRAINING_BAD_PARAMETER', `the weights under ${prefix} are not contiguous`);
    return [start, end];
  }

  /** A copy of one tensor. */
  tensor(key: string, from: Float32Array = this.data): Float32Tensor {
    const o = this.offsets.get(key);
    if (o === undefined) throw new DarkroomError('MODEL_MISSING_TENSOR', `no weight ${key}`, { key });
    const shape = this.shapes.get(key)!;
    return float32(shape, from.slice(o, o + sizeOf(shape)));
  }

  /** The weights under `prefix`, keyed without it (what the graph builders take), copied from `from`. */
  component(prefix: string, from: Float32Array = this.data): Map<string, Float32Tensor> {
    const out = new Map<string, Float32Tensor>();
    for (const k of this.keys) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), this.tensor(k, from));
    return out;
  }

  /** Like `component`, with every element's value its own flat index. */
  probeComponent(prefix: string): Map<string, Float32Tensor> {
    if (this.size > MAX_PROBE_ELEMENTS) {
      throw new DarkroomError('TRAINING_MODEL_TOO_LARGE', `${this.size} weights: the layout probe handles at most ${MAX_PROBE_ELEMENTS}`);
    }
    const out = new Map<string, Float32Tensor>();
    for (const k of this.keys) {
      if (!k.startsWith(prefix)) continue;
      const o = this.offsets.get(k)!;
      const shape = this.shapes.get(k)!;
      out.set(k.slice(prefix.length), float32(shape, Float32Array.from({ length: sizeOf(shape) }, (_, i) => o + i)));
    }
    return out;
  }

  /** Every weight as a tensor (copies of `from`), in key order. */
  tensors(from: Float32Array = this.data): Map<string, Float32Tensor> {
    return new Map(this.keys.map((k) => [k, this.tensor(k, from)]));
  }
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** One trained graph input: its name, shape, and the flat index of each of its elements. */
export interface GraphWeightLayout {
  readonly name: string;
  readonly shape: readonly number[];
  readonly index: Int32Array;
}

/**
 * The trained inputs of a graph: `build` is called with probe weights and the weights whose graph names pass
 * `trained` are promoted to inputs; their probe values are the flat indices.
 */
export function graphLayout(build: () => GraphBuilder, trained: (name: string) => boolean): GraphWeightLayout[] {
  return build()
    .promoteWeights(trained)
    .map(({ value, tensor }) => {
      if (tensor.dtype !== 'float32') throw new DarkroomError('TRAINING_BAD_PARAMETER', `trained weight ${value.name} is ${tensor.dtype}`);
      return { name: value.name, shape: value.shape, index: Int32Array.from(tensor.data as Float32Array) };
    });
}

/** The graph's trained inputs, read from the flat weights. */
export function gatherWeights(layout: readonly GraphWeightLayout[], flat: Float32Array): Record<string, Float32Tensor> {
  const out: Record<string, Float32Tensor> = {};
  for (const l of layout) {
    const data = new Float32Array(l.index.length);
    for (let i = 0; i < data.length; i++) data[i] = flat[l.index[i]!]!;
    out[l.name] = float32(l.shape, data);
  }
  return out;
}

/** Adds each graph input's gradient into the flat gradient (summing where a weight is read more than once). */
export function scatterGradient(layout: GraphWeightLayout, grad: Float32Array, into: Float32Array): void {
  for (let i = 0; i < grad.length; i++) {
    const k = layout.index[i]!;
    into[k] = into[k]! + grad[i]!;
  }
}
