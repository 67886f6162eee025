import { isDarkroomError } from '@darkroom/core/errors.js';
import { resolveImg2Img, resolveTxt2Img, type Img2ImgParams, type Txt2ImgParams } from '@darkroom/core/pipeline/params.js';
import { FarmError } from './errors.js';

/**
 * A job's A1111 request fields as the engine takes them: nulls mean "the default", so they are left out, and
 * A1111's API runs `sampler_name or sampler_index`. The worker hands the engine exactly this; the API validates it.
 */
export function engineParams(params: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) out[k] = v;
  if (out.sampler_name === undefined && typeof params.sampler_index === 'string') out.sampler_name = params.sampler_index;
  delete out.sampler_index;
  return out;
}

/**
 * The engine's own parameter validation (packages/core/src/pipeline/params.ts: ranges of eta, steps, cfg_scale,
 * hr_scale, mask_blur, ...) run at submission, so a value the worker would refuse is a 400 naming the field now
 * instead of a failed job. Images are checked apart (image-size.ts): a placeholder stands in for them here.
 */
export function checkEngineParams(kind: 'txt2img' | 'img2img', request: Readonly<Record<string, unknown>>): void {
  const params = engineParams(request);
  try {
    if (kind === 'txt2img') {
      resolveTxt2Img(params as Txt2ImgParams);
    } else {
      const placeholder = new Uint8Array(0);
      resolveImg2Img({
        ...params, init_images: [placeholder], ...(params.mask !== undefined ? { mask: placeholder } : {}),
        ...(params.latent_mask !== undefined ? { latent_mask: placeholder } : {}),
      } as Img2ImgParams);
    }
  } catch (e) {
    if (!isDarkroomError(e)) throw e;
    const field = typeof e.details.field === 'string' ? e.details.field : 'body';
    throw new FarmError('INVALID_REQUEST', 400, e.message, field);
  }
}
