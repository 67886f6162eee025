import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  type AssetRegistry, attemptNumber, CANCELLED_REASON, FarmError, jobFailure, hypernetTags, isCancelledReason, isCancelRequested, isQuarantined, leftWaiting,
  outputKey, outputUrl, takeStop, previewKey, previewUrl, publishJobEvent, quarantineReason, readTerminalRecord, recordTerminalEvent, resolveCheckpoint,
  splitFailedReason, type AssetCache, type CancelListener, type EventContext, type EventJob, type FarmConfig, type FarmKeys, type GenerateJobData,
  type GenerateJobResult, type Heartbeat, type JobProgress, type Logger, type MemoryBudget, type Storage, type TerminalRecord,
} from '@darkroom/farm';
import { loraTagNames, lorasNamed } from '@darkroom/farm/lora-assets.js';
import { VAE_DIR } from '@darkroom/farm/vae-assets.js';
import { admitOrHandBack } from './admit.js';
import { routeOrHandBack, type WarmModels } from './route.js';
import { jobUpscalerFiles } from './upscaler-files.js';
import { runExtrasJob } from './extras-job.js';
import { isExtrasJob, type ExtrasJobData } from '@darkroom/farm/extras-jobs.js';
import type { WorkerMetrics } from './metrics.js';
import { RenderCancelled, RenderFailed, type RenderHost, type StepInfo } from './render-host.js';
import type { RenderRequest } from './render-protocol.js';
import { OutputsAbandoned, storeOutputs } from './store-outputs.js';

export interface ProcessorContext {
  cfg: FarmConfig;
  redis: Redis;
  keys: FarmKeys;
  storage: Storage;
  registry: AssetRegistry;
  /** Embeddings, hypernetworks and LoRAs fetched from storage. */
  cache: AssetCache;
  /** Uploaded checkpoints fetched from storage (a budget of their own: they are gigabytes). */
  modelCache: AssetCache;
  host: RenderHost;
  cancels: CancelListener;
  events: EventContext;
  metrics: WorkerMetrics;
  log: Logger;
  workerName: string;
  /** What this worker takes jobs up to; larger ones are handed back for a bigger worker. */
  budget: MemoryBudget;
  /** Carries the job in hand to the API with every heartbeat. */
  heartbeat: Heartbeat;
  /** Why the last attempt of a job was cancelled, read by the `failed` handler that publishes the event. */
  cancelDetails: Map<string, { step_at_cancel: number; last_step: number }>;
  /** The checkpoints this worker's engine holds, for warm routing (route.ts). */
  warm: WarmModels;
}

const PROGRESS_INTERVAL_MS = 100;
const CANCEL_POLL_MS = 1000;

async function resolveNetworks(ctx: ProcessorContext, data: GenerateJobData, held: Set<string>): Promise<RenderRequest['networks']> {
  const req = data.request;
  // With no explicit list, the tenant's embeddings whose names occur in the prompts (A1111 matches names as
  // lower-cased CLIP tokens, so a case-insensitive substring test keeps every one that could match) — loading
  // all of them for every job would cost time and let one bad upload break every job.
  const text = [req.prompt, req.negative_prompt, 'hr_prompt' in req ? req.hr_prompt : '', 'hr_negative_prompt' in req ? req.hr_negative_prompt : '']
    .join('\n').toLowerCase();
  const embRecords = req.embeddings === null
    ? (await ctx.registry.list(data.tenant, 'embeddings')).filter((r) => text.includes(r.name.toLowerCase()))
    : await Promise.all(req.embeddings.map(async (n) => {
      const r = await ctx.registry.get(data.tenant, 'embeddings', n);
      if (!r) throw new FarmError('EMBEDDING_NOT_FOUND', 404, `embedding "${n}" is not uploaded`, 'embeddings');
      return r;
    }));
  const hnNames = new Set([...req.hypernetworks, ...(req.disable_extra_networks ? [] : hypernetTags(req.prompt))]);
  const hnRecords = await Promise.all([...hnNames].map(async (n) => {
    const r = await ctx.registry.get(data.tenant, 'hypernetworks', n);
    if (!r) throw new FarmError('HYPERNETWORK_NOT_FOUND', 404, `hypernetwork "${n}" is not uploaded`, 'hypernetworks');
    return r;
  }));
  // A LoRA the tenant does not have is not an error: A1111 renders without it (`Lora not found`), and the
  // engine does the same with the files it is handed. Only the first prompt's tags activate networks.
  const loraNames = req.disable_extra_networks ? [] : loraTagNames(req.prompt);
  const loraRecords = loraNames.length === 0 ? [] : lorasNamed(await ctx.registry.list(data.tenant, 'loras'), loraNames);
  return {
    loras: await Promise.all(loraRecords.map(async (r) => ({ name: r.name, path: await ctx.cache.fetch('loras', r.sha256, r.filename, held) }))),
    embeddings: await Promise.all(embRecords.map(async (r) => ({ name: r.name, path: await ctx.cache.fetch('embeddings', r.sha256, r.filename, held) }))),
    hypernetworks: await Promise.all(hnRecords.map(async (r) => ({ name: r.name, path: await ctx.cache.fetch('hypernetworks', r.sha256, r.filename, held) }))),
  };
}

/** The VAE file the API resolved sd_vae to: an upload fetched by content hash, or a file of MODELS_DIR/VAE. */
async function jobVaeFile(ctx: ProcessorContext, data: GenerateJobData, held: Set<string>): Promise<{ path: string; name: string } | undefined> {
  const v = data.vae;
  if (!v) return undefined;
  if ('sha256' in v) return { path: await ctx.cache.fetch('vaes', v.sha256, v.filename, held), name: v.filename };
  const path = join(ctx.cfg.modelsDir, VAE_DIR, v.modelsDirPath);
  if (!existsSync(path)) throw new FarmError('VAE_NOT_FOUND', 404, `VAE "${v.filename}" is gone from MODELS_DIR/${VAE_DIR}`, 'override_settings.sd_vae');
  return { path, name: v.filename };
}

async function loadInputs(ctx: ProcessorContext, data: GenerateJobData): Promise<{ initImages: Uint8Array[]; mask: Uint8Array | null }> {
  const get = async (key: string): Promise<Uint8Array> => {
    const b = await ctx.storage.get(key);
    if (!b) throw new FarmError('INPUT_MISSING', 404, `input ${key} is gone from storage`);
    return b;
  };
  return {
    initImages: await Promise.all(data.inputKeys.initImages.map(get)),
    mask: data.inputKeys.mask ? await get(data.inputKeys.mask) : null,
  };
}

/**
 * The BullMQ processor of the `generate` queue. Its terminal event is written here, before BullMQ hears of the
 * outcome (see terminal-events.ts): a job whose last run already wrote one returns that run's result, or fails with
 * its reason, without rendering again.
 */
export function generateProcessor(ctx: ProcessorContext) {
  const render = renderJob(ctx);
  return async (job: Job<GenerateJobData, GenerateJobResult>, token?: string): Promise<GenerateJobResult> => {
    const evJob: EventJob = { id: job.id!, tenant: job.data.tenant, webhook: job.data.webhook };
    const prior = await readTerminalRecord<GenerateJobResult>(ctx.redis, ctx.keys, evJob.id);
    if (prior) {
      ctx.log.info({ jobId: evJob.id, outcome: prior.type }, 'job already finished by an earlier run: its outcome is handed to the queue again');
      return replayTerminal(ctx, evJob, prior);
    }
    let result: GenerateJobResult;
    try {
      // Progress reports are flushed when this returns, so every progress event precedes the terminal one.
      result = await render(job, token);
    } catch (e) {
      // Unrecoverable failures are final: recorded here, so the event survives this process. A retryable failure
      // on the last attempt is recorded by the worker's `failed` handler once BullMQ has failed the job.
      if (e instanceof UnrecoverableError) {
        const cancelled = isCancelledReason(e.message);
        const data = cancelled ? { ...(ctx.cancelDetails.get(evJob.id) ?? {}) } : { error: splitFailedReason(e.message) };
        const { record } = await recordTerminalEvent(ctx.events, evJob, { type: cancelled ? 'cancelled' : 'failed', data, reason: e.message });
        if (record.type === 'completed' && record.result) return record.result as GenerateJobResult;
      }
      throw e;
    }
    const outputs = await Promise.all(result.outputs.map(async (o) => ({
      index: o.index, url: await outputUrl(ctx.storage, ctx.cfg, evJob.id, o.index, o.key), seed: o.seed, subseed: o.subseed, infotext: o.infotext,
    })));
    const { record } = await recordTerminalEvent(ctx.events, evJob, { type: 'completed', data: { outputs }, result });
    // A cancel that was recorded first stands (it can only be the API's, for a job it found queued).
    if (record.type !== 'completed' || !record.result) throw new UnrecoverableError(record.reason ?? CANCELLED_REASON);
    return record.result as GenerateJobResult;
  };
}

async function replayTerminal(ctx: ProcessorContext, evJob: EventJob, prior: TerminalRecord<GenerateJobResult>): Promise<GenerateJobResult> {
  // The run that wrote the record may have died before queueing the webhook; queueing it again sends nothing twice.
  await recordTerminalEvent(ctx.events, evJob, prior);
  if (prior.type === 'completed' && prior.result) return prior.result;
  throw new UnrecoverableError(prior.reason ?? CANCELLED_REASON);
}

function renderJob(ctx: ProcessorContext) {
  return async (job: Job<GenerateJobData, GenerateJobResult>, token?: string): Promise<GenerateJobResult> => {
    // Extras jobs share the queue and the render thread; their data is told apart by the job's name.
    if (isExtrasJob(job)) return runExtrasJob(ctx, job as unknown as Job<ExtrasJobData>);
    const data = job.data;
    const jobId = job.id!;
    const attempt = attemptNumber(job);
    const log = ctx.log.child({ jobId, tenant: data.tenant, attempt });
    const evJob = { id: jobId, tenant: data.tenant, webhook: data.webhook };
    ctx.cancelDetails.delete(jobId);
    // The first start takes the job out of its tenant's waiting count (a retry was counted out already).
    if (job.attemptsStarted <= 1) await leftWaiting(ctx.redis, ctx.keys, data.tenant);

    if (await isCancelRequested(ctx.redis, ctx.keys, jobId)) {
      ctx.cancelDetails.set(jobId, { step_at_cancel: 0, last_step: 0 });
      throw new UnrecoverableError(CANCELLED_REASON);
    }
    // BullMQ counted each worker that died holding this job; at the limit it is failed here, before it renders.
    if (isQuarantined(job, ctx.cfg.maxStalledCount)) {
      const reason = await quarantineReason(ctx.redis, ctx.keys, jobId, job);
      log.error({ lostWorkers: job.stalledCounter }, 'job quarantined');
      throw jobFailure({ code: 'JOB_QUARANTINED', message: reason });
    }
    await admitOrHandBack({
      redis: ctx.redis, keys: ctx.keys, budget: ctx.budget, workerName: ctx.workerName, log, onHandBack: () => ctx.metrics.handedBack.inc(),
    }, job, token);
    await routeOrHandBack({
      redis: ctx.redis, keys: ctx.keys, cfg: ctx.cfg, registry: ctx.registry, workerName: ctx.workerName, warm: ctx.warm, log,
      onHandBack: (to) => ctx.metrics.routedAway.inc({ to }),
    }, job, token);
    const started = performance.now();
    ctx.heartbeat.setJob(jobId);
    await publishJobEvent(ctx.events, evJob, 'started', { attempt, worker: ctx.workerName });
    log.info('job started');

    let request: RenderRequest;
    // Cached files this job uses: held until the render is over.
    const held = new Set<string>();
    try {
      const [checkpoint, networks, inputs, vae, upscalers] = await Promise.all([
        resolveCheckpoint({ registry: ctx.registry, modelCache: ctx.modelCache, modelsDir: ctx.cfg.modelsDir }, data.tenant, data.request.model, held), resolveNetworks(ctx, data, held), loadInputs(ctx, data),
        // The VAE the API resolved sd_vae to, by content hash: a later upload under the same name does not change this job.
        jobVaeFile(ctx, data, held),
        jobUpscalerFiles(ctx, data.upscalers ?? [], held),
      ]);
      if (checkpoint) {
        // Counted before the render: whether the engine holds it now is what decides a load.
        if (!ctx.warm.held.includes(checkpoint.sha256)) ctx.metrics.modelLoads.inc();
        ctx.warm.resolved(checkpoint);
      }
      const { webhook: _w, embeddings: _e, hypernetworks: _h, model: _m, ...params } = data.request;
      request = { kind: data.kind, params, initImages: inputs.initImages, mask: inputs.mask, checkpoint, networks, ...(vae ? { vae } : {}),
        ...(upscalers.length > 0 ? { upscalers } : {}),
        ...(data.initTransform ? { initTransform: data.initTransform } : {}),
      };
    } catch (e) {
      ctx.cache.release(held);
      ctx.modelCache.release(held);
      if (e instanceof FarmError) throw jobFailure(e);
      throw e;
    }

    let lastProgressAt = 0;
    // Progress reports go out one after another (never reordered) and are flushed before the job completes.
    let progressChain: Promise<void> = Promise.resolve();
    let firstStepAt = 0;
    let lastStepAt = 0;
    let lastStep = 0;
    const onStep = (s: StepInfo): void => {
      lastStep = s.step;
      const now = performance.now();
      if (firstStepAt === 0) firstStepAt = now;
      if (lastStepAt !== 0) ctx.metrics.stepDuration.observe((now - lastStepAt) / 1000);
      lastStepAt = now;
      // The engine counts steps over the whole job (every iteration and pass).
      const fraction = Math.min(1, s.step / Math.max(1, s.steps));
      const isLast = s.step >= s.steps;
      if (!isLast && !s.preview && now - lastProgressAt < PROGRESS_INTERVAL_MS) return;
      lastProgressAt = now;
      const elapsed = (now - firstStepAt) / 1000;
      const progress: JobProgress = {
        step: s.step, steps: s.steps, iteration: s.iteration, iterations: s.iterations, fraction,
        eta: fraction > 0 ? Math.max(0, (elapsed / fraction) * (1 - fraction)) : 0,
      };
      const preview = s.preview;
      progressChain = progressChain.then(async () => {
        if (preview) {
          const key = previewKey(data.tenant, jobId);
          await ctx.storage.put(key, preview, 'image/png');
          progress.preview = await previewUrl(ctx.storage, ctx.cfg, jobId, key, s.step);
        }
        await job.updateProgress(progress);
        await publishJobEvent(ctx.events, evJob, 'progress', { ...progress });
      }).catch((e: Error) => log.warn({ err: e.message }, 'progress report failed'));
    };

    const run = ctx.host.render(request, onStep);
    // Interrupt and skip are keys taken once: at the message, at the start (one sent while the checkpoint loaded)
    // and at every poll (one whose message pub/sub lost).
    const applyStop = (): void => void takeStop(ctx.redis, ctx.keys, jobId).then((k) => k && run.stop(k), () => undefined);
    const unwatch = ctx.cancels.watch(jobId, run.cancel, applyStop);
    applyStop();
    // Pub/sub can miss a message while the subscriber reconnects; the key is the durable signal.
    const poll = setInterval(() => {
      void isCancelRequested(ctx.redis, ctx.keys, jobId).then((c) => c && run.cancel(), () => undefined);
      applyStop();
    }, CANCEL_POLL_MS);
    try {
      const output = await run.result;
      const outputs = output.images.map((_, i) => ({
        index: i, key: outputKey(data.tenant, jobId, i), seed: output.seeds[i] ?? 0, subseed: output.subseeds[i] ?? 0, infotext: output.infotexts[i] ?? '',
      }));
      await storeOutputs({
        storage: ctx.storage, writes: outputs.map((o) => ({ key: o.key, bytes: output.images[o.index]! })), windowMs: ctx.cfg.storageRetryWindowMs, log,
        cancelled: () => isCancelRequested(ctx.redis, ctx.keys, jobId),
      });
      const renderMs = Math.round(performance.now() - started);
      ctx.metrics.jobDuration.observe({ kind: data.kind }, renderMs / 1000);
      log.info({ renderMs, images: outputs.length, ...(output.skippedEmbeddings ? { skippedEmbeddings: output.skippedEmbeddings } : {}) }, 'job rendered');
      return { outputs, worker: ctx.workerName, attempt, renderMs, ...(output.skippedEmbeddings ? { skipped_embeddings: output.skippedEmbeddings } : {}) };
    } catch (e) {
      if (e instanceof OutputsAbandoned) {
        // The render had finished: the cancel came at its last step.
        ctx.cancelDetails.set(jobId, { step_at_cancel: lastStep, last_step: lastStep });
        log.info('job cancelled while its outputs waited for storage');
        throw new UnrecoverableError(CANCELLED_REASON);
      }
      if (e instanceof RenderCancelled) {
        ctx.cancelDetails.set(jobId, { step_at_cancel: e.stepAtCancel, last_step: e.lastStep });
        log.info({ stepAtCancel: e.stepAtCancel, lastStep: e.lastStep }, 'job cancelled');
        throw new UnrecoverableError(CANCELLED_REASON);
      }
      if (e instanceof RenderFailed) {
        log.warn({ code: e.code, err: e.message }, 'render failed');
        throw jobFailure(e);
      }
      throw e;
    } finally {
      ctx.heartbeat.setJob(null);
      clearInterval(poll);
      unwatch();
      ctx.cache.release(held);
      ctx.modelCache.release(held);
      await progressChain;
    }
  };
}
