import type { PostprocessUpscaleParams } from '@darkroom/core/pipeline/postprocess.js';
import type { JobUpscaler } from './upscaler-assets.js';

/**
 * A1111's extras (`/sdapi/v1/extra-single-image`, `/extra-batch-images`) as a job on the `generate` queue: the
 * images are upscaled on a worker's render thread, where the upscaler models' sessions live, and the API waits for
 * the job as A1111's call waits for its queue lock. Told apart from renders by the BullMQ job name.
 */
export const EXTRAS_JOB_NAME = 'extras';

export interface ExtrasJobData {
  tenant: string;
  kind: typeof EXTRAS_JOB_NAME;
  /** The upscale fields as A1111's run_extras takes them, names already checked. */
  params: PostprocessUpscaleParams;
  /** Storage keys of the images, in request order. */
  inputKeys: string[];
  /** Upscaler model files `upscaler_1` / `upscaler_2` name (the built-ins need none). */
  upscalers: JobUpscaler[];
  webhook: null;
  requestHash: string;
  source: 'sdapi';
  submittedAt: number;
}

/** Whether a job taken off the `generate` queue is an extras job rather than a render. */
export function isExtrasJob(job: { readonly name: string }): boolean {
  return job.name === EXTRAS_JOB_NAME;
}

/**
 * The size Upscaler.upscale and the Upscale script give an image of `width` x `height`: by a factor, int(side *
 * factor) // 8 * 8; to a size, that size when cropped, else the factor max(w / W, h / H) likewise. `upscaler_1`
 * "None" keeps the image as it is.
 */
export function extrasOutputSize(p: PostprocessUpscaleParams, width: number, height: number): { width: number; height: number } {
  if (p.upscaler_1 === 'None') return { width, height };
  if (p.resize_mode === 1 && p.upscaling_crop) return { width: p.upscaling_resize_w, height: p.upscaling_resize_h };
  const scale = p.resize_mode === 1 ? Math.max(p.upscaling_resize_w / width, p.upscaling_resize_h / height) : p.upscaling_resize;
  return { width: Math.floor((width * scale) / 8) * 8, height: Math.floor((height * scale) / 8) * 8 };
}
