import { crc32 } from 'node:zlib';

/**
 * What an uploaded image is, read from its first bytes and chunk framing only: no pixel is inflated, so a
 * header that claims 50000x50000 costs nothing to refuse.
 */

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif' | 'bmp' | 'unknown';

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  return bytes.length >= at + prefix.length && prefix.every((b, i) => bytes[at + i] === b);
}

function ascii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to));
}

/** Recognises formats by magic number, so a JPEG renamed `.png` is named for what it is. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat {
  if (startsWith(bytes, PNG_SIGNATURE)) return 'png';
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 12) === 'WEBP') return 'webp';
  if (bytes.length >= 6 && (ascii(bytes, 0, 6) === 'GIF87a' || ascii(bytes, 0, 6) === 'GIF89a')) return 'gif';
  if (bytes.length >= 2 && ascii(bytes, 0, 2) === 'BM') return 'bmp';
  return 'unknown';
}

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlace: number;
}

export type PngHeaderResult = { ok: true; header: PngHeader } | { ok: false; reason: string };

function u32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at, false);
}

function chunkCrcMatches(bytes: Uint8Array, at: number, length: number): boolean {
  return crc32(bytes.subarray(at + 4, at + 8 + length)) >>> 0 === u32(bytes, at + 8 + length);
}

/** Bit depths the PNG specification allows per colour type. */
const BIT_DEPTHS: Record<number, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** The IHDR chunk: the first 33 bytes of any PNG. */
export function readPngHeader(bytes: Uint8Array): PngHeaderResult {
  if (!startsWith(bytes, PNG_SIGNATURE)) return { ok: false, reason: 'no PNG signature' };
  if (bytes.length < 33) return { ok: false, reason: 'truncated before the end of its header' };
  if (u32(bytes, 8) !== 13 || ascii(bytes, 12, 16) !== 'IHDR') return { ok: false, reason: 'the first chunk is not a 13-byte IHDR' };
  if (!chunkCrcMatches(bytes, 8, 13)) return { ok: false, reason: 'header CRC mismatch' };
  const header: PngHeader = {
    width: u32(bytes, 16), height: u32(bytes, 20), bitDepth: bytes[24]!, colorType: bytes[25]!, interlace: bytes[28]!,
  };
  if (header.width === 0 || header.height === 0 || header.width > 0x7fffffff || header.height > 0x7fffffff) {
    return { ok: false, reason: `impossible size ${header.width}x${header.height}` };
  }
  if (!BIT_DEPTHS[header.colorType]?.includes(header.bitDepth)) {
    return { ok: false, reason: `bit depth ${header.bitDepth} with colour type ${header.colorType} is not valid PNG` };
  }
  if (bytes[26] !== 0 || bytes[27] !== 0 || header.interlace > 1) return { ok: false, reason: 'unknown compression, filter or interlace method' };
  return { ok: true, header };
}

/** Why the engine's PNG decoder (packages/core/src/formats/png.ts) would refuse a valid PNG, or null. */
export function pngDecoderRefusal(header: PngHeader): string | null {
  return header.interlace === 1 ? 'interlaced (Adam7) PNGs cannot be decoded; save it without interlacing' : null;
}

/**
 * Walks the chunk framing (lengths and CRCs) without inflating anything: a PNG cut short or damaged in transit is
 * refused at upload rather than when a training job reaches it.
 */
export function pngStructureProblem(bytes: Uint8Array, colorType: number): string | null {
  let at = 8;
  let sawIdat = false;
  let sawPalette = false;
  while (at + 12 <= bytes.length) {
    const length = u32(bytes, at);
    const type = ascii(bytes, at + 4, at + 8);
    if (length > 0x7fffffff || at + 12 + length > bytes.length) return `chunk ${JSON.stringify(type)} runs past the end of the file`;
    if (!chunkCrcMatches(bytes, at, length)) return `CRC mismatch in chunk ${JSON.stringify(type)}`;
    if (type === 'PLTE') sawPalette = true;
    if (type === 'IDAT') {
      if (colorType === 3 && !sawPalette) return 'palette image without a PLTE chunk before its data';
      sawIdat = true;
    }
    if (type === 'IEND') return sawIdat ? null : 'no image data (IDAT)';
    at += 12 + length;
  }
  return 'truncated: no IEND chunk';
}
