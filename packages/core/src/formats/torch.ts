/**
 * torch `.pt` / `.ckpt` / `.bin` files, read without Python and without ever running their pickles.
 *
 * Two containers exist. The zip layout (torch >= 1.6): `<root>/data.pkl` (the object graph, protocol 2),
 * `<root>/data/<key>` (one raw storage per key), `<root>/version`, and from torch 2.1 `<root>/byteorder` and
 * `<root>/.data/serialization_id`. The legacy layout: five pickles in a row (magic number, protocol version,
 * sys info, the object graph, the storage keys) followed by each storage as an int64 element count and raw data.
 * Tensors come back as TorchTensor (a HostTensor) with their strided views resolved.
 */
import { open } from 'node:fs/promises';
import { DarkroomError } from '../errors.js';
import { bytesPerElement, numel, type DType, type HostTensor, type TypedArrayFor } from '../tensor.js';
import { unpickle, STORAGE_DTYPES, type PendingView } from './pickle/unpickler.js';
import { PyGlobal, PyTuple, TorchStorage, TorchTensor, type PyValue } from './pickle/values.js';
import { pickle } from './pickle/pickler.js';
import {
  checkZipLimits, isZip, memorySource, readZipDirectory, readZipEntry, writeZip, type ByteSource, type ZipEntry, type ZipLimits,
} from './zip.js';

export * from './pickle/values.js';

export interface TorchFile {
  readonly value: PyValue;
  readonly container: 'zip' | 'legacy';
  /** Zip member names (zip container only). */
  readonly members: readonly string[];
  /** Every global the pickle named, sorted: for diagnostics and layout checks. */
  readonly globals: readonly string[];
}

/**
 * Member names torch writes. A1111 checks the first five; `.format_version`, `.storage_alignment` and
 * `.data/version` come from newer torch releases and are equally inert. Anything else (a path such as
 * `../../outside.sh`) means the file was not written by torch.save.
 */
const MEMBER_RE =
  /^([^/]+)\/((data\/\d+)|version|byteorder|\.data\/serialization_id|\.data\/version|\.format_version|\.storage_alignment|(data\.pkl))$/;

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
/** torch writes one member per storage plus a handful; SD checkpoints have about 1200. */
const MAX_ZIP_MEMBERS = 100_000;

function badFormat(source: string, reason: string): never {
  throw new DarkroomError('TORCH_BAD_FORMAT', `${source}: not a torch file (${reason})`, { file: source });
}

/** Reads a torch file from disk. Zip files are read member by member, so large checkpoints need not fit twice. */
export async function readTorchFile(path: string, opts: ReadTorchOptions = {}): Promise<TorchFile> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const src: ByteSource = {
      size,
      read: async (offset, length) => {
        const out = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await handle.read(out, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done === length ? out : out.subarray(0, done);
      },
    };
    return await readTorchSource(src, path, opts);
  } finally {
    await handle.close();
  }
}

/** How a torch file is read. */
export interface ReadTorchOptions {
  /** Python floats come back as PyFloat (see UnpickleOptions.keepFloats). */
  readonly keepFloats?: boolean;
  /**
   * Bounds on inflating the zip container's members, checked on their declared sizes before anything is inflated
   * (default DEFAULT_TORCH_ZIP_LIMITS: a deflated member over 1 MiB may not claim more than 100x its bytes).
   */
  readonly zipLimits?: ZipLimits;
  /**
   * `skip`: read the object graph and check each storage's member is there and large enough, but leave the
   * tensors' data empty (shapes and dtypes only): a multi-GB checkpoint checked in kilobytes of memory.
   */
  readonly storages?: 'read' | 'skip';
}

/** torch.save stores members uncompressed; a deflated member claiming more than 100x its bytes is a zip bomb. */
export const DEFAULT_TORCH_ZIP_LIMITS: ZipLimits = { maxRatio: 100, ratioFloorBytes: 1 << 20 };

/** Reads a torch file already in memory. */
export function readTorch(bytes: Uint8Array, source = 'torch data', opts: ReadTorchOptions = {}): Promise<TorchFile> {
  return readTorchSource(memorySource(bytes), source, opts);
}

async function readTorchSource(src: ByteSource, source: string, opts: ReadTorchOptions = {}): Promise<TorchFile> {
  if (src.size === 0) {
    throw new DarkroomError('TORCH_EMPTY', `${source}: the file is empty`, { file: source });
  }
  const head = await src.read(0, Math.min(4, src.size));
  if (isZip(head)) return readZipContainer(src, source, opts);
  if (head[0] !== 0x80) badFormat(source, 'neither a zip archive nor a pickle stream');
  return readLegacyContainer(await src.read(0, src.size), source, opts);
}

async function readZipContainer(src: ByteSource, source: string, opts: ReadTorchOptions): Promise<TorchFile> {
  const entries = await readZipDirectory(src, source, { maxEntries: MAX_ZIP_MEMBERS });
  const limits = opts.zipLimits ?? DEFAULT_TORCH_ZIP_LIMITS;
  for (const e of entries) {
    if (!MEMBER_RE.test(e.name)) {
      throw new DarkroomError('TORCH_BAD_ZIP_MEMBER', `${source}: unexpected member "${e.name}" inside the torch zip`, {
        file: source,
        member: e.name,
      });
    }
  }
  checkZipLimits(entries, limits, source);
  const pkl = entries.filter((e) => e.name.endsWith('/data.pkl'));
  if (pkl.length !== 1) badFormat(source, `expected one data.pkl, found ${pkl.length}`);
  const root = pkl[0]!.name.slice(0, -'/data.pkl'.length);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const byteorderEntry = byName.get(`${root}/byteorder`);
  const bigEndian =
    byteorderEntry !== undefined && new TextDecoder().decode(await readZipEntry(src, byteorderEntry, source, limits)) === 'big';

  const storages = new Map<string, TorchStorage>();
  const result = unpickle(await readZipEntry(src, pkl[0]!, source, limits), {
    source,
    keepFloats: opts.keepFloats,
    persistentLoad: (pid) => {
      const [kind, cls, key, location, count] = pid instanceof PyTuple ? pid.items : [];
      if (kind !== 'storage' || typeof key !== 'string' || typeof count !== 'number') {
        badFormat(source, 'persistent id is not a storage reference');
      }
      return storageFor(storages, cls, key, location, count, source);
    },
  });
  // One storage at a time: read, build its tensors, let the raw bytes go (peak memory ~ model size, not twice).
  const viewsOf = new Map<TorchStorage, PendingView[]>();
  for (const v of result.views) viewsOf.set(v.storage, [...(viewsOf.get(v.storage) ?? []), v]);
  for (const [storage, views] of viewsOf) {
    const entry: ZipEntry | undefined = byName.get(`${root}/data/${storage.key}`);
    if (!entry) badFormat(source, `storage data/${storage.key} is missing`);
    if (opts.storages === 'skip') {
      if (entry.size < storage.numel * bytesPerElement(storage.dtype)) {
        throw new DarkroomError('TORCH_TRUNCATED', `${source}: storage ${storage.key} is shorter than declared`, { file: source });
      }
      continue;
    }
    storage.bytes = await readZipEntry(src, entry, source, limits);
    for (const v of views) materialize(v, bigEndian, source);
    storage.bytes = undefined;
  }
  return { value: result.value, container: 'zip', members: entries.map((e) => e.name), globals: result.globals };
}

function storageFor(
  storages: Map<string, TorchStorage>,
  cls: PyValue | undefined,
  key: string,
  location: PyValue | undefined,
  count: number,
  source: string,
): TorchStorage {
  const existing = storages.get(key);
  if (existing) return existing;
  const dtype = cls instanceof PyGlobal && cls.module === 'torch' ? STORAGE_DTYPES[cls.name] : undefined;
  if (!dtype) badFormat(source, `storage ${key} has an unknown type`);
  if (!Number.isSafeInteger(count) || count < 0) badFormat(source, `storage ${key} has a bad size`);
  const s = new TorchStorage(dtype, key, typeof location === 'string' ? location : 'cpu', count);
  storages.set(key, s);
  return s;
}

function readLegacyContainer(bytes: Uint8Array, source: string, readOpts: ReadTorchOptions): TorchFile {
  const opts = { source };
  const magic = unpickle(bytes, opts);
  if (magic.value !== LEGACY_MAGIC) badFormat(source, 'bad legacy magic number');
  const protocol = unpickle(bytes, opts, magic.end);
  if (protocol.value !== 1001) badFormat(source, `unsupported legacy protocol ${String(protocol.value)}`);
  const sysInfo = unpickle(bytes, opts, protocol.end);
  const storages = new Map<string, TorchStorage>();
  const views = new Map<TorchStorage, { root: TorchStorage; offset: number }>();
  const main = unpickle(
    bytes,
    {
      source,
      keepFloats: readOpts.keepFloats,
      persistentLoad: (pid) => {
        const [kind, cls, key, location, count, viewMeta] = pid instanceof PyTuple ? pid.items : [];
        if (kind !== 'storage' || typeof key !== 'string' || typeof count !== 'number') {
          badFormat(source, 'persistent id is not a storage reference');
        }
        const root = storageFor(storages, cls, key, location, count, source);
        if (viewMeta instanceof PyTuple) {
          const [viewKey, offset, viewSize] = viewMeta.items;
          if (typeof viewKey !== 'string' || typeof offset !== 'number' || typeof viewSize !== 'number') {
            badFormat(source, 'bad storage view');
          }
          const v = new TorchStorage(root.dtype, viewKey, root.location, viewSize);
          views.set(v, { root, offset });
          return v;
        }
        return root;
      },
    },
    sysInfo.end,
  );
  const keys = unpickle(bytes, opts, main.end);
  if (!Array.isArray(keys.value)) badFormat(source, 'legacy storage key list missing');
  let pos = keys.end;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys.value) {
    const s = typeof key === 'string' ? storages.get(key) : undefined;
    if (!s) badFormat(source, `legacy storage ${String(key)} is not referenced`);
    if (pos + 8 > bytes.length) truncatedAt(source, pos);
    const count = Number(dv.getBigInt64(pos, true));
    const len = count * bytesPerElement(s.dtype);
    if (count !== s.numel || pos + 8 + len > bytes.length) truncatedAt(source, pos);
    s.bytes = bytes.subarray(pos + 8, pos + 8 + len);
    pos += 8 + len;
  }
  for (const [v, { root, offset }] of views) {
    if (!root.bytes) badFormat(source, `storage ${root.key} has no data`);
    const size = bytesPerElement(root.dtype);
    v.bytes = root.bytes.subarray(offset * size, (offset + v.numel) * size);
  }
  for (const v of main.views) materialize(v, false, source);
  const globals = [...new Set([...sysInfo.globals, ...main.globals])].sort();
  return { value: main.value, container: 'legacy', members: [], globals };
}

function truncatedAt(source: string, pos: number): never {
  throw new DarkroomError('TORCH_TRUNCATED', `${source}: storage data ends early (byte ${pos})`, { file: source });
}

function typedFromBytes(dtype: DType, bytes: Uint8Array, bigEndian: boolean): TypedArrayFor[DType] {
  const size = bytesPerElement(dtype);
  // Storage bytes are already a private buffer: view them in place when aligned and little-endian.
  const copy = !bigEndian && bytes.byteOffset % size === 0 ? bytes : Uint8Array.from(bytes);
  if (bigEndian && size > 1) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  const buf = copy.buffer;
  const at = copy.byteOffset;
  const n = copy.byteLength / size;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, at, n);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buf, at, n);
    case 'float64':
      return new Float64Array(buf, at, n);
    case 'int64':
      return new BigInt64Array(buf, at, n);
    case 'int32':
      return new Int32Array(buf, at, n);
    case 'int8':
      return new Int8Array(buf, at, n);
    case 'uint8':
    case 'bool':
      return copy;
  }
}

/** Resolves a strided view (storage offset + strides) into a dense row-major tensor. */
function materialize(v: PendingView, bigEndian: boolean, source: string): void {
  const { tensor, storage, offset, stride } = v;
  const bytes = storage.bytes;
  if (!bytes) badFormat(source, `storage ${storage.key} has no data`);
  const elem = bytesPerElement(storage.dtype);
  if (bytes.length < storage.numel * elem) {
    throw new DarkroomError('TORCH_TRUNCATED', `${source}: storage ${storage.key} is shorter than declared`, {
      file: source,
    });
  }
  const shape = tensor.shape;
  const n = numel(shape);
  let last = offset;
  for (let d = 0; d < shape.length; d++) {
    if (stride[d]! < 0) badFormat(source, 'negative tensor stride');
    if (shape[d]! > 0) last += (shape[d]! - 1) * stride[d]!;
  }
  // Zero strides let a tiny storage claim a huge tensor; torch allows such views, but a file that asks for
  // more elements than its storage holds (beyond a small allowance) would only be a way to exhaust memory.
  if (n > Math.max(storage.numel, 1 << 20)) badFormat(source, `tensor view [${shape.join(', ')}] is larger than storage ${storage.key}`);
  if (n > 0 && (offset < 0 || last >= storage.numel)) {
    badFormat(source, `tensor view [${shape.join(', ')}] reaches past storage ${storage.key}`);
  }
  const src = typedFromBytes(storage.dtype, bytes.subarray(0, storage.numel * elem), bigEndian);
  let contiguous = true;
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expect) contiguous = false;
    expect *= shape[d]!;
  }
  if (contiguous) {
    // A view of the whole storage keeps its buffer (as torch shares it); a part of one gets its own copy.
    tensor.data = (offset === 0 && n === src.length ? src : src.slice(offset, offset + n)) as TypedArrayFor[DType];
    return;
  }
  const out = new (src.constructor as new (n: number) => TypedArrayFor[DType])(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let p = offset;
    for (let d = 0; d < shape.length; d++) p += idx[d]! * stride[d]!;
    (out as unknown as { [k: number]: number | bigint })[i] = (src as unknown as { [k: number]: number | bigint })[p]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  tensor.data = out;
}

/** Wraps a host tensor so the torch writer stores it (as a Parameter when `parameter` is set). */
export function torchTensor(t: HostTensor, opts: { requiresGrad?: boolean; parameter?: boolean } = {}): TorchTensor {
  return new TorchTensor(t.dtype, [...t.shape], t.data, opts.requiresGrad ?? false, opts.parameter ?? false);
}

/**
 * Writes `value` as torch.save would (zip layout, pickle protocol 2, one storage per tensor, location 'cpu'),
 * so `torch.load` (and A1111's restricted loader) reads it back. `archiveName` is the zip's root folder,
 * which torch sets to the file stem.
 */
export function writeTorchFile(value: PyValue, opts: { archiveName?: string } = {}): Uint8Array {
  const root = opts.archiveName ?? 'archive';
  const { bytes, storages } = pickle(value);
  return writeZip([
    { name: `${root}/data.pkl`, data: bytes },
    ...storages.map((s, i) => ({ name: `${root}/data/${i}`, data: s })),
    { name: `${root}/version`, data: new TextEncoder().encode('3\n') },
  ]);
}
