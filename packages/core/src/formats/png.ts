/**
 * PNG read and write: chunks (CRC checked), text chunks (tEXt, zTXt, iTXt), 8-bit decode of gray, gray+alpha,
 * RGB, RGBA and palette images, and a deterministic encoder that writes A1111's `parameters` text chunk the way
 * PIL does (tEXt when the text is Latin-1, uncompressed iTXt otherwise).
 */
import { deflateSync, inflateSync } from 'node:zlib';
import { DarkroomError } from '../errors.js';

export interface PngChunk {
  readonly type: string;
  readonly data: Uint8Array;
}

/** An 8-bit image, rows top to bottom, channels interleaved (HWC). */
export interface RasterImage {
  readonly width: number;
  readonly height: number;
  /** 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. */
  readonly channels: 1 | 2 | 3 | 4;
  readonly data: Uint8Array;
}

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(parts: readonly Uint8Array[]): number {
  let c = 0xffffffff;
  for (const bytes of parts) {
    for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function asciiOf(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

export function isPng(bytes: Uint8Array): boolean {
  if (bytes.length < SIGNATURE.length) return false;
  return SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Every chunk in file order, each CRC verified. Stops after IEND. */
export function readPngChunks(bytes: Uint8Array): PngChunk[] {
  if (!isPng(bytes)) throw new DarkroomError('PNG_BAD_SIGNATURE', 'not a PNG file (bad signature)');
  const chunks: PngChunk[] = [];
  let at = SIGNATURE.length;
  while (at < bytes.length) {
    if (at + 8 > bytes.length) throw new DarkroomError('PNG_TRUNCATED', `PNG truncated in a chunk header at byte ${at}`);
    const length = readU32(bytes, at);
    const typeBytes = bytes.subarray(at + 4, at + 8);
    const type = asciiOf(typeBytes);
    const end = at + 8 + length + 4;
    if (end > bytes.length) {
      throw new DarkroomError('PNG_TRUNCATED', `PNG truncated inside chunk ${type} (needs ${end} bytes, has ${bytes.length})`);
    }
    const data = bytes.subarray(at + 8, at + 8 + length);
    const stored = readU32(bytes, at + 8 + length);
    if (crc32([typeBytes, data]) !== stored) {
      throw new DarkroomError('PNG_BAD_CRC', `PNG chunk ${type} at byte ${at} has a bad CRC`, { type, offset: at });
    }
    chunks.push({ type, data });
    at = end;
    if (type === 'IEND') return chunks;
  }
  throw new DarkroomError('PNG_TRUNCATED', 'PNG ends without an IEND chunk');
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

/**
 * Compressed text is inflated with a ceiling, so a small chunk cannot expand to gigabytes: each chunk to at most
 * Pillow's MAX_TEXT_CHUNK (what A1111 reads), and all compressed chunks of one PNG together to a few of those.
 * Uncompressed text needs no ceiling: it is no larger than the file the caller already holds.
 */
export const PNG_TEXT_CHUNK_MAX_BYTES = 1024 * 1024;
export const PNG_TEXT_TOTAL_MAX_BYTES = 8 * 1024 * 1024;

function inflateText(data: Uint8Array, type: string, maxBytes: number): Uint8Array {
  try {
    // zlib stops as soon as the output passes the ceiling, so a bomb costs at most maxBytes.
    return new Uint8Array(inflateSync(data, { maxOutputLength: Math.max(1, maxBytes) }));
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new DarkroomError('PNG_TEXT_TOO_LARGE', `compressed ${type} text inflates past ${maxBytes} bytes`, { type, limit: maxBytes });
    }
    throw new DarkroomError('PNG_BAD_TEXT', `compressed ${type} chunk does not inflate: ${(e as Error).message}`);
  }
}

/**
 * One text chunk as [keyword, text], or undefined when the chunk is not a text chunk. A compressed chunk may
 * inflate to `maxInflated` bytes at most (PNG_TEXT_TOO_LARGE beyond).
 */
export function decodeTextChunk(chunk: PngChunk, maxInflated = PNG_TEXT_CHUNK_MAX_BYTES): [string, string] | undefined {
  const d = chunk.data;
  const nul = d.indexOf(0);
  if (chunk.type !== 'tEXt' && chunk.type !== 'zTXt' && chunk.type !== 'iTXt') return undefined;
  if (nul < 0) throw new DarkroomError('PNG_BAD_TEXT', `${chunk.type} chunk without a keyword terminator`);
  const key = latin1.decode(d.subarray(0, nul));
  if (chunk.type === 'tEXt') return [key, latin1.decode(d.subarray(nul + 1))];
  if (chunk.type === 'zTXt') {
    if (d[nul + 1] !== 0) throw new DarkroomError('PNG_BAD_TEXT', `zTXt chunk ${key} uses an unknown compression method`);
    return [key, latin1.decode(inflateText(d.subarray(nul + 2), 'zTXt', maxInflated))];
  }
  // iTXt: keyword \0 flag method language \0 translated keyword \0 text
  const compressed = d[nul + 1] === 1;
  const langEnd = d.indexOf(0, nul + 3);
  const transEnd = langEnd < 0 ? -1 : d.indexOf(0, langEnd + 1);
  if (transEnd < 0) throw new DarkroomError('PNG_BAD_TEXT', `iTXt chunk ${key} is malformed`);
  const body = d.subarray(transEnd + 1);
  return [key, utf8.decode(compressed ? inflateText(body, 'iTXt', maxInflated) : body)];
}

function isCompressedText(chunk: PngChunk): boolean {
  if (chunk.type === 'zTXt') return true;
  return chunk.type === 'iTXt' && chunk.data[chunk.data.indexOf(0) + 1] === 1;
}

/**
 * All text chunks of a PNG as keyword -> text (a later chunk with the same keyword wins, as in PIL). Compressed
 * chunks share one inflation budget of PNG_TEXT_TOTAL_MAX_BYTES.
 */
export function readPngText(bytes: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let budget = PNG_TEXT_TOTAL_MAX_BYTES;
  for (const chunk of readPngChunks(bytes)) {
    const compressed = isCompressedText(chunk);
    if (compressed && budget <= 0) {
      throw new DarkroomError('PNG_TEXT_TOO_LARGE', `compressed text chunks inflate past ${PNG_TEXT_TOTAL_MAX_BYTES} bytes together`, { limit: PNG_TEXT_TOTAL_MAX_BYTES });
    }
    const kv = decodeTextChunk(chunk, Math.min(PNG_TEXT_CHUNK_MAX_BYTES, budget));
    if (!kv) continue;
    // The decoded text re-encoded is the inflated size (within replacement characters for bad UTF-8).
    if (compressed) budget -= Math.max(1, Buffer.byteLength(kv[1], chunk.type === 'zTXt' ? 'latin1' : 'utf8'));
    out[kv[0]] = kv[1];
  }
  return out;
}

interface Header {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlace: number;
}

function readHeader(chunk: PngChunk | undefined): Header {
  if (chunk?.type !== 'IHDR' || chunk.data.length !== 13) {
    throw new DarkroomError('PNG_BAD_HEADER', 'PNG does not start with a valid IHDR chunk');
  }
  const d = chunk.data;
  return { width: readU32(d, 0), height: readU32(d, 4), bitDepth: d[8]!, colorType: d[9]!, interlace: d[12]! };
}

const SAMPLES_PER_PIXEL: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Reverses the per-row filters in place of a fresh buffer; `bpp` is bytes per complete pixel (at least 1). */
function unfilter(raw: Uint8Array, height: number, stride: number, bpp: number): Uint8Array {
  const out = new Uint8Array(height * stride);
  if (raw.length < height * (stride + 1)) {
    throw new DarkroomError('PNG_TRUNCATED', `PNG image data too short: ${raw.length} bytes for ${height} rows`);
  }
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    for (let x = 0; x < stride; x++) {
      const v = raw[src + x]!;
      const a = x >= bpp ? out[row + x - bpp]! : 0;
      const b = y > 0 ? out[prev + x]! : 0;
      const c = x >= bpp && y > 0 ? out[prev + x - bpp]! : 0;
      let r: number;
      switch (filter) {
        case 0: r = v; break;
        case 1: r = v + a; break;
        case 2: r = v + b; break;
        case 3: r = v + ((a + b) >> 1); break;
        case 4: r = v + paeth(a, b, c); break;
        default:
          throw new DarkroomError('PNG_BAD_FILTER', `PNG row ${y} uses unknown filter type ${filter}`);
      }
      out[row + x] = r & 0xff;
    }
  }
  return out;
}

/**
 * Decodes a non-interlaced PNG to 8-bit samples. Palette images become RGB (RGBA when the palette has a
 * tRNS entry); 16-bit samples keep their high byte; 1/2/4-bit gray is scaled to 0..255.
 */
export function decodePng(bytes: Uint8Array): RasterImage {
  const chunks = readPngChunks(bytes);
  const h = readHeader(chunks[0]);
  const spp = SAMPLES_PER_PIXEL[h.colorType];
  if (spp === undefined) throw new DarkroomError('PNG_UNSUPPORTED', `PNG color type ${h.colorType} is not valid`);
  if (h.interlace !== 0) throw new DarkroomError('PNG_UNSUPPORTED', 'interlaced PNGs are not supported');
  if (![1, 2, 4, 8, 16].includes(h.bitDepth) || (h.bitDepth < 8 && h.colorType !== 0 && h.colorType !== 3)) {
    throw new DarkroomError('PNG_UNSUPPORTED', `PNG bit depth ${h.bitDepth} with color type ${h.colorType} is not valid`);
  }
  const idat = chunks.filter((c) => c.type === 'IDAT');
  if (idat.length === 0) throw new DarkroomError('PNG_TRUNCATED', 'PNG has no IDAT chunk');
  const joined = new Uint8Array(idat.reduce((n, c) => n + c.data.length, 0));
  let off = 0;
  for (const c of idat) {
    joined.set(c.data, off);
    off += c.data.length;
  }
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(inflateSync(joined));
  } catch (e) {
    throw new DarkroomError('PNG_TRUNCATED', `PNG image data does not inflate: ${(e as Error).message}`);
  }
  const bitsPerPixel = spp * h.bitDepth;
  const stride = Math.ceil((h.width * bitsPerPixel) / 8);
  const px = unfilter(raw, h.height, stride, Math.max(1, bitsPerPixel >> 3));
  const n = h.width * h.height;

  const sampleAt = (y: number, i: number): number => {
    // i-th sample of row y, as an integer of the file's bit depth
    if (h.bitDepth === 8) return px[y * stride + i]!;
    if (h.bitDepth === 16) return px[y * stride + 2 * i]!; // high byte
    const bit = i * h.bitDepth;
    const byte = px[y * stride + (bit >> 3)]!;
    return (byte >> (8 - h.bitDepth - (bit & 7))) & ((1 << h.bitDepth) - 1);
  };

  if (h.colorType === 3) {
    const plte = chunks.find((c) => c.type === 'PLTE');
    if (!plte) throw new DarkroomError('PNG_BAD_HEADER', 'palette PNG without a PLTE chunk');
    const trns = chunks.find((c) => c.type === 'tRNS');
    const channels = trns ? 4 : 3;
    const data = new Uint8Array(n * channels);
    for (let y = 0; y < h.height; y++) {
      for (let x = 0; x < h.width; x++) {
        const idx = sampleAt(y, x);
        if (idx * 3 + 2 >= plte.data.length) throw new DarkroomError('PNG_BAD_HEADER', `palette index ${idx} out of range`);
        const o = (y * h.width + x) * channels;
        data[o] = plte.data[idx * 3]!;
        data[o + 1] = plte.data[idx * 3 + 1]!;
        data[o + 2] = plte.data[idx * 3 + 2]!;
        if (trns) data[o + 3] = idx < trns.data.length ? trns.data[idx]! : 255;
      }
    }
    return { width: h.width, height: h.height, channels, data };
  }

  const channels = spp as 1 | 2 | 3 | 4;
  const data = new Uint8Array(n * channels);
  const scale = h.bitDepth < 8 ? 255 / ((1 << h.bitDepth) - 1) : 1;
  for (let y = 0; y < h.height; y++) {
    for (let i = 0; i < h.width * channels; i++) data[y * h.width * channels + i] = Math.round(sampleAt(y, i) * scale);
  }
  return { width: h.width, height: h.height, channels, data };
}

/** One chunk's bytes: length, type, data and the CRC over type and data. */
export function chunkBytes(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  const typeBytes = Uint8Array.from(type, (ch) => ch.charCodeAt(0));
  out.set(typeBytes, 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32([typeBytes, data]));
  return out;
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

function latin1Bytes(s: string): Uint8Array {
  return Uint8Array.from(s, (ch) => ch.charCodeAt(0));
}

/** A text chunk as PIL writes `PngInfo.add_text`: tEXt when Latin-1 encodable, else uncompressed iTXt. */
export function textChunk(key: string, value: string): PngChunk {
  if (key.length < 1 || key.length > 79 || !isLatin1(key) || key.includes('\0')) {
    throw new DarkroomError('PNG_BAD_TEXT', `PNG text keyword must be 1-79 Latin-1 characters, got "${key}"`);
  }
  const keyBytes = latin1Bytes(key);
  if (isLatin1(value)) {
    const v = latin1Bytes(value);
    const data = new Uint8Array(keyBytes.length + 1 + v.length);
    data.set(keyBytes);
    data.set(v, keyBytes.length + 1);
    return { type: 'tEXt', data };
  }
  const v = new TextEncoder().encode(value);
  // keyword \0, compression flag 0, method 0, empty language \0, empty translated keyword \0
  const data = new Uint8Array(keyBytes.length + 5 + v.length);
  data.set(keyBytes);
  data.set(v, keyBytes.length + 5);
  return { type: 'iTXt', data };
}

/** Picks per row the filter with the smallest sum of absolute signed bytes (the usual PNG heuristic). */
function filterRows(img: RasterImage): Uint8Array {
  const bpp = img.channels;
  const stride = img.width * bpp;
  const out = new Uint8Array(img.height * (stride + 1));
  const candidate = new Uint8Array(stride);
  const best = new Uint8Array(stride);
  for (let y = 0; y < img.height; y++) {
    const row = y * stride;
    let bestScore = Infinity;
    let bestType = 0;
    for (let type = 0; type <= 4; type++) {
      let score = 0;
      for (let x = 0; x < stride; x++) {
        const v = img.data[row + x]!;
        const a = x >= bpp ? img.data[row + x - bpp]! : 0;
        const b = y > 0 ? img.data[row - stride + x]! : 0;
        const c = x >= bpp && y > 0 ? img.data[row - stride + x - bpp]! : 0;
        const pred = type === 0 ? 0 : type === 1 ? a : type === 2 ? b : type === 3 ? (a + b) >> 1 : paeth(a, b, c);
        const f = (v - pred) & 0xff;
        candidate[x] = f;
        score += f < 128 ? f : 256 - f;
      }
      if (score < bestScore) {
        bestScore = score;
        bestType = type;
        best.set(candidate);
      }
    }
    out[y * (stride + 1)] = bestType;
    out.set(best, y * (stride + 1) + 1);
  }
  return out;
}

const COLOR_TYPE: Record<number, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };

/**
 * Encodes an 8-bit image: IHDR, the text chunks in the order given, one IDAT, IEND. The same image and texts
 * always give the same bytes (fixed filter heuristic and zlib level).
 */
export function encodePng(img: RasterImage, textChunks: ReadonlyArray<readonly [string, string]> = []): Uint8Array {
  const { width, height, channels } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new DarkroomError('PNG_BAD_IMAGE', `cannot encode a ${width}x${height} image`);
  }
  if (COLOR_TYPE[channels] === undefined) throw new DarkroomError('PNG_BAD_IMAGE', `cannot encode ${channels} channels`);
  if (img.data.length !== width * height * channels) {
    throw new DarkroomError('PNG_BAD_IMAGE', `image data has ${img.data.length} bytes, expected ${width * height * channels}`);
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = COLOR_TYPE[channels]!;
  const idat = new Uint8Array(deflateSync(filterRows(img), { level: 6 }));
  const parts: Uint8Array[] = [SIGNATURE, chunkBytes('IHDR', ihdr)];
  for (const [key, value] of textChunks) {
    const c = textChunk(key, value);
    parts.push(chunkBytes(c.type, c.data));
  }
  parts.push(chunkBytes('IDAT', idat), chunkBytes('IEND', new Uint8Array(0)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
