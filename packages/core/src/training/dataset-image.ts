/**
 * The tensors A1111's training dataset makes from one decoded image (`PersonalizedBase`): the RGB pixels
 * stretched to the training size, and the `use_weight` loss map from the alpha channel.
 */
import { DarkroomError } from '../errors.js';
import type { RasterImage } from '../formats/png.js';
import { resizeImage, toRgb } from '../pipeline/image.js';
import { float32, type Float32Tensor } from '../tensor.js';

/**
 * `image.convert('RGB').resize((width, height), BICUBIC)`: alpha dropped without compositing, then a plain
 * stretch (no crop, aspect not kept) with Pillow's bicubic filter.
 */
export function trainingImage(img: RasterImage, width: number, height: number): RasterImage {
  return resizeImage(toRgb(img), width, height, 'bicubic');
}

/** `np.array(rgb) / 127.5 - 1.0` (computed in float64, stored as float32), HWC to CHW. */
export function pixelsFromRgb(rgb: RasterImage): Float32Tensor {
  if (rgb.channels !== 3) throw new DarkroomError('IMAGE_SHAPE', `expected an RGB image, got ${rgb.channels} channels`);
  const plane = rgb.width * rgb.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = rgb.data[i * 3 + c]! / 127.5 - 1;
  }
  return float32([3, rgb.height, rgb.width], out);
}

/** The (3, height, width) float pixels the VAE encodes for a training image. */
export function trainingPixels(img: RasterImage, width: number, height: number): Float32Tensor {
  return pixelsFromRgb(trainingImage(img, width, height));
}

/** The alpha channel as a one-channel image, or undefined for an image without one. */
export function alphaChannel(img: RasterImage): RasterImage | undefined {
  if (img.channels !== 2 && img.channels !== 4) return undefined;
  const n = img.width * img.height;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = img.data[i * img.channels + img.channels - 1]!;
  return { width: img.width, height: img.height, channels: 1, data };
}

/**
 * The `use_weight` map (channels, latentHeight, latentWidth): ones without alpha; else the source alpha
 * resized with Pillow's bicubic to (latentHeight wide, latentWidth tall) — A1111 passes the latent's
 * (h, w) where Pillow expects (w, h) — read back row-major as (latentHeight, latentWidth), which for a
 * non-square latent is a reshape, not a transpose. Then `w -= w.min(); w /= w.mean()` in float32 (an
 * all-equal alpha gives NaN, as it does in torch).
 */
export function lossWeightMap(img: RasterImage, latentHeight: number, latentWidth: number, channels = 4): Float32Tensor {
  const shape = [channels, latentHeight, latentWidth];
  const plane = latentHeight * latentWidth;
  const alpha = alphaChannel(img);
  if (!alpha) return float32(shape, new Float32Array(channels * plane).fill(1));
  const small = resizeImage(alpha, latentHeight, latentWidth, 'bicubic').data;
  let min = Infinity;
  let sum = 0;
  for (let i = 0; i < plane; i++) min = Math.min(min, small[i]!);
  // torch sums these integers in float32, exactly while the total stays below 2^24 (latents up to 128x128
  // with 4 channels); there the double sum is torch's sum. Larger maps may differ in the mean's last bit.
  for (let i = 0; i < plane; i++) sum += (small[i]! - min) * channels;
  const mean = Math.fround(sum / (channels * plane));
  const out = new Float32Array(channels * plane);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < plane; i++) out[c * plane + i] = (small[i]! - min) / mean;
  }
  return float32(shape, out);
}
