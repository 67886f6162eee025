import { z } from 'zod';
import { HYPERNETWORK_ACTIVATIONS } from '@darkroom/core/networks/hypernetworks/hypernetwork.js';
import { LATENT_SAMPLING_METHODS } from '@darkroom/core/catalog/training-options.js';
import { JOB_STATES } from './schemas.js';
import { LogDirectory } from './training-log.js';
import { TRAINING_TEMPLATE_NAMES } from './training-templates.js';

/**
 * Training job requests with the field names and defaults of A1111's Train tab (`train_embedding` /
 * `train_hypernetwork`, `create_embedding` / `create_hypernetwork`), plus what a farm adds: the dataset id, the
 * checkpoint, the seed and the webhook. The same schemas validate requests and generate the OpenAPI document.
 */

const int = () => z.number().int();

export const TRAINING_KINDS = ['embedding', 'hypernetwork'] as const;
export type TrainingKind = (typeof TRAINING_KINDS)[number];

export const TRAINING_EVENTS = ['queued', 'started', 'progress', 'checkpoint', 'preview', 'rollback', 'completed', 'failed', 'cancelled'] as const;
export type TrainingEvent = (typeof TRAINING_EVENTS)[number];
export const DEFAULT_TRAINING_EVENTS: TrainingEvent[] = ['completed', 'failed', 'cancelled'];

export const TrainingWebhookSpec = z
  .strictObject({
    url: z.url({ protocol: /^https?$/ }).max(2048).describe('http(s) URL that receives signed POSTs (`training.<event>`)'),
    events: z.array(z.enum(TRAINING_EVENTS)).min(1).default(DEFAULT_TRAINING_EVENTS)
      .describe('which training events to deliver; progress is throttled to one per 500 ms'),
  })
  .describe('Standard Webhooks delivery for this training');
export type TrainingWebhookSpec = z.infer<typeof TrainingWebhookSpec>;

/**
 * The name the result is registered under and its files are named after. Narrower than A1111's (letters,
 * digits, `._-`): it becomes a storage key and a word in prompts.
 */
export const TRAINING_NAME = z.string().min(1).max(100).regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/, 'letters, digits and _.- (not starting with .)');
const ASSET_NAME = z.string().min(1).max(200).regex(/^[^/\\\0]+$/, 'a name, not a path');
const ULID = z.string().regex(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/, 'a dataset id (ULID)');
const SIDE = int().min(64).max(2048).multipleOf(8);

export const EmbeddingCreate = z.strictObject({
  init_text: z.string().max(1000).default('*').describe('the words the vectors start from; empty = zeros'),
  num_vectors_per_token: int().min(1).max(75).default(1),
}).describe('A1111 create_embedding');

const LIST = z.union([z.string().max(200), z.array(z.number()).max(32)]);

export const HypernetworkCreate = z.strictObject({
  enable_sizes: z.array(int().min(1).max(8192)).min(1).max(16).nullable().default(null)
    .describe('context widths with a module pair (A1111: 768, 320, 640, 1280 for SD1); null = every width the checkpoint attends over'),
  layer_structure: LIST.default('1, 2, 1').describe('relative layer widths, starting and ending with 1'),
  activation_func: z.enum(['linear', ...HYPERNETWORK_ACTIVATIONS]).default('linear'),
  weight_initialization: z.enum(['Normal', 'XavierUniform', 'XavierNormal', 'KaimingUniform', 'KaimingNormal']).default('Normal'),
  add_layer_norm: z.boolean().default(false),
  use_dropout: z.boolean().default(false),
  dropout_structure: LIST.nullable().default(null).describe('with use_dropout: one rate per layer_structure entry, ending with 0'),
  activate_output: z.boolean().default(false).describe('activation after the last Linear too (A1111\'s UI creates false)'),
}).describe('A1111 create_hypernetwork');

/** The Train tab's fields, shared by both kinds (learn_rate's default differs, so it is per kind). */
const trainFields = {
  name: TRAINING_NAME.describe('name of the result: its files and the embedding/hypernetwork registered for the tenant'),
  dataset: ULID.describe('a dataset uploaded with POST /v1/datasets'),
  model: ASSET_NAME.nullable().default(null).describe('checkpoint to train on (sd-models title or model_name); null = the built-in model'),
  continue_from: ASSET_NAME.nullable().default(null)
    .describe('the tenant\'s embedding or hypernetwork to train further, as A1111 trains an existing file (its step counts on); null = a new one from `create`'),
  batch_size: int().min(1).max(64).default(1),
  gradient_step: int().min(1).max(1024).default(1),
  steps: int().min(1).max(1_000_000).default(100_000).describe('A1111\'s max steps: the step count training ends at'),
  clip_grad_mode: z.enum(['disabled', 'value', 'norm']).default('disabled'),
  clip_grad_value: z.string().min(1).max(10_000).default('0.1').describe('a schedule, like learn_rate'),
  latent_sampling_method: z.enum(LATENT_SAMPLING_METHODS as readonly ['once', 'deterministic', 'random']).default('once'),
  use_weight: z.boolean().default(false).describe('the images\' alpha channels as loss weights'),
  shuffle_tags: z.boolean().default(false),
  tag_drop_out: z.number().min(0).max(1).default(0),
  training_width: SIDE.default(512),
  training_height: SIDE.default(512),
  template_filename: z.enum(TRAINING_TEMPLATE_NAMES).default('style_filewords.txt').describe('a named prompt template'),
  template_text: z.string().min(1).max(100_000).nullable().default(null).describe('a template file\'s text; overrides template_filename'),
  dataset_filename_word_regex: z.string().max(1000).default('').describe('A1111 setting: words taken from file names without a caption'),
  dataset_filename_join_string: z.string().max(100).default(' '),
  clip_skip: int().min(1).max(12).default(1).describe('A1111 setting CLIP_stop_at_last_layers'),
  save_every: int().min(0).default(500)
    .describe('A1111\'s save_embedding_every / save_hypernetwork_every: a checkpoint and A1111\'s files every N steps; 0 = only at the end (and on cancel or shutdown)'),
  create_image_every: int().min(0).default(500).describe('a preview render every N steps; 0 = none'),
  preview_from_txt2img: z.boolean().default(false).describe('use the preview_* fields; else the first image\'s caption, 20 steps, the training size'),
  preview_prompt: z.string().max(100_000).default(''),
  preview_negative_prompt: z.string().max(100_000).default(''),
  preview_steps: int().min(1).max(150).default(20),
  preview_sampler_name: z.string().max(100).default('Euler a'),
  preview_cfg_scale: z.number().min(0).max(100).default(7),
  preview_seed: int().min(-1).max(Number.MAX_SAFE_INTEGER).default(-1).describe('-1 = drawn when the training is accepted'),
  preview_width: SIDE.default(512),
  preview_height: SIDE.default(512),
  log_directory: LogDirectory.nullable().default(null)
    .describe('A1111\'s log folder, as a storage prefix: A1111\'s layout of the files is also written under logs/<tenant>/<log_directory>/<date>/<name>/; null = only the training\'s own files'),
  seed: int().min(-1).max(4294967295).default(-1)
    .describe('fixes the batch order, timesteps, noise and a new hypernetwork\'s weights; -1 = drawn when the training is accepted'),
  webhook: TrainingWebhookSpec.nullable().default(null),
};

export const EmbeddingTrainingRequest = z.strictObject({
  kind: z.literal('embedding'),
  ...trainFields,
  learn_rate: z.string().min(1).max(10_000).default('0.005').describe('A1111 schedule: "0.005:100, 1e-3:1000, 1e-5"'),
  create: EmbeddingCreate.nullable().default(null).describe('how to create the embedding (absent = A1111\'s defaults); not with continue_from'),
  save_image_with_stored_embedding: z.boolean().default(true).describe('write the PNG carrying the embedding at every save'),
});

export const HypernetworkTrainingRequest = z.strictObject({
  kind: z.literal('hypernetwork'),
  ...trainFields,
  learn_rate: z.string().min(1).max(10_000).default('0.00001'),
  create: HypernetworkCreate.nullable().default(null).describe('how to create the hypernetwork (absent = A1111\'s defaults); not with continue_from'),
});

export const TrainingRequest = z.discriminatedUnion('kind', [EmbeddingTrainingRequest, HypernetworkTrainingRequest]).describe('training job');
export type TrainingRequest = z.infer<typeof TrainingRequest>;
export type EmbeddingTrainingRequest = z.infer<typeof EmbeddingTrainingRequest>;
export type HypernetworkTrainingRequest = z.infer<typeof HypernetworkTrainingRequest>;

export const TrainingResumeRequest = z.strictObject({
  steps: int().min(1).max(1_000_000).describe('the step count to train to, past the stored checkpoint\'s step'),
  learn_rate: z.string().min(1).max(10_000).nullable().default(null).describe('a new schedule; null = the original one, re-read from the stored step'),
  webhook: TrainingWebhookSpec.nullable().optional().describe('absent = the original training\'s webhook'),
}).describe('continue a finished or cancelled training');
export type TrainingResumeRequest = z.infer<typeof TrainingResumeRequest>;

export const TrainingProgress = z.object({
  step: int().describe('optimizer steps done, counting those before this training'),
  steps: int().describe('the step this training ends at'),
  loss: z.number().describe('mean loss of the last step'),
  learn_rate: z.number(),
  epoch: int(),
  epoch_step: int(),
  eta: z.number().describe('seconds left, from this attempt\'s pace'),
  rollbacks: int(),
});
export type TrainingProgress = z.infer<typeof TrainingProgress>;

const FileView = z.object({ name: z.string(), url: z.string() });

export const TrainingView = z.object({
  id: z.string(),
  kind: z.enum(TRAINING_KINDS),
  name: z.string(),
  state: z.enum(JOB_STATES),
  dataset: z.string(),
  model: z.string().nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  attempts: int(),
  resumed_from: z.string().nullable().describe('the training this one continues'),
  step: int().nullable(),
  steps: int(),
  loss: z.number().nullable(),
  learn_rate: z.number().nullable(),
  eta: z.number().nullable(),
  progress: TrainingProgress.nullable(),
  checkpoints: z.array(z.object({
    step: int(), reason: z.enum(['interval', 'rollback', 'stopped', 'final']), at: z.string(), files: z.array(z.string()),
  })).describe('every stored checkpoint of this training, oldest first; the latest is what a retry or resume continues from'),
  files: z.array(FileView).describe('A1111\'s files: <name>-<step>.pt, .pt.optim, .safetensors, .png, the loss CSV'),
  previews: z.array(FileView.extend({ step: int() })),
  asset: z.object({ kind: z.enum(['embeddings', 'hypernetworks']), name: z.string(), filename: z.string(), sha256: z.string() }).nullable()
    .describe('the registered result, once completed'),
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }).nullable(),
  webhook: TrainingWebhookSpec.nullable(),
});
export type TrainingView = z.infer<typeof TrainingView>;

export const TrainingAccepted = z.object({ id: z.string(), state: z.enum(JOB_STATES), url: z.string(), events_url: z.string() });
