import { pngStructureProblem, readPngHeader, sniffImageFormat, type ImageFormat } from './png-header.js';

/**
 * The declared size of an input image (init image, mask), read from its header only: PNG's IHDR, JPEG's SOFn
 * marker, WebP's VP8 / VP8L / VP8X chunk, GIF's logical screen and BMP's info header. Nothing is inflated, so a
 * small file that claims 8000x8000 is refused before a decoder allocates its pixels. Both the API (at submission)
 * and the worker (before decoding) ask this module, so they refuse the same files.
 */

export type ImageSizeResult =
  | { ok: true; format: Exclude<ImageFormat, 'unknown'>; width: number; height: number }
  | { ok: false; reason: string };

function u16le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

function u16be(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u24le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
}

function i32le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24);
}

function ascii(b: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...b.subarray(from, to));
}

/** SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC): the frame header holding the size. */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/** Walks the marker segments up to the first SOFn (each segment's length is in its header). */
function jpegSize(b: Uint8Array): { width: number; height: number } | string {
  let at = 2;
  for (;;) {
    while (at < b.length && b[at] === 0xff && b[at + 1] === 0xff) at++; // fill bytes
    if (at + 4 > b.length) return 'truncated before its frame header (SOF)';
    if (b[at] !== 0xff) return `no marker at byte ${at}`;
    const marker = b[at + 1]!;
    // Markers without a length: TEM and RSTn. EOI or SOS before a frame header means there is no frame.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return 'no frame header (SOF) before its image data';
    const length = u16be(b, at + 2);
    if (length < 2) return `segment at byte ${at} has length ${length}`;
    if (isStartOfFrame(marker)) {
      if (length < 8 || at + 2 + 7 > b.length) return 'truncated frame header (SOF)';
      const height = u16be(b, at + 5);
      const width = u16be(b, at + 7);
      // Height 0 defers the size to a DNL marker after the first scan: no decoder that matters writes it.
      if (width === 0 || height === 0) return `frame header declares ${width}x${height}`;
      return { width, height };
    }
    at += 2 + length;
  }
}

function webpSize(b: Uint8Array): { width: number; height: number } | string {
  if (b.length < 30) return 'truncated before its image header';
  const chunk = ascii(b, 12, 16);
  if (chunk === 'VP8 ') {
    // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height (the top 2 bits are scaling).
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) return 'VP8 chunk without its start code';
    return { width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff };
  }
  if (chunk === 'VP8L') {
    if (b[20] !== 0x2f) return 'VP8L chunk without its signature';
    const bits = (b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24)) >>> 0;
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X') return { width: u24le(b, 24) + 1, height: u24le(b, 27) + 1 };
  return `unknown WebP chunk ${JSON.stringify(chunk)}`;
}

function bmpSize(b: Uint8Array): { width: number; height: number } | string {
  if (b.length < 26) return 'truncated before its info header';
  const headerSize = i32le(b, 14);
  if (headerSize === 12) return { width: u16le(b, 18), height: u16le(b, 20) };
  if (headerSize < 40) return `unknown info header of ${headerSize} bytes`;
  // A negative height is a top-down bitmap.
  return { width: Math.abs(i32le(b, 18)), height: Math.abs(i32le(b, 22)) };
}

/** The format and declared size of an image, or why its header cannot be read. */
export function readImageSize(bytes: Uint8Array): ImageSizeResult {
  const format = sniffImageFormat(bytes);
  let size: { width: number; height: number } | string;
  switch (format) {
    case 'png': {
      const head = readPngHeader(bytes);
      if (!head.ok) return { ok: false, reason: `damaged PNG: ${head.reason}` };
      // The chunk framing and every CRC, without inflating: a truncated or corrupted file is refused now.
      const problem = pngStructureProblem(bytes, head.header.colorType);
      if (problem) return { ok: false, reason: `damaged PNG: ${problem}` };
      size = head.header;
      break;
    }
    case 'jpeg': size = jpegSize(bytes); break;
    case 'webp': size = webpSize(bytes); break;
    case 'gif': size = bytes.length < 10 ? 'truncated before its screen descriptor' : { width: u16le(bytes, 6), height: u16le(bytes, 8) }; break;
    case 'bmp': size = bmpSize(bytes); break;
    default: return { ok: false, reason: 'not a PNG, JPEG, WebP, GIF or BMP image' };
  }
  if (typeof size === 'string') return { ok: false, reason: `damaged ${format.toUpperCase()}: ${size}` };
  if (size.width === 0 || size.height === 0) return { ok: false, reason: `damaged ${format.toUpperCase()}: declares ${size.width}x${size.height}` };
  return { ok: true, format, width: size.width, height: size.height };
}

/**
 * Why an input image is refused before decoding (damaged header, or more declared pixels than `maxPixels`),
 * or null.
 */
export function inputImageProblem(bytes: Uint8Array, maxPixels: number): { code: 'INVALID_IMAGE' | 'IMAGE_TOO_LARGE'; message: string } | null {
  const size = readImageSize(bytes);
  if (!size.ok) return { code: 'INVALID_IMAGE', message: size.reason };
  if (size.width * size.height > maxPixels) {
    return {
      code: 'IMAGE_TOO_LARGE',
      message: `${size.width}x${size.height} is ${size.width * size.height} pixels, more than the ${maxPixels} this farm decodes (MAX_INPUT_PIXELS)`,
    };
  }
  return null;
}
