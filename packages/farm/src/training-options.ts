import type { TrainingJobOptions } from '@darkroom/core/training/train-job.js';
import type { TrainingSettings } from '@darkroom/core/training/trainer.js';
import type { TrainingRequest } from './training-schemas.js';
import { TRAINING_TEMPLATES } from './training-templates.js';

/** The schedule and batch settings of a request, in the engine's terms (what the API checks and the trainer runs). */
export function trainingSettings(req: TrainingRequest): TrainingSettings {
  return {
    learnRate: req.learn_rate,
    clipGradMode: req.clip_grad_mode,
    clipGradValue: req.clip_grad_value,
    maxSteps: req.steps,
    batchSize: req.batch_size,
    gradientStep: req.gradient_step,
    seed: req.seed,
    saveEvery: req.save_every,
  };
}

/** The template text a request trains with: its own, or a named one. */
export function templateText(req: TrainingRequest): string {
  return req.template_text ?? TRAINING_TEMPLATES[req.template_filename];
}

/** Everything `prepareTraining` takes from the request. */
export function trainingJobOptions(req: TrainingRequest, optimizerLr?: number): TrainingJobOptions {
  return {
    settings: trainingSettings(req),
    dataset: {
      width: req.training_width,
      height: req.training_height,
      template: templateText(req),
      wordRegex: req.dataset_filename_word_regex,
      joinString: req.dataset_filename_join_string,
      latentSampling: req.latent_sampling_method,
      useWeight: req.use_weight,
      shuffleTags: req.shuffle_tags,
      tagDropOut: req.tag_drop_out,
    },
    // The /v1 API takes no per-tenant settings: A1111's defaults, with clip skip from the request.
    text: { clipSkip: req.clip_skip, emphasis: 'Original', commaPaddingBacktrack: 20 },
    ...(optimizerLr !== undefined ? { optimizerLr } : {}),
  };
}
