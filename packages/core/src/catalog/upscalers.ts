/**
 * Hires fix's built-in upscaler names (A1111's shared.latent_upscale_modes and the image resizers that need no
 * model file). Plain data, importing no engine code: the API lists and checks names here, pipeline/txt2img.ts
 * runs them.
 */

/** How a latent upscale mode resizes the latents (torch.nn.functional.interpolate's modes). */
export type LatentInterpolation = 'bilinear' | 'bicubic' | 'nearest' | 'nearest-exact';

/** A1111's latent upscale modes that Darkroom implements. */
export const LATENT_UPSCALE_MODES: Readonly<Record<string, LatentInterpolation>> = {
  Latent: 'bilinear',
  'Latent (bicubic)': 'bicubic',
  'Latent (nearest)': 'nearest',
  'Latent (nearest-exact)': 'nearest-exact',
};

/** Image upscalers that need no model file. */
export const IMAGE_UPSCALERS: ReadonlySet<string> = new Set(['None', 'Lanczos', 'Nearest']);

/** The hires-fix upscaler names this build implements (A1111's /sdapi/v1/upscalers and latent modes). */
export const HIRES_UPSCALERS: readonly string[] = [...Object.keys(LATENT_UPSCALE_MODES), ...IMAGE_UPSCALERS];

/** Latent upscalers resize the first pass's latents; the others decode it, resize the image and encode it again. */
export function isLatentUpscaler(name: string): boolean {
  return Object.hasOwn(LATENT_UPSCALE_MODES, name);
}
