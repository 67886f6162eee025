import { z } from 'zod';
import { LogDirectory } from './training-log.js';
import { EmbeddingCreate, EmbeddingTrainingRequest, HypernetworkCreate, HypernetworkTrainingRequest, TRAINING_NAME } from './training-schemas.js';

/**
 * The bodies of A1111's training routes on `/sdapi/v1`: A1111 passes them as keyword arguments to
 * `create_embedding`, `create_hypernetwork`, `train_embedding` and `train_hypernetwork`, so the field names are
 * those functions' parameters. Each field reuses the `/v1/trainings` schema's rule for the same value, so both
 * APIs accept and refuse alike; unknown fields (`id_task`, extension extras) are ignored, as elsewhere on
 * `/sdapi`. Where A1111 has no default (its parameters are positional) the Train tab's default applies.
 */

const E = EmbeddingTrainingRequest.shape;
const H = HypernetworkTrainingRequest.shape;

/** A schedule as A1111 clients send it: the UI's text, or a bare number from scripts. */
const schedule = (fallback: string) => z
  .union([z.string().min(1).max(10_000), z.number().refine(Number.isFinite, 'a finite number')])
  .transform(String)
  .default(fallback);

/** Dataset names never contain these; a value that does is a path on the client's machine or the server's. */
function isPathLike(v: string): boolean {
  return /[/\\\0]/.test(v) || v.startsWith('.') || v.startsWith('~') || /^[A-Za-z]:/.test(v);
}

const DataRoot = z.string().min(1).max(200)
  .refine((v) => !isPathLike(v), 'names an uploaded dataset (its id or name from POST /v1/datasets), not a path on the server')
  .describe('the dataset to train on: its id, or its name (the newest dataset of that name)');

const trainFields = {
  data_root: DataRoot,
  log_directory: LogDirectory.default('textual_inversion')
    .describe('a storage prefix: A1111\'s layout of the files is written under logs/<tenant>/<log_directory>/<date>/<name>/'),
  batch_size: E.batch_size,
  gradient_step: E.gradient_step,
  training_width: E.training_width,
  training_height: E.training_height,
  varsize: z.boolean().refine((v) => !v, 'variable-size training is not supported: images are trained at training_width x training_height').default(false),
  steps: E.steps,
  clip_grad_mode: E.clip_grad_mode,
  clip_grad_value: schedule('0.1'),
  shuffle_tags: E.shuffle_tags,
  tag_drop_out: E.tag_drop_out,
  latent_sampling_method: E.latent_sampling_method,
  use_weight: E.use_weight,
  create_image_every: E.create_image_every,
  template_filename: E.template_filename,
  preview_from_txt2img: E.preview_from_txt2img,
  preview_prompt: E.preview_prompt,
  preview_negative_prompt: E.preview_negative_prompt,
  preview_steps: E.preview_steps,
  preview_sampler_name: E.preview_sampler_name,
  preview_cfg_scale: E.preview_cfg_scale,
  preview_seed: E.preview_seed,
  preview_width: E.preview_width,
  preview_height: E.preview_height,
};

export const SdapiTrainEmbedding = z.object({
  embedding_name: TRAINING_NAME.describe('an embedding of this tenant (made by /sdapi/v1/create/embedding or uploaded); the result replaces it'),
  learn_rate: schedule('0.005'),
  ...trainFields,
  save_embedding_every: E.save_every,
  save_image_with_stored_embedding: E.save_image_with_stored_embedding,
}).describe('A1111 train_embedding arguments');
export type SdapiTrainEmbedding = z.infer<typeof SdapiTrainEmbedding>;

export const SdapiTrainHypernetwork = z.object({
  hypernetwork_name: TRAINING_NAME.describe('a hypernetwork of this tenant (made by /sdapi/v1/create/hypernetwork or uploaded); the result replaces it'),
  learn_rate: schedule('0.00001'),
  ...trainFields,
  save_hypernetwork_every: H.save_every,
}).describe('A1111 train_hypernetwork arguments');
export type SdapiTrainHypernetwork = z.infer<typeof SdapiTrainHypernetwork>;

export const SdapiCreateEmbedding = z.object({
  name: TRAINING_NAME.describe('the embedding\'s name and file stem (A1111 drops other characters; here they are refused)'),
  num_vectors_per_token: EmbeddingCreate.shape.num_vectors_per_token,
  overwrite_old: z.boolean().default(false),
  init_text: EmbeddingCreate.shape.init_text,
}).describe('A1111 create_embedding arguments');
export type SdapiCreateEmbedding = z.infer<typeof SdapiCreateEmbedding>;

const HC = HypernetworkCreate.shape;
/** A1111's UI sends the checkbox values as strings ("768") and its function applies int(). */
const Size = z.union([z.number(), z.string().regex(/^\s*\d{1,5}\s*$/, 'a width').transform(Number)]).pipe(z.number().int().min(1).max(8192));

export const SdapiCreateHypernetwork = z.object({
  name: TRAINING_NAME.describe('the hypernetwork\'s name and file stem'),
  enable_sizes: z.array(Size).min(1).max(16).nullable().default(null)
    .describe('context widths with a module pair (A1111: 768, 320, 640, 1280 for SD1); null = the widths the tenant\'s checkpoint attends over'),
  overwrite_old: z.boolean().default(false),
  layer_structure: HC.layer_structure.nullable(),
  activation_func: HC.activation_func.nullable(),
  weight_init: HC.weight_initialization.nullable(),
  add_layer_norm: HC.add_layer_norm,
  use_dropout: HC.use_dropout,
  dropout_structure: HC.dropout_structure,
}).describe('A1111 create_hypernetwork arguments');
export type SdapiCreateHypernetwork = z.infer<typeof SdapiCreateHypernetwork>;

export const SdapiInfoResponse = z.object({ info: z.string() }).describe('A1111 CreateResponse / TrainResponse');
