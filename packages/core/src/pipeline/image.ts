/**
 * Conversions between the VAE's float images and 8-bit pixels, exactly as A1111 does them, and the resizes
 * img2img and hires fix need: PIL's separable resampling (Lanczos, bilinear) in 8-bit fixed point, A1111's
 * resize modes, and torch's interpolate for latents.
 */
import { DarkroomError } from '../errors.js';
import { float32, type Float32Tensor } from '../tensor.js';
import type { RasterImage } from '../formats/png.js';
import type { LatentInterpolation } from '../catalog/upscalers.js';

const f = Math.fround;

/**
 * One decoded image (3,H,W) in [-1,1] to RGB bytes (H,W,3): clamp((x+1)/2, 0, 1) * 255 in float32, then
 * truncated toward zero (numpy astype(uint8)), as modules/processing.py does. Rounding would differ at ~45% of pixels.
 */
export function decodedToRgb8(decoded: Float32Array, height: number, width: number): RasterImage {
  const plane = height * width;
  if (decoded.length !== 3 * plane) throw new DarkroomError('IMAGE_SHAPE', `expected 3x${height}x${width} values, got ${decoded.length}`);
  const data = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      let v = f(f(decoded[c * plane + i]! + 1) / 2);
      v = v < 0 ? 0 : v > 1 ? 1 : v;
      data[i * 3 + c] = Math.trunc(f(255 * v));
    }
  }
  return { width, height, channels: 3, data };
}

/** Any 8-bit image to RGB (gray replicated, alpha dropped as PIL's convert('RGB') does). */
export function toRgb(img: RasterImage): RasterImage {
  if (img.channels === 3) return img;
  const n = img.width * img.height;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) data[i * 3 + c] = img.data[i * img.channels + (img.channels >= 3 ? c : 0)]!;
  }
  return { width: img.width, height: img.height, channels: 3, data };
}

/** RGB bytes to the VAE's input (1,3,H,W): x/255 in float32, then x*2-1 (images_tensor_to_samples). */
export function rgbToVaeInput(img: RasterImage): Float32Tensor {
  const rgb = toRgb(img);
  const plane = rgb.width * rgb.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = f(f(f(rgb.data[i * 3 + c]! / 255) * 2) - 1);
  }
  return float32([1, 3, rgb.height, rgb.width], out);
}

// ---------------------------------------------------------------------------------------------------------------
// PIL's resampling (libImaging/Resample.c): separable convolution, coefficients in 22-bit fixed point.

export type ResampleFilter = 'lanczos' | 'bilinear' | 'bicubic';

const FILTERS: Record<ResampleFilter, { support: number; fn: (x: number) => number }> = {
  lanczos: {
    support: 3,
    fn: (x) => (x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0),
  },
  bilinear: {
    support: 1,
    fn: (x) => {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

const PRECISION_BITS = 32 - 8 - 2;

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [min, count] per output
  kk: Int32Array;
}

function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number, filter: ResampleFilter): Coeffs {
  const { support: baseSupport, fn } = FILTERS[filter];
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = baseSupport * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const pre = new Float64Array(outSize * ksize);
  const bounds = new Int32Array(outSize * 2);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = fn((x + xmin - center + 0.5) * ss);
      pre[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) if (ww !== 0) pre[xx * ksize + x] = pre[xx * ksize + x]! / ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  const kk = new Int32Array(pre.length);
  for (let i = 0; i < pre.length; i++) {
    const v = pre[i]!;
    kk[i] = Math.trunc(v * (1 << PRECISION_BITS) + (v < 0 ? -0.5 : 0.5));
  }
  return { ksize, bounds, kk };
}

function clip8(v: number): number {
  const s = Math.floor(v / (1 << PRECISION_BITS));
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

function resampleHorizontal(img: RasterImage, outW: number, c: Coeffs): RasterImage {
  const ch = img.channels;
  const out = new Uint8Array(outW * img.height * ch);
  for (let y = 0; y < img.height; y++) {
    for (let xx = 0; xx < outW; xx++) {
      const xmin = c.bounds[xx * 2]!;
      const xmax = c.bounds[xx * 2 + 1]!;
      for (let b = 0; b < ch; b++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let x = 0; x < xmax; x++) ss += img.data[(y * img.width + x + xmin) * ch + b]! * c.kk[xx * c.ksize + x]!;
        out[(y * outW + xx) * ch + b] = clip8(ss);
      }
    }
  }
  return { width: outW, height: img.height, channels: img.channels, data: out };
}

function resampleVertical(img: RasterImage, outH: number, c: Coeffs): RasterImage {
  const ch = img.channels;
  const out = new Uint8Array(img.width * outH * ch);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = c.bounds[yy * 2]!;
    const ymax = c.bounds[yy * 2 + 1]!;
    for (let x = 0; x < img.width; x++) {
      for (let b = 0; b < ch; b++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < ymax; y++) ss += img.data[((y + ymin) * img.width + x) * ch + b]! * c.kk[yy * c.ksize + y]!;
        out[(yy * img.width + x) * ch + b] = clip8(ss);
      }
    }
  }
  return { width: img.width, height: outH, channels: img.channels, data: out };
}

/** PIL Image.resize((w, h), filter, box) for 8-bit images. `box` = [x0, y0, x1, y1] of the source. */
export function resizeImage(
  img: RasterImage,
  width: number,
  height: number,
  filter: ResampleFilter = 'lanczos',
  box: readonly [number, number, number, number] = [0, 0, img.width, img.height],
): RasterImage {
  if (width < 1 || height < 1) throw new DarkroomError('IMAGE_SHAPE', `cannot resize to ${width}x${height}`);
  if (width === img.width && height === img.height && box[0] === 0 && box[1] === 0 && box[2] === img.width && box[3] === img.height) {
    return img;
  }
  const needH = width !== img.width || box[0] !== 0 || box[2] !== width;
  const needV = height !== img.height || box[1] !== 0 || box[3] !== height;
  let out = img;
  if (needH) out = resampleHorizontal(out, width, precomputeCoeffs(img.width, box[0], box[2], width, filter));
  if (needV) out = resampleVertical(out, height, precomputeCoeffs(img.height, box[1], box[3], height, filter));
  return out;
}

/** PIL's NEAREST resize: source pixel floor((x + 0.5) * in / out). */
export function resizeNearest(img: RasterImage, width: number, height: number): RasterImage {
  const ch = img.channels;
  const out = new Uint8Array(width * height * ch);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / width));
      for (let b = 0; b < ch; b++) out[(y * width + x) * ch + b] = img.data[(sy * img.width + sx) * ch + b]!;
    }
  }
  return { width, height, channels: img.channels, data: out };
}

function blank(width: number, height: number, channels: RasterImage['channels']): RasterImage {
  return { width, height, channels, data: new Uint8Array(width * height * channels) };
}

/** Pastes `src` onto `dst` at (x, y), clipping at the edges (PIL Image.paste without a mask). */
function paste(dst: RasterImage, src: RasterImage, x0: number, y0: number): void {
  const ch = dst.channels;
  for (let y = 0; y < src.height; y++) {
    const ty = y + y0;
    if (ty < 0 || ty >= dst.height) continue;
    for (let x = 0; x < src.width; x++) {
      const tx = x + x0;
      if (tx < 0 || tx >= dst.width) continue;
      for (let b = 0; b < ch; b++) dst.data[(ty * dst.width + tx) * ch + b] = src.data[(y * src.width + x) * ch + b]!;
    }
  }
}

/**
 * A1111's images.resize_image for modes 0 (just resize), 1 (crop and resize), 2 (resize and fill), with PIL's
 * Lanczos filter (no upscaler configured for img2img).
 */
export function resizeForMode(img: RasterImage, mode: number, width: number, height: number): RasterImage {
  const im = toRgb(img);
  if (mode === 0) return resizeImage(im, width, height);
  const ratio = width / height;
  const srcRatio = im.width / im.height;
  if (mode === 1) {
    const srcW = ratio > srcRatio ? width : Math.floor((im.width * height) / im.height);
    const srcH = ratio <= srcRatio ? height : Math.floor((im.height * width) / im.width);
    const resized = resizeImage(im, srcW, srcH);
    const res = blank(width, height, 3);
    paste(res, resized, Math.floor(width / 2) - Math.floor(srcW / 2), Math.floor(height / 2) - Math.floor(srcH / 2));
    return res;
  }
  if (mode === 2) {
    const srcW = ratio < srcRatio ? width : Math.floor((im.width * height) / im.height);
    const srcH = ratio >= srcRatio ? height : Math.floor((im.height * width) / im.width);
    const resized = resizeImage(im, srcW, srcH);
    const res = blank(width, height, 3);
    paste(res, resized, Math.floor(width / 2) - Math.floor(srcW / 2), Math.floor(height / 2) - Math.floor(srcH / 2));
    if (ratio < srcRatio) {
      const fill = Math.floor(height / 2) - Math.floor(srcH / 2);
      if (fill > 0) {
        paste(res, resizeImage(resized, width, fill, 'lanczos', [0, 0, width, 0]), 0, 0);
        paste(res, resizeImage(resized, width, fill, 'lanczos', [0, resized.height, width, resized.height]), 0, fill + srcH);
      }
    } else if (ratio > srcRatio) {
      const fill = Math.floor(width / 2) - Math.floor(srcW / 2);
      if (fill > 0) {
        paste(res, resizeImage(resized, fill, height, 'lanczos', [0, 0, 0, height]), 0, 0);
        paste(res, resizeImage(resized, fill, height, 'lanczos', [resized.width, 0, resized.width, height]), fill + srcW, 0);
      }
    }
    return res;
  }
  throw new DarkroomError('BAD_PARAMS', `resize_mode ${mode} is not an image resize (3 is a latent upscale)`);
}

// ---------------------------------------------------------------------------------------------------------------
// torch.nn.functional.interpolate on latents (N,C,H,W), align_corners=False, no antialias.


export function interpolateLatent(x: Float32Tensor, outH: number, outW: number, mode: LatentInterpolation): Float32Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out = new Float32Array(n * c * outH * outW);
  const sh = f(h / outH);
  const sw = f(w / outW);
  const nearestIndex = (dst: number, scale: number, size: number, exact: boolean): number =>
    Math.min(Math.floor(f((exact ? dst + 0.5 : dst) * scale)), size - 1);
  const linear = (dst: number, scale: number, size: number): [number, number, number] => {
    let src = f(f(scale * f(dst + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const i0 = Math.floor(src);
    const i1 = i0 < size - 1 ? i0 + 1 : i0;
    return [i0, i1, f(src - i0)];
  };
  const A = -0.75;
  const cc1 = (t: number): number => f(f(f(f(f(A + 2) * t) - f(A + 3)) * t) * t) + 1;
  const cc2 = (t: number): number => f(f(f(f(f(f(A * t) - f(5 * A)) * t) + f(8 * A)) * t) - f(4 * A));
  const cubic = (dst: number, scale: number): [number, number[]] => {
    const src = f(f(scale * f(dst + 0.5)) - 0.5);
    const i0 = Math.floor(src);
    const t = f(src - i0);
    return [i0, [cc2(f(t + 1)), cc1(t), cc1(f(1 - t)), cc2(f(2 - t))]];
  };
  const clampIndex = (i: number, size: number): number => (i < 0 ? 0 : i >= size ? size - 1 : i);
  for (let p = 0; p < n * c; p++) {
    const src = x.data.subarray(p * h * w, (p + 1) * h * w);
    if (mode === 'bicubic') {
      // torch's upsample_bicubic2d: 4x4 taps with clamped indices, rows interpolated first, then the column
      for (let y = 0; y < outH; y++) {
        const [y0, wy] = cubic(y, sh);
        for (let xx = 0; xx < outW; xx++) {
          const [x0, wx] = cubic(xx, sw);
          let acc = 0;
          for (let j = 0; j < 4; j++) {
            const row = clampIndex(y0 - 1 + j, h) * w;
            let r = 0;
            for (let i = 0; i < 4; i++) r = f(r + f(src[row + clampIndex(x0 - 1 + i, w)]! * wx[i]!));
            acc = f(acc + f(r * wy[j]!));
          }
          out[p * outH * outW + y * outW + xx] = acc;
        }
      }
      continue;
    }
    for (let y = 0; y < outH; y++) {
      for (let xx = 0; xx < outW; xx++) {
        let v: number;
        if (mode === 'bilinear') {
          const [y0, y1, ly] = linear(y, sh, h);
          const [x0, x1, lx] = linear(xx, sw, w);
          const hy = f(1 - ly);
          const hx = f(1 - lx);
          v = f(
            f(hy * f(f(hx * src[y0 * w + x0]!) + f(lx * src[y0 * w + x1]!))) +
              f(ly * f(f(hx * src[y1 * w + x0]!) + f(lx * src[y1 * w + x1]!))),
          );
        } else {
          const exact = mode === 'nearest-exact';
          v = src[nearestIndex(y, sh, h, exact) * w + nearestIndex(xx, sw, w, exact)]!;
        }
        out[p * outH * outW + y * outW + xx] = v;
      }
    }
  }
  return float32([n, c, outH, outW], out);
}
