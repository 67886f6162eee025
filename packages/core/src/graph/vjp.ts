/**
 * The gradient table: one vector-Jacobian product rule per op type the builder emits. A rule gets the forward
 * node, the cotangents of its outputs and which inputs need a gradient, and returns one cotangent per input
 * (undefined where none is needed). Rules only emit ops that the CPU provider runs, so a backward graph is an
 * ordinary inference model. Keys are op types, prefixed with their domain outside the default one.
 */
import { DarkroomError } from '../errors.js';
import { numel, type DType } from '../tensor.js';
import type { GraphBuilder } from './builder.js';
import { attrFloat, attrInt, attrInts, attrString, type Node, type Value } from './ir.js';
import { constFloats, constInts, normAxis, sliceLength } from './shapes.js';

export interface VjpContext {
  readonly b: GraphBuilder;
  readonly node: Node;
  /** Cotangent per output; undefined for outputs the loss does not use. */
  readonly dy: ReadonlyArray<Value | undefined>;
  /** Per input: whether a gradient must be produced. */
  readonly needs: readonly boolean[];
  /**
   * Reverse mode over the graph as it stands, for rules of fused ops that recompute their plain form and
   * differentiate through it. Handed in by the caller so this table does not import the differentiator.
   */
  readonly backprop: Backprop;
}

export type Backprop = (b: GraphBuilder, from: readonly Value[], seeds: readonly Value[], wrt: readonly Value[]) => Array<Value | undefined>;

export type VjpRule = (ctx: VjpContext) => ReadonlyArray<Value | undefined>;

function unsupported(op: string, why: string): never {
  throw new DarkroomError('VJP_UNSUPPORTED', `no gradient for ${op}: ${why}`, { opType: op });
}

function input(ctx: VjpContext, i: number): Value {
  const v = ctx.node.inputs[i];
  if (!v) unsupported(ctx.node.opType, `input ${i} is missing`);
  return v;
}

function dy0(ctx: VjpContext): Value {
  const g = ctx.dy[0];
  if (!g) unsupported(ctx.node.opType, 'no cotangent for output 0');
  return g;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Sums a broadcast cotangent back to the shape of the operand that was broadcast. */
export function sumToShape(b: GraphBuilder, g: Value, shape: readonly number[]): Value {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length > 0 ? b.reduceSum(g, axes, true) : g;
  return sameShape(summed.shape, shape) ? summed : b.reshape(summed, shape);
}

function zeros(b: GraphBuilder, dtype: DType, shape: readonly number[]): Value {
  return b.expand(b.scalar(0, dtype), shape);
}

function when<T>(need: boolean | undefined, f: () => T): T | undefined {
  return need ? f() : undefined;
}

function swapLast2(b: GraphBuilder, x: Value): Value {
  const r = x.shape.length;
  const perm = x.shape.map((_, i) => i);
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return b.transpose(x, perm);
}

const elementwiseUnary = (f: (ctx: VjpContext, g: Value, x: Value, y: Value) => Value): VjpRule => (ctx) => [f(ctx, dy0(ctx), input(ctx, 0), ctx.node.outputs[0]!)];

function matmulVjp(ctx: VjpContext): Array<Value | undefined> {
  const { b } = ctx;
  const a0 = input(ctx, 0);
  const b0 = input(ctx, 1);
  // Lift 1-D operands to matrices so one code path handles every rank (numpy matmul semantics).
  const a = a0.shape.length === 1 ? b.reshape(a0, [1, a0.shape[0]!]) : a0;
  const bm = b0.shape.length === 1 ? b.reshape(b0, [b0.shape[0]!, 1]) : b0;
  let g = dy0(ctx);
  if (a0.shape.length === 1) g = b.unsqueeze(g, [g.shape.length - (b0.shape.length === 1 ? 0 : 1)]);
  if (b0.shape.length === 1) g = b.unsqueeze(g, [g.shape.length]);
  // A 2-D right operand (a weight shared over the batch) takes the Gemm path: the batch folds into rows and
  // the weight is read transposed in place, so a frozen weight is never copied as its transpose.
  const sharedMatrix = bm.shape.length === 2 && g.shape.length >= 2;
  const k = bm.shape[0]!;
  const n = bm.shape[1]!;
  const da = when(ctx.needs[0], () => {
    if (sharedMatrix) {
      const rowsOut = b.gemm(b.reshape(g, [-1, n]), bm, { transB: true });
      return sumToShape(b, b.reshape(rowsOut, [...g.shape.slice(0, -1), k]), a.shape);
    }
    return sumToShape(b, b.matmul(g, swapLast2(b, bm)), a.shape);
  });
  const db = when(ctx.needs[1], () => {
    if (sharedMatrix) {
      const aRows = b.reshape(b.expand(a, [...g.shape.slice(0, -1), k]), [-1, k]);
      return b.gemm(aRows, b.reshape(g, [-1, n]), { transA: true });
    }
    return sumToShape(b, b.matmul(swapLast2(b, a), g), bm.shape);
  });
  return [da && (a0.shape.length === 1 ? b.reshape(da, a0.shape) : da), db && (b0.shape.length === 1 ? b.reshape(db, b0.shape) : db)];
}

function reduceVjp(ctx: VjpContext, axesOf: (ctx: VjpContext) => number[] | undefined, mean: boolean): Array<Value | undefined> {
  const { b } = ctx;
  const x = input(ctx, 0);
  const rank = x.shape.length;
  const listed = axesOf(ctx);
  const axes = listed && listed.length > 0 ? listed.map((a) => normAxis(ctx.node.opType, a, rank)) : x.shape.map((_, i) => i);
  let g = dy0(ctx);
  if (attrInt(ctx.node.attrs, 'keepdims', 1) === 0) g = b.reshape(g, x.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
  if (mean) g = b.mul(g, 1 / axes.reduce((p, a) => p * x.shape[a]!, 1));
  return [b.expand(g, x.shape)];
}

/** As torch.amax: the cotangent goes to the positions that hold the maximum, shared evenly between ties. */
function reduceMaxVjp(ctx: VjpContext): Array<Value | undefined> {
  const { b } = ctx;
  const x = input(ctx, 0);
  const rank = x.shape.length;
  const listed = attrInts(ctx.node.attrs, 'axes');
  const axes = listed && listed.length > 0 ? listed.map((a) => normAxis('ReduceMax', a, rank)) : x.shape.map((_, i) => i);
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  let y = ctx.node.outputs[0]!;
  let g = dy0(ctx);
  if (attrInt(ctx.node.attrs, 'keepdims', 1) === 0) {
    y = b.reshape(y, kept);
    g = b.reshape(g, kept);
  }
  const hit = b.op('Equal', [x, y])[0]!;
  const ties = b.reduceSum(b.cast(hit, x.dtype), axes, true);
  return [b.where(hit, b.expand(b.div(g, ties), x.shape), 0)];
}

/** Cotangent of normalizing x over `axes` (mean/variance per remaining index): the LayerNorm/InstanceNorm core. */
function normalizeVjp(b: GraphBuilder, x: Value, dxhat: Value, axes: number[], eps: number): { dx: Value; xhat: Value } {
  const mean = b.reduceMean(x, axes);
  const xc = b.sub(x, mean);
  const rstd = b.reciprocal(b.sqrt(b.add(b.reduceMean(b.mul(xc, xc), axes), eps)));
  const xhat = b.mul(xc, rstd);
  const inner = b.sub(b.sub(dxhat, b.reduceMean(dxhat, axes)), b.mul(xhat, b.reduceMean(b.mul(dxhat, xhat), axes)));
  return { dx: b.mul(rstd, inner), xhat };
}

function convVjp(ctx: VjpContext): Array<Value | undefined> {
  const { b, node } = ctx;
  const x = input(ctx, 0);
  const w = input(ctx, 1);
  const g = dy0(ctx);
  const sp = x.shape.length - 2;
  const group = attrInt(node.attrs, 'group', 1);
  const strides = attrInts(node.attrs, 'strides') ?? new Array<number>(sp).fill(1);
  const dil = attrInts(node.attrs, 'dilations') ?? new Array<number>(sp).fill(1);
  const pads = attrInts(node.attrs, 'pads') ?? new Array<number>(2 * sp).fill(0);
  if (attrString(node.attrs, 'auto_pad', 'NOTSET') !== 'NOTSET') unsupported('Conv', 'auto_pad');
  const kernel = w.shape.slice(2);

  const dx = when(ctx.needs[0], () => {
    // The transpose of a strided convolution; output_padding restores rows the forward stride skipped.
    const outputPadding = kernel.map((k, i) => x.shape[2 + i]! - (strides[i]! * (g.shape[2 + i]! - 1) + (k - 1) * dil[i]! + 1 - pads[i]! - pads[sp + i]!));
    return b.op('ConvTranspose', [g, w], {
      kernel_shape: { ints: kernel },
      strides: { ints: strides },
      dilations: { ints: dil },
      pads: { ints: pads },
      group: { i: group },
      output_padding: { ints: outputPadding },
    })[0]!;
  });

  const dw = when(ctx.needs[1], () => {
    // dW[o, c] = correlation of input channel c with output cotangent o over the batch: a convolution with
    // batch and channels swapped, where the forward stride becomes the dilation.
    const swap = [1, 0, ...kernel.map((_, i) => i + 2)];
    const cg = x.shape[1]! / group;
    const og = w.shape[0]! / group;
    const xs = group > 1 ? b.split(x, new Array<number>(group).fill(cg), 1) : [x];
    const gs = group > 1 ? b.split(g, new Array<number>(group).fill(og), 1) : [g];
    const parts = xs.map((xg, gi) => {
      const corr = b.conv(b.transpose(xg, swap), b.transpose(gs[gi]!, swap), undefined, { strides: dil, dilations: strides, pads });
      const trimmed = corr.shape.slice(2).some((d, i) => d !== kernel[i])
        ? b.slice(corr, kernel.map(() => 0), kernel, kernel.map((_, i) => i + 2))
        : corr;
      return b.transpose(trimmed, swap);
    });
    return b.concat(parts, 0);
  });

  const db = when(ctx.needs[2], () => b.reduceSum(g, [0, ...kernel.map((_, i) => i + 2)], false));
  return [dx, dw, db];
}

function sliceVjp(ctx: VjpContext): Array<Value | undefined> {
  const { b } = ctx;
  const x = input(ctx, 0);
  const op = 'Slice';
  const consts = { constantOf: (v: Value) => b.constantOf(v) };
  const starts = constInts(op, consts, ctx.node.inputs[1], 'starts');
  const ends = constInts(op, consts, ctx.node.inputs[2], 'ends');
  const axes = ctx.node.inputs[3] ? constInts(op, consts, ctx.node.inputs[3], 'axes') : starts.map((_, i) => i);
  const steps = ctx.node.inputs[4] ? constInts(op, consts, ctx.node.inputs[4], 'steps') : starts.map(() => 1);
  let g = dy0(ctx);
  axes.forEach((a0, i) => {
    const a = normAxis(op, a0, x.shape.length);
    const dim = x.shape[a]!;
    let step = steps[i]!;
    const range = sliceLength(dim, starts[i]!, ends[i]!, step);
    const length = range.length;
    let start = range.start;
    let cur = g;
    if (step < 0 && length > 0) {
      // A descending slice is the reverse of an ascending one that starts at its last position.
      cur = b.slice(cur, [-1], [-(2 ** 53)], [a], [-1]);
      start = start + (length - 1) * step;
      step = -step;
    }
    let covered = length;
    if (step > 1 && length > 0) {
      // Interleave step-1 zeros after every element, then the strided positions line up with the input.
      const u = b.unsqueeze(cur, [a + 1]);
      const padSpec = new Array<number>(2 * u.shape.length).fill(0);
      padSpec[u.shape.length + a + 1] = step - 1;
      const spread = b.pad(u, padSpec);
      const merged = [...cur.shape];
      merged[a] = length * step;
      cur = b.reshape(spread, merged);
      covered = length * step;
      if (start + covered > dim) {
        cur = b.slice(cur, [0], [dim - start], [a]);
        covered = dim - start;
      }
    }
    const padSpec = new Array<number>(2 * cur.shape.length).fill(0);
    padSpec[a] = start;
    padSpec[cur.shape.length + a] = dim - start - covered;
    g = padSpec.some((p) => p !== 0) ? b.pad(cur, padSpec) : cur;
  });
  return [g];
}

function gatherVjp(ctx: VjpContext): Array<Value | undefined> {
  const { b } = ctx;
  const x = input(ctx, 0);
  const idx = input(ctx, 1);
  const g = dy0(ctx);
  const rank = x.shape.length;
  const axis = normAxis('Gather', attrInt(ctx.node.attrs, 'axis', 0), rank);
  const ri = idx.shape.length;
  const dim = x.shape[axis]!;
  // Bring the gathered axis to the front, then scatter-add rows: repeated indices accumulate.
  const gPerm = [...Array.from({ length: ri }, (_, i) => axis + i), ...Array.from({ length: axis }, (_, i) => i), ...Array.from({ length: rank - 1 - axis }, (_, i) => axis + ri + i)];
  const rest = [...x.shape.slice(0, axis), ...x.shape.slice(axis + 1)];
  const m = numel(idx.shape);
  const updates = b.reshape(ri > 0 ? b.transpose(g, gPerm) : g, [m, ...rest]);
  let flatIdx = b.reshape(b.cast(idx, 'int64'), [m, 1]);
  flatIdx = b.where(b.op('Less', [flatIdx, b.scalar(0, 'int64')])[0]!, b.add(flatIdx, b.scalar(dim, 'int64')), flatIdx);
  const scattered = b.op('ScatterND', [zeros(b, x.dtype, [dim, ...rest]), flatIdx, updates], { reduction: { s: 'add' } })[0]!;
  const back = Array.from({ length: rank }, (_, i) => (i < axis ? i + 1 : i === axis ? 0 : i));
  return [axis === 0 ? scattered : b.transpose(scattered, back), undefined];
}

function resizeVjp(ctx: VjpContext): Array<Value | undefined> {
  const { b, node } = ctx;
  const x = input(ctx, 0);
  const g = dy0(ctx);
  if (attrString(node.attrs, 'mode', 'nearest') !== 'nearest' || attrString(node.attrs, 'coordinate_transformation_mode', 'half_pixel') !== 'asymmetric' || attrString(node.attrs, 'nearest_mode', 'round_prefer_floor') !== 'floor') {
    unsupported('Resize', 'only asymmetric floor nearest upsampling');
  }
  const scales = constFloats('Resize', { constantOf: (v) => b.constantOf(v) }, node.inputs[2], 'scales');
  if (scales.some((s) => !Number.isInteger(s) || s < 1)) unsupported('Resize', 'only integer upscaling');
  // Each input pixel was copied to an s x s block: split every scaled axis into (d, s) and sum the blocks.
  const split: number[] = [];
  const sumAxes: number[] = [];
  x.shape.forEach((d, i) => {
    split.push(d);
    if (scales[i]! > 1) {
      split.push(scales[i]!);
      sumAxes.push(split.length - 1);
    }
  });
  if (sumAxes.length === 0) return [g];
  return [b.reduceSum(b.reshape(g, split), sumAxes, false)];
}

function mhaVjp(ctx: VjpContext): Array<Value | undefined> {
  const { b, node } = ctx;
  if (node.inputs.slice(3).some((v, i) => v !== undefined && i !== 2)) unsupported('MultiHeadAttention', 'projection bias, padding masks and past state');
  if (ctx.needs[5]) unsupported('MultiHeadAttention', 'a gradient for attention_bias');
  const [q, k, v] = [input(ctx, 0), input(ctx, 1), input(ctx, 2)];
  const heads = attrInt(node.attrs, 'num_heads', 0);
  const scaleAttr = node.attrs.scale;
  // Differentiate the plain form it fuses: recompute it in the backward graph and back-propagate through it.
  const plain = b.attention(q, k, v, heads, scaleAttr && 'f' in scaleAttr ? scaleAttr.f : undefined, node.inputs[5]);
  const wrt = [q, k, v].filter((_, i) => ctx.needs[i]);
  const gs = ctx.backprop(b, [plain], [dy0(ctx)], wrt);
  let j = 0;
  return [0, 1, 2].map((i) => (ctx.needs[i] ? gs[j++] : undefined));
}

/** Ops whose outputs carry no gradient: boolean logic and piecewise-constant functions. */
export const NON_DIFFERENTIABLE: ReadonlySet<string> = new Set(['Greater', 'Less', 'Equal', 'And', 'Not', 'Sign']);

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export const VJP_RULES: Record<string, VjpRule> = {
  Identity: (ctx) => [dy0(ctx)],
  Add: (ctx) => [when(ctx.needs[0], () => sumToShape(ctx.b, dy0(ctx), input(ctx, 0).shape)), when(ctx.needs[1], () => sumToShape(ctx.b, dy0(ctx), input(ctx, 1).shape))],
  Sub: (ctx) => [when(ctx.needs[0], () => sumToShape(ctx.b, dy0(ctx), input(ctx, 0).shape)), when(ctx.needs[1], () => sumToShape(ctx.b, ctx.b.neg(dy0(ctx)), input(ctx, 1).shape))],
  Mul: (ctx) => {
    const { b } = ctx;
    const [x, y, g] = [input(ctx, 0), input(ctx, 1), dy0(ctx)];
    return [when(ctx.needs[0], () => sumToShape(b, b.mul(g, y), x.shape)), when(ctx.needs[1], () => sumToShape(b, b.mul(g, x), y.shape))];
  },
  Div: (ctx) => {
    const { b } = ctx;
    const [x, y, g, out] = [input(ctx, 0), input(ctx, 1), dy0(ctx), ctx.node.outputs[0]!];
    return [when(ctx.needs[0], () => sumToShape(b, b.div(g, y), x.shape)), when(ctx.needs[1], () => sumToShape(b, b.neg(b.div(b.mul(g, out), y)), y.shape))];
  },
  Pow: (ctx) => {
    const { b } = ctx;
    const [x, p, g, out] = [input(ctx, 0), input(ctx, 1), dy0(ctx), ctx.node.outputs[0]!];
    const dx = when(ctx.needs[0], () => {
      const pc = b.constantOf(p);
      const pd = p.dtype === x.dtype ? p : b.cast(p, x.dtype);
      // A constant exponent folds p-1 at build time, so x^(p-1) is one Pow with a scalar.
      const pm1 = pc && numel(pc.shape) === 1 && pc.dtype !== 'float16' && pc.dtype !== 'bfloat16' && !(pc.data instanceof BigInt64Array)
        ? b.scalar((pc.data as ArrayLike<number>)[0]! - 1, x.dtype)
        : b.sub(pd, 1);
      return sumToShape(b, b.mul(b.mul(g, pd), b.op('Pow', [x, pm1])[0]!), x.shape);
    });
    const dp = when(ctx.needs[1], () => sumToShape(b, b.cast(b.mul(b.mul(g, out), b.log(x)), p.dtype), p.shape));
    return [dx, dp];
  },
  Max: (ctx) => {
    const { b } = ctx;
    const [x, y, g] = [input(ctx, 0), input(ctx, 1), dy0(ctx)];
    const yWins = b.op('Less', [x, y])[0]!;
    return [when(ctx.needs[0], () => sumToShape(b, b.where(yWins, zeros(b, g.dtype, g.shape), g), x.shape)), when(ctx.needs[1], () => sumToShape(b, b.where(yWins, g, 0), y.shape))];
  },
  Min: (ctx) => {
    const { b } = ctx;
    const [x, y, g] = [input(ctx, 0), input(ctx, 1), dy0(ctx)];
    const yWins = b.greater(x, y);
    return [when(ctx.needs[0], () => sumToShape(b, b.where(yWins, zeros(b, g.dtype, g.shape), g), x.shape)), when(ctx.needs[1], () => sumToShape(b, b.where(yWins, g, 0), y.shape))];
  },
  Where: (ctx) => {
    const { b } = ctx;
    const [c, x, y, g] = [input(ctx, 0), input(ctx, 1), input(ctx, 2), dy0(ctx)];
    return [undefined, when(ctx.needs[1], () => sumToShape(b, b.where(c, g, 0), x.shape)), when(ctx.needs[2], () => sumToShape(b, b.where(c, zeros(b, g.dtype, g.shape), g), y.shape))];
  },
  Neg: elementwiseUnary((ctx, g) => ctx.b.neg(g)),
  Sqrt: elementwiseUnary((ctx, g, _x, y) => ctx.b.div(ctx.b.mul(g, 0.5), y)),
  Reciprocal: elementwiseUnary((ctx, g, _x, y) => ctx.b.neg(ctx.b.mul(g, ctx.b.mul(y, y)))),
  Exp: elementwiseUnary((ctx, g, _x, y) => ctx.b.mul(g, y)),
  Log: elementwiseUnary((ctx, g, x) => ctx.b.div(g, x)),
  Erf: elementwiseUnary(({ b }, g, x) => b.mul(g, b.mul(b.exp(b.neg(b.mul(x, x))), 2 / Math.sqrt(Math.PI)))),
  Tanh: elementwiseUnary(({ b }, g, _x, y) => b.mul(g, b.sub(b.scalar(1, y.dtype), b.mul(y, y)))),
  Sigmoid: elementwiseUnary(({ b }, g, _x, y) => b.mul(g, b.mul(y, b.sub(b.scalar(1, y.dtype), y)))),
  Relu: elementwiseUnary(({ b }, g, x) => b.where(b.greater(x, 0), g, 0)),
  Abs: elementwiseUnary(({ b }, g, x) => b.mul(g, b.sign(x))),
  LeakyRelu: elementwiseUnary(({ b, node }, g, x) => b.where(b.greater(x, 0), g, b.mul(g, attrFloat(node.attrs, 'alpha', 0.01)))),
  // d/dx elu = 1 for x > 0, alpha * exp(x) = y + alpha otherwise.
  Elu: elementwiseUnary(({ b, node }, g, x, y) => b.where(b.greater(x, 0), g, b.mul(g, b.add(y, attrFloat(node.attrs, 'alpha', 1))))),
  Celu: elementwiseUnary(({ b, node }, g, x) => b.where(b.greater(x, 0), g, b.mul(g, b.exp(b.div(x, attrFloat(node.attrs, 'alpha', 1)))))),
  Selu: elementwiseUnary(({ b, node }, g, x) => {
    // biome-ignore lint/correctness/noPrecisionLoss: ONNX's Selu default, the float32 value written out in full
    const alpha = attrFloat(node.attrs, 'alpha', 1.67326319217681884765625);
    // biome-ignore lint/correctness/noPrecisionLoss: ONNX's Selu default, the float32 value written out in full
    const gamma = attrFloat(node.attrs, 'gamma', 1.05070102214813232421875);
    return b.mul(b.where(b.greater(x, 0), g, b.mul(g, b.mul(b.exp(x), alpha))), gamma);
  }),
  // HardSwish = x * clip(x/6 + 1/2, 0, 1): slope x/3 + 1/2 inside (-3, 3), 0 below, 1 above.
  HardSwish: elementwiseUnary(({ b }, g, x) => b.mul(g, b.where(b.greater(x, 3), b.expand(b.scalar(1, x.dtype), x.shape), b.where(b.greater(x, -3), b.add(b.mul(x, 1 / 3), 0.5), 0)))),
  HardSigmoid: elementwiseUnary(({ b, node }, g, x) => {
    const alpha = attrFloat(node.attrs, 'alpha', 0.2);
    const beta = attrFloat(node.attrs, 'beta', 0.5);
    const t = b.add(b.mul(x, alpha), beta);
    const inside = b.op('And', [b.greater(t, 0), b.op('Less', [t, b.scalar(1, x.dtype)])[0]!])[0]!;
    return b.where(inside, b.mul(g, alpha), 0);
  }),
  Softplus: elementwiseUnary(({ b }, g, x) => b.mul(g, b.sigmoid(x))),
  // d/dx x/(1+|x|) = 1/(1+|x|)^2
  Softsign: elementwiseUnary(({ b }, g, x) => {
    const d = b.add(b.abs(x), 1);
    return b.div(g, b.mul(d, d));
  }),
  Clip: (ctx) => {
    const { b } = ctx;
    const [x, g] = [input(ctx, 0), dy0(ctx)];
    const lo = ctx.node.inputs[1];
    const hi = ctx.node.inputs[2];
    let mask: Value | undefined;
    if (lo) mask = b.greater(x, lo);
    if (hi) {
      const below = b.op('Less', [x, hi])[0]!;
      mask = mask ? b.op('And', [mask, below])[0]! : below;
    }
    return [mask ? b.where(mask, g, 0) : g, undefined, undefined];
  },
  Sin: elementwiseUnary(({ b }, g, x) => b.mul(g, b.cos(x))),
  Cos: elementwiseUnary(({ b }, g, x) => b.neg(b.mul(g, b.sin(x)))),
  Cast: elementwiseUnary(({ b }, g, x) => b.cast(g, x.dtype)),
  MatMul: matmulVjp,
  Gemm: (ctx) => {
    const { b, node } = ctx;
    const [a, m, c] = [input(ctx, 0), input(ctx, 1), node.inputs[2]];
    const tA = attrInt(node.attrs, 'transA', 0) === 1;
    const tB = attrInt(node.attrs, 'transB', 0) === 1;
    const alpha = attrFloat(node.attrs, 'alpha', 1);
    const g = alpha === 1 ? dy0(ctx) : b.mul(dy0(ctx), alpha);
    // Y = op(A) op(B); each gradient is one more Gemm with the transposes flipped, never an explicit Transpose.
    const da = when(ctx.needs[0], () => (tA ? b.gemm(m, g, { transA: tB, transB: true }) : b.gemm(g, m, { transB: !tB })));
    const dm = when(ctx.needs[1], () => (tB ? b.gemm(g, a, { transA: true, transB: tA }) : b.gemm(a, g, { transA: !tA })));
    const dc = when(ctx.needs[2] && c !== undefined, () => sumToShape(b, b.mul(dy0(ctx), attrFloat(node.attrs, 'beta', 1)), c!.shape));
    return [da, dm, dc];
  },
  Reshape: (ctx) => [ctx.b.reshape(dy0(ctx), input(ctx, 0).shape), undefined],
  Unsqueeze: (ctx) => [ctx.b.reshape(dy0(ctx), input(ctx, 0).shape), undefined],
  Squeeze: (ctx) => [ctx.b.reshape(dy0(ctx), input(ctx, 0).shape), undefined],
  Expand: (ctx) => [sumToShape(ctx.b, dy0(ctx), input(ctx, 0).shape), undefined],
  Transpose: (ctx) => {
    const x = input(ctx, 0);
    const perm = attrInts(ctx.node.attrs, 'perm') ?? x.shape.map((_, i) => x.shape.length - 1 - i);
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [ctx.b.transpose(dy0(ctx), inv)];
  },
  Concat: (ctx) => {
    const axis = attrInt(ctx.node.attrs, 'axis', 0);
    const xs = ctx.node.inputs.map((_, i) => input(ctx, i));
    return ctx.b.split(dy0(ctx), xs.map((x) => x.shape[axis]!), axis).map((g, i) => (ctx.needs[i] ? g : undefined));
  },
  Split: (ctx) => {
    const { b, node } = ctx;
    const axis = attrInt(node.attrs, 'axis', 0);
    const parts = node.outputs.map((o, i) => ctx.dy[i] ?? zeros(b, o.dtype, o.shape));
    return [b.concat(parts, axis), undefined];
  },
  Slice: sliceVjp,
  Gather: gatherVjp,
  ReduceMean: (ctx) => reduceVjp(ctx, (c) => attrInts(c.node.attrs, 'axes')?.slice(), true),
  ReduceSum: (ctx) => [
    reduceVjp(ctx, (c) => (c.node.inputs[1] ? constInts('ReduceSum', { constantOf: (v) => c.b.constantOf(v) }, c.node.inputs[1], 'axes') : undefined), false)[0],
    undefined,
  ],
  ReduceMax: reduceMaxVjp,
  Softmax: (ctx) => {
    const { b } = ctx;
    const y = ctx.node.outputs[0]!;
    const g = dy0(ctx);
    const axis = attrInt(ctx.node.attrs, 'axis', -1);
    return [b.mul(y, b.sub(g, b.reduceSum(b.mul(g, y), [axis], true)))];
  },
  Conv: convVjp,
  Pad: (ctx) => {
    const { b, node } = ctx;
    const x = input(ctx, 0);
    if (attrString(node.attrs, 'mode', 'constant') !== 'constant') unsupported('Pad', 'only constant mode');
    const pads = constInts('Pad', { constantOf: (v) => b.constantOf(v) }, node.inputs[1], 'pads');
    const axes = x.shape.map((_, i) => i);
    return [b.slice(dy0(ctx), axes.map((i) => pads[i]!), axes.map((i) => pads[i]! + x.shape[i]!), axes), undefined, undefined];
  },
  Resize: resizeVjp,
  LayerNormalization: (ctx) => {
    const { b, node } = ctx;
    const [x, gamma] = [input(ctx, 0), input(ctx, 1)];
    const beta = node.inputs[2];
    const g = dy0(ctx);
    const axis = normAxis('LayerNormalization', attrInt(node.attrs, 'axis', -1), x.shape.length);
    const axes = x.shape.map((_, i) => i).filter((i) => i >= axis);
    const { dx, xhat } = normalizeVjp(b, x, b.mul(g, gamma), axes, attrFloat(node.attrs, 'epsilon', 1e-5));
    return [ctx.needs[0] ? dx : undefined, when(ctx.needs[1], () => sumToShape(b, b.mul(g, xhat), gamma.shape)), when(ctx.needs[2] && beta !== undefined, () => sumToShape(b, g, beta!.shape))];
  },
  InstanceNormalization: (ctx) => {
    const { b, node } = ctx;
    const [x, scale, bias] = [input(ctx, 0), input(ctx, 1), input(ctx, 2)];
    const g = dy0(ctx);
    const chShape = x.shape.map((d, i) => (i === 1 ? d : 1)).slice(1);
    const axes = x.shape.map((_, i) => i).filter((i) => i >= 2);
    const { dx, xhat } = normalizeVjp(b, x, b.mul(g, b.reshape(scale, chShape)), axes, attrFloat(node.attrs, 'epsilon', 1e-5));
    return [
      ctx.needs[0] ? dx : undefined,
      when(ctx.needs[1], () => b.reshape(sumToShape(b, b.mul(g, xhat), chShape), scale.shape)),
      when(ctx.needs[2], () => b.reshape(sumToShape(b, g, chShape), bias.shape)),
    ];
  },
  'com.microsoft:MultiHeadAttention': mhaVjp,
  'com.microsoft:GroupNorm': (ctx) => {
    const { b, node } = ctx;
    const [x, gamma, beta] = [input(ctx, 0), input(ctx, 1), input(ctx, 2)];
    // Recompute the plain NCHW form of the same normalization (plus SiLU) and back-propagate through it.
    let plain = b.groupNorm(b.transpose(x, [0, 3, 1, 2]), gamma, beta, attrInt(node.attrs, 'groups', 0), attrFloat(node.attrs, 'epsilon', 1e-5));
    if (attrInt(node.attrs, 'activation', 0) === 1) plain = b.silu(plain);
    const nhwc = b.transpose(plain, [0, 2, 3, 1]);
    const wrt = [x, gamma, beta].filter((_, i) => ctx.needs[i]);
    const gs = ctx.backprop(b, [nhwc], [dy0(ctx)], wrt);
    let j = 0;
    return [0, 1, 2].map((i) => (ctx.needs[i] ? gs[j++] : undefined));
  },
  // d/dx x Phi(x) = Phi(x) + x phi(x)
  'com.microsoft:Gelu': elementwiseUnary(({ b }, g, x) => {
    const cdf = b.mul(b.add(b.erf(b.mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = b.mul(b.exp(b.mul(b.mul(x, x), -0.5)), INV_SQRT_2PI);
    return b.mul(g, b.add(cdf, b.mul(x, pdf)));
  }),
  // d/dx x s(ax) = s(ax) + a x s(ax) (1 - s(ax))
  'com.microsoft:QuickGelu': elementwiseUnary(({ b, node }, g, x) => {
    const alpha = attrFloat(node.attrs, 'alpha', 1.702);
    const s = b.sigmoid(b.mul(x, alpha));
    return b.mul(g, b.add(s, b.mul(b.mul(x, alpha), b.mul(s, b.sub(b.scalar(1, x.dtype), s)))));
  }),
};
