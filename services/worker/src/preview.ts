import { encodePng } from '@darkroom/core/formats/png.js';
import type { Float32Tensor } from '@darkroom/core/tensor.js';

/**
 * A1111's "Approx cheap" live preview (`sd_vae_approx.cheap_approximation`): a fixed linear map from the four
 * SD latent channels to RGB, applied to the denoised latent of the first image, at latent resolution. No
 * model call, so it costs nothing next to a sampler step.
 */
const SD_LATENT_TO_RGB = [
  [0.298, 0.207, 0.208],
  [0.187, 0.286, 0.173],
  [-0.158, 0.189, 0.264],
  [-0.184, -0.271, -0.473],
] as const;

export function cheapPreviewPng(denoised: Float32Tensor): Uint8Array | null {
  const [, c, h, w] = denoised.shape;
  if (c !== 4 || !h || !w) return null;
  const plane = h * w;
  const rgb = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let ch = 0; ch < 3; ch++) {
      let v = 0;
      for (let l = 0; l < 4; l++) v += denoised.data[l * plane + i]! * SD_LATENT_TO_RGB[l]![ch]!;
      rgb[i * 3 + ch] = Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
    }
  }
  return encodePng({ width: w, height: h, channels: 3, data: rgb });
}
