/**
 * A1111's embedding-in-pixels scheme (`modules/textual_inversion/image_embedding.py`), which survives metadata
 * stripping: the zlib-compressed JSON is split into low and high nibbles, each laid out as an (h, W, 3) block,
 * decorated in the high nibble (ellipses shaded from the first vector), scrambled in the low nibble with an LCG
 * stream, and pasted left and right of the picture with one black column between.
 */
import { inflateSync } from 'node:zlib';
import { deflate } from 'pako';
import { DarkroomError } from '../../errors.js';
import type { RasterImage } from '../../formats/png.js';

/** A1111's `lcg()`: state = (1664525·state + 1013904223) mod 2^32, yielding state mod 255. */
function* lcg(): Generator<number> {
  let state = 0;
  for (;;) {
    state = (Math.imul(1664525, state) + 1013904223) >>> 0;
    yield state % 255;
  }
}

/** XORs every byte of a block with the low nibble of a fresh LCG stream, in row-major order. */
export function xorBlock(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(block.length);
  const g = lcg();
  for (let i = 0; i < block.length; i++) out[i] = block[i]! ^ (g.next().value! & 0x0f);
  return out;
}

function toRgb(img: RasterImage): Uint8Array {
  const n = img.width * img.height;
  if (img.channels === 3) return img.data;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      // PIL's convert('RGB') replicates gray and drops alpha without compositing.
      out[i * 3 + c] = img.channels <= 2 ? img.data[i * img.channels]! : img.data[i * img.channels + c]!;
    }
  }
  return out;
}

/** A1111 `extract_image_data_embed`: the embedded bytes (zlib-inflated JSON), or undefined when there are none. */
export function extractPixelPayload(img: RasterImage, file: string): Uint8Array | undefined {
  const rgb = toRgb(img);
  const { width: w, height: h } = img;
  // crop_black: the bounding box of pixels whose three channels are all > 0 (the whole image when none is).
  let c0 = w,
    c1 = -1,
    r0 = h,
    r1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 3;
      if (rgb[p]! > 0 && rgb[p + 1]! > 0 && rgb[p + 2]! > 0) {
        if (x < c0) c0 = x;
        if (x > c1) c1 = x;
        if (y < r0) r0 = y;
        if (y > r1) r1 = y;
      }
    }
  }
  if (c1 < 0) (c0 = 0), (c1 = w - 1), (r0 = 0), (r1 = h - 1);
  const cw = c1 - c0 + 1;
  const ch = r1 - r0 + 1;
  const nib = (x: number, y: number, c: number): number => rgb[((r0 + y) * w + (c0 + x)) * 3 + c]! & 0x0f;
  const blackCols: number[] = [];
  for (let x = 0; x < cw; x++) {
    let sum = 0;
    for (let y = 0; y < ch && sum === 0; y++) sum += nib(x, y, 0) + nib(x, y, 1) + nib(x, y, 2);
    if (sum === 0) blackCols.push(x);
  }
  if (blackCols.length < 2) return undefined;
  const first = blackCols[0]!;
  const last = blackCols[blackCols.length - 1]!;
  const block = (x0: number, x1: number): Uint8Array => {
    const out = new Uint8Array(ch * (x1 - x0) * 3);
    let i = 0;
    for (let y = 0; y < ch; y++) for (let x = x0; x < x1; x++) for (let c = 0; c < 3; c++) out[i++] = nib(x, y, c);
    return xorBlock(out);
  };
  const lo = block(0, first);
  const hi = block(last + 1, cw);
  if (lo.length !== hi.length) {
    throw new DarkroomError('EMBEDDING_BAD_PIXEL_DATA', `${file}: the two embedded data blocks differ in size`, { file });
  }
  const bytes = new Uint8Array(lo.length);
  for (let i = 0; i < bytes.length; i++) bytes[i] = ((hi[i]! << 4) | lo[i]!) & 0xff;
  try {
    // The blocks are padded by repetition; inflate stops at the end of the zlib stream and ignores the rest.
    return new Uint8Array(inflateSync(bytes));
  } catch {
    throw new DarkroomError('EMBEDDING_BAD_PIXEL_DATA', `${file}: embedded pixel data does not inflate`, { file });
  }
}

/** numpy.resize: repeats the data cyclically to `size` elements. */
function cyclicResize(src: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = src[i % src.length]!;
  return out;
}

/**
 * The high-nibble decoration of one block: filled ellipses (6 px on an 8 px grid, alternate rows shifted by 4)
 * shaded from `sequence`. Decoding discards it, but A1111's output pixels carry it: the disc test below gives
 * Pillow's 7x7 ellipse stamp, and the stamps never overlap, so XOR equals Pillow's overwrite (parity:training
 * save/png compares whole images).
 */
function styleBlock(block: Uint8Array, h: number, w: number, sequence: Uint8Array): void {
  let i = 0;
  for (let x = -6; x < w; x += 8) {
    let yi = 0;
    for (let y = -6; y < h; y += 8, yi++) {
      const off = yi % 2 === 0 ? 4 : 0;
      const shade = sequence.length ? sequence[i % sequence.length]! & 0xf0 : 0;
      i++;
      const x0 = x + off;
      for (let py = Math.max(0, y); py <= Math.min(h - 1, y + 6); py++) {
        for (let px = Math.max(0, x0); px <= Math.min(w - 1, x0 + 6); px++) {
          const dx = (px - (x0 + 3)) / 3.5;
          const dy = (py - (y + 3)) / 3.5;
          if (dx * dx + dy * dy > 1) continue;
          const p = (py * w + px) * 3;
          block[p] ^= shade;
          block[p + 1] ^= shade;
          block[p + 2] ^= shade;
        }
      }
    }
  }
}

/** The shades A1111 derives from the first vector: |v| / max|v| · 255, first 1024 values, as uint8. */
export function edgeStyle(firstRow: Float32Array): Uint8Array {
  const seq = firstRow.subarray(0, 1024);
  let max = 0;
  for (const v of seq) max = Math.max(max, Math.abs(v));
  return Uint8Array.from(seq, (v) => (max > 0 ? Math.trunc((Math.abs(v) / max) * 255) : 0));
}

/**
 * `zlib.compress(payload, 9)` as A1111 runs it. pako is a faithful port of zlib 1.2's deflate and gives the bytes
 * CPython's zlib gives, and so the same pixels; Node's bundled zlib compresses differently (fewer bytes, narrower
 * side blocks).
 */
export function compressPayload(json: string): Uint8Array {
  return deflate(new TextEncoder().encode(json), { level: 9 });
}

/** A1111 `insert_image_data_embed`: returns a wider RGB image carrying `json` in its side blocks. */
export function insertPixelPayload(img: RasterImage, json: string, firstRow: Float32Array): RasterImage {
  return insertCompressedPayload(img, compressPayload(json), firstRow);
}

/**
 * The layout step of `insert_image_data_embed`, given the zlib stream. Kept apart because the stream depends on
 * the deflate implementation (Node's bundled zlib does not emit the bytes CPython's zlib does), while the layout
 * does not.
 */
export function insertCompressedPayload(img: RasterImage, compressed: Uint8Array, firstRow: Float32Array): RasterImage {
  const h = img.height;
  const d = 3;
  let size = compressed.length + (h - (compressed.length % h));
  size = size + (h * d - (size % (h * d)));
  const lowRaw = cyclicResize(Uint8Array.from(compressed, (b) => b & 0x0f), size);
  const highRaw = cyclicResize(Uint8Array.from(compressed, (b) => b >> 4), size);
  const bw = size / (h * d);
  const seq = edgeStyle(firstRow);
  styleBlock(lowRaw, h, bw, seq);
  styleBlock(highRaw, h, bw, seq.slice().reverse());
  const low = xorBlock(lowRaw);
  const high = xorBlock(highRaw);
  const rgb = toRgb(img);
  const outW = bw + img.width + bw + 2;
  const out = new Uint8Array(outW * h * 3);
  for (let y = 0; y < h; y++) {
    out.set(low.subarray(y * bw * 3, (y + 1) * bw * 3), y * outW * 3);
    out.set(rgb.subarray(y * img.width * 3, (y + 1) * img.width * 3), (y * outW + bw + 1) * 3);
    out.set(high.subarray(y * bw * 3, (y + 1) * bw * 3), (y * outW + bw + 1 + img.width + 1) * 3);
  }
  return { width: outW, height: h, channels: 3, data: out };
}
