/**
 * A typed ONNX graph builder with static shapes. Every method appends nodes in topological order and returns
 * values whose shape and dtype are known at build time. The plain forms (MatMul/Softmax attention, Erf GELU,
 * InstanceNormalization group norm) are the reference used on CPU and in parity tests; `mha` is the fused
 * com.microsoft form that runs on CPU and CUDA; `splitAttention` and `subQuadAttention` compute the plain
 * form's values in chunks, for sequences whose score matrix would not fit in memory.
 */
import type { DType, Float32Tensor, HostTensor } from '../tensor.js';
import { floatToHalf, numel, toFloat32 } from '../tensor.js';
import { DarkroomError } from '../errors.js';
import type { Attr, BuiltModel, Initializer, Node, Value } from './ir.js';
import { serializeModel, onnxElemType } from './onnx-writer.js';
import { SHAPE_RULES, normAxis, type OutputInfo } from './shapes.js';
import { splitAttention, subQuadraticAttention, type ChunkedAttentionOptions } from './attention-chunked.js';

export type { Attr, BuiltModel, Value, Node } from './ir.js';

/**
 * Where a weight came from: the name of the source tensor in the weights the model builder was given, and the
 * host-side function (transpose, row slice, halving) that turned that tensor into the weight.
 */
export interface WeightOrigin {
  readonly source: string;
  readonly derive: (source: Float32Tensor) => HostTensor;
}

export interface ConvOptions {
  readonly strides?: readonly number[];
  /** [top, left, bottom, right] for 2-D (ONNX order: all begins, then all ends). */
  readonly pads?: readonly number[];
  readonly group?: number;
  readonly dilations?: readonly number[];
}

export interface OpOptions {
  readonly domain?: string;
  readonly outputs?: number;
  /** Output shapes/dtypes for an op type that has no shape rule. */
  readonly outputInfo?: readonly OutputInfo[];
}

export interface ToModelOptions {
  readonly opset?: number;
  /** Initializers larger than this many bytes go to external data (default: only when the weights pass 1.5 GiB). */
  readonly externalDataAboveBytes?: number;
}

type Operand = Value | number;

export interface GraphBuilderOptions {
  /**
   * 'float16' stores every float32 weight as float16 in the model and casts it back to float32 where it is
   * read: half the file and download, float32 compute. The default keeps weights as given (the reference).
   */
  readonly storeWeightsAs?: 'float16';
}

const DEFAULT_OPSET = 17;
const MAX_OPSET = 21;
/** Ops whose `axes` moved from an attribute to an input in opset 18. */
const AXES_INPUT_FROM_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ReduceLogSumExp', 'ReduceSumSquare']);
/** Small constants (axes, shapes, scalars) are deduplicated so repeated helpers do not bloat the graph. */
const DEDUPE_MAX_ELEMENTS = 64;

function typedArrayFor(dtype: DType, values: readonly number[]): HostTensor['data'] {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int64':
      return BigInt64Array.from(values, (v) => BigInt(v));
    case 'int32':
      return Int32Array.from(values);
    case 'int8':
      return Int8Array.from(values);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(values);
    case 'float16':
      return Uint16Array.from(values, floatToHalf);
    case 'bfloat16':
      throw new DarkroomError('GRAPH_DTYPE_UNSUPPORTED', 'cannot make a bfloat16 constant from numbers; build float32 and cast');
  }
}

export function hostTensor(dtype: DType, shape: readonly number[], values: readonly number[]): HostTensor {
  if (values.length !== numel(shape)) {
    throw new DarkroomError('GRAPH_SHAPE_ERROR', `constant of shape [${shape}] needs ${numel(shape)} values, got ${values.length}`);
  }
  return { dtype, shape: [...shape], data: typedArrayFor(dtype, values) } as HostTensor;
}

function constantKey(t: HostTensor): string | undefined {
  if (t.data.length > DEDUPE_MAX_ELEMENTS) return undefined;
  const vals = t.data instanceof BigInt64Array ? Array.from(t.data, String) : Array.from(t.data as ArrayLike<number>, (v) => (Object.is(v, -0) ? '-0' : String(v)));
  return `${t.dtype}|${t.shape.join(',')}|${vals.join(',')}`;
}

export class GraphBuilder {
  readonly name: string;
  private readonly values: Value[] = [];
  private readonly nodeList: Node[] = [];
  private readonly producer = new Map<number, Node>();
  private readonly initList: Initializer[] = [];
  private readonly constants = new Map<number, HostTensor>();
  private readonly constantCache = new Map<string, Value>();
  private readonly inputList: Value[] = [];
  private readonly outputList: { value: Value; name: string }[] = [];
  private readonly names = new Set<string>();
  /** Initializers made by `weight` (not constants): the ones `promoteWeights` may turn into inputs. */
  private readonly weightIds = new Set<number>();
  private readonly bindings = new Map<string, Value>();

  private readonly storeWeightsAs: 'float16' | undefined;

  constructor(name = 'darkroom', opts: GraphBuilderOptions = {}) {
    this.name = name;
    this.storeWeightsAs = opts.storeWeightsAs;
  }

  // ---- graph access (used by autodiff and tests) ----

  get nodes(): readonly Node[] {
    return this.nodeList;
  }

  get graphInputs(): readonly Value[] {
    return this.inputList;
  }

  get graphOutputs(): ReadonlyArray<{ value: Value; name: string }> {
    return this.outputList;
  }

  producerOf(v: Value): Node | undefined {
    return this.producer.get(v.id);
  }

  /** Data of a constant or weight value, if it is one. */
  constantOf(v: Value): HostTensor | undefined {
    return this.constants.get(v.id);
  }

  isInitializer(v: Value): boolean {
    return this.constants.has(v.id);
  }

  private own(v: Value): Value {
    if (this.values[v.id] !== v) {
      throw new DarkroomError('GRAPH_FOREIGN_VALUE', `value ${v.name} does not belong to graph ${this.name}`);
    }
    return v;
  }

  private uniqueName(base: string): string {
    let name = base;
    for (let k = 1; this.names.has(name); k++) name = `${base}__${k}`;
    this.names.add(name);
    return name;
  }

  private claimName(name: string): string {
    if (!name || this.names.has(name)) {
      throw new DarkroomError('GRAPH_DUPLICATE_NAME', `name "${name}" is empty or already used in graph ${this.name}`);
    }
    this.names.add(name);
    return name;
  }

  private newValue(name: string, dtype: DType, shape: readonly number[]): Value {
    const v: Value = Object.freeze({ id: this.values.length, name, dtype, shape: Object.freeze([...shape]) });
    this.values.push(v);
    return v;
  }

  // ---- sources and sinks ----

  input(name: string, dtype: DType, shape: readonly number[]): Value {
    const bound = this.bindings.get(name);
    if (bound) {
      this.bindings.delete(name);
      if (bound.dtype !== dtype || bound.shape.length !== shape.length || bound.shape.some((d, i) => d !== shape[i])) {
        throw new DarkroomError('GRAPH_SHAPE_ERROR', `input ${name} is ${dtype}[${shape}], the value bound to it ${bound.dtype}[${bound.shape}]`);
      }
      return bound;
    }
    const v = this.newValue(this.claimName(name), dtype, shape);
    this.inputList.push(v);
    return v;
  }

  /**
   * The next `input(name, ...)` returns `value` instead of declaring a graph input: a network built for its own
   * graph (a VAE decoder that declares `latent`) is fed from a value computed earlier in this one.
   */
  bindInput(name: string, value: Value): void {
    this.own(value);
    this.bindings.set(name, value);
  }

  /**
   * Turns the weights whose names pass `filter` into graph inputs (trained weights fed on every run), returning
   * each with the tensor it was built from. Call it before differentiating: `grad` then reaches them.
   */
  promoteWeights(filter: (name: string) => boolean): Array<{ value: Value; tensor: HostTensor }> {
    const out: Array<{ value: Value; tensor: HostTensor }> = [];
    for (let i = this.initList.length - 1; i >= 0; i--) {
      const init = this.initList[i]!;
      if (!this.weightIds.has(init.value.id) || !filter(init.value.name)) continue;
      this.initList.splice(i, 1);
      this.constants.delete(init.value.id);
      this.weightIds.delete(init.value.id);
      this.inputList.push(init.value);
      out.push({ value: init.value, tensor: init.tensor });
    }
    return out.reverse();
  }

  /**
   * A frozen weight stored in the model. float16 tensors stay float16 (cast them where the math needs fp32),
   * unless the builder stores weights as float16, in which case float32 weights are halved and cast back.
   * `origin` says which source tensor `t` was derived from and how; this builder ignores it, builders that take
   * weights as graph inputs record it to derive the inputs again from changed source tensors.
   */
  weight(name: string, t: HostTensor, _origin?: WeightOrigin): Value {
    if (this.storeWeightsAs === 'float16' && t.dtype === 'float32') return this.weightAsFloat16(name, t);
    return this.rawWeight(name, t);
  }

  private rawWeight(name: string, t: HostTensor): Value {
    const v = this.newValue(this.claimName(name), t.dtype, t.shape);
    this.weightIds.add(v.id);
    this.initList.push({ value: v, tensor: t });
    this.constants.set(v.id, t);
    return v;
  }

  /** A weight stored as float16 in the model and cast to float32 where it is read (halves the file). */
  weightAsFloat16(name: string, t: HostTensor): Value {
    let half: HostTensor;
    if (t.dtype === 'float16') half = t;
    else {
      const f = toFloat32(t).data;
      half = { dtype: 'float16', shape: t.shape, data: Uint16Array.from(f, floatToHalf) };
    }
    return this.cast(this.rawWeight(name, half), 'float32');
  }

  constant(t: HostTensor): Value {
    const key = constantKey(t);
    const hit = key === undefined ? undefined : this.constantCache.get(key);
    if (hit) return hit;
    const v = this.newValue(this.uniqueName(`const_${this.initList.length}`), t.dtype, t.shape);
    this.initList.push({ value: v, tensor: t });
    this.constants.set(v.id, t);
    if (key !== undefined) this.constantCache.set(key, v);
    return v;
  }

  /** A rank-0 constant (broadcasts against anything). */
  scalar(v: number, dtype: DType = 'float32'): Value {
    return this.constant(hostTensor(dtype, [], [v]));
  }

  ints(values: readonly number[]): Value {
    return this.constant(hostTensor('int64', [values.length], values));
  }

  output(v: Value, name: string): void {
    this.own(v);
    const out = this.newValue(this.claimName(name), v.dtype, v.shape);
    this.addNode({ opType: 'Identity', domain: '', inputs: [v], outputs: [out], attrs: {} });
    this.outputList.push({ value: out, name });
  }

  // ---- generic op ----

  private addNode(n: Node): void {
    this.nodeList.push(n);
    for (const o of n.outputs) this.producer.set(o.id, n);
  }

  op(
    opType: string,
    inputs: ReadonlyArray<Value | undefined>,
    attrs: Record<string, Attr> = {},
    opts: OpOptions = {},
  ): Value[] {
    for (const i of inputs) if (i) this.own(i);
    const count = opts.outputs ?? 1;
    let infos: readonly OutputInfo[];
    if (opts.outputInfo) infos = opts.outputInfo;
    else {
      const rule = SHAPE_RULES[opType];
      if (!rule) {
        throw new DarkroomError('GRAPH_UNKNOWN_OP', `no shape rule for ${opType}; pass outputInfo`, { opType });
      }
      infos = rule(inputs, attrs, { constantOf: (v) => this.constants.get(v.id) }, count);
    }
    if (infos.length < count) {
      throw new DarkroomError('GRAPH_SHAPE_ERROR', `${opType} gives ${infos.length} outputs, ${count} requested`);
    }
    const base = opType.toLowerCase();
    const outputs = infos.slice(0, count).map((info) => this.newValue(this.uniqueName(`${base}_${this.values.length}`), info.dtype, info.shape));
    this.addNode({ opType, domain: opts.domain ?? '', inputs: [...inputs], outputs, attrs: { ...attrs } });
    return outputs;
  }

  private op1(opType: string, inputs: ReadonlyArray<Value | undefined>, attrs: Record<string, Attr> = {}, opts: OpOptions = {}): Value {
    return this.op(opType, inputs, attrs, opts)[0]!;
  }

  private operand(x: Operand, like: Value): Value {
    return typeof x === 'number' ? this.scalar(x, like.dtype) : x;
  }

  private binary(opType: string, a: Operand, b: Operand): Value {
    if (typeof a === 'number' && typeof b === 'number') {
      throw new DarkroomError('GRAPH_SHAPE_ERROR', `${opType} needs at least one Value operand`);
    }
    const av = this.operand(a, typeof b === 'number' ? (a as Value) : b);
    const bv = this.operand(b, av);
    return this.op1(opType, [av, bv]);
  }

  // ---- elementwise ----

  add(a: Operand, b: Operand): Value {
    return this.binary('Add', a, b);
  }
  sub(a: Operand, b: Operand): Value {
    return this.binary('Sub', a, b);
  }
  mul(a: Operand, b: Operand): Value {
    return this.binary('Mul', a, b);
  }
  div(a: Operand, b: Operand): Value {
    return this.binary('Div', a, b);
  }
  max(a: Operand, b: Operand): Value {
    return this.binary('Max', a, b);
  }
  min(a: Operand, b: Operand): Value {
    return this.binary('Min', a, b);
  }
  neg(x: Value): Value {
    return this.op1('Neg', [x]);
  }
  matmul(a: Value, b: Value): Value {
    return this.op1('MatMul', [a, b]);
  }
  /** a @ b on matrices with either operand read transposed in place (no transposed copy of a weight). */
  gemm(a: Value, b: Value, o: { transA?: boolean; transB?: boolean } = {}): Value {
    return this.op1('Gemm', [a, b], { transA: { i: o.transA ? 1 : 0 }, transB: { i: o.transB ? 1 : 0 } });
  }
  pow(x: Value, p: number): Value {
    return this.op1('Pow', [x, this.scalar(p, x.dtype)]);
  }
  sqrt(x: Value): Value {
    return this.op1('Sqrt', [x]);
  }
  reciprocal(x: Value): Value {
    return this.op1('Reciprocal', [x]);
  }
  exp(x: Value): Value {
    return this.op1('Exp', [x]);
  }
  log(x: Value): Value {
    return this.op1('Log', [x]);
  }
  erf(x: Value): Value {
    return this.op1('Erf', [x]);
  }
  tanh(x: Value): Value {
    return this.op1('Tanh', [x]);
  }
  sigmoid(x: Value): Value {
    return this.op1('Sigmoid', [x]);
  }
  relu(x: Value): Value {
    return this.op1('Relu', [x]);
  }
  leakyRelu(x: Value, alpha = 0.01): Value {
    return this.op1('LeakyRelu', [x], { alpha: { f: alpha } });
  }
  elu(x: Value, alpha = 1): Value {
    return this.op1('Elu', [x], { alpha: { f: alpha } });
  }
  celu(x: Value, alpha = 1): Value {
    return this.op1('Celu', [x], { alpha: { f: alpha } });
  }
  /** torch's SELU constants (ONNX defaults match them to float32 precision). */
  selu(x: Value): Value {
    return this.op1('Selu', [x], { alpha: { f: 1.6732632423543772 }, gamma: { f: 1.0507009873554805 } });
  }
  /** torch.nn.Hardswish: x * relu6(x + 3) / 6 (A1111's "swish"). */
  hardSwish(x: Value): Value {
    return this.op1('HardSwish', [x]);
  }
  /** torch.nn.Hardsigmoid: relu6(x + 3) / 6. */
  hardSigmoid(x: Value): Value {
    return this.op1('HardSigmoid', [x], { alpha: { f: 1 / 6 }, beta: { f: 0.5 } });
  }
  softplus(x: Value): Value {
    return this.op1('Softplus', [x]);
  }
  softsign(x: Value): Value {
    return this.op1('Softsign', [x]);
  }
  /** Clamp to [min, max] (relu6 = clip(x, 0, 6), hardtanh = clip(x, -1, 1)). */
  clip(x: Value, min: number, max: number): Value {
    return this.op1('Clip', [x, this.scalar(min, x.dtype), this.scalar(max, x.dtype)]);
  }
  mish(x: Value): Value {
    return this.mul(x, this.tanh(this.softplus(x)));
  }
  sin(x: Value): Value {
    return this.op1('Sin', [x]);
  }
  cos(x: Value): Value {
    return this.op1('Cos', [x]);
  }
  abs(x: Value): Value {
    return this.op1('Abs', [x]);
  }
  sign(x: Value): Value {
    return this.op1('Sign', [x]);
  }
  identity(x: Value): Value {
    return this.op1('Identity', [x]);
  }
  greater(a: Value, b: Operand): Value {
    return this.op1('Greater', [a, this.operand(b, a)]);
  }
  where(cond: Value, a: Value, b: Operand): Value {
    return this.op1('Where', [cond, a, this.operand(b, a)]);
  }

  silu(x: Value): Value {
    return this.mul(x, this.sigmoid(x));
  }
  /** Exact GELU as torch computes it: 0.5 * x * (1 + erf(x * 1/sqrt(2))). */
  gelu(x: Value): Value {
    const e = this.erf(this.mul(x, Math.SQRT1_2));
    return this.mul(this.mul(x, 0.5), this.add(e, 1));
  }
  /** CLIP's activation: x * sigmoid(1.702 x). */
  quickGelu(x: Value): Value {
    return this.mul(x, this.sigmoid(this.mul(x, 1.702)));
  }

  /** Exact GELU as one com.microsoft Gelu node (CPU and CUDA kernels); `gelu` is the reference form. */
  fusedGelu(x: Value): Value {
    return this.op1('Gelu', [x], {}, { domain: 'com.microsoft' });
  }
  /** x * sigmoid(alpha x) as one com.microsoft QuickGelu node (CPU and CUDA kernels). */
  fusedQuickGelu(x: Value, alpha = 1.702): Value {
    return this.op1('QuickGelu', [x], { alpha: { f: alpha } }, { domain: 'com.microsoft' });
  }

  // ---- shape ops ----

  reshape(x: Value, shape: readonly number[]): Value {
    const total = numel(x.shape);
    const resolved = shape.map((d, i) => (d === 0 ? x.shape[i]! : d));
    const known = resolved.reduce((p, d) => (d === -1 ? p : p * d), 1);
    const dims = resolved.map((d) => (d === -1 ? total / known : d));
    if (dims.some((d) => !Number.isInteger(d) || d < 0) || numel(dims) !== total) {
      throw new DarkroomError('GRAPH_SHAPE_ERROR', `Reshape: cannot reshape [${x.shape}] to [${shape}]`);
    }
    return this.op1('Reshape', [x, this.ints(dims)]);
  }
  flatten2d(x: Value): Value {
    return this.reshape(x, [x.shape[0]!, -1]);
  }
  transpose(x: Value, perm: readonly number[]): Value {
    return this.op1('Transpose', [x], { perm: { ints: perm.map((p) => normAxis('Transpose', p, x.shape.length)) } });
  }
  concat(xs: readonly Value[], axis: number): Value {
    if (xs.length === 1) return xs[0]!;
    return this.op1('Concat', xs, { axis: { i: normAxis('Concat', axis, xs[0]!.shape.length) } });
  }
  split(x: Value, sizes: readonly number[], axis: number): Value[] {
    return this.op('Split', [x, this.ints(sizes)], { axis: { i: normAxis('Split', axis, x.shape.length) } }, { outputs: sizes.length });
  }
  slice(x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[], steps?: readonly number[]): Value {
    // Clamp huge ends (e.g. Number.MAX_SAFE_INTEGER) to int64-safe values so the constant is exact.
    const clamp = (v: number): number => Math.max(-(2 ** 53), Math.min(2 ** 53, v));
    const inputs = [x, this.ints(starts.map(clamp)), this.ints(ends.map(clamp)), this.ints(axes.map((a) => normAxis('Slice', a, x.shape.length)))];
    if (steps) inputs.push(this.ints(steps));
    return this.op1('Slice', inputs);
  }
  gather(x: Value, indices: Value, axis: number): Value {
    return this.op1('Gather', [x, indices], { axis: { i: normAxis('Gather', axis, x.shape.length) } });
  }
  unsqueeze(x: Value, axes: readonly number[]): Value {
    return this.op1('Unsqueeze', [x, this.ints(axes)]);
  }
  squeeze(x: Value, axes: readonly number[]): Value {
    return this.op1('Squeeze', [x, this.ints(axes)]);
  }
  expand(x: Value, shape: readonly number[]): Value {
    if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
    return this.op1('Expand', [x, this.ints(shape)]);
  }
  cast(x: Value, dtype: DType): Value {
    if (x.dtype === dtype) return x;
    return this.op1('Cast', [x], { to: { i: onnxElemType(dtype) } });
  }

  // ---- reductions ----

  /** keepdims defaults to true (the ONNX default, not torch's). */
  reduceMean(x: Value, axes: readonly number[], keepdims = true): Value {
    return this.op1('ReduceMean', [x], { axes: { ints: axes.map((a) => normAxis('ReduceMean', a, x.shape.length)) }, keepdims: { i: keepdims ? 1 : 0 } });
  }
  /** keepdims defaults to true (the ONNX default, not torch's). */
  reduceSum(x: Value, axes: readonly number[], keepdims = true): Value {
    return this.op1('ReduceSum', [x, this.ints(axes.map((a) => normAxis('ReduceSum', a, x.shape.length)))], { keepdims: { i: keepdims ? 1 : 0 } });
  }
  /** keepdims defaults to true (the ONNX default, not torch's). */
  reduceMax(x: Value, axes: readonly number[], keepdims = true): Value {
    return this.op1('ReduceMax', [x], { axes: { ints: axes.map((a) => normAxis('ReduceMax', a, x.shape.length)) }, keepdims: { i: keepdims ? 1 : 0 } });
  }
  /** mean((a - b)^2) over every element, as a rank-0 value: the training losses' MSE. */
  meanSquaredError(a: Value, b: Value): Value {
    const d = this.sub(a, b);
    return this.reduceMean(this.mul(d, d), d.shape.map((_, i) => i), false);
  }
  softmax(x: Value, axis: number): Value {
    return this.op1('Softmax', [x], { axis: { i: normAxis('Softmax', axis, x.shape.length) } });
  }

  // ---- convolution, padding, resize ----

  conv(x: Value, w: Value, b: Value | undefined, o: ConvOptions = {}): Value {
    const sp = x.shape.length - 2;
    const attrs: Record<string, Attr> = {
      kernel_shape: { ints: w.shape.slice(2) },
      strides: { ints: o.strides ?? new Array<number>(sp).fill(1) },
      pads: { ints: o.pads ?? new Array<number>(2 * sp).fill(0) },
      dilations: { ints: o.dilations ?? new Array<number>(sp).fill(1) },
      group: { i: o.group ?? 1 },
    };
    return this.op1('Conv', b ? [x, w, b] : [x, w], attrs);
  }
  /** Constant padding; pads in ONNX order: all begins, then all ends, one per axis. */
  pad(x: Value, pads: readonly number[], value = 0): Value {
    return this.op1('Pad', [x, this.ints(pads), this.scalar(value, x.dtype)], { mode: { s: 'constant' } });
  }
  /** NCHW nearest upsampling of H and W, as torch's F.interpolate(mode='nearest', scale_factor=scale). */
  resizeNearest(x: Value, scale: number): Value {
    const scales = x.shape.map((_, i) => (i >= 2 ? scale : 1));
    return this.op1('Resize', [x, undefined, this.constant(hostTensor('float32', [scales.length], scales))], {
      mode: { s: 'nearest' },
      coordinate_transformation_mode: { s: 'asymmetric' },
      nearest_mode: { s: 'floor' },
    });
  }

  // ---- normalization and attention ----

  /** LayerNorm over the last axis (fp32 statistics). */
  layerNorm(x: Value, gamma: Value, beta: Value, eps: number): Value {
    return this.op1('LayerNormalization', [x, gamma, beta], { axis: { i: -1 }, epsilon: { f: eps } });
  }

  /**
   * torch.nn.GroupNorm on (N, C, ...): statistics per (sample, group) in float32, then the per-channel affine.
   * The normalization itself is InstanceNormalization over a (N, G, C/G * spatial) view.
   */
  groupNorm(x: Value, gamma: Value, beta: Value, groups: number, eps: number): Value {
    const [n, c] = x.shape as [number, number];
    if (c % groups !== 0) {
      throw new DarkroomError('GRAPH_SHAPE_ERROR', `GroupNorm: ${c} channels do not split into ${groups} groups`);
    }
    const xf = this.cast(x, 'float32');
    const ones = this.constant(hostTensor('float32', [groups], new Array<number>(groups).fill(1)));
    const zeros = this.constant(hostTensor('float32', [groups], new Array<number>(groups).fill(0)));
    const grouped = this.reshape(xf, [n, groups, -1]);
    const normed = this.op1('InstanceNormalization', [grouped, ones, zeros], { epsilon: { f: eps } });
    const back = this.reshape(normed, x.shape);
    const affineShape = [c, ...new Array<number>(x.shape.length - 2).fill(1)];
    const y = this.add(this.mul(back, this.reshape(this.cast(gamma, 'float32'), affineShape)), this.reshape(this.cast(beta, 'float32'), affineShape));
    return this.cast(y, x.dtype);
  }

  /**
   * GroupNorm as one com.microsoft GroupNorm node (CUDA only: the CPU provider has no kernel). The kernel
   * wants NHWC, so an NCHW `x` is transposed around it; pass layout 'nhwc' for a graph that stays NHWC.
   * `silu` fuses the activation that follows most UNet norms. Its gradient goes through `groupNorm`.
   */
  groupNormFused(x: Value, gamma: Value, beta: Value, groups: number, eps: number, o: { silu?: boolean; layout?: 'nchw' | 'nhwc' } = {}): Value {
    if (x.shape.length !== 4) throw new DarkroomError('GRAPH_SHAPE_ERROR', 'groupNormFused: the kernel takes 4-D input');
    const nhwc = o.layout === 'nhwc' ? x : this.transpose(x, [0, 2, 3, 1]);
    const attrs: Record<string, Attr> = {
      epsilon: { f: eps },
      groups: { i: groups },
      activation: { i: o.silu ? 1 : 0 },
      channels_last: { i: 1 },
    };
    const y = this.op1('GroupNorm', [nhwc, this.cast(gamma, 'float32'), this.cast(beta, 'float32')], attrs, { domain: 'com.microsoft' });
    return o.layout === 'nhwc' ? y : this.transpose(y, [0, 3, 1, 2]);
  }

  /**
   * Plain multi-head attention: q (B,S,D), k/v (B,L,D) -> (B,S,D); softmax(q k^T * scale + bias) v per head.
   * `bias` is additive and broadcasts to (B, heads, S, L), e.g. a causal mask of -Infinity above the diagonal.
   */
  attention(q: Value, k: Value, v: Value, heads: number, scale?: number, bias?: Value): Value {
    const [b, s, d] = q.shape as [number, number, number];
    const l = k.shape[1]!;
    const dh = d / heads;
    if (!Number.isInteger(dh)) throw new DarkroomError('GRAPH_SHAPE_ERROR', `attention: width ${d} does not split into ${heads} heads`);
    const dv = v.shape[2]! / heads;
    const qh = this.transpose(this.reshape(q, [b, s, heads, dh]), [0, 2, 1, 3]);
    const kt = this.transpose(this.reshape(k, [b, l, heads, dh]), [0, 2, 3, 1]);
    const vh = this.transpose(this.reshape(v, [b, l, heads, dv]), [0, 2, 1, 3]);
    let scores = this.mul(this.matmul(qh, kt), scale ?? 1 / Math.sqrt(dh));
    if (bias) scores = this.add(scores, bias);
    const out = this.matmul(this.softmax(scores, -1), vh);
    return this.reshape(this.transpose(out, [0, 2, 1, 3]), [b, s, heads * dv]);
  }

  /**
   * Split attention (A1111's --opt-split-attention): the plain form over query slices of `querySizes` tokens
   * (see `planSplit`), so only one slice's scores exist at a time. Scores and softmax in float32.
   */
  splitAttention(q: Value, k: Value, v: Value, heads: number, querySizes: readonly number[], opts: ChunkedAttentionOptions = {}): Value {
    return splitAttention(this, q, k, v, heads, querySizes, opts);
  }

  /**
   * Sub-quadratic attention (A1111's --opt-sub-quad-attention): query chunks x key chunks combined by the
   * online softmax (see `planSubQuad`), so only one block's scores exist at a time. Scores in float32.
   */
  subQuadAttention(
    q: Value,
    k: Value,
    v: Value,
    heads: number,
    chunks: { readonly queries: readonly number[]; readonly keys: readonly number[] },
    opts: ChunkedAttentionOptions = {},
  ): Value {
    return subQuadraticAttention(this, q, k, v, heads, chunks.queries, chunks.keys, opts);
  }

  /**
   * Fused com.microsoft MultiHeadAttention (unpacked 3-D q/k/v, float32): runs on CPU and CUDA. `bias` is the
   * op's attention_bias input, shaped (B or 1, heads or 1, S, L).
   */
  mha(q: Value, k: Value, v: Value, heads: number, scale?: number, bias?: Value): Value {
    if (q.dtype !== 'float32' || k.dtype !== 'float32' || v.dtype !== 'float32') {
      throw new DarkroomError('GRAPH_DTYPE_UNSUPPORTED', 'mha: q, k and v must be float32 (the CPU kernel is float only)');
    }
    const attrs: Record<string, Attr> = { num_heads: { i: heads } };
    if (scale !== undefined) attrs.scale = { f: scale };
    const inputs = bias ? [q, k, v, undefined, undefined, bias] : [q, k, v];
    return this.op1('MultiHeadAttention', inputs, attrs, { domain: 'com.microsoft' });
  }

  // ---- output ----

  /** Opset 18 reads reduction axes from an input; the node is rewritten at serialization, the graph is not. */
  private axesAsInput(n: Node, live: Set<number>): Node {
    const axes = n.attrs.axes;
    if (n.domain !== '' || !AXES_INPUT_FROM_18.has(n.opType) || !axes || !('ints' in axes)) return n;
    const axesValue = this.ints(axes.ints);
    live.add(axesValue.id);
    const { axes: _dropped, ...attrs } = n.attrs;
    void _dropped;
    return { ...n, inputs: [n.inputs[0], axesValue], attrs };
  }

  /**
   * The nodes the outputs depend on, in order, written for `opset` (opset 18 takes reduction axes as inputs), and
   * the ids of every value they use: what a serialized model holds.
   */
  private liveNodes(opset: number): { nodes: Node[]; live: Set<number> } {
    if (this.outputList.length === 0) {
      throw new DarkroomError('GRAPH_NO_OUTPUTS', `graph ${this.name} has no outputs`);
    }
    const live = new Set<number>(this.outputList.map((o) => o.value.id));
    const keep: Node[] = [];
    for (let i = this.nodeList.length - 1; i >= 0; i--) {
      const n = this.nodeList[i]!;
      if (!n.outputs.some((o) => live.has(o.id))) continue;
      keep.push(n);
      for (const inp of n.inputs) if (inp) live.add(inp.id);
    }
    keep.reverse();
    if (!Number.isInteger(opset) || opset < DEFAULT_OPSET || opset > MAX_OPSET) {
      throw new DarkroomError('GRAPH_OPSET_UNSUPPORTED', `opset ${opset} is not supported; use ${DEFAULT_OPSET} to ${MAX_OPSET}`, { opset });
    }
    return { nodes: opset >= 18 ? keep.map((n) => this.axesAsInput(n, live)) : keep, live };
  }

  /**
   * The live graph cut into `count` consecutive parts of about equal weight bytes, each a model of its own: a
   * part takes the graph inputs and earlier parts' values it uses as inputs (by their value names) and gives
   * what later parts or the graph's outputs use. Run in order, feeding each part what the earlier ones gave,
   * they compute the whole graph; only one part's weights need be resident at a time (A1111's lowvram).
   */
  toModelParts(count: number, opts: ToModelOptions = {}): BuiltModel[] {
    if (!Number.isInteger(count) || count < 1) throw new DarkroomError('GRAPH_BAD_PARTS', `parts must be a whole number >= 1, got ${count}`);
    const opset = opts.opset ?? DEFAULT_OPSET;
    const { nodes } = this.liveNodes(opset);
    const inits = new Map(this.initList.map((i) => [i.value.id, i]));
    const graphInputs = new Set(this.inputList.map((v) => v.id));
    // cut where the running total of weight bytes passes each part's share
    const nodeBytes = nodes.map((n) => n.inputs.reduce((sum, v) => sum + (v && inits.has(v.id) ? inits.get(v.id)!.tensor.data.byteLength : 0), 0));
    const total = nodeBytes.reduce((a, b) => a + b, 0);
    const partOf: number[] = [];
    let running = 0;
    for (const bytes of nodeBytes) {
      partOf.push(Math.min(count - 1, Math.floor((running * count) / Math.max(total, 1))));
      running += bytes;
    }
    const producer = new Map<number, number>();
    nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o.id, partOf[i]!)));
    const lastUse = new Map<number, number>();
    nodes.forEach((n, i) => n.inputs.forEach((v) => v && lastUse.set(v.id, Math.max(lastUse.get(v.id) ?? -1, partOf[i]!))));
    const finals = new Map(this.outputList.map((o) => [o.value.id, o.name]));
    const models: BuiltModel[] = [];
    for (let p = 0; p < count; p++) {
      const own = nodes.filter((_, i) => partOf[i] === p);
      if (own.length === 0) throw new DarkroomError('GRAPH_BAD_PARTS', `graph ${this.name} has too few weighted nodes for ${count} parts`);
      const inputs = new Map<number, Value>();
      const initializers = new Map<number, Initializer>();
      for (const n of own) {
        for (const v of n.inputs) {
          if (!v) continue;
          if (inits.has(v.id)) initializers.set(v.id, inits.get(v.id)!);
          else if (graphInputs.has(v.id) || (producer.get(v.id) ?? p) < p) inputs.set(v.id, v);
        }
      }
      const outputs: { value: Value; name: string }[] = [];
      for (const n of own) {
        for (const o of n.outputs) {
          const final = finals.get(o.id);
          if (final !== undefined) outputs.push({ value: o, name: final });
          else if ((lastUse.get(o.id) ?? -1) > p) outputs.push({ value: o, name: o.name });
        }
      }
      models.push(serializeModel({
        name: `${this.name}_part${p}`,
        nodes: own,
        initializers: [...initializers.values()],
        inputs: [...inputs.values()],
        outputs,
        opset,
        ...(opts.externalDataAboveBytes !== undefined ? { externalDataAboveBytes: opts.externalDataAboveBytes } : {}),
      }));
    }
    return models;
  }

  /**
   * Serializes the part of the graph the outputs depend on (dead nodes and unused constants are dropped).
   * Equal graphs give byte-identical models.
   */
  toModel(opts: ToModelOptions = {}): BuiltModel {
    const opset = opts.opset ?? DEFAULT_OPSET;
    const { nodes, live } = this.liveNodes(opset);
    return serializeModel({
      name: this.name,
      nodes,
      initializers: this.initList.filter((i) => live.has(i.value.id)),
      inputs: this.inputList,
      outputs: this.outputList,
      opset,
      ...(opts.externalDataAboveBytes !== undefined ? { externalDataAboveBytes: opts.externalDataAboveBytes } : {}),
    });
  }
}
