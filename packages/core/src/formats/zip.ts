/**
 * The small part of ZIP that torch's serialization uses: stored or deflated members, data descriptors, ZIP64
 * records. Reading goes through the central directory only (torch sets the data-descriptor flag, so local headers
 * carry zero sizes). Writing produces the layout torch itself writes: stored members whose data starts on a
 * 64-byte boundary (padded with an extra field 'FB'), so a memory-mapped load can use the bytes in place.
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { DarkroomError } from '../errors.js';

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc: number;
  readonly localHeaderOffset: number;
  /** General-purpose flags (bit 0: encrypted). */
  readonly flags: number;
  /** High byte: the host system that wrote the entry (3 = Unix, whose mode bits fill externalAttributes' high 16 bits). */
  readonly versionMadeBy: number;
  readonly externalAttributes: number;
}

/** Random access to the bytes of a file, in memory or on disk. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function memorySource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    // A copy, so tensors built over what is read never alias the caller's buffer.
    read: async (offset, length) => bytes.slice(offset, offset + length),
  };
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

export function isZip(first4: Uint8Array): boolean {
  return first4.length >= 4 && first4[0] === 0x50 && first4[1] === 0x4b && first4[2] === 0x03 && first4[3] === 0x04;
}

function truncated(source: string, what: string): never {
  throw new DarkroomError('TORCH_TRUNCATED', `${source}: zip archive is truncated or damaged (${what})`, {
    file: source,
  });
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(v: DataView, at: number): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('zip64 value too large');
  return Number(n);
}

/**
 * Lists the members of a zip archive from its central directory. `maxEntries` refuses an archive that declares
 * more members before its directory is read, so an untrusted upload cannot make the list itself the bomb.
 */
export async function readZipDirectory(src: ByteSource, source: string, opts: { maxEntries?: number } = {}): Promise<ZipEntry[]> {
  // The end record sits in the last 22 + 65535 (comment) bytes.
  const tailLen = Math.min(src.size, 22 + 65535 + 20);
  const tailStart = src.size - tailLen;
  const tail = await src.read(tailStart, tailLen);
  const tv = view(tail);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) truncated(source, 'no end-of-central-directory record');
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const locatorAt = eocd - 20;
  if (locatorAt >= 0 && tv.getUint32(locatorAt, true) === SIG_EOCD64_LOCATOR) {
    const eocd64Offset = u64(tv, locatorAt + 8);
    if (eocd64Offset + 56 > src.size) truncated(source, 'zip64 end record past the end of the file');
    const rec = view(await src.read(eocd64Offset, 56));
    if (rec.getUint32(0, true) !== SIG_EOCD64) truncated(source, 'bad zip64 end record');
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  if (opts.maxEntries !== undefined && count > opts.maxEntries) {
    throw new DarkroomError('ZIP_TOO_MANY_ENTRIES', `${source}: zip archive has ${count} members, more than ${opts.maxEntries}`, {
      file: source, count, maxEntries: opts.maxEntries,
    });
  }
  if (cdOffset + cdSize > src.size) truncated(source, 'central directory past the end of the file');
  const cd = await src.read(cdOffset, cdSize);
  const cv = view(cd);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > cd.length || cv.getUint32(p, true) !== SIG_CENTRAL) truncated(source, 'bad central directory entry');
    const versionMadeBy = cv.getUint16(p + 4, true);
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let compressedSize = cv.getUint32(p + 20, true);
    let size = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    const externalAttributes = cv.getUint32(p + 38, true);
    let localHeaderOffset = cv.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen > cd.length) truncated(source, 'central directory entry overruns');
    const name = new TextDecoder().decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extra field: only the fields whose 32-bit slot is 0xFFFFFFFF are present, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cv.getUint16(e, true);
      const len = cv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) (size = u64(cv, q)), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = u64(cv, q)), (q += 8);
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(cv, q);
      }
      e += 4 + len;
    }
    entries.push({ name, method, compressedSize, size, crc, localHeaderOffset, flags, versionMadeBy, externalAttributes });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/**
 * Bounds on what inflating an untrusted archive may cost, all checked on the sizes the archive declares before a
 * byte is inflated (inflation then stops at the declared size, so a member that lies about it cannot go further).
 */
export interface ZipLimits {
  /** Largest uncompressed member. */
  readonly maxMemberBytes?: number;
  /** Largest sum of uncompressed members (checked by `checkZipLimits` over the whole directory). */
  readonly maxTotalBytes?: number;
  /**
   * Largest uncompressed/compressed ratio of a deflated member above `ratioFloorBytes`. torch.save stores
   * members uncompressed (ratio 1); a re-zipped checkpoint deflates weights by well under 10x, so a member that
   * claims 100x is a bomb, not a model.
   */
  readonly maxRatio?: number;
  /** Members up to this size are exempt from the ratio (a small zero-filled buffer compresses enormously). */
  readonly ratioFloorBytes?: number;
}

function tooLarge(source: string, code: string, reason: string, details: Record<string, unknown>): never {
  throw new DarkroomError(code, `${source}: ${reason}`, { file: source, ...details });
}

/** One member against `limits`, on its declared sizes: ZIP_MEMBER_TOO_LARGE or ZIP_RATIO_TOO_HIGH. */
export function checkZipMember(entry: ZipEntry, limits: ZipLimits, source: string): void {
  if (limits.maxMemberBytes !== undefined && entry.size > limits.maxMemberBytes) {
    tooLarge(source, 'ZIP_MEMBER_TOO_LARGE', `zip member ${entry.name} declares ${entry.size} bytes, more than ${limits.maxMemberBytes}`, {
      member: entry.name, size: entry.size, limit: limits.maxMemberBytes,
    });
  }
  const floor = limits.ratioFloorBytes ?? 0;
  if (limits.maxRatio !== undefined && entry.method !== 0 && entry.size > floor && entry.size > Math.max(1, entry.compressedSize) * limits.maxRatio) {
    tooLarge(source, 'ZIP_RATIO_TOO_HIGH', `zip member ${entry.name} would inflate ${entry.compressedSize} bytes to ${entry.size} (more than ${limits.maxRatio}x)`, {
      member: entry.name, size: entry.size, compressedSize: entry.compressedSize, limit: limits.maxRatio,
    });
  }
}

/** Every member against `limits`, and their sum against `maxTotalBytes` (ZIP_TOTAL_TOO_LARGE). */
export function checkZipLimits(entries: readonly ZipEntry[], limits: ZipLimits, source: string): void {
  let total = 0;
  for (const e of entries) {
    checkZipMember(e, limits, source);
    total += e.size;
  }
  if (limits.maxTotalBytes !== undefined && total > limits.maxTotalBytes) {
    tooLarge(source, 'ZIP_TOTAL_TOO_LARGE', `zip members declare ${total} bytes in all, more than ${limits.maxTotalBytes}`, {
      size: total, limit: limits.maxTotalBytes,
    });
  }
}

/**
 * The uncompressed bytes of one member, CRC-checked. With `limits`, the member's declared sizes are checked first
 * and nothing is read or inflated when they are over.
 */
export async function readZipEntry(src: ByteSource, entry: ZipEntry, source: string, limits?: ZipLimits): Promise<Uint8Array> {
  if (limits) checkZipMember(entry, limits, source);
  if (entry.localHeaderOffset + 30 > src.size) truncated(source, `local header of ${entry.name}`);
  const lh = view(await src.read(entry.localHeaderOffset, 30));
  if (lh.getUint32(0, true) !== SIG_LOCAL) truncated(source, `bad local header for ${entry.name}`);
  const start = entry.localHeaderOffset + 30 + lh.getUint16(26, true) + lh.getUint16(28, true);
  if (start + entry.compressedSize > src.size) truncated(source, `data of ${entry.name} runs past the end`);
  const raw = await src.read(start, entry.compressedSize);
  let data: Uint8Array;
  if (entry.method === 0) data = raw;
  else if (entry.method === 8) {
    // Deflate cannot expand more than ~1032x; a larger declared size is a lie, and inflating never goes past
    // the declared size, so a crafted archive cannot exhaust memory.
    if (entry.size > raw.length * 1032 + 1024) truncated(source, `${entry.name} declares an impossible size`);
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
    } catch {
      truncated(source, `cannot inflate ${entry.name}`);
    }
  } else {
    throw new DarkroomError('TORCH_BAD_FORMAT', `${source}: zip member ${entry.name} uses compression ${entry.method}`, {
      file: source,
    });
  }
  if (data.length !== entry.size) truncated(source, `size of ${entry.name}`);
  if (crc32(data) >>> 0 !== entry.crc >>> 0) truncated(source, `CRC mismatch in ${entry.name}`);
  return data;
}

export interface ZipMemberInput {
  readonly name: string;
  readonly data: Uint8Array;
}

const ALIGN = 64;

/** Writes a stored (uncompressed) zip with 64-byte aligned member data, as torch.save does. */
export function writeZip(members: readonly ZipMemberInput[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const m of members) {
    const name = enc.encode(m.name);
    const crc = crc32(m.data) >>> 0;
    const headerEnd = offset + 30 + name.length;
    // An extra field needs at least 4 bytes (id + length), so the pad is 4..67 bytes.
    const pad = (ALIGN - ((headerEnd + 4) % ALIGN)) % ALIGN;
    const extraLen = 4 + pad;
    const local = new Uint8Array(30 + name.length + extraLen);
    const lv = view(local);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(6, 0x0800, true);
    lv.setUint16(8, 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, m.data.length, true);
    lv.setUint32(22, m.data.length, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, extraLen, true);
    local.set(name, 30);
    lv.setUint16(30 + name.length, 0x4246, true); // 'FB', torch's padding field
    lv.setUint16(32 + name.length, pad, true);
    local.fill(0x5a, 34 + name.length);
    const cdh = new Uint8Array(46 + name.length);
    const cv = view(cdh);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(8, 0x0800, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, m.data.length, true);
    cv.setUint32(24, m.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cdh.set(name, 46);
    central.push(cdh);
    parts.push(local, m.data);
    offset += local.length + m.data.length;
  }
  const cdOffset = offset;
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = view(eocd);
  ev.setUint32(0, SIG_EOCD, true);
  ev.setUint16(8, members.length, true);
  ev.setUint16(10, members.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, cdOffset, true);
  const out = new Uint8Array(offset + cdSize + 22);
  let p = 0;
  for (const part of [...parts, ...central, eocd]) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}
