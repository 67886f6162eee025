/**
 * Live previews from a latent without the VAE: A1111's "Approx cheap" (sd_samplers_common.samples_to_images
 * with a fixed linear map from the 4 latent channels to RGB), cheap enough to run at every progress report.
 */
import { DarkroomError } from '../errors.js';
import type { Float32Tensor } from '../tensor.js';
import { encodePng, type RasterImage } from '../formats/png.js';

/** SD1/SD2 latent channel -> RGB coefficients of A1111's cheap approximation. */
const COEFS = [
  [0.298, 0.207, 0.208],
  [0.187, 0.286, 0.173],
  [-0.158, 0.189, 0.264],
  [-0.184, -0.271, -0.473],
] as const;

/** Batch item `index` of a latent (B,4,h,w) as an h x w RGB image. */
export function latentPreview(latent: Float32Tensor, index = 0): RasterImage {
  const [b, c, h, w] = latent.shape as [number, number, number, number];
  if (c !== 4 || index < 0 || index >= b) throw new DarkroomError('PREVIEW_BAD_INPUT', `no item ${index} in a latent of shape [${latent.shape.join(', ')}]`);
  const plane = h * w;
  const base = index * c * plane;
  const data = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let r = 0; r < 3; r++) {
      let v = 0;
      for (let k = 0; k < 4; k++) v += latent.data[base + k * plane + i]! * COEFS[k]![r]!;
      const x = Math.min(1, Math.max(0, (v + 1) / 2));
      data[i * 3 + r] = Math.trunc(x * 255);
    }
  }
  return { width: w, height: h, channels: 3, data };
}

/** The preview as PNG bytes (what a worker attaches to its progress report). */
export function latentPreviewPng(latent: Float32Tensor, index = 0): Uint8Array {
  return encodePng(latentPreview(latent, index));
}
