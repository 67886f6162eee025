/**
 * Inpainting as A1111's StableDiffusionProcessingImg2Img.init prepares it (modules/processing.py and
 * modules/masking.py, v1.10.1): the binary mask, invert, Gaussian blur per axis, "only masked" crop with padding
 * (inpaint_full_res), the overlay of the original pixels outside the mask, the masked-content fill, the latent
 * mask the sampler blends with, and the 5-channel image conditioning of inpainting checkpoints. The final
 * composite (apply_overlay) is here too. Everything is pure: images in, images and tensors out.
 */
import { DarkroomError } from '../errors.js';
import type { RasterImage } from '../formats/png.js';
import type { InfotextValue } from '../formats/infotext.js';
import { float32, floatToHalf, halfToFloat, type Float32Tensor } from '../tensor.js';
import { resizeForMode, resizeImage, toRgb } from './image.js';
import {
  alphaCompositeInPlace,
  cvGaussianBlur1d,
  dropAlpha,
  opaque,
  pilGaussianBlur,
  premultipliedByMask,
  unpremultiply,
  type Mask,
  type Rgba8,
} from './mask-pixels.js';

const f = Math.fround;

export type { Mask, Rgba8 };

export interface InpaintParams {
  readonly mask: RasterImage;
  /** Replaces the processed mask for the fill and the latent blend (A1111's `latent_mask`). */
  readonly latentMask?: RasterImage | undefined;
  readonly maskBlurX: number;
  readonly maskBlurY: number;
  readonly maskRound: boolean;
  /** 0 fill, 1 original, 2 latent noise, 3 latent nothing. */
  readonly inpaintingFill: number;
  readonly inpaintFullRes: boolean;
  readonly inpaintFullResPadding: number;
  readonly invert: boolean;
}

/** (x1, y1, x2, y2), x2/y2 exclusive. */
export type CropRegion = readonly [number, number, number, number];

/** What init() derives from the mask before it looks at the init images. */
export interface MaskPlan {
  /** The mask at the processing size (undefined when "only masked" found a blank mask and fell back to img2img). */
  readonly imageMask: Mask | undefined;
  /** Where the overlay keeps the original: its inverse is the overlay's alpha. */
  readonly maskForOverlay: Mask | undefined;
  readonly cropRegion: CropRegion | undefined;
  /** (x, y, w, h) the result is pasted back at (inpaint_full_res). */
  readonly pasteTo: readonly [number, number, number, number] | undefined;
  /** The mask the fill and the latent blend use: `latent_mask` when given, else `imageMask`. */
  readonly latentMask: RasterImage | undefined;
  /** extra_generation_params entries in A1111's insertion order. */
  readonly extra: ReadonlyArray<readonly [string, InfotextValue]>;
}

/** PIL convert('L') of an 8-bit image: ITU-R 601-2 luma in 16-bit fixed point. */
export function toGray(img: RasterImage): Mask {
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  const ch = img.channels;
  for (let i = 0; i < n; i++) {
    if (ch <= 2) out[i] = img.data[i * ch]!;
    else {
      const r = img.data[i * ch]!;
      const g = img.data[i * ch + 1]!;
      const b = img.data[i * ch + 2]!;
      out[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    }
  }
  return { width: img.width, height: img.height, data: out };
}

function grayRaster(m: Mask): RasterImage {
  return { width: m.width, height: m.height, channels: 1, data: m.data };
}

/** A gray RGB image (what resize_image gives for a mask) back to L. */
function firstChannel(img: RasterImage): Mask {
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = img.data[i * img.channels]!;
  return { width: img.width, height: img.height, data: out };
}

/** images.resize_image for an L image: modes 1 and 2 paste into RGB, so the result is gray RGB; 3 goes the mode-2 way. */
function resizeMask(m: Mask, mode: number, width: number, height: number): Mask {
  if (m.width === width && m.height === height && mode === 0) return m;
  return firstChannel(resizeForMode(grayRaster(m), mode === 3 ? 2 : mode, width, height));
}

/** create_binary_mask: an RGBA mask with any transparency is its alpha (thresholded at 128 when rounding), else L. */
export function binaryMask(img: RasterImage, round: boolean): Mask {
  if (img.channels === 4) {
    const n = img.width * img.height;
    let opaqueOnly = true;
    for (let i = 0; i < n && opaqueOnly; i++) if (img.data[i * 4 + 3] !== 255) opaqueOnly = false;
    if (!opaqueOnly) {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const a = img.data[i * 4 + 3]!;
        out[i] = round ? (a > 128 ? 255 : 0) : a;
      }
      return { width: img.width, height: img.height, data: out };
    }
  }
  return toGray(img);
}

function invertMask(m: Mask): Mask {
  return { width: m.width, height: m.height, data: Uint8Array.from(m.data, (v) => 255 - v) };
}

/** The A1111 kernel size for a blur radius: 2 * int(2.5 * r + 0.5) + 1. */
function kernelSize(blur: number): number {
  return 2 * Math.trunc(2.5 * blur + 0.5) + 1;
}

/** masking.get_crop_region_v2: the bounding box of nonzero pixels, grown by `pad`; undefined for a blank mask. */
export function cropRegion(m: Mask, pad: number): CropRegion | undefined {
  let x1 = m.width;
  let y1 = m.height;
  let x2 = 0;
  let y2 = 0;
  for (let y = 0; y < m.height; y++) {
    for (let x = 0; x < m.width; x++) {
      if (m.data[y * m.width + x] === 0) continue;
      if (x < x1) x1 = x;
      if (y < y1) y1 = y;
      if (x + 1 > x2) x2 = x + 1;
      if (y + 1 > y2) y2 = y + 1;
    }
  }
  if (x2 === 0) return undefined;
  if (!pad) return [x1, y1, x2, y2];
  return [Math.max(x1 - pad, 0), Math.max(y1 - pad, 0), Math.min(x2 + pad, m.width), Math.min(y2 + pad, m.height)];
}

/** masking.expand_crop_region: grows the region to the processing size's aspect ratio, within the image. */
export function expandCropRegion(region: CropRegion, width: number, height: number, imageWidth: number, imageHeight: number): CropRegion {
  let [x1, y1, x2, y2] = region;
  const ratioCrop = (x2 - x1) / (y2 - y1);
  const ratioProcessing = width / height;
  if (ratioCrop > ratioProcessing) {
    const desired = (x2 - x1) / ratioProcessing;
    const diff = Math.trunc(desired - (y2 - y1));
    y1 -= Math.floor(diff / 2);
    y2 += diff - Math.floor(diff / 2);
    if (y2 >= imageHeight) {
      const d = y2 - imageHeight;
      y2 -= d;
      y1 -= d;
    }
    if (y1 < 0) {
      y2 -= y1;
      y1 -= y1;
    }
    if (y2 >= imageHeight) y2 = imageHeight;
  } else {
    const desired = (y2 - y1) * ratioProcessing;
    const diff = Math.trunc(desired - (x2 - x1));
    x1 -= Math.floor(diff / 2);
    x2 += diff - Math.floor(diff / 2);
    if (x2 >= imageWidth) {
      const d = x2 - imageWidth;
      x2 -= d;
      x1 -= d;
    }
    if (x1 < 0) {
      x2 -= x1;
      x1 -= x1;
    }
    if (x2 >= imageWidth) x2 = imageWidth;
  }
  return [x1, y1, x2, y2];
}

function cropMask(m: Mask, [x1, y1, x2, y2]: CropRegion): Mask {
  const w = x2 - x1;
  const h = y2 - y1;
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = x + x1;
      const sy = y + y1;
      out[y * w + x] = sx >= 0 && sy >= 0 && sx < m.width && sy < m.height ? m.data[sy * m.width + sx]! : 0;
    }
  }
  return { width: w, height: h, data: out };
}

/** PIL Image.crop: pixels outside the image are black. */
export function cropImage(img: RasterImage, [x1, y1, x2, y2]: CropRegion): RasterImage {
  const rgb = toRgb(img);
  const w = x2 - x1;
  const h = y2 - y1;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = x + x1;
      const sy = y + y1;
      if (sx < 0 || sy < 0 || sx >= rgb.width || sy >= rgb.height) continue;
      for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = rgb.data[(sy * rgb.width + sx) * 3 + c]!;
    }
  }
  return { width: w, height: h, channels: 3, data: out };
}

/** The mask half of init(): everything that does not depend on the init images. */
export function planMask(p: InpaintParams, width: number, height: number, resizeMode: number): MaskPlan {
  const extra: Array<[string, InfotextValue]> = [];
  let mask = binaryMask(p.mask, p.maskRound);
  if (p.invert) {
    mask = invertMask(mask);
    extra.push(['Mask mode', 'Inpaint not masked']);
  }
  if (p.maskBlurX > 0) mask = cvGaussianBlur1d(mask, kernelSize(p.maskBlurX), p.maskBlurX, 'x');
  if (p.maskBlurY > 0) mask = cvGaussianBlur1d(mask, kernelSize(p.maskBlurY), p.maskBlurY, 'y');
  if (p.maskBlurX > 0 || p.maskBlurY > 0) extra.push(['Mask blur', p.maskBlurX === p.maskBlurY ? p.maskBlurX : null]);

  let imageMask: Mask | undefined;
  let maskForOverlay: Mask | undefined;
  let crop: CropRegion | undefined;
  let pasteTo: MaskPlan['pasteTo'];
  if (p.inpaintFullRes) {
    const region = cropRegion(mask, p.inpaintFullResPadding);
    if (region) {
      crop = expandCropRegion(region, width, height, mask.width, mask.height);
      maskForOverlay = mask;
      imageMask = resizeMask(cropMask(mask, crop), 2, width, height);
      pasteTo = [crop[0], crop[1], crop[2] - crop[0], crop[3] - crop[1]];
      extra.push(['Inpaint area', 'Only masked'], ['Masked area padding', p.inpaintFullResPadding]);
    }
    // a blank mask: A1111 says "Unable to perform Inpaint Only mask" and runs plain img2img
  } else {
    imageMask = resizeMask(mask, resizeMode, width, height);
    maskForOverlay = { ...imageMask, data: Uint8Array.from(imageMask.data, (v) => Math.min(255, v * 2)) };
  }
  const latentMask = p.latentMask ?? (imageMask ? grayRaster(imageMask) : undefined);
  return { imageMask, maskForOverlay, cropRegion: crop, pasteTo, latentMask, extra };
}

/** masking.fill: the masked area painted from ever less blurred copies of the unmasked pixels. */
export function fillMasked(image: RasterImage, mask: Mask): RasterImage {
  const masked = premultipliedByMask(toRgb(image), invertMask(mask));
  const out: Rgba8 = { width: image.width, height: image.height, data: new Uint8Array(image.width * image.height * 4) };
  for (const [radius, repeats] of [[256, 1], [64, 1], [16, 2], [4, 4], [2, 2], [0, 1]] as const) {
    const blurred = unpremultiply(pilGaussianBlur(masked, radius));
    for (let i = 0; i < repeats; i++) alphaCompositeInPlace(out, blurred);
  }
  return dropAlpha(out);
}

/** One init image through init(): the image the VAE encodes (processing size) and its overlay (original size). */
export interface PreparedInit {
  readonly image: RasterImage;
  readonly overlay: Rgba8 | undefined;
}

/**
 * The per-image part of init() for a flattened init image. `state.maskForOverlay` is replaced when it has to be
 * resized to the image, as A1111 replaces self.mask_for_overlay (later images then see the resized one).
 */
export function prepareInitImage(
  flattened: RasterImage,
  plan: MaskPlan,
  state: { maskForOverlay: Mask | undefined },
  p: { inpaintingFill: number; width: number; height: number; resizeMode: number },
): PreparedInit {
  let image = flattened;
  if (!plan.cropRegion && p.resizeMode !== 3) image = resizeForMode(image, p.resizeMode, p.width, p.height);
  let overlay: Rgba8 | undefined;
  if (plan.imageMask && state.maskForOverlay) {
    if (state.maskForOverlay.width !== image.width || state.maskForOverlay.height !== image.height) {
      state.maskForOverlay = resizeMask(state.maskForOverlay, p.resizeMode, image.width, image.height);
    }
    overlay = unpremultiply(premultipliedByMask(toRgb(image), invertMask(state.maskForOverlay)));
  }
  if (plan.cropRegion) image = resizeForMode(cropImage(image, plan.cropRegion), 2, p.width, p.height);
  if (plan.imageMask && p.inpaintingFill !== 1 && plan.latentMask) image = fillMasked(image, toGray(plan.latentMask));
  return { image: toRgb(image), overlay };
}

/** Latent blend masks: `mask` keeps the init latent, `nmask` the sample (both (4, h, w), float16 values as A1111's). */
export interface LatentBlend {
  readonly mask: Float32Tensor;
  readonly nmask: Float32Tensor;
}

const half = (v: number): number => halfToFloat(floatToHalf(v));

/**
 * The latent mask of init(): latent_mask as RGB, resized to the latent size with PIL's default (bicubic), its red
 * channel / 255, rounded when mask_round, tiled over the latent channels, in the model dtype (float16).
 */
export function latentBlend(latentMask: RasterImage, lh: number, lw: number, channels: number, round: boolean): LatentBlend {
  const small = resizeImage(toRgb(latentMask), lw, lh, 'bicubic');
  const plane = lh * lw;
  const mask = new Float32Array(channels * plane);
  const nmask = new Float32Array(channels * plane);
  for (let i = 0; i < plane; i++) {
    let l = f(small.data[i * 3]! / 255);
    if (round) l = roundHalfEven(l);
    const m = half(f(1 - l));
    const n = half(l);
    for (let c = 0; c < channels; c++) {
      mask[c * plane + i] = m;
      nmask[c * plane + i] = n;
    }
  }
  return { mask: float32([channels, lh, lw], mask), nmask: float32([channels, lh, lw], nmask) };
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x * nmask + init * mask per batch item, in float32 (the blend after sampling and in the CFG denoiser). */
export function blendLatent(x: Float32Tensor, init: Float32Tensor, blend: LatentBlend): Float32Tensor {
  const per = blend.mask.data.length;
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < x.data.length; i++) {
    const k = i % per;
    out[i] = f(f(x.data[i]! * blend.nmask.data[k]!) + f(init.data[i]! * blend.mask.data[k]!));
  }
  return float32(x.shape, out);
}

/** init_latent * mask (latent nothing) or init_latent * mask + noise * nmask (latent noise). */
export function fillLatent(init: Float32Tensor, blend: LatentBlend, noise: Float32Tensor | undefined): Float32Tensor {
  const per = blend.mask.data.length;
  return float32(
    init.shape,
    Float32Array.from(init.data, (v, i) => {
      const k = i % per;
      const kept = f(v * blend.mask.data[k]!);
      return noise ? f(kept + f(noise.data[i]! * blend.nmask.data[k]!)) : kept;
    }),
  );
}

/**
 * inpainting_image_conditioning before the VAE: the conditioning mask (processing-size mask / 255, rounded when
 * asked; all ones without a mask) and torch.lerp(image, image * (1 - mask), weight) of the (1,3,H,W) VAE input.
 */
export function maskedConditioningImage(image: Float32Tensor, mask: Mask | undefined, round: boolean, weight: number): { image: Float32Tensor; mask: Float32Array } {
  const [, , h, w] = image.shape as [number, number, number, number];
  const plane = h * w;
  if (mask && (mask.width !== w || mask.height !== h)) {
    throw new DarkroomError('MASK_SIZE', `mask is ${mask.width}x${mask.height} but the image is ${w}x${h}`);
  }
  const m = new Float32Array(plane);
  for (let i = 0; i < plane; i++) {
    if (!mask) m[i] = 1;
    else {
      const v = f(mask.data[i]! / 255);
      m[i] = round ? roundHalfEven(v) : v;
    }
  }
  const out = new Float32Array(3 * plane);
  // torch.lerp with a scalar weight, in float32: start + w * (end - start) below 0.5, else end - (end - start) * (1 - w)
  const w32 = f(weight);
  const rest = f(1 - w32);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      const s = image.data[c * plane + i]!;
      const end = f(s * f(1 - m[i]!));
      const diff = f(end - s);
      out[c * plane + i] = w32 < 0.5 ? f(s + f(w32 * diff)) : f(end - f(diff * rest));
    }
  }
  return { image: float32([1, 3, h, w], out), mask: m };
}

/** torch interpolate(nearest) of an (H, W) mask to (lh, lw), then [mask, latent] along channels: (1, 5, lh, lw). */
export function concatConditioning(mask: Float32Array, h: number, w: number, latent: Float32Tensor): Float32Tensor {
  const [, c, lh, lw] = latent.shape as [number, number, number, number];
  const sh = f(h / lh);
  const sw = f(w / lw);
  const out = new Float32Array((c + 1) * lh * lw);
  for (let y = 0; y < lh; y++) {
    const sy = Math.min(Math.floor(f(y * sh)), h - 1);
    for (let x = 0; x < lw; x++) {
      const sx = Math.min(Math.floor(f(x * sw)), w - 1);
      out[y * lw + x] = mask[sy * w + sx]!;
    }
  }
  out.set(latent.data.subarray(0, c * lh * lw), lh * lw);
  return float32([1, c + 1, lh, lw], out);
}

/**
 * apply_overlay: with a paste location the result is resized (crop and resize) into its region of a transparent
 * canvas of the original size; then the overlay (the original outside the mask) is composited over it.
 */
export function applyOverlay(image: RasterImage, pasteTo: MaskPlan['pasteTo'], overlay: Rgba8 | undefined): RasterImage {
  if (!overlay) return image;
  let base: Rgba8;
  if (pasteTo) {
    const [x, y, w, h] = pasteTo;
    const fitted = resizeForMode(image, 1, w, h);
    base = { width: overlay.width, height: overlay.height, data: new Uint8Array(overlay.width * overlay.height * 4) };
    for (let yy = 0; yy < h; yy++) {
      const ty = yy + y;
      if (ty < 0 || ty >= base.height) continue;
      for (let xx = 0; xx < w; xx++) {
        const tx = xx + x;
        if (tx < 0 || tx >= base.width) continue;
        const o = (ty * base.width + tx) * 4;
        for (let c = 0; c < 3; c++) base.data[o + c] = fitted.data[(yy * w + xx) * 3 + c]!;
        base.data[o + 3] = 255;
      }
    }
  } else {
    base = opaque(image);
  }
  alphaCompositeInPlace(base, overlay);
  return dropAlpha(base);
}
