/**
 * safetensors: an 8-byte little-endian header length, a JSON header, then raw little-endian tensor data.
 * Large checkpoints are read tensor by tensor at their offsets, never slurped whole. Every header field is
 * checked against the file before any data is trusted: a header that lies is refused with a typed error.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { DarkroomError } from '../errors.js';
import { bytesPerElement, numel, type DType, type HostTensor } from '../tensor.js';

const DTYPES: Record<string, DType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const NAMES: Record<DType, string> = Object.fromEntries(Object.entries(DTYPES).map(([k, v]) => [v, k])) as Record<
  DType,
  string
>;

/** Headers above this are refused: real ones are a few hundred KB even for SDXL. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Absolute offset of the tensor's first byte in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly metadata: Readonly<Record<string, string>>;
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  /** Bytes of header (8 + JSON); data starts here. */
  readonly dataStart: number;
}

function fail(code: string, source: string, reason: string): never {
  throw new DarkroomError(code, `${source}: ${reason}`, { file: source });
}

/** Parses and validates the header of a safetensors file of `fileSize` bytes. */
export function parseSafetensorsHeader(headerJson: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerJson));
  } catch {
    fail('ST_BAD_HEADER', source, 'safetensors header is not valid UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail('ST_BAD_HEADER', source, 'safetensors header is not a JSON object');
  }
  const dataStart = 8 + headerJson.length;
  const dataSize = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null) fail('ST_BAD_HEADER', source, '__metadata__ is not an object');
      metadata = Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof info?.dtype === 'string' ? DTYPES[info.dtype] : undefined;
    if (!dtype) fail('ST_BAD_DTYPE', source, `tensor "${name}" has unsupported dtype ${JSON.stringify(info?.dtype)}`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail('ST_BAD_SHAPE', source, `tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    let count = 1;
    for (const d of shape as number[]) {
      count *= d;
      if (!Number.isSafeInteger(count)) fail('ST_BAD_SHAPE', source, `tensor "${name}" shape overflows`);
    }
    const offsets = info.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[1] < offsets[0]
    ) {
      fail('ST_BAD_OFFSETS', source, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataSize) {
      fail('ST_BAD_OFFSETS', source, `tensor "${name}" ends at ${end}, past the ${dataSize} bytes of data`);
    }
    const byteLength = count * bytesPerElement(dtype);
    if (end - begin !== byteLength) {
      fail(
        'ST_BAD_SHAPE',
        source,
        `tensor "${name}" shape [${(shape as number[]).join(', ')}] needs ${byteLength} bytes but its offsets span ${end - begin}`,
      );
    }
    entries.set(name, { name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength });
  }
  return { metadata, entries, dataStart };
}

function readHeaderLength(first8: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8 || first8.length < 8) fail('ST_TRUNCATED', source, 'file is too short to be safetensors');
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const len = view.getBigUint64(0, true);
  if (len > BigInt(MAX_HEADER_BYTES) || Number(len) > fileSize - 8) {
    fail('ST_HEADER_TOO_LARGE', source, `header length ${len} exceeds the file or the ${MAX_HEADER_BYTES}-byte limit`);
  }
  return Number(len);
}

/** Makes a typed array over a private, aligned copy of the bytes. */
export function typedArrayFromBytes(dtype: DType, bytes: Uint8Array): HostTensor['data'] {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return typedArrayOver(dtype, copy);
}

/** A typed array over `bytes`, which must own its whole buffer from offset 0 (so any element size is aligned). */
function typedArrayOver(dtype: DType, bytes: Uint8Array): HostTensor['data'] {
  const buf = bytes.buffer;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buf);
    case 'float64':
      return new Float64Array(buf);
    case 'int64':
      return new BigInt64Array(buf);
    case 'int32':
      return new Int32Array(buf);
    case 'int8':
      return new Int8Array(buf);
    case 'uint8':
    case 'bool':
      return bytes;
  }
}

/** A safetensors file opened for random access. Close it when done. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly header: SafetensorsHeader,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const first8 = new Uint8Array(8);
      await handle.read(first8, 0, 8, 0);
      const len = readHeaderLength(first8, size, path);
      const json = new Uint8Array(len);
      await handle.read(json, 0, len, 8);
      return new SafetensorsFile(path, handle, parseSafetensorsHeader(json, size, path));
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  keys(): string[] {
    return [...this.header.entries.keys()];
  }

  has(name: string): boolean {
    return this.header.entries.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const e = this.header.entries.get(name);
    if (!e) throw new DarkroomError('ST_MISSING_TENSOR', `${this.path}: no tensor named "${name}"`, { file: this.path });
    return e;
  }

  async read(name: string): Promise<HostTensor> {
    const e = this.entry(name);
    const bytes = new Uint8Array(e.byteLength);
    let done = 0;
    while (done < e.byteLength) {
      const { bytesRead } = await this.handle.read(bytes, done, e.byteLength - done, e.offset + done);
      if (bytesRead === 0) fail('ST_TRUNCATED', this.path, `file ends inside tensor "${name}"`);
      done += bytesRead;
    }
    // `bytes` is this tensor's own fresh buffer: viewed in place, not copied a second time
    return { dtype: e.dtype, shape: e.shape, data: typedArrayOver(e.dtype, bytes) } as HostTensor;
  }

  async readAll(): Promise<Map<string, HostTensor>> {
    const out = new Map<string, HostTensor>();
    for (const k of this.keys()) out.set(k, await this.read(k));
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads every tensor of a safetensors file (for small files: oracle cases, embeddings). */
export async function readSafetensorsFile(
  path: string,
): Promise<{ metadata: Readonly<Record<string, string>>; tensors: Map<string, HostTensor> }> {
  const f = await SafetensorsFile.open(path);
  try {
    return { metadata: f.metadata, tensors: await f.readAll() };
  } finally {
    await f.close();
  }
}

/** Parses safetensors bytes already in memory (uploads, embedded files). */
export function parseSafetensors(
  bytes: Uint8Array,
  source = 'safetensors data',
): { metadata: Readonly<Record<string, string>>; tensors: Map<string, HostTensor> } {
  const len = readHeaderLength(bytes.subarray(0, 8), bytes.length, source);
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + len), bytes.length, source);
  const tensors = new Map<string, HostTensor>();
  for (const e of header.entries.values()) {
    const data = typedArrayFromBytes(e.dtype, bytes.subarray(e.offset, e.offset + e.byteLength));
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data } as HostTensor);
  }
  return { metadata: header.metadata, tensors };
}

function isTensorMap(
  t: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
): t is ReadonlyMap<string, HostTensor> {
  return t instanceof Map;
}

/** Serializes tensors (in the given key order) with optional string metadata; header padded to 8 bytes. */
export function writeSafetensors(
  tensors: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const list: Array<[string, HostTensor]> = isTensorMap(tensors)
    ? [...tensors.entries()]
    : Object.entries(tensors as Readonly<Record<string, HostTensor>>);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of list) {
    const byteLength = numel(t.shape) * bytesPerElement(t.dtype);
    if (t.data.byteLength !== byteLength) {
      throw new DarkroomError('ST_BAD_SHAPE', `tensor "${name}" data does not match its shape [${t.shape.join(', ')}]`);
    }
    header[name] = { dtype: NAMES[t.dtype], shape: t.shape, data_offsets: [offset, offset + byteLength] };
    offset += byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const [, t] of list) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}
