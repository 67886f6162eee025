/**
 * The plan of a training run before any model is loaded: A1111's batch arithmetic (batch size, gradient
 * accumulation, the images an epoch uses) and its learn-rate schedule step by step. Pure, so the farm checks a
 * training request with the trainer's own rules at submission without loading the trainer.
 */
import { DarkroomError } from '../errors.js';
import { planLearnRates, type LearnRatePlan } from './learn-schedule.js';
import type { TrainingSettings } from './trainer.js';

export interface BatchPlan {
  readonly batchSize: number;
  readonly gradientStep: number;
  /** Micro-batches per epoch (leftover images of an epoch are not used). */
  readonly microsPerEpoch: number;
}

export function batchPlan(length: number, batchSize: number, gradientStep: number): BatchPlan {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `batch_size must be a positive integer, got ${batchSize}`, { field: 'batch_size' });
  }
  if (batchSize > length) {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `batch_size ${batchSize} is larger than the dataset (${length} images)`, { field: 'batch_size' });
  }
  if (!Number.isInteger(gradientStep) || gradientStep < 1) {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `gradient_step must be a positive integer, got ${gradientStep}`, { field: 'gradient_step' });
  }
  const batches = Math.floor(length / batchSize);
  const gs = Math.min(gradientStep, batches);
  return { batchSize, gradientStep: gs, microsPerEpoch: batches - (batches % gs) };
}

/** The batch arithmetic and the step-by-step rates of a run: pure, so callers can check a job before loading a model. */
export function runSchedule(
  settings: TrainingSettings,
  datasetLength: number,
  startStep: number,
  optimizerLr?: number,
): { readonly plan: LearnRatePlan; readonly batches: BatchPlan } {
  const batches = batchPlan(datasetLength, settings.batchSize, settings.gradientStep);
  const plan = planLearnRates({
    learnRate: settings.learnRate,
    ...(settings.clipGradMode !== 'disabled' ? { clipGradValue: settings.clipGradValue } : {}),
    maxSteps: settings.maxSteps,
    curStep: startStep,
    gradientStep: batches.gradientStep,
    ...(optimizerLr !== undefined ? { optimizerLr } : {}),
  });
  return { plan, batches };
}
