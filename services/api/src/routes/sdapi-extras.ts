import { Router } from 'express';
import { z } from 'zod';
import { parseSdapi, unsupportedRoute } from '../sdapi-errors.js';

/** A1111's ExtrasBaseRequest fields and bounds (modules/api/models.py). */
const extrasBase = {
  resize_mode: z.union([z.literal(0), z.literal(1)]).default(0),
  show_extras_results: z.boolean().default(true),
  gfpgan_visibility: z.number().min(0).max(1).default(0),
  codeformer_visibility: z.number().min(0).max(1).default(0),
  codeformer_weight: z.number().min(0).max(1).default(0),
  upscaling_resize: z.number().gt(0).default(2),
  upscaling_resize_w: z.number().int().min(1).default(512),
  upscaling_resize_h: z.number().int().min(1).default(512),
  upscaling_crop: z.boolean().default(true),
  upscaler_1: z.string().default('None'),
  upscaler_2: z.string().default('None'),
  extras_upscaler_2_visibility: z.number().min(0).max(1).default(0),
  upscale_first: z.boolean().default(false),
};
export const ExtrasSingleImageRequest = z.object({ ...extrasBase, image: z.string().default('') });
export const ExtrasBatchImagesRequest = z.object({ ...extrasBase, imageList: z.array(z.object({ data: z.string(), name: z.string() })) });

/**
 * A1111's Extras tab over the API (upscaling and face restoration of finished images). The farm has no
 * postprocessing pipeline yet: a well-formed call is refused by name (422) instead of answering with the image
 * unchanged. Malformed calls hear A1111's validation errors first.
 */
export function sdapiExtrasRoutes(): Router {
  const r = Router();
  const refusal = 'postprocessing (extras: upscaling and face restoration of finished images) is not supported by this farm yet; '
    + 'hires fix (enable_hr with hr_upscaler) upscales during txt2img';
  r.post('/sdapi/v1/extra-single-image', (req) => {
    parseSdapi(ExtrasSingleImageRequest, req.body);
    throw unsupportedRoute('/sdapi/v1/extra-single-image', refusal);
  });
  r.post('/sdapi/v1/extra-batch-images', (req) => {
    parseSdapi(ExtrasBatchImagesRequest, req.body);
    throw unsupportedRoute('/sdapi/v1/extra-batch-images', refusal);
  });
  return r;
}
