import { isDarkroomError } from '@darkroom/core/errors.js';
import { runSchedule } from '@darkroom/core/training/run-plan.js';
import { FarmError } from './errors.js';
import { trainingSettings } from './training-options.js';
import type { TrainingRequest } from './training-schemas.js';

/**
 * The checks a training passes before it is queued, with the engine's own rules (A1111's schedule parser and
 * batch arithmetic), so a bad schedule or a batch larger than the dataset is a 4xx naming the field instead
 * of a job that fails on a trainer later.
 */
export function checkTrainingPlan(req: TrainingRequest, datasetImages: number, startStep: number, optimizerLr?: number): { finalStep: number } {
  let optimizerSteps: number;
  try {
    optimizerSteps = runSchedule(trainingSettings(req), datasetImages, startStep, optimizerLr).plan.optimizerSteps;
  } catch (e) {
    if (!isDarkroomError(e)) throw e;
    const field = typeof e.details.field === 'string' ? e.details.field : undefined;
    throw new FarmError(e.code, 400, field ? `${field}: ${e.message}` : e.message, field);
  }
  if (optimizerSteps === 0) {
    throw new FarmError('TRAINING_NOTHING_TO_DO', 400, `steps: the schedule ends at step ${startStep}, where training starts: nothing to train`, 'steps');
  }
  return { finalStep: startStep + optimizerSteps };
}
