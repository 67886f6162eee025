/**
 * Static shape and dtype rules, one per op type the builder knows. Every node's outputs get a concrete
 * shape at build time, so model code can branch on shapes and the autodiff can reduce broadcasts exactly.
 * Semantics follow the ONNX opset 17 definitions.
 */
import type { DType, HostTensor } from '../tensor.js';
import { DarkroomError } from '../errors.js';
import { attrInt, attrInts, type Attr, type Value } from './ir.js';

export interface OutputInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface ShapeContext {
  /** The data of a constant/initializer value, when the builder knows it (Reshape shapes, Slice starts...). */
  constantOf(v: Value): HostTensor | undefined;
}

export type ShapeRule = (
  inputs: ReadonlyArray<Value | undefined>,
  attrs: Readonly<Record<string, Attr>>,
  ctx: ShapeContext,
  outputs: number,
) => OutputInfo[];

function fail(op: string, message: string, details: Record<string, unknown> = {}): never {
  throw new DarkroomError('GRAPH_SHAPE_ERROR', `${op}: ${message}`, details);
}

function need(op: string, inputs: ReadonlyArray<Value | undefined>, i: number): Value {
  const v = inputs[i];
  if (!v) fail(op, `input ${i} is required`);
  return v;
}

export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function broadcastShapes(op: string, ...shapes: ReadonlyArray<readonly number[]>): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      const e = k >= 0 ? s[k]! : 1;
      if (e === 1) continue;
      if (d !== 1 && d !== e) fail(op, `shapes [${shapes.map((x) => x.join(',')).join('] and [')}] do not broadcast`);
      d = e;
    }
    out.push(d);
  }
  return out;
}

/** Reads an int64/int32 constant input as numbers (shapes, axes, pads...). */
export function constInts(op: string, ctx: ShapeContext, v: Value | undefined, what: string): number[] {
  if (!v) fail(op, `${what} is required`);
  const t = ctx.constantOf(v);
  if (!t) fail(op, `${what} must be a constant so shapes stay static`);
  if (t.data instanceof BigInt64Array) return Array.from(t.data, (x) => Number(x));
  return Array.from(t.data as ArrayLike<number>);
}

export function constFloats(op: string, ctx: ShapeContext, v: Value | undefined, what: string): number[] {
  if (!v) fail(op, `${what} is required`);
  const t = ctx.constantOf(v);
  if (!t) fail(op, `${what} must be a constant so shapes stay static`);
  if (t.data instanceof BigInt64Array) return Array.from(t.data, (x) => Number(x));
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') fail(op, `${what} must be float32`);
  return Array.from(t.data as ArrayLike<number>);
}

const unary: ShapeRule = (inputs) => {
  const x = need('unary', inputs, 0);
  return [{ dtype: x.dtype, shape: x.shape }];
};

const boolUnary: ShapeRule = (inputs) => {
  const x = need('unary', inputs, 0);
  return [{ dtype: 'bool', shape: x.shape }];
};

function broadcasting(op: string): ShapeRule {
  return (inputs) => {
    const vs = inputs.map((_, i) => need(op, inputs, i));
    const dt = vs[0]!.dtype;
    if (op !== 'Pow') {
      for (const v of vs) {
        if (v.dtype !== dt) fail(op, `mixed dtypes ${dt} and ${v.dtype}`);
      }
    }
    return [{ dtype: dt, shape: broadcastShapes(op, ...vs.map((v) => v.shape)) }];
  };
}

function comparison(op: string): ShapeRule {
  return (inputs) => {
    const a = need(op, inputs, 0);
    const b = need(op, inputs, 1);
    return [{ dtype: 'bool', shape: broadcastShapes(op, a.shape, b.shape) }];
  };
}

export function matmulShape(a: readonly number[], b: readonly number[]): number[] {
  if (a.length === 0 || b.length === 0) fail('MatMul', 'scalars are not allowed');
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const k1 = a2[a2.length - 1]!;
  const k2 = b2[b2.length - 2]!;
  if (k1 !== k2) fail('MatMul', `inner dimensions differ: [${a.join(',')}] x [${b.join(',')}]`);
  const batch = broadcastShapes('MatMul', a2.slice(0, -2), b2.slice(0, -2));
  const out = [...batch];
  if (a.length !== 1) out.push(a2[a2.length - 2]!);
  if (b.length !== 1) out.push(b2[b2.length - 1]!);
  return out;
}

function resolveReshape(op: string, input: readonly number[], target: readonly number[]): number[] {
  const total = input.reduce((p, d) => p * d, 1);
  const out = target.map((d, i) => (d === 0 ? input[i]! : d));
  const neg = out.filter((d) => d === -1).length;
  if (neg > 1) fail(op, 'at most one -1 in a reshape');
  const known = out.reduce((p, d) => (d === -1 ? p : p * d), 1);
  if (neg === 1) {
    if (known === 0 || total % known !== 0) fail(op, `cannot reshape [${input.join(',')}] to [${target.join(',')}]`);
    out[out.indexOf(-1)] = total / known;
  }
  if (out.reduce((p, d) => p * d, 1) !== total) fail(op, `cannot reshape [${input.join(',')}] to [${target.join(',')}]`);
  return out;
}

function reduceShape(op: string, shape: readonly number[], axes: readonly number[] | undefined, keep: boolean): number[] {
  const rank = shape.length;
  const set = new Set((axes && axes.length > 0 ? axes : shape.map((_, i) => i)).map((a) => normAxis(op, a, rank)));
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (set.has(i)) {
      if (keep) out.push(1);
    } else out.push(d);
  });
  return out;
}

/** Clamp one Slice dimension the way ONNX does and return its output length. */
export function sliceLength(dim: number, start: number, end: number, step: number): { start: number; length: number } {
  if (step === 0) fail('Slice', 'step must not be 0');
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), dim);
    e = Math.min(Math.max(e, 0), dim);
    return { start: s, length: Math.max(0, Math.ceil((e - s) / step)) };
  }
  s = Math.min(Math.max(s, -1), dim - 1);
  e = Math.min(Math.max(e, -1), dim - 1);
  return { start: s, length: Math.max(0, Math.ceil((e - s) / step)) };
}

function convOutDim(i: number, k: number, s: number, d: number, p0: number, p1: number): number {
  return Math.floor((i + p0 + p1 - ((k - 1) * d + 1)) / s) + 1;
}

export const SHAPE_RULES: Record<string, ShapeRule> = {
  Add: broadcasting('Add'),
  Sub: broadcasting('Sub'),
  Mul: broadcasting('Mul'),
  Div: broadcasting('Div'),
  Pow: broadcasting('Pow'),
  Max: broadcasting('Max'),
  Min: broadcasting('Min'),
  Greater: comparison('Greater'),
  Less: comparison('Less'),
  Equal: comparison('Equal'),
  And: comparison('And'),
  Not: boolUnary,
  Neg: unary,
  Sqrt: unary,
  Reciprocal: unary,
  Exp: unary,
  Log: unary,
  Erf: unary,
  Tanh: unary,
  Sigmoid: unary,
  Relu: unary,
  Abs: unary,
  LeakyRelu: unary,
  Elu: unary,
  Celu: unary,
  Selu: unary,
  HardSwish: unary,
  HardSigmoid: unary,
  Softplus: unary,
  Softsign: unary,
  Clip: unary,
  Sin: unary,
  Cos: unary,
  Sign: unary,
  Identity: unary,
  Gelu: unary,
  QuickGelu: unary,
  Where: (inputs) => {
    const c = need('Where', inputs, 0);
    const a = need('Where', inputs, 1);
    const b = need('Where', inputs, 2);
    if (a.dtype !== b.dtype) fail('Where', `mixed dtypes ${a.dtype} and ${b.dtype}`);
    return [{ dtype: a.dtype, shape: broadcastShapes('Where', c.shape, a.shape, b.shape) }];
  },
  MatMul: (inputs) => {
    const a = need('MatMul', inputs, 0);
    const b = need('MatMul', inputs, 1);
    if (a.dtype !== b.dtype) fail('MatMul', `mixed dtypes ${a.dtype} and ${b.dtype}`);
    return [{ dtype: a.dtype, shape: matmulShape(a.shape, b.shape) }];
  },
  Gemm: (inputs, attrs) => {
    const a = need('Gemm', inputs, 0);
    const b = need('Gemm', inputs, 1);
    if (a.shape.length !== 2 || b.shape.length !== 2) fail('Gemm', 'operands must be matrices');
    const [m, ka] = attrInt(attrs, 'transA', 0) ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
    const [kb, n] = attrInt(attrs, 'transB', 0) ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
    if (ka !== kb) fail('Gemm', `inner dimensions differ: ${ka} vs ${kb}`);
    if (inputs[2]) broadcastShapes('Gemm', [m, n], inputs[2].shape);
    return [{ dtype: a.dtype, shape: [m, n] }];
  },
  Cast: (inputs, attrs) => {
    const x = need('Cast', inputs, 0);
    const to = attrInt(attrs, 'to', 0);
    const dtype = DTYPE_OF_ONNX[to];
    if (!dtype) fail('Cast', `unknown target type ${to}`);
    return [{ dtype, shape: x.shape }];
  },
  Reshape: (inputs, _attrs, ctx) => {
    const x = need('Reshape', inputs, 0);
    return [{ dtype: x.dtype, shape: resolveReshape('Reshape', x.shape, constInts('Reshape', ctx, inputs[1], 'shape')) }];
  },
  Expand: (inputs, _attrs, ctx) => {
    const x = need('Expand', inputs, 0);
    return [{ dtype: x.dtype, shape: broadcastShapes('Expand', x.shape, constInts('Expand', ctx, inputs[1], 'shape')) }];
  },
  Transpose: (inputs, attrs) => {
    const x = need('Transpose', inputs, 0);
    const perm = attrInts(attrs, 'perm') ?? x.shape.map((_, i) => x.shape.length - 1 - i);
    if (perm.length !== x.shape.length || new Set(perm).size !== perm.length) fail('Transpose', `bad perm [${perm}]`);
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[normAxis('Transpose', p, x.shape.length)]!) }];
  },
  Concat: (inputs, attrs) => {
    const xs = inputs.map((_, i) => need('Concat', inputs, i));
    if (xs.length === 0) fail('Concat', 'needs at least one input');
    const rank = xs[0]!.shape.length;
    const axis = normAxis('Concat', attrInt(attrs, 'axis', 0), rank);
    const out = [...xs[0]!.shape];
    out[axis] = 0;
    for (const x of xs) {
      if (x.shape.length !== rank || x.dtype !== xs[0]!.dtype) fail('Concat', 'inputs differ in rank or dtype');
      x.shape.forEach((d, i) => {
        if (i !== axis && d !== out[i]) fail('Concat', `shapes differ off the concat axis: [${x.shape}] vs [${xs[0]!.shape}]`);
      });
      out[axis] += x.shape[axis]!;
    }
    return [{ dtype: xs[0]!.dtype, shape: out }];
  },
  Split: (inputs, attrs, ctx, outputs) => {
    const x = need('Split', inputs, 0);
    const axis = normAxis('Split', attrInt(attrs, 'axis', 0), x.shape.length);
    const dim = x.shape[axis]!;
    let sizes: number[];
    if (inputs[1]) sizes = constInts('Split', ctx, inputs[1], 'split');
    else {
      if (dim % outputs !== 0) fail('Split', `${dim} does not split evenly into ${outputs}`);
      sizes = new Array<number>(outputs).fill(dim / outputs);
    }
    if (sizes.length !== outputs || sizes.reduce((a, b) => a + b, 0) !== dim) {
      fail('Split', `sizes [${sizes}] do not cover axis of length ${dim}`);
    }
    return sizes.map((s) => {
      const shape = [...x.shape];
      shape[axis] = s;
      return { dtype: x.dtype, shape };
    });
  },
  Slice: (inputs, _attrs, ctx) => {
    const x = need('Slice', inputs, 0);
    const starts = constInts('Slice', ctx, inputs[1], 'starts');
    const ends = constInts('Slice', ctx, inputs[2], 'ends');
    const axes = inputs[3] ? constInts('Slice', ctx, inputs[3], 'axes') : starts.map((_, i) => i);
    const steps = inputs[4] ? constInts('Slice', ctx, inputs[4], 'steps') : starts.map(() => 1);
    const shape = [...x.shape];
    axes.forEach((a, i) => {
      const ax = normAxis('Slice', a, x.shape.length);
      shape[ax] = sliceLength(x.shape[ax]!, starts[i]!, ends[i]!, steps[i]!).length;
    });
    return [{ dtype: x.dtype, shape }];
  },
  Gather: (inputs, attrs) => {
    const x = need('Gather', inputs, 0);
    const idx = need('Gather', inputs, 1);
    const axis = normAxis('Gather', attrInt(attrs, 'axis', 0), x.shape.length);
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] }];
  },
  ScatterND: (inputs) => {
    const x = need('ScatterND', inputs, 0);
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  Unsqueeze: (inputs, _attrs, ctx) => {
    const x = need('Unsqueeze', inputs, 0);
    const axes = constInts('Unsqueeze', ctx, inputs[1], 'axes');
    const rank = x.shape.length + axes.length;
    const set = new Set(axes.map((a) => normAxis('Unsqueeze', a, rank)));
    const out: number[] = [];
    let k = 0;
    for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : x.shape[k++]!);
    return [{ dtype: x.dtype, shape: out }];
  },
  Squeeze: (inputs, _attrs, ctx) => {
    const x = need('Squeeze', inputs, 0);
    const axes = inputs[1]
      ? constInts('Squeeze', ctx, inputs[1], 'axes').map((a) => normAxis('Squeeze', a, x.shape.length))
      : x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
    for (const a of axes) if (x.shape[a] !== 1) fail('Squeeze', `axis ${a} has length ${x.shape[a]}, not 1`);
    return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !axes.includes(i)) }];
  },
  ReduceMean: (inputs, attrs) => {
    const x = need('ReduceMean', inputs, 0);
    return [{ dtype: x.dtype, shape: reduceShape('ReduceMean', x.shape, attrInts(attrs, 'axes'), attrInt(attrs, 'keepdims', 1) === 1) }];
  },
  ReduceMax: (inputs, attrs) => {
    const x = need('ReduceMax', inputs, 0);
    return [{ dtype: x.dtype, shape: reduceShape('ReduceMax', x.shape, attrInts(attrs, 'axes'), attrInt(attrs, 'keepdims', 1) === 1) }];
  },
  ReduceSum: (inputs, attrs, ctx) => {
    const x = need('ReduceSum', inputs, 0);
    const axes = inputs[1] ? constInts('ReduceSum', ctx, inputs[1], 'axes') : undefined;
    return [{ dtype: x.dtype, shape: reduceShape('ReduceSum', x.shape, axes, attrInt(attrs, 'keepdims', 1) === 1) }];
  },
  Softmax: (inputs, attrs) => {
    const x = need('Softmax', inputs, 0);
    normAxis('Softmax', attrInt(attrs, 'axis', -1), x.shape.length);
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  Conv: (inputs, attrs) => {
    const x = need('Conv', inputs, 0);
    const w = need('Conv', inputs, 1);
    const sp = x.shape.length - 2;
    if (sp < 1 || w.shape.length !== x.shape.length) fail('Conv', 'input and weight ranks differ or are too small');
    const group = attrInt(attrs, 'group', 1);
    if (x.shape[1] !== w.shape[1]! * group) fail('Conv', `input has ${x.shape[1]} channels, weight expects ${w.shape[1]! * group}`);
    const strides = attrInts(attrs, 'strides') ?? new Array<number>(sp).fill(1);
    const dil = attrInts(attrs, 'dilations') ?? new Array<number>(sp).fill(1);
    const pads = attrInts(attrs, 'pads') ?? new Array<number>(2 * sp).fill(0);
    const out = [x.shape[0]!, w.shape[0]!];
    for (let i = 0; i < sp; i++) {
      out.push(convOutDim(x.shape[2 + i]!, w.shape[2 + i]!, strides[i]!, dil[i]!, pads[i]!, pads[sp + i]!));
    }
    return [{ dtype: x.dtype, shape: out }];
  },
  ConvTranspose: (inputs, attrs) => {
    const x = need('ConvTranspose', inputs, 0);
    const w = need('ConvTranspose', inputs, 1);
    const sp = x.shape.length - 2;
    const group = attrInt(attrs, 'group', 1);
    const strides = attrInts(attrs, 'strides') ?? new Array<number>(sp).fill(1);
    const dil = attrInts(attrs, 'dilations') ?? new Array<number>(sp).fill(1);
    const pads = attrInts(attrs, 'pads') ?? new Array<number>(2 * sp).fill(0);
    const outPad = attrInts(attrs, 'output_padding') ?? new Array<number>(sp).fill(0);
    const out = [x.shape[0]!, w.shape[1]! * group];
    for (let i = 0; i < sp; i++) {
      out.push(strides[i]! * (x.shape[2 + i]! - 1) + outPad[i]! + (w.shape[2 + i]! - 1) * dil[i]! + 1 - pads[i]! - pads[sp + i]!);
    }
    return [{ dtype: x.dtype, shape: out }];
  },
  Pad: (inputs, _attrs, ctx) => {
    const x = need('Pad', inputs, 0);
    const pads = constInts('Pad', ctx, inputs[1], 'pads');
    const r = x.shape.length;
    if (pads.length !== 2 * r) fail('Pad', `needs ${2 * r} pads, got ${pads.length}`);
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => d + pads[i]! + pads[r + i]!) }];
  },
  Resize: (inputs, _attrs, ctx) => {
    const x = need('Resize', inputs, 0);
    if (inputs[3]) {
      return [{ dtype: x.dtype, shape: constInts('Resize', ctx, inputs[3], 'sizes') }];
    }
    const scales = constFloats('Resize', ctx, inputs[2], 'scales');
    return [{ dtype: x.dtype, shape: x.shape.map((d, i) => Math.floor(d * scales[i]!)) }];
  },
  LayerNormalization: (inputs, attrs, _ctx, outputs) => {
    const x = need('LayerNormalization', inputs, 0);
    const axis = normAxis('LayerNormalization', attrInt(attrs, 'axis', -1), x.shape.length);
    const stat = x.shape.map((d, i) => (i < axis ? d : 1));
    return [{ dtype: x.dtype, shape: x.shape }, { dtype: 'float32' as DType, shape: stat }, { dtype: 'float32' as DType, shape: stat }].slice(0, outputs);
  },
  GroupNorm: (inputs, attrs) => {
    const x = need('GroupNorm', inputs, 0);
    const gamma = need('GroupNorm', inputs, 1);
    const c = x.shape[3]!;
    if (x.shape.length !== 4 || attrInt(attrs, 'channels_last', 1) !== 1) fail('GroupNorm', 'only 4-D NHWC input (channels_last=1)');
    if (gamma.dtype !== 'float32' || gamma.shape.length !== 1 || gamma.shape[0] !== c) fail('GroupNorm', 'gamma and beta must be float32 of shape [C]');
    if (c % attrInt(attrs, 'groups', 0) !== 0) fail('GroupNorm', `${c} channels do not split into ${attrInt(attrs, 'groups', 0)} groups`);
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  InstanceNormalization: (inputs) => {
    const x = need('InstanceNormalization', inputs, 0);
    if (x.shape.length < 3) fail('InstanceNormalization', 'needs rank 3 or more');
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  MultiHeadAttention: (inputs, attrs) => {
    const q = need('MultiHeadAttention', inputs, 0);
    const k = need('MultiHeadAttention', inputs, 1);
    const v = need('MultiHeadAttention', inputs, 2);
    const heads = attrInt(attrs, 'num_heads', 0);
    if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3) fail('MultiHeadAttention', 'only unpacked 3-D q, k, v');
    if (heads <= 0 || q.shape[2]! % heads !== 0) fail('MultiHeadAttention', `width ${q.shape[2]} does not split into ${heads} heads`);
    if (k.shape[1] !== v.shape[1] || q.shape[2] !== k.shape[2]) fail('MultiHeadAttention', 'q/k/v shapes disagree');
    return [{ dtype: q.dtype, shape: [q.shape[0]!, q.shape[1]!, v.shape[2]!] }];
  },
};

export const DTYPE_OF_ONNX: Record<number, DType | undefined> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  16: 'bfloat16',
};
