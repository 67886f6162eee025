import { CANCELLED_REASON, FarmError, recordTerminalEvent, requestCancel, type TrainingView } from '@darkroom/farm';
import { eventContext, type ApiContext } from './context.js';
import { removeUnlessTaken, type CancelOutcome } from './job-actions.js';
import { loadTraining } from './training-submit.js';
import { trainingView, type TrainingTombstone } from './training-view.js';

/**
 * Cancels a tenant's training. A queued one is removed at once (a tombstone keeps GET answering `cancelled`);
 * a running one is told through Redis, stores a checkpoint after its current optimizer step and ends
 * `cancelled`, and can be continued later with POST /v1/trainings/:id/resume.
 */
export async function cancelTraining(ctx: ApiContext, tenant: string, id: string): Promise<CancelOutcome<TrainingView>> {
  const job = await loadTraining(ctx, tenant, id);
  if (!job) {
    const view = await trainingView(ctx, tenant, id);
    if (!view) throw new FarmError('TRAINING_NOT_FOUND', 404, `no training ${id}`);
    return { view, requested: false, stopping: false };
  }
  const state = await job.getState();
  if (state === 'completed' || state === 'failed') return { view: (await trainingView(ctx, tenant, id))!, requested: false, stopping: false };
  await requestCancel(ctx.redis, ctx.keys, id, ctx.cfg.retainFailedS);
  // A queued training a trainer took in the meantime cannot be removed: the cancel key and message reach that trainer.
  const stopping = state === 'active' || !(await removeUnlessTaken(ctx.queues.train, id));
  if (!stopping) {
    const req = job.data.request;
    const tomb: TrainingTombstone = {
      tenant, kind: req.kind, name: req.name, dataset: req.dataset, model: req.model, steps: req.steps,
      created_at: new Date(job.timestamp).toISOString(), cancelled_at: new Date().toISOString(), webhook: req.webhook,
      requestHash: job.data.requestHash, resumed_from: job.data.resume?.from ?? null,
    };
    await ctx.redis.set(ctx.keys.trainingTombstone(id), JSON.stringify(tomb), 'EX', ctx.cfg.retainFailedS);
    await recordTerminalEvent(
      eventContext(ctx),
      { id, tenant, webhook: req.webhook, family: 'training' }, { type: 'cancelled', data: { before_start: true }, reason: CANCELLED_REASON },
    );
  }
  ctx.log.info({ jobId: id, tenant, state }, 'training cancel requested');
  return { view: (await trainingView(ctx, tenant, id))!, requested: true, stopping };
}
