import { z } from 'zod';
import { REQUEST_BOUNDS, type BoundedField, type NumberBound } from '@darkroom/core/catalog/request-bounds.js';

/**
 * Request schemas with AUTOMATIC1111's field names and API defaults (`modules/api/models.py`): clients that
 * speak `/sdapi/v1` send the same JSON to `/v1`. The same schemas validate requests and generate the
 * OpenAPI document, so the two cannot drift.
 */

const int = () => z.number().int();

/** A numeric field with the catalog's bound and A1111's default (REQUEST_BOUNDS: the engine checks the same). */
function bounded(field: BoundedField) {
  const b: NumberBound = REQUEST_BOUNDS[field];
  let n = (b.integer ? int() : z.number()).min(b.min).max(b.max);
  if (b.multipleOf !== undefined) n = n.multipleOf(b.multipleOf);
  return n;
}
function withDefault(field: BoundedField) {
  const d = REQUEST_BOUNDS[field].default;
  if (d === undefined) throw new Error(`${field} has no default in REQUEST_BOUNDS`);
  return bounded(field).default(d);
}
const nullableString = () => z.string().nullable().default(null);
const nullableNumber = () => z.number().nullable().default(null);

export const WEBHOOK_EVENTS = ['queued', 'started', 'progress', 'worker_lost', 'completed', 'failed', 'cancelled'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
export const DEFAULT_WEBHOOK_EVENTS: WebhookEvent[] = ['completed', 'failed', 'cancelled'];

export const WebhookSpec = z
  .strictObject({
    url: z.url({ protocol: /^https?$/ }).max(2048).describe('http(s) URL that receives signed POSTs'),
    events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).default(DEFAULT_WEBHOOK_EVENTS)
      .describe('which job events to deliver; progress is throttled to one per 500 ms'),
  })
  .describe('Standard Webhooks delivery for this job');
export type WebhookSpec = z.infer<typeof WebhookSpec>;

const NAME = z.string().min(1).max(200).regex(/^[^/\\\0]+$/, 'a name, not a path');

/** Fields both txt2img and img2img take (A1111's StableDiffusionProcessing signature plus the API extras). */
const common = {
  prompt: z.string().max(100_000).default(''),
  negative_prompt: z.string().max(100_000).default(''),
  styles: z.array(z.string()).nullable().default(null),
  seed: withDefault('seed'),
  subseed: withDefault('subseed'),
  subseed_strength: withDefault('subseed_strength'),
  seed_resize_from_h: withDefault('seed_resize_from_h'),
  seed_resize_from_w: withDefault('seed_resize_from_w'),
  sampler_name: z.string().max(100).nullable().default(null),
  sampler_index: z.string().max(100).default('Euler'),
  scheduler: z.string().max(100).nullable().default(null),
  batch_size: withDefault('batch_size'),
  n_iter: withDefault('n_iter'),
  steps: withDefault('steps'),
  cfg_scale: withDefault('cfg_scale'),
  width: withDefault('width'),
  height: withDefault('height'),
  restore_faces: z.boolean().nullable().default(null),
  tiling: z.boolean().nullable().default(null),
  do_not_save_samples: z.boolean().default(false),
  do_not_save_grid: z.boolean().default(false),
  eta: bounded('eta').nullable().default(null),
  s_min_uncond: nullableNumber(),
  s_churn: nullableNumber(),
  s_tmax: nullableNumber(),
  s_tmin: nullableNumber(),
  s_noise: nullableNumber(),
  override_settings: z.record(z.string(), z.unknown()).nullable().default(null),
  override_settings_restore_afterwards: z.boolean().default(true),
  disable_extra_networks: z.boolean().default(false),
  comments: z.record(z.string(), z.unknown()).nullable().default(null),
  force_task_id: nullableString(),
  script_name: nullableString(),
  script_args: z.array(z.unknown()).default([]),
  send_images: z.boolean().default(true),
  save_images: z.boolean().default(false),
  alwayson_scripts: z.record(z.string(), z.unknown()).default({}),
  infotext: nullableString(),
  refiner_checkpoint: nullableString(),
  refiner_switch_at: nullableNumber(),
  // Darkroom's own fields.
  clip_skip: bounded('clip_skip').nullable().default(null)
    .describe('CLIP layers to stop at (A1111 setting CLIP_stop_at_last_layers); null = the setting'),
  model: NAME.nullable().default(null).describe('checkpoint name (sd-models title or model_name); null = the configured default'),
  embeddings: z.array(NAME).max(64).nullable().default(null)
    .describe('textual-inversion embeddings to load by name; null = the tenant\'s embeddings whose names occur in the prompts'),
  hypernetworks: z.array(NAME).max(16).default([])
    .describe('hypernetworks to load by name (prompts pick them with <hypernet:name:strength>)'),
  webhook: WebhookSpec.nullable().default(null),
};

const txt2imgOnly = {
  denoising_strength: bounded('denoising_strength').nullable().default(null),
  enable_hr: z.boolean().default(false),
  firstphase_width: int().min(0).default(0),
  firstphase_height: int().min(0).default(0),
  hr_scale: withDefault('hr_scale'),
  hr_upscaler: nullableString(),
  hr_second_pass_steps: withDefault('hr_second_pass_steps'),
  hr_resize_x: withDefault('hr_resize_x'),
  hr_resize_y: withDefault('hr_resize_y'),
  hr_checkpoint_name: nullableString(),
  hr_sampler_name: nullableString(),
  hr_scheduler: nullableString(),
  hr_prompt: z.string().default(''),
  hr_negative_prompt: z.string().default(''),
  firstpass_image: nullableString(),
};

/** base64 (with or without a `data:image/...;base64,` prefix); URLs are refused (no fetches on clients' behalf). */
const IMAGE = z.string().min(1).regex(/^(data:image\/[a-z+.-]+;base64,)?[A-Za-z0-9+/=\s]+$/, 'base64 image data');

const img2imgOnly = {
  init_images: z.array(IMAGE).min(1).max(16),
  resize_mode: withDefault('resize_mode'),
  denoising_strength: withDefault('denoising_strength'),
  image_cfg_scale: nullableNumber(),
  mask: IMAGE.nullable().default(null),
  mask_blur_x: withDefault('mask_blur_x'),
  mask_blur_y: withDefault('mask_blur_y'),
  mask_blur: bounded('mask_blur').nullable().default(null),
  mask_round: z.boolean().default(true),
  inpainting_fill: withDefault('inpainting_fill'),
  inpaint_full_res: z.boolean().default(true),
  inpaint_full_res_padding: withDefault('inpaint_full_res_padding'),
  inpainting_mask_invert: withDefault('inpainting_mask_invert'),
  initial_noise_multiplier: bounded('initial_noise_multiplier').nullable().default(null),
  latent_mask: IMAGE.nullable().default(null),
  include_init_images: z.boolean().default(false),
};

/** `/v1` rejects unknown fields, so a misspelt parameter is an error naming it rather than a silent default. */
export const Txt2ImgRequest = z.strictObject({ ...common, ...txt2imgOnly }).describe('txt2img job');
export const Img2ImgRequest = z.strictObject({ ...common, ...img2imgOnly }).describe('img2img job');
/** `/sdapi/v1` ignores fields it does not know, as A1111's pydantic models do, so existing clients work unchanged. */
export const SdapiTxt2ImgRequest = z.object({ ...common, ...txt2imgOnly });
export const SdapiImg2ImgRequest = z.object({ ...common, ...img2imgOnly });

export type Txt2ImgRequest = z.infer<typeof Txt2ImgRequest>;
export type Img2ImgRequest = z.infer<typeof Img2ImgRequest>;
export type GenerateRequest = Txt2ImgRequest | Img2ImgRequest;
export type GenerateKind = 'txt2img' | 'img2img';

export const JOB_STATES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const Progress = z.object({
  step: int().describe('sampler steps done in the current image batch'),
  steps: int().describe('sampler steps per image batch'),
  iteration: int().describe('0-based batch iteration (n_iter)'),
  iterations: int(),
  fraction: z.number().describe('0..1 over the whole job'),
  eta: z.number().describe('seconds left, estimated from the steps so far'),
  preview: z.string().optional().describe('URL of a preview image, when the engine makes one'),
});
export type Progress = z.infer<typeof Progress>;

export const OutputView = z.object({
  index: int(),
  url: z.string().describe('presigned S3 URL, or an API URL for folder storage'),
  seed: int(),
  subseed: int(),
  infotext: z.string(),
});

export const JobView = z.object({
  id: z.string().describe('ULID'),
  kind: z.enum(['txt2img', 'img2img']),
  state: z.enum(JOB_STATES),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  attempts: int().describe('times a worker started the job'),
  progress: Progress.nullable(),
  outputs: z.array(OutputView),
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }).nullable(),
  webhook: WebhookSpec.nullable(),
  skipped_embeddings: z.record(z.string(), z.string()).optional()
    .describe('embeddings the prompts named that could not be used (name -> code: reason), skipped as A1111 skips them'),
});
export type JobView = z.infer<typeof JobView>;

export const JobAccepted = z.object({ id: z.string(), state: z.enum(JOB_STATES), url: z.string(), events_url: z.string() });

export const ErrorResponse = z.object({
  error: z.object({
    code: z.string(), message: z.string(), field: z.string().optional(),
    file: z.string().optional().describe('for multi-file uploads: the file at fault, as the upload named it'),
  }),
});

export const ASSET_KINDS = ['models', 'embeddings', 'hypernetworks', 'loras', 'vaes', 'upscalers'] as const;
export type AssetKind = (typeof ASSET_KINDS)[number];

export const AssetView = z.object({
  name: z.string().describe('name used in requests: the file stem'),
  filename: z.string(),
  sha256: z.string(),
  size: int(),
  source: z.enum(['upload', 'models_dir', 'builtin']),
});
export type AssetView = z.infer<typeof AssetView>;

const DatasetImageView = z.object({
  kind: z.literal('image'),
  name: z.string().describe('file name in the dataset (folders of a zip are flattened)'),
  bytes: int(),
  sha256: z.string(),
  width: int(),
  height: int(),
  caption: z.string().nullable().describe('the caption file of this image (same stem, .txt), if any'),
});
const DatasetCaptionView = z.object({
  kind: z.literal('caption'),
  name: z.string(),
  bytes: int(),
  sha256: z.string(),
  image: z.string().describe('the image this caption describes'),
});
export const DatasetFileView = z.discriminatedUnion('kind', [DatasetImageView, DatasetCaptionView]);
export type DatasetFileView = z.infer<typeof DatasetFileView>;

export const DatasetSummary = z.object({
  id: z.string().describe('ULID'),
  name: z.string(),
  created_at: z.string(),
  images: int(),
  captions: int(),
  bytes: int().describe('sum of the files\' sizes'),
});
export type DatasetSummary = z.infer<typeof DatasetSummary>;
export const DatasetView = DatasetSummary.extend({ files: z.array(DatasetFileView) });
export type DatasetView = z.infer<typeof DatasetView>;

export const PngInfoRequest = z.object({ image: IMAGE });
export const OptionsUpdate = z.record(z.string(), z.unknown());
