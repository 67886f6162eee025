import { FarmError } from './errors.js';
import type { SdapiTrainEmbedding, SdapiTrainHypernetwork } from './sdapi-training-schemas.js';
import type { TrainingKind, TrainingView } from './training-schemas.js';

/**
 * How A1111's training calls map onto farm trainings, and how their answers read. Pure: the API resolves the
 * dataset, the checkpoint and the settings, and hands them in.
 */

export type SdapiTrainBody = { kind: 'embedding'; body: SdapiTrainEmbedding } | { kind: 'hypernetwork'; body: SdapiTrainHypernetwork };

/** What A1111 takes from the loaded model and the settings rather than from the call. */
export interface SdapiTrainContext {
  datasetId: string;
  /** The tenant's checkpoint (`sd_model_checkpoint`), null for the built-in model. */
  model: string | null;
  /** The tenant's `CLIP_stop_at_last_layers`. */
  clipSkip: number;
}

/** A `/v1/trainings` body for an A1111 call: it trains the named file further, as A1111 trains the file it loaded. */
export function trainingBodyFromSdapi(call: SdapiTrainBody, ctx: SdapiTrainContext): Record<string, unknown> {
  const b = call.body;
  const name = call.kind === 'embedding' ? call.body.embedding_name : call.body.hypernetwork_name;
  const common = {
    kind: call.kind,
    name,
    continue_from: name,
    dataset: ctx.datasetId,
    model: ctx.model,
    clip_skip: ctx.clipSkip,
    learn_rate: b.learn_rate,
    batch_size: b.batch_size,
    gradient_step: b.gradient_step,
    steps: b.steps,
    clip_grad_mode: b.clip_grad_mode,
    clip_grad_value: b.clip_grad_value,
    latent_sampling_method: b.latent_sampling_method,
    use_weight: b.use_weight,
    shuffle_tags: b.shuffle_tags,
    tag_drop_out: b.tag_drop_out,
    training_width: b.training_width,
    training_height: b.training_height,
    template_filename: b.template_filename,
    create_image_every: b.create_image_every,
    preview_from_txt2img: b.preview_from_txt2img,
    preview_prompt: b.preview_prompt,
    preview_negative_prompt: b.preview_negative_prompt,
    preview_steps: b.preview_steps,
    preview_sampler_name: b.preview_sampler_name,
    preview_cfg_scale: b.preview_cfg_scale,
    preview_seed: b.preview_seed,
    preview_width: b.preview_width,
    preview_height: b.preview_height,
    log_directory: b.log_directory,
  };
  return call.kind === 'embedding'
    ? { ...common, save_every: call.body.save_embedding_every, save_image_with_stored_embedding: call.body.save_image_with_stored_embedding }
    : { ...common, save_every: call.body.save_hypernetwork_every };
}

/** `/v1/trainings` field names that A1111's calls name otherwise. */
export function sdapiFieldNames(kind: TrainingKind): Record<string, string> {
  const own = kind === 'embedding' ? 'embedding_name' : 'hypernetwork_name';
  return {
    name: own,
    continue_from: own,
    dataset: 'data_root',
    save_every: kind === 'embedding' ? 'save_embedding_every' : 'save_hypernetwork_every',
    model: 'sd_model_checkpoint',
    clip_skip: 'CLIP_stop_at_last_layers',
  };
}

/** The same refusal, naming the field as the A1111 call named it. */
export function renameErrorField(e: FarmError, names: Record<string, string>): FarmError {
  if (e.field === undefined) return e;
  const [head, ...rest] = e.field.split('.');
  const renamed = names[head!];
  if (renamed === undefined) return e;
  const field = [renamed, ...rest].join('.');
  const message = e.message.startsWith(`${e.field}:`) ? `${field}:${e.message.slice(e.field.length + 1)}` : e.message;
  return new FarmError(e.code, e.status, message, field, e.file);
}

/** The file A1111 would have written, relative to its install: the tenant's asset of that name here. */
export function a1111FileName(kind: TrainingKind, name: string): string {
  return kind === 'embedding' ? `embeddings/${name}.pt` : `models/hypernetworks/${name}.pt`;
}

export function createdInfo(kind: TrainingKind, fileName: string): string {
  return `create ${kind} filename: ${fileName}`;
}

export function createErrorInfo(kind: TrainingKind, message: string): string {
  return `create ${kind} error: ${message}`;
}

/**
 * A1111's answer to both training calls: "train embedding complete" for a hypernetwork too, as A1111 words it,
 * and Python's `str(None)` when there was no error.
 */
export function trainedInfo(fileName: string, error: string | null): string {
  return `train embedding complete: filename: ${fileName} error: ${error ?? 'None'}`;
}

/** A1111's answer when the call itself broke (its outer `except`), rather than the training. */
export function trainErrorInfo(message: string): string {
  return `train embedding error: ${message}`;
}

/**
 * The answer for a finished training. A failed or cancelled one registered nothing, so there is no file to name
 * (A1111 likewise leaves `filename` empty when its training function raises). A file already trained to `steps`
 * is left as it is and, as in A1111, that is no error.
 */
export function trainingOutcomeInfo(view: TrainingView): string {
  const file = a1111FileName(view.kind, view.name);
  if (view.state === 'completed' || view.error?.code === 'TRAINING_NOTHING_TO_DO') return trainedInfo(file, null);
  if (view.state === 'cancelled') {
    return trainedInfo('', `training ${view.id} was cancelled at step ${view.step ?? 0}; POST /v1/trainings/${view.id}/resume continues it`);
  }
  return trainedInfo('', view.error ? `${view.error.code}: ${view.error.message}` : `training ${view.id} is ${view.state}`);
}
