import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  assetKindOf, CANCELLED_REASON, FarmError, jobFailure, isCancelledReason, isCancelRequested, previewFileName, publishJobEvent, readTerminalRecord,
  recordTerminalEvent, splitFailedReason, storeAsset, trainingFileKey, trainingFileUrl, trainingLogPrefix,
  type AssetCache, type AssetRegistry, type CancelListener, type EventContext, type EventJob, type TrainerConfig, type FarmKeys, type Logger,
  type Storage, type TrainingProgress, type TrainJobData, type TrainJobResult,
} from '@darkroom/farm';
import type { CheckpointStore, TrainingLog } from './checkpoint-store.js';
import { loadTrainingInputs } from './inputs.js';
import type { TrainerMetrics } from './metrics.js';
import { TrainingFailed, type TrainHost } from './train-host.js';
import type { CheckpointMessage, StepMessage } from './train-protocol.js';
import { DarkroomError } from '@darkroom/core/errors.js';

export interface TrainerContext {
  cfg: TrainerConfig;
  redis: Redis;
  keys: FarmKeys;
  storage: Storage;
  registry: AssetRegistry;
  modelCache: AssetCache;
  checkpoints: CheckpointStore;
  host: TrainHost;
  cancels: CancelListener;
  events: EventContext;
  metrics: TrainerMetrics;
  log: Logger;
  workerName: string;
  /** What the `failed` handler reports for a cancelled training. */
  cancelDetails: Map<string, { step_at_cancel: number; checkpoint_step: number | null }>;
  /** Stop functions of the running trainings, called on SIGTERM. */
  running: Set<() => void>;
  /** True once SIGTERM arrived: a training that starts now stops at once. */
  isStopping: () => boolean;
}

const PROGRESS_INTERVAL_MS = 250;
const CANCEL_POLL_MS = 1000;

/**
 * The BullMQ processor of the `train` queue: fetch the inputs, train off-thread, store every checkpoint as it
 * comes, and at the end register the result as the tenant's asset. A cancel ends the job `cancelled` after a
 * final checkpoint; SIGTERM stores one and hands the job back to the queue, where the next trainer resumes it.
 */
export function trainProcessor(ctx: TrainerContext) {
  const train = trainJob(ctx);
  return async (job: Job<TrainJobData, TrainJobResult>, token?: string): Promise<TrainJobResult> => {
    // The terminal event is written here, once, before BullMQ hears of the outcome (terminal-events.ts): a
    // training whose trainer died after writing it returns the recorded result when it runs again.
    const evJob: EventJob = { id: job.id!, tenant: job.data.tenant, webhook: job.data.request.webhook, family: 'training' };
    const prior = await readTerminalRecord<TrainJobResult>(ctx.redis, ctx.keys, evJob.id);
    if (prior) {
      await recordTerminalEvent(ctx.events, evJob, prior);
      if (prior.type === 'completed' && prior.result) return prior.result;
      throw new UnrecoverableError(prior.reason ?? CANCELLED_REASON);
    }
    let result: TrainJobResult;
    try {
      result = await train(job, token);
    } catch (e) {
      if (e instanceof UnrecoverableError) {
        const cancelled = isCancelledReason(e.message);
        const data = cancelled ? { ...(ctx.cancelDetails.get(evJob.id) ?? {}) } : { error: splitFailedReason(e.message) };
        const { record } = await recordTerminalEvent(ctx.events, evJob, { type: cancelled ? 'cancelled' : 'failed', data, reason: e.message });
        if (record.type === 'completed' && record.result) return record.result as TrainJobResult;
      }
      throw e;
    }
    const { record } = await recordTerminalEvent(ctx.events, evJob, { type: 'completed', data: { asset: result.asset, step: result.step }, result });
    if (record.type !== 'completed' || !record.result) throw new UnrecoverableError(record.reason ?? CANCELLED_REASON);
    return record.result as TrainJobResult;
  };
}

function trainJob(ctx: TrainerContext) {
  return async (job: Job<TrainJobData, TrainJobResult>, token?: string): Promise<TrainJobResult> => {
    const data = job.data;
    const req = data.request;
    const jobId = job.id!;
    const log = ctx.log.child({ jobId, tenant: data.tenant, attempt: job.attemptsMade + 1 });
    const evJob: EventJob = { id: jobId, tenant: data.tenant, webhook: req.webhook, family: 'training' };
    const trainingLog: TrainingLog | null = req.log_directory
      ? { prefix: trainingLogPrefix(data.tenant, req.log_directory, data.submittedAt, req.name), kind: req.kind, name: req.name }
      : null;
    ctx.cancelDetails.delete(jobId);
    if (await isCancelRequested(ctx.redis, ctx.keys, jobId)) {
      ctx.cancelDetails.set(jobId, { step_at_cancel: 0, checkpoint_step: null });
      throw new UnrecoverableError(CANCELLED_REASON);
    }
    const started = performance.now();
    const held = new Set<string>();
    let inputs;
    try {
      inputs = await loadTrainingInputs({ ...ctx, modelsDir: ctx.cfg.modelsDir }, jobId, data, held);
    } catch (e) {
      ctx.modelCache.release(held);
      if (e instanceof FarmError || e instanceof DarkroomError) throw jobFailure(e);
      throw e;
    }
    await publishJobEvent(ctx.events, evJob, 'started', {
      attempt: job.attemptsMade + 1, worker: ctx.workerName, resuming: inputs.ownCheckpoint !== null,
    });
    log.info({ files: inputs.files.length, resuming: inputs.ownCheckpoint !== null }, 'training started');

    let chain: Promise<void> = Promise.resolve();
    const enqueue = (what: string, f: () => Promise<void>): void => {
      chain = chain.then(f).catch((e: Error) => log.warn({ err: e.message }, `${what} report failed`));
    };
    let lastReportAt = 0;
    let firstStep: { at: number; step: number } | null = null;
    let lastStepAt = 0;
    let last: StepMessage | null = null;
    let rollbacks = 0;
    let lastCheckpointStep: number | null = null;
    let finalFiles: CheckpointMessage['files'] = [];

    const onStep = (s: StepMessage): void => {
      const now = performance.now();
      if (lastStepAt) ctx.metrics.stepDuration.observe((now - lastStepAt) / 1000);
      lastStepAt = now;
      firstStep ??= { at: now, step: s.step - 1 };
      last = s;
      if (s.step < s.steps && now - lastReportAt < PROGRESS_INTERVAL_MS) return;
      lastReportAt = now;
      const done = s.step - firstStep.step;
      const progress: TrainingProgress = {
        step: s.step, steps: s.steps, loss: s.loss, learn_rate: s.learnRate, epoch: s.epoch, epoch_step: s.epochStep, rollbacks,
        eta: done > 0 ? ((now - firstStep.at) / 1000 / done) * (s.steps - s.step) : 0,
      };
      enqueue('progress', async () => {
        await job.updateProgress(progress);
        await publishJobEvent(ctx.events, evJob, 'progress', { ...progress });
      });
    };

    const run = ctx.host.train(inputs, {
      onStep,
      onRollback: (r) => {
        rollbacks = r.rollbacks;
        ctx.metrics.rollbacks.inc();
        log.warn({ atStep: r.atStep, toStep: r.toStep, lrScale: r.lrScale, reason: r.reason }, 'non-finite loss: rolled back');
        enqueue('rollback', () => publishJobEvent(ctx.events, evJob, 'rollback', {
          at_step: r.atStep, to_step: r.toStep, reason: r.reason, lr_scale: r.lrScale, rollbacks: r.rollbacks,
        }).then(() => undefined));
      },
      onPreview: (step, png, infotext) => {
        enqueue('preview', async () => {
          const key = await ctx.checkpoints.storePreview(data.tenant, jobId, req.name, step, png, trainingLog);
          const url = await trainingFileUrl(ctx.storage, ctx.cfg, jobId, key, 'images', previewFileName(req.name, step));
          await publishJobEvent(ctx.events, evJob, 'preview', { step, url, infotext });
        });
      },
      // Stored in order with the other reports, and awaited by the run: it continues only once this is in storage.
      onCheckpoint: (m) => {
        const stored = chain.then(async () => {
          const record = await ctx.checkpoints.store(data.tenant, jobId, m, trainingLog);
          lastCheckpointStep = m.step;
          if (m.reason === 'final') finalFiles = m.files;
          ctx.metrics.checkpoints.inc({ reason: m.reason });
          const files = await Promise.all(record.files.map(async (name) => ({
            name, url: await trainingFileUrl(ctx.storage, ctx.cfg, jobId, trainingFileKey(data.tenant, jobId, name), 'files', name),
          })));
          await publishJobEvent(ctx.events, evJob, 'checkpoint', { step: m.step, reason: m.reason, files });
        });
        chain = stored.catch(() => undefined);
        return stored;
      },
    });
    let cancelled = false;
    let shuttingDown = false;
    /** The last step this thread had heard of when the cancel arrived. */
    let stepAtCancel = 0;
    const cancel = (): void => {
      if (!cancelled) stepAtCancel = (last as StepMessage | null)?.step ?? 0;
      cancelled = true;
      run.cancel();
    };
    const shutdown = (): void => {
      shuttingDown = true;
      run.shutdown();
    };
    const unwatch = ctx.cancels.watch(jobId, cancel);
    ctx.running.add(shutdown);
    if (ctx.isStopping()) shutdown();
    // Pub/sub can miss a message while the subscriber reconnects; the key is the durable signal.
    const poll = setInterval(() => {
      void isCancelRequested(ctx.redis, ctx.keys, jobId).then((c) => c && cancel(), () => undefined);
    }, CANCEL_POLL_MS);
    try {
      const outcome = await run.result;
      await chain;
      if (outcome.status === 'stopped') {
        if (cancelled || !shuttingDown) {
          ctx.cancelDetails.set(jobId, { step_at_cancel: stepAtCancel, checkpoint_step: lastCheckpointStep });
          log.info({ step: outcome.step }, 'training cancelled after a checkpoint');
          throw new UnrecoverableError(CANCELLED_REASON);
        }
        log.info({ step: outcome.step }, 'trainer stopping: checkpoint stored, training back in the queue');
        ctx.metrics.trainings.inc({ outcome: 'requeued' });
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const asset = finalFiles.find((f) => f.fileName === `${req.name}.pt`);
      if (!asset) throw new Error('the final save wrote no .pt file');
      const rec = await storeAsset(ctx.storage, ctx.registry, data.tenant, assetKindOf(req.kind), asset.fileName, asset.bytes);
      const trainMs = Math.round(performance.now() - started);
      log.info({ trainMs, step: outcome.step, asset: rec.name, sha256: rec.sha256 }, 'training completed; result registered');
      return {
        asset: { kind: assetKindOf(req.kind), name: rec.name, filename: rec.filename, sha256: rec.sha256 },
        step: outcome.step, worker: ctx.workerName, attempt: job.attemptsMade + 1, trainMs,
      };
    } catch (e) {
      if (e instanceof TrainingFailed) {
        log.warn({ code: e.code, err: e.message }, 'training failed');
        throw jobFailure(e);
      }
      throw e;
    } finally {
      clearInterval(poll);
      unwatch();
      ctx.running.delete(shutdown);
      ctx.modelCache.release(held);
      await chain;
    }
  };
}
