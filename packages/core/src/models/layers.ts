/**
 * Building blocks shared by the CLIP, UNet and VAE graphs: checkpoint weights as graph initializers in the
 * compute dtype, Linear / Conv2d / norms with torch semantics, and multi-head attention in its plain form
 * (the reference), in split or sub-quadratic chunks, or in the fused com.microsoft form.
 *
 * Precision: the reference graph is float32 end to end. The float16 form stores weights and computes in
 * half, but keeps GroupNorm statistics, LayerNorm and the attention softmax in float32 as A1111 does
 * (GroupNorm32 and ldm's `_ATTN_PRECISION = "fp32"`).
 */
import { DarkroomError } from '../errors.js';
import type { GraphBuilder, Value } from '../graph/builder.js';
import { floatToHalf, type Float32Tensor, type HostTensor } from '../tensor.js';
import { layerAttention, PLAIN_ATTENTION, type AttentionBuild } from '../planning/attention.js';

export type ComputeDType = 'float32' | 'float16';

/** How a padded convolution pads: with zeros (torch's default) or by wrapping around (padding_mode='circular'). */
export type PaddingMode = 'zeros' | 'circular';

/** A component's float32 weights (names relative to the component prefix) and what they become in the graph. */
export class ModuleWeights {
  private readonly used = new Set<string>();

  constructor(
    readonly b: GraphBuilder,
    private readonly tensors: ReadonlyMap<string, Float32Tensor>,
    /** Prefix that graph initializer names get (keeps names unique and readable). */
    private readonly graphPrefix: string,
    readonly dtype: ComputeDType,
    /** The padding of every padded Conv2d built from these weights (A1111's `tiling` makes them all circular). */
    readonly padding: PaddingMode = 'zeros',
  ) {}

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  raw(name: string): Float32Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new DarkroomError('MODEL_MISSING_TENSOR', `checkpoint has no tensor "${this.graphPrefix}${name}"`, { key: name });
    this.used.add(name);
    return t;
  }

  /** The tensor as an initializer in the compute dtype; `transform` reshapes/transposes it first. */
  param(name: string, transform?: (t: Float32Tensor) => Float32Tensor, suffix = ''): Value {
    return this.derived(name, `${this.graphPrefix}${name}${suffix}`, transform ?? ((t) => t));
  }

  /** A weight made from the source tensor `name` by `transform`, in the compute dtype, with its origin noted. */
  derived(name: string, graphName: string, transform: (t: Float32Tensor) => Float32Tensor): Value {
    const half = this.dtype === 'float16';
    const derive = (src: Float32Tensor): HostTensor => (half ? toHalf(transform(src)) : transform(src));
    return this.b.weight(graphName, derive(this.raw(name)), { source: name, derive });
  }

  /** Weights never read while building: a sign that the config and the checkpoint disagree. */
  unused(): string[] {
    return [...this.tensors.keys()].filter((k) => !this.used.has(k));
  }
}

export function toHalf(t: Float32Tensor): HostTensor<'float16'> {
  const out = new Uint16Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = floatToHalf(t.data[i]!);
  return { dtype: 'float16', shape: t.shape, data: out };
}

/** (out, in) -> (in, out) so x @ W^T is a plain MatMul. */
export function transpose2d(t: Float32Tensor): Float32Tensor {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { dtype: 'float32', shape: [c, r], data: out };
}

/** Rows [start, end) of a 2-D or 1-D tensor (the q/k/v blocks of a packed in_proj). */
export function rows(t: Float32Tensor, start: number, end: number): Float32Tensor {
  const inner = t.shape.length === 1 ? 1 : t.shape.slice(1).reduce((a, d) => a * d, 1);
  return {
    dtype: 'float32',
    shape: [end - start, ...t.shape.slice(1)],
    data: t.data.slice(start * inner, end * inner),
  };
}

/** A (C, C, 1, 1) conv weight viewed as the (C, C) matrix of a Linear. */
export function squeezeConv1x1(t: Float32Tensor): Float32Tensor {
  return { dtype: 'float32', shape: [t.shape[0]!, t.shape[1]!], data: t.data };
}

/** torch.nn.Linear over the last axis: x @ W^T + b. */
export function linear(w: ModuleWeights, x: Value, name: string, bias = true): Value {
  const y = w.b.matmul(x, w.param(`${name}.weight`, transpose2d));
  return bias ? w.b.add(y, w.param(`${name}.bias`)) : y;
}

/** Linear from rows [start, end) of a packed weight and bias (the q/k/v blocks of an in_proj). */
export function linearFromRows(w: ModuleWeights, x: Value, weight: string, bias: string | undefined, start: number, end: number, name: string): Value {
  let y = w.b.matmul(x, w.derived(weight, `${name}.weight`, (t) => transpose2d(rows(t, start, end))));
  if (bias) y = w.b.add(y, w.derived(bias, `${name}.bias`, (t) => rows(t, start, end)));
  return y;
}

/** torch.nn.Conv2d with symmetric padding, in the weights' padding mode. */
export function conv2d(w: ModuleWeights, x: Value, name: string, opts: { stride?: number; pad?: number } = {}): Value {
  const s = opts.stride ?? 1;
  const p = opts.pad ?? 0;
  if (p > 0 && w.padding === 'circular') {
    return w.b.conv(circularPad(w.b, x, p), w.param(`${name}.weight`), w.param(`${name}.bias`), { strides: [s, s], pads: [0, 0, 0, 0] });
  }
  return w.b.conv(x, w.param(`${name}.weight`), w.param(`${name}.bias`), { strides: [s, s], pads: [p, p, p, p] });
}

/** F.pad(x, (p, p, p, p), mode='circular') of NCHW: each spatial axis wrapped around by p. */
export function circularPad(b: GraphBuilder, x: Value, p: number): Value {
  let out = x;
  for (const axis of [2, 3]) {
    const n = out.shape[axis]!;
    if (p > n) throw new DarkroomError('GRAPH_BAD_PAD', `circular padding of ${p} needs at least ${p} pixels, the axis has ${n}`);
    const head = b.slice(out, [n - p], [n], [axis]);
    const tail = b.slice(out, [0], [p], [axis]);
    out = b.concat([head, out, tail], axis);
  }
  return out;
}

export function groupNorm(w: ModuleWeights, x: Value, name: string, eps: number, groups = 32): Value {
  return w.b.groupNorm(x, w.param(`${name}.weight`), w.param(`${name}.bias`), groups, eps);
}

/** LayerNorm over the last axis, computed in float32 whatever the compute dtype. */
export function layerNorm(w: ModuleWeights, x: Value, name: string, eps: number): Value {
  const b = w.b;
  const g = b.cast(w.param(`${name}.weight`), 'float32');
  const beta = b.cast(w.param(`${name}.bias`), 'float32');
  return b.cast(b.layerNorm(b.cast(x, 'float32'), g, beta, eps), x.dtype);
}

export interface AttentionOptions {
  /** Multiplies the scores after q k^T (ldm) when 'scores', or q before the product (torch/HF CLIP) when 'query'. */
  readonly scaleAt?: 'scores' | 'query';
  /** Added to the scores before the softmax, broadcast over batch and heads: (S, L). */
  readonly mask?: Value;
  /** Use com.microsoft MultiHeadAttention (no mask support); shorthand for `attention` with the fused form. */
  readonly fused?: boolean;
  /** The form by the layer's size: plain, split, sub-quadratic or fused (default plain). */
  readonly attention?: AttentionBuild;
}

/** Multi-head attention over q (B,S,D), k (B,L,D), v (B,L,D) -> (B,S,D), softmax in float32. */
export function multiHeadAttention(b: GraphBuilder, q: Value, k: Value, v: Value, heads: number, opts: AttentionOptions = {}): Value {
  const [batch, s, d] = q.shape as [number, number, number];
  const l = k.shape[1]!;
  const dh = d / heads;
  const scale = 1 / Math.sqrt(dh);
  const build = opts.attention ?? (opts.fused ? { form: 'fused' as const, chunkBytes: PLAIN_ATTENTION.chunkBytes, plainUpToBytes: 0 } : PLAIN_ATTENTION);
  const layer = layerAttention(build, { batch, heads, queries: s, keys: l });
  if (layer.form === 'fused' && !opts.mask) {
    const out = b.mha(b.cast(q, 'float32'), b.cast(k, 'float32'), b.cast(v, 'float32'), heads, scale);
    return b.cast(out, q.dtype);
  }
  if (layer.form === 'split' || layer.form === 'subquad') {
    const qs = opts.scaleAt === 'query' ? b.mul(q, scale) : q;
    const chunked = { scale: opts.scaleAt === 'query' ? 1 : scale, ...(opts.mask ? { bias: opts.mask } : {}) };
    return layer.form === 'split' ? b.splitAttention(qs, k, v, heads, layer.queries, chunked) : b.subQuadAttention(qs, k, v, heads, layer, chunked);
  }
  const qs = opts.scaleAt === 'query' ? b.mul(q, scale) : q;
  const qh = b.transpose(b.reshape(qs, [batch, s, heads, dh]), [0, 2, 1, 3]);
  const kt = b.transpose(b.reshape(k, [batch, l, heads, dh]), [0, 2, 3, 1]);
  const vh = b.transpose(b.reshape(v, [batch, l, heads, dh]), [0, 2, 1, 3]);
  let scores = b.cast(b.matmul(qh, kt), 'float32');
  if (opts.scaleAt !== 'query') scores = b.mul(scores, scale);
  if (opts.mask) scores = b.add(scores, b.cast(opts.mask, 'float32'));
  const probs = b.cast(b.softmax(scores, -1), v.dtype);
  const out = b.matmul(probs, vh);
  return b.reshape(b.transpose(out, [0, 2, 1, 3]), [batch, s, d]);
}
