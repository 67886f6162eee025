/**
 * The 8-bit pixel operations A1111's inpainting runs on PIL images and numpy arrays, in the same integer
 * arithmetic so that masks, fills and overlays come out bit for bit the same: OpenCV's bit-exact GaussianBlur
 * of uint8 masks (cv2.GaussianBlur with a 1-D kernel), PIL's premultiplied paste with an L mask, RGBa to RGBA,
 * alpha_composite, and ImageFilter.GaussianBlur (three extended box blurs).
 *
 * Gray masks are `Mask` (one byte per pixel, PIL mode L); colour images are RasterImage (RGB) or `Rgba8`.
 */
import { DarkroomError } from '../errors.js';
import type { RasterImage } from '../formats/png.js';

const f = Math.fround;

/** A PIL mode-L image: width * height bytes. */
export interface Mask {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Four bytes per pixel: RGBA (straight alpha) or RGBa (premultiplied), as the function says. */
export interface Rgba8 {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

// ---------------------------------------------------------------------------------------------------------------
// cv2.GaussianBlur on CV_8U (OpenCV 4's bit-exact fixed-point path): the kernel of getGaussianKernelBitExact
// in 8 fractional bits with error diffusion so it sums to exactly 256, reflect-101 borders, and each output
// (sum(v * k) + 128) >> 8.

function gaussianKernelFixed(n: number, sigma: number): Int32Array {
  const half = (n - 1) >> 1;
  const scale2 = -0.125 / (sigma * sigma);
  const values: number[] = [];
  let sum = 0;
  for (let i = 0, x = 1 - n; i < half; i++, x += 2) {
    const t = Math.exp(x * x * scale2);
    values.push(t);
    sum += t;
  }
  sum = sum * 2 + 1;
  const mul = 1 / sum;
  const out = new Int32Array(n);
  let err = 0;
  let total = 0;
  for (let i = 0; i < half; i++) {
    const adj = values[i]! * mul * 256 + err;
    const v = roundHalfEven(adj);
    err = adj - v;
    out[i] = v;
    out[n - 1 - i] = v;
    total += v;
  }
  out[half] = 256 - total * 2;
  return out;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function reflect101(p: number, len: number): number {
  if (len === 1) return 0;
  while (p < 0 || p >= len) p = p < 0 ? -p : 2 * len - 2 - p;
  return p;
}

/** cv2.GaussianBlur(mask, (ksize, 1), sigma) when `axis` is 'x', (1, ksize) when 'y'. */
export function cvGaussianBlur1d(mask: Mask, ksize: number, sigma: number, axis: 'x' | 'y'): Mask {
  if (ksize < 1 || ksize % 2 === 0) throw new DarkroomError('BAD_PARAMS', `blur kernel size must be odd, got ${ksize}`);
  if (ksize === 1) return mask;
  const k = gaussianKernelFixed(ksize, sigma);
  const r = (ksize - 1) >> 1;
  const { width: w, height: h, data } = mask;
  const out = new Uint8Array(w * h);
  // source offsets of every tap position along the axis, borders reflected once up front
  const len = axis === 'x' ? w : h;
  const stride = axis === 'x' ? 1 : w;
  const offsets = new Int32Array(len + 2 * r);
  for (let i = 0; i < offsets.length; i++) offsets[i] = reflect101(i - r, len) * stride;
  const lines = axis === 'x' ? h : w;
  const lineStride = axis === 'x' ? w : 1;
  for (let line = 0; line < lines; line++) {
    const base = line * lineStride;
    for (let i = 0; i < len; i++) {
      let acc = 128;
      for (let j = 0; j < ksize; j++) acc += data[base + offsets[i + j]!]! * k[j]!;
      out[base + i * stride] = Math.min(255, acc >> 8);
    }
  }
  return { width: w, height: h, data: out };
}

// ---------------------------------------------------------------------------------------------------------------
// PIL

/** DIV255 of libImaging: (v + 128 + ((v + 128) >> 8)) >> 8. */
function div255(v: number): number {
  const t = v + 128;
  return ((t >> 8) + t) >> 8;
}

/**
 * Image.new('RGBa', size).paste(rgb.convert('RGBA').convert('RGBa'), mask=m): an opaque image premultiplied
 * by the mask (paste_mask_L blending onto transparent black).
 */
export function premultipliedByMask(rgb: RasterImage, m: Mask): Rgba8 {
  if (rgb.width !== m.width || rgb.height !== m.height) {
    throw new DarkroomError('MASK_SIZE', `mask is ${m.width}x${m.height} but the image is ${rgb.width}x${rgb.height}`);
  }
  const n = rgb.width * rgb.height;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const a = m.data[i]!;
    for (let c = 0; c < 3; c++) out[i * 4 + c] = div255(rgb.data[i * rgb.channels + c]! * a);
    out[i * 4 + 3] = div255(255 * a);
  }
  return { width: rgb.width, height: rgb.height, data: out };
}

/** PIL convert('RGBa' -> 'RGBA'): un-premultiply with integer division, alpha 0 and 255 left alone. */
export function unpremultiply(img: Rgba8): Rgba8 {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < img.data.length; i += 4) {
    const a = img.data[i + 3]!;
    for (let c = 0; c < 3; c++) {
      const v = img.data[i + c]!;
      out[i + c] = a === 255 || a === 0 ? v : Math.min(255, Math.floor((255 * v) / a));
    }
    out[i + 3] = a;
  }
  return { width: img.width, height: img.height, data: out };
}

/** dst.alpha_composite(src) in place, both RGBA (libImaging AlphaComposite.c, 7 bits of extra precision). */
export function alphaCompositeInPlace(dst: Rgba8, src: Rgba8): void {
  const PRECISION = 7;
  const d = dst.data;
  const s = src.data;
  for (let i = 0; i < d.length; i += 4) {
    const sa = s[i + 3]!;
    if (sa === 0) continue;
    const blend = d[i + 3]! * (255 - sa);
    const outa255 = sa * 255 + blend;
    const coef1 = Math.floor((sa * 255 * 255 * (1 << PRECISION)) / outa255);
    const coef2 = 255 * (1 << PRECISION) - coef1;
    for (let c = 0; c < 3; c++) {
      const tmp = s[i + c]! * coef1 + d[i + c]! * coef2 + (0x80 << PRECISION);
      d[i + c] = (((tmp >> 8) + tmp) >> 8) >> PRECISION;
    }
    const ta = outa255 + 0x80;
    d[i + 3] = ((ta >> 8) + ta) >> 8;
  }
}

/** RGB -> RGBA with alpha 255. */
export function opaque(rgb: RasterImage): Rgba8 {
  const n = rgb.width * rgb.height;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) out[i * 4 + c] = rgb.data[i * rgb.channels + (rgb.channels >= 3 ? c : 0)]!;
    out[i * 4 + 3] = 255;
  }
  return { width: rgb.width, height: rgb.height, data: out };
}

/** RGBA -> RGB (alpha dropped). */
export function dropAlpha(img: Rgba8): RasterImage {
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = img.data[i * 4 + c]!;
  return { width: img.width, height: img.height, channels: 3, data: out };
}

/** BoxBlur.c's _gaussian_blur_radius: the box radius of one of `passes` box blurs approximating sigma = radius. */
function boxRadius(radius: number, passes: number): number {
  const sigma2 = f(f(radius * radius) / passes);
  const L = f(Math.sqrt(12.0 * sigma2 + 1.0));
  const l = f(Math.floor((L - 1.0) / 2.0));
  let a = f(f(2 * l + 1) * f(f(l * f(l + 1)) - f(3 * sigma2)));
  a = f(a / f(6 * f(sigma2 - f(f(l + 1) * f(l + 1)))));
  return f(l + a);
}

/** ImagingHorizontalBoxBlur on 4-byte pixels, `rows` rows of `len` pixels. */
function horizontalBoxBlur(data: Uint8Array, len: number, rows: number, floatRadius: number): void {
  const radius = Math.trunc(floatRadius);
  const ww = Math.trunc(f(16777216 / f(f(floatRadius * 2) + 1)));
  const fw = Math.trunc((16777216 - (radius * 2 + 1) * ww) / 2);
  const edgeA = Math.min(radius + 1, len);
  const edgeB = Math.max(len - radius - 1, 0);
  const lastx = len - 1;
  // per output x: the pixel leaving the window, the one entering it, and the two partly covered ends.
  // ImagingLineBoxBlur's three loops, in either edge order, come down to: below edgeA the leaving pixel is
  // the first one, from edgeB on the entering one is the last.
  const sub = new Int32Array(len);
  const add = new Int32Array(len);
  const right = new Int32Array(len);
  for (let x = 0; x < len; x++) {
    sub[x] = x < edgeA ? 0 : x - radius - 1;
    add[x] = x >= edgeB ? lastx : x + radius;
    right[x] = x >= edgeB ? lastx : x + radius + 1;
  }
  const line = new Uint8Array(len * 4);
  for (let y = 0; y < rows; y++) {
    const base = y * len * 4;
    for (let c = 0; c < 4; c++) {
      let acc = data[base + c]! * (radius + 1);
      for (let x = 0; x < edgeA - 1; x++) acc += data[base + x * 4 + c]!;
      acc += data[base + lastx * 4 + c]! * (radius - edgeA + 1);
      for (let x = 0; x < len; x++) {
        acc += data[base + add[x]! * 4 + c]! - data[base + sub[x]! * 4 + c]!;
        const bulk = acc * ww + (data[base + sub[x]! * 4 + c]! + data[base + right[x]! * 4 + c]!) * fw;
        line[x * 4 + c] = Math.floor((bulk + 8388608) / 16777216) & 0xff;
      }
    }
    data.set(line, base);
  }
}

function transpose4(data: Uint8Array, w: number, h: number): Uint8Array {
  const out = new Uint8Array(data.length);
  // whole 4-byte pixels at a time (both buffers are our own, so aligned)
  const src = new Uint32Array(data.buffer, data.byteOffset, w * h);
  const dst = new Uint32Array(out.buffer, 0, w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) dst[x * h + y] = src[y * w + x]!;
  return out;
}

/** img.filter(ImageFilter.GaussianBlur(radius)) on a 4-byte image: three box blurs per axis (Pillow 9.5). */
export function pilGaussianBlur(img: Rgba8, radius: number): Rgba8 {
  const passes = 3;
  const r = boxRadius(radius, passes);
  const data = Uint8Array.from(img.data);
  if (r === 0) return { width: img.width, height: img.height, data };
  for (let i = 0; i < passes; i++) horizontalBoxBlur(data, img.width, img.height, r);
  const t = transpose4(data, img.width, img.height);
  for (let i = 0; i < passes; i++) horizontalBoxBlur(t, img.height, img.width, r);
  return { width: img.width, height: img.height, data: transpose4(t, img.height, img.width) };
}
