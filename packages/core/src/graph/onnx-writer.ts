/**
 * Encodes the builder's graph as an ONNX ModelProto (field numbers from onnx.proto3). Initializers are written
 * as raw_data; tensors above a size threshold go to external data, one in-memory "file" per tensor, which
 * onnxruntime-node takes through its `externalData` session option without touching the disk.
 */
import type { DType, HostTensor } from '../tensor.js';
import { DarkroomError } from '../errors.js';
import type { Attr, BuiltModel, Initializer, Node, Value } from './ir.js';
import { ProtoWriter } from './protobuf.js';

const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};

export function onnxElemType(dtype: DType): number {
  return ONNX_DTYPE[dtype];
}

const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_TENSOR = 4;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

const IR_VERSION = 9;
/** Beyond this the protobuf itself cannot be parsed (2 GiB limit), so weights must leave it. */
const PROTOBUF_SAFE_BYTES = 1.5 * 1024 ** 3;
const DEFAULT_EXTERNAL_MIN_BYTES = 1024;

export interface SerializeInput {
  readonly name: string;
  readonly nodes: readonly Node[];
  readonly initializers: readonly Initializer[];
  readonly inputs: readonly Value[];
  readonly outputs: ReadonlyArray<{ value: Value; name: string }>;
  readonly opset: number;
  readonly externalDataAboveBytes?: number;
}

export function tensorBytes(t: HostTensor): Uint8Array {
  const d = t.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function tensorProto(
  name: string,
  t: HostTensor,
  external?: { location: string; length: number },
): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.shape) w.int(1, d);
  w.int(2, onnxElemType(t.dtype));
  if (name) w.string(8, name);
  if (external) {
    w.message(13, new ProtoWriter().string(1, 'location').string(2, external.location));
    w.message(13, new ProtoWriter().string(1, 'offset').string(2, '0'));
    w.message(13, new ProtoWriter().string(1, 'length').string(2, String(external.length)));
    w.int(14, 1);
  } else {
    w.bytes(9, tensorBytes(t));
  }
  return w;
}

function attributeProto(name: string, a: Attr): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if ('f' in a) w.float(2, a.f).int(20, ATTR_FLOAT);
  else if ('i' in a) w.int(3, a.i).int(20, ATTR_INT);
  else if ('s' in a) w.string(4, a.s).int(20, ATTR_STRING);
  else if ('t' in a) w.message(5, tensorProto('', a.t)).int(20, ATTR_TENSOR);
  else if ('floats' in a) w.packedFloats(7, a.floats).int(20, ATTR_FLOATS);
  else w.packedInts(8, a.ints).int(20, ATTR_INTS);
  return w;
}

function nodeProto(n: Node, index: number): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i ? i.name : '');
  for (const o of n.outputs) w.string(2, o.name);
  w.string(3, `${n.opType}_${index}`);
  w.string(4, n.opType);
  // Attributes sorted by name so equal graphs give equal bytes whatever order the caller listed them in.
  for (const key of Object.keys(n.attrs).sort()) w.message(5, attributeProto(key, n.attrs[key]!));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function valueInfo(name: string, v: Value): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) shape.message(1, new ProtoWriter().int(1, d));
  const tensorType = new ProtoWriter().int(1, onnxElemType(v.dtype)).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 80);
}

export function serializeModel(g: SerializeInput): BuiltModel {
  if (!Number.isInteger(g.opset) || g.opset < 17) {
    throw new DarkroomError('GRAPH_OPSET_UNSUPPORTED', `opset ${g.opset} is not supported; use 17 or newer`, {
      opset: g.opset,
    });
  }
  let threshold = g.externalDataAboveBytes;
  if (threshold === undefined) {
    const total = g.initializers.reduce((s, i) => s + i.tensor.data.byteLength, 0);
    threshold = total > PROTOBUF_SAFE_BYTES ? DEFAULT_EXTERNAL_MIN_BYTES : Infinity;
  }

  const graph = new ProtoWriter();
  g.nodes.forEach((n, i) => graph.message(1, nodeProto(n, i)));
  graph.string(2, g.name);
  const externalData: { path: string; data: Uint8Array }[] = [];
  g.initializers.forEach((init, i) => {
    const bytes = tensorBytes(init.tensor);
    if (bytes.length > threshold!) {
      const location = `${String(i).padStart(5, '0')}_${sanitize(init.value.name)}.bin`;
      externalData.push({ path: location, data: bytes });
      graph.message(5, tensorProto(init.value.name, init.tensor, { location, length: bytes.length }));
    } else {
      graph.message(5, tensorProto(init.value.name, init.tensor));
    }
  });
  for (const v of g.inputs) graph.message(11, valueInfo(v.name, v));
  for (const o of g.outputs) graph.message(12, valueInfo(o.name, o.value));

  const usesMicrosoft = g.nodes.some((n) => n.domain === 'com.microsoft');
  const model = new ProtoWriter().int(1, IR_VERSION).string(2, 'darkroom').string(3, '0.1');
  model.message(7, graph);
  model.message(8, new ProtoWriter().string(1, '').int(2, g.opset));
  if (usesMicrosoft) model.message(8, new ProtoWriter().string(1, 'com.microsoft').int(2, 1));
  return {
    bytes: model.finish(),
    externalData,
    inputs: g.inputs.map((v) => v.name),
    outputs: g.outputs.map((o) => o.name),
  };
}
