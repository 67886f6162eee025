/**
 * A1111's extras (postprocessing upscale) on the render thread: each input image decoded as init images are,
 * upscaled by packages/core's postprocessUpscale with the model files the job carries, and written as A1111's
 * answer writes it (the source's text chunks, then `postprocessing`).
 */
import { decodePng, readPngText, type RasterImage } from '@darkroom/core/formats/png.js';
import type { Provider } from '@darkroom/core/runtime/session.js';
import { postprocessedPng, postprocessingInfotext, postprocessUpscale, type PostprocessUpscaleParams } from '@darkroom/core/pipeline/postprocess.js';
import { loadModelUpscaler } from '@darkroom/core/pipeline/upscalers.js';
import { sniffImageFormat } from '@darkroom/farm/png-header.js';
import { decodeInputImage } from './input-images.js';
import type { RenderOutput, RenderRequest } from './render-protocol.js';

export interface ExtrasRenderConfig {
  readonly provider: Provider;
  readonly fallbackToCpu: boolean;
  readonly maxInputPixels: number;
}

/**
 * The job's images in turn; null when cancelled. `stopped` is read between images: a cancel drops the job, A1111's
 * interrupt ends it with the images done so far (run_postprocessing breaks out of its loop).
 */
export async function renderExtras(req: RenderRequest, config: ExtrasRenderConfig, stopped: () => 'cancel' | 'interrupt' | null): Promise<RenderOutput | null> {
  const files = new Map((req.upscalers ?? []).map((u) => [u.name, u.path]));
  const session = { provider: config.provider, fallbackToCpu: config.fallbackToCpu };
  const models = (name: string) => {
    const path = files.get(name);
    return path === undefined ? undefined : loadModelUpscaler(path, session);
  };
  const params = req.params as unknown as PostprocessUpscaleParams;
  const out: RenderOutput = { images: [], infotexts: [], seeds: [], subseeds: [] };
  for (const [i, bytes] of req.initImages.entries()) {
    const stop = stopped();
    if (stop === 'cancel') return null;
    if (stop === 'interrupt') break;
    const decoded = await decodeInputImage(bytes, `image.${i}`, config.maxInputPixels);
    const image: RasterImage = decoded instanceof Uint8Array ? decodePng(decoded) : decoded;
    // Only PNG text chunks carry over (A1111 also reads a JPEG's or WebP's EXIF comment)
    const text = sniffImageFormat(bytes) === 'png' ? readPngText(bytes) : {};
    const result = await postprocessUpscale(image, params, models);
    const infotext = postprocessingInfotext(result.info);
    out.images.push(postprocessedPng(result.image, text, infotext));
    out.infotexts.push(infotext);
    out.seeds.push(0);
    out.subseeds.push(0);
  }
  return out;
}
