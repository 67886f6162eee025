/**
 * Multi-head attention that never holds the whole (S x L) score matrix per head: the memory-lean forms beside
 * the plain MatMul/Softmax one. Both are unrolled into static chunks chosen at build time (see
 * planning/attention-plan.ts) and use only ops that have VJP rules, so they differentiate like the plain form.
 *
 * - split (A1111's --opt-split-attention): queries in slices; each slice takes a full softmax over every key.
 * - sub-quadratic (A1111's --opt-sub-quad-attention, after Rabe & Staats, "Self-attention does not need O(n^2)
 *   memory"): query chunks x key chunks; each block keeps its row max, its exp-weighted values and its exp sum,
 *   and the blocks of a query chunk are combined by rescaling to the common max (the online softmax).
 *
 * Inputs are q (B,S,D), k (B,L,D), v (B,L,Dv) -> (B,S,Dv), like `GraphBuilder.attention`. The scores and the
 * softmax are computed in float32 whatever the input dtype (ldm's `_ATTN_PRECISION = "fp32"`), and the
 * probabilities are cast back to v's dtype for the value product.
 */
import { DarkroomError } from '../errors.js';
import type { GraphBuilder } from './builder.js';
import type { Value } from './ir.js';

export interface ChunkedAttentionOptions {
  /** Multiplies q k^T (default 1/sqrt(head width)). */
  readonly scale?: number;
  /** Added to the scores; broadcasts to (B, heads, S, L). */
  readonly bias?: Value;
}

interface HeadViews {
  /** (B, H, S, dh) */
  readonly q: Value;
  /** (B, H, dh, L): k transposed once, shared by every chunk. */
  readonly kt: Value;
  /** (B, H, L, dv) */
  readonly v: Value;
  readonly scale: number;
  /** (B, H, S, dv) -> (B, S, H*dv) */
  merge(out: Value): Value;
}

function headViews(b: GraphBuilder, q: Value, k: Value, v: Value, heads: number, scale: number | undefined): HeadViews {
  const [batch, s, d] = q.shape as [number, number, number];
  const l = k.shape[1]!;
  const dh = d / heads;
  const dv = v.shape[2]! / heads;
  if (!Number.isInteger(dh) || !Number.isInteger(dv)) {
    throw new DarkroomError('GRAPH_SHAPE_ERROR', `attention: widths ${d} and ${v.shape[2]} do not split into ${heads} heads`);
  }
  return {
    q: b.transpose(b.reshape(q, [batch, s, heads, dh]), [0, 2, 1, 3]),
    kt: b.transpose(b.reshape(k, [batch, l, heads, dh]), [0, 2, 3, 1]),
    v: b.transpose(b.reshape(v, [batch, l, heads, dv]), [0, 2, 1, 3]),
    scale: scale ?? 1 / Math.sqrt(dh),
    merge: (out) => b.reshape(b.transpose(out, [0, 2, 1, 3]), [batch, s, heads * dv]),
  };
}

/** The part of a broadcast bias that applies to queries [q0, q0+nq) and keys [k0, k0+nk). */
function biasBlock(b: GraphBuilder, bias: Value | undefined, q0: number, nq: number, k0: number, nk: number): Value | undefined {
  if (!bias) return undefined;
  const r = bias.shape.length;
  const starts: number[] = [];
  const ends: number[] = [];
  const axes: number[] = [];
  // Axes of length 1 broadcast over every chunk and are left whole.
  if (r >= 2 && bias.shape[r - 2] !== 1 && nq !== bias.shape[r - 2]) {
    starts.push(q0);
    ends.push(q0 + nq);
    axes.push(r - 2);
  }
  if (r >= 1 && bias.shape[r - 1] !== 1 && nk !== bias.shape[r - 1]) {
    starts.push(k0);
    ends.push(k0 + nk);
    axes.push(r - 1);
  }
  return axes.length ? b.slice(bias, starts, ends, axes) : bias;
}

/** float32 scores of one block: (q k^T) * scale + bias. */
function scores(b: GraphBuilder, q: Value, kt: Value, scale: number, bias: Value | undefined): Value {
  const s = b.mul(b.cast(b.matmul(q, kt), 'float32'), scale);
  return bias ? b.add(s, b.cast(bias, 'float32')) : s;
}

function splitOrWhole(b: GraphBuilder, x: Value, sizes: readonly number[], axis: number): Value[] {
  return sizes.length === 1 ? [x] : b.split(x, sizes, axis);
}

function offsets(sizes: readonly number[]): number[] {
  let at = 0;
  return sizes.map((n) => {
    const o = at;
    at += n;
    return o;
  });
}

function checkChunks(what: string, sizes: readonly number[], total: number): void {
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1) || sizes.reduce((a, n) => a + n, 0) !== total) {
    throw new DarkroomError('GRAPH_SHAPE_ERROR', `attention: ${what} chunks [${sizes.join(',')}] do not cover ${total} tokens`);
  }
}

/** softmax(scores) v for one query slice over every key. */
function fullSoftmaxBlock(b: GraphBuilder, q: Value, kt: Value, v: Value, scale: number, bias: Value | undefined): Value {
  const probs = b.cast(b.softmax(scores(b, q, kt, scale, bias), -1), v.dtype);
  return b.matmul(probs, v);
}

/** Split attention: `querySizes` are the query slices (see planSplit); one slice is the plain form. */
export function splitAttention(
  b: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  heads: number,
  querySizes: readonly number[],
  opts: ChunkedAttentionOptions = {},
): Value {
  const h = headViews(b, q, k, v, heads, opts.scale);
  const s = q.shape[1]!;
  const l = k.shape[1]!;
  checkChunks('query', querySizes, s);
  const starts = offsets(querySizes);
  const outs = splitOrWhole(b, h.q, querySizes, 2).map((qc, i) =>
    fullSoftmaxBlock(b, qc, h.kt, h.v, h.scale, biasBlock(b, opts.bias, starts[i]!, querySizes[i]!, 0, l)),
  );
  return h.merge(b.concat(outs, 2));
}

/**
 * Sub-quadratic attention over `querySizes` x `keySizes` blocks (see planSubQuad). A query chunk with a single
 * key chunk is the plain softmax. Otherwise each block gives its row max m_j (float32), and e_j = exp(s_j - m_j)
 * times [v | 1], whose last column is the row sum: one product yields the weighted values and the softmax
 * denominator, so the exponentials have a single consumer and die right after it. The blocks are then scaled
 * by exp(m_j - max_j m_j) and summed.
 */
export function subQuadraticAttention(
  b: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  heads: number,
  querySizes: readonly number[],
  keySizes: readonly number[],
  opts: ChunkedAttentionOptions = {},
): Value {
  const h = headViews(b, q, k, v, heads, opts.scale);
  const s = q.shape[1]!;
  const l = k.shape[1]!;
  checkChunks('query', querySizes, s);
  checkChunks('key', keySizes, l);
  const qStarts = offsets(querySizes);
  const kStarts = offsets(keySizes);
  const qChunks = splitOrWhole(b, h.q, querySizes, 2);
  if (keySizes.length === 1) {
    const outs = qChunks.map((qc, i) => fullSoftmaxBlock(b, qc, h.kt, h.v, h.scale, biasBlock(b, opts.bias, qStarts[i]!, querySizes[i]!, 0, l)));
    return h.merge(b.concat(outs, 2));
  }
  const [batch, nh, , dv] = h.v.shape as [number, number, number, number];
  const ones = b.expand(b.scalar(1, v.dtype), [batch, nh, l, 1]);
  const kChunks = b.split(h.kt, keySizes, 3);
  const vChunks = b.split(b.concat([h.v, ones], 3), keySizes, 2);
  const outs = qChunks.map((qc, i) => {
    const nq = querySizes[i]!;
    const maxes: Value[] = [];
    const weighted: Value[] = [];
    kChunks.forEach((kc, j) => {
      const sc = scores(b, qc, kc, h.scale, biasBlock(b, opts.bias, qStarts[i]!, nq, kStarts[j]!, keySizes[j]!));
      // A block whose keys are all masked (-Infinity) has no finite max; a finite floor keeps its exps at 0.
      const rowMax = b.reduceMax(sc, [-1]);
      const m = opts.bias ? b.max(rowMax, -3.4e38) : rowMax;
      const e = b.exp(b.sub(sc, m));
      maxes.push(m);
      weighted.push(b.matmul(b.cast(e, v.dtype), vChunks[j]!));
    });
    const allMax = b.concat(maxes, 3);
    const rescale = b.unsqueeze(b.cast(b.exp(b.sub(allMax, b.reduceMax(allMax, [-1]))), v.dtype), [4]);
    // Made after the rescale factors on purpose: onnxruntime orders the nodes depth-first from the outputs,
    // visiting the most recently created input first. Reached through the values, each block's scores are
    // produced and consumed before the next block's exist; reached through the maxes first, every block's
    // scores would be alive at once.
    const stacked = b.reshape(b.concat(weighted, 3), [batch, nh, nq, keySizes.length, dv + 1]);
    const summed = b.reduceSum(b.mul(stacked, rescale), [3], false);
    const [num, den] = b.split(summed, [dv, 1], 3) as [Value, Value];
    return b.div(num, den);
  });
  return h.merge(b.concat(outs, 2));
}
