import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  type AssetRegistry, attemptNumber, CANCELLED_REASON, FarmError, jobFailure, hypernetTags, isCancelledReason, isCancelRequested, isQuarantined, leftWaiting,
  outputKey, outputUrl, takeStop, previewKey, previewUrl, publishJobEvent, quarantineReason, readTerminalRecord, recordTerminalEvent, resolveCheckpoint,
  splitFailedReason, type AssetCache, type CancelListener, type EventContext, type EventJob, type WorkerConfig, type FarmKeys, type GenerateJobData,
  type GenerateJobResult, type Heartbeat, type JobProgress, type Logger, type MemoryBudget, type Storage, type TerminalRecord,
} from '@darkroom/farm';
import { loraTagNames, lorasNamed } from '@darkroom/farm/lora-assets.js';
import { embeddingsInPrompts } from '@darkroom/farm/job-batch-key.js';
import { VAE_DIR } from '@darkroom/farm/vae-assets.js';
import { admitOrHandBack } from './admit.js';
import { gatherBatch, dropFromBatch, handBackIfBatched, keepBatchLeases, releaseBatch, stillHeld, type Batch, type BatchContext, type GenerateJob } from './batch.js';
import { routeOrHandBack, type WarmModels } from './route.js';
import { jobUpscalerFiles } from './upscaler-files.js';
import { runExtrasJob } from './extras-job.js';
import { isExtrasJob, type ExtrasJobData } from '@darkroom/farm/extras-jobs.js';
import type { WorkerMetrics } from './metrics.js';
import { RenderCancelled, RenderFailed, type RenderHost, type StepInfo } from './render-host.js';
import type { RenderRequest } from './render-protocol.js';
import { OutputsAbandoned, storeOutputs } from './store-outputs.js';
import { DarkroomError } from '@darkroom/core/errors.js';

export interface ProcessorContext {
  cfg: WorkerConfig;
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
  /** The first `n` jobs waiting on the generate queue, in the order workers take them (dynamic batching). */
  waiting: (n: number) => Promise<GenerateJob[]>;
}

const PROGRESS_INTERVAL_MS = 100;
const CANCEL_POLL_MS = 1000;

async function resolveNetworks(ctx: ProcessorContext, data: GenerateJobData, held: Set<string>): Promise<RenderRequest['networks']> {
  const req = data.request;
  // With no explicit list, the tenant's embeddings whose names occur in the prompts (A1111 matches names as
  // lower-cased CLIP tokens, so a case-insensitive substring test keeps every one that could match) — loading
  // all of them for every job would cost time and let one bad upload break every job.
  // The API keys batches with the same choice (job-batch-key.ts).
  const inPrompts = async () => {
    const all = await ctx.registry.list(data.tenant, 'embeddings');
    const names = new Set(embeddingsInPrompts(all.map((r) => r.name), req));
    return all.filter((r) => names.has(r.name));
  };
  const embRecords = req.embeddings === null
    ? await inPrompts()
    : await Promise.all(req.embeddings.map(async (n) => {
      const r = await ctx.registry.get(data.tenant, 'embeddings', n);
      if (!r) throw new DarkroomError('EMBEDDING_NOT_FOUND', `embedding "${n}" is not uploaded`, { field: 'embeddings' });
      return r;
    }));
  const hnNames = new Set([...req.hypernetworks, ...(req.disable_extra_networks ? [] : hypernetTags(req.prompt))]);
  const hnRecords = await Promise.all([...hnNames].map(async (n) => {
    const r = await ctx.registry.get(data.tenant, 'hypernetworks', n);
    if (!r) throw new DarkroomError('HYPERNETWORK_NOT_FOUND', `hypernetwork "${n}" is not uploaded`, { field: 'hypernetworks' });
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
  if (!existsSync(path)) throw new DarkroomError('VAE_NOT_FOUND', `VAE "${v.filename}" is gone from MODELS_DIR/${VAE_DIR}`, { field: 'override_settings.sd_vae' });
  return { path, name: v.filename };
}

/** A job's A1111 fields as the render thread takes them (its farm-only fields left out). */
function renderParams(data: GenerateJobData): Record<string, unknown> {
  const { webhook: _w, embeddings: _e, hypernetworks: _h, model: _m, ...params } = data.request;
  return params;
}

async function loadInputs(ctx: ProcessorContext, data: GenerateJobData): Promise<{ initImages: Uint8Array[]; mask: Uint8Array | null }> {
  const get = async (key: string): Promise<Uint8Array> => {
    const b = await ctx.storage.get(key);
    if (!b) throw new DarkroomError('INPUT_MISSING', `input ${key} is gone from storage`);
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
      // A job rendered in another job's batch is claimed for the first time here: it leaves its tenant's waiting count now.
      if (prior.result?.batched_with && job.attemptsStarted <= 1) await leftWaiting(ctx.redis, ctx.keys, job.data.tenant);
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
    const bctx: BatchContext = { redis: ctx.redis, keys: ctx.keys, cfg: ctx.cfg, workerName: ctx.workerName, waiting: ctx.waiting, budget: ctx.budget, log };
    await handBackIfBatched(bctx, job, token);
    await admitOrHandBack({
      redis: ctx.redis, keys: ctx.keys, budget: ctx.budget, workerName: ctx.workerName, log, onHandBack: () => ctx.metrics.handedBack.inc(),
    }, job, token);
    await routeOrHandBack({
      redis: ctx.redis, keys: ctx.keys, cfg: ctx.cfg, registry: ctx.registry, workerName: ctx.workerName, warm: ctx.warm, log,
      onHandBack: (to) => ctx.metrics.routedAway.inc({ to }),
    }, job, token);
    // Compatible waiting jobs join this one's render (BATCH_MAX > 1); each keeps its own events and outcome.
    const batch: Batch = await gatherBatch(bctx, job);
    let batchOpen = true;
    const closeBatch = async (): Promise<void> => {
      if (!batchOpen) return;
      batchOpen = false;
      await releaseBatch(bctx, batch).catch((e: Error) => log.warn({ err: e.message }, 'batch leases not released: they expire'));
    };
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
      // A batched job must render with the files this one's render gets; one that would get others renders alone.
      const sameNetworks = JSON.stringify(networks);
      const mismatched: string[] = [];
      for (const b of batch.jobs) {
        const own = await resolveNetworks(ctx, b.data, held).catch(() => null);
        if (JSON.stringify(own) !== sameNetworks) mismatched.push(b.id!);
      }
      await dropFromBatch(bctx, batch, mismatched);
      const params = renderParams(data);
      request = { kind: data.kind, params, initImages: inputs.initImages, mask: inputs.mask, checkpoint, networks, ...(vae ? { vae } : {}),
        ...(upscalers.length > 0 ? { upscalers } : {}),
        ...(data.initTransform ? { initTransform: data.initTransform } : {}),
        ...(batch.jobs.length > 0 ? { batch: batch.jobs.map((b) => renderParams(b.data)) } : {}),
      };
    } catch (e) {
      await closeBatch();
      ctx.cache.release(held);
      ctx.modelCache.release(held);
      if (e instanceof FarmError || e instanceof DarkroomError) throw jobFailure(e);
      throw e;
    }

    // The jobs rendered with this one, in the order of the render's images after this job's own.
    const rendered = [...batch.jobs];
    const batchEvJobs = rendered.map((b) => ({ id: b.id!, tenant: b.data.tenant, webhook: b.data.webhook }));
    for (const [i, b] of rendered.entries()) {
      await publishJobEvent(ctx.events, batchEvJobs[i]!, 'started', { attempt: attemptNumber(b), worker: ctx.workerName, batched_with: jobId });
    }
    if (rendered.length > 0) log.info({ batch: rendered.map((b) => b.id), size: rendered.length + 1 }, 'rendering as one batch');
    const stopRenewing = keepBatchLeases(bctx, batch);
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
        // The batch's steps are every batched job's steps (no previews: the preview is of this job's image).
        const { preview: _p, ...plain } = progress;
        for (const b of batchEvJobs) await publishJobEvent(ctx.events, b, 'progress', { ...plain });
      }).catch((e: Error) => log.warn({ err: e.message }, 'progress report failed'));
    };

    const run = ctx.host.render(request, onStep);
    // Interrupt and skip are keys taken once: at the message, at the start (one sent while the checkpoint loaded)
    // and at every poll (one whose message pub/sub lost).
    // An interrupt or skip shortens this job's render; the jobs batched with it then render on their own.
    let stopped = false;
    const applyStop = (): void => void takeStop(ctx.redis, ctx.keys, jobId).then((k) => {
      if (!k) return;
      stopped = true;
      run.stop(k);
    }, () => undefined);
    const unwatch = ctx.cancels.watch(jobId, run.cancel, applyStop);
    applyStop();
    // Pub/sub can miss a message while the subscriber reconnects; the key is the durable signal.
    const poll = setInterval(() => {
      void isCancelRequested(ctx.redis, ctx.keys, jobId).then((c) => c && run.cancel(), () => undefined);
      applyStop();
    }, CANCEL_POLL_MS);
    try {
      const output = await run.result;
      if (output.unbatched && rendered.length > 0) {
        log.warn({ batch: rendered.map((b) => b.id) }, 'the engine would not batch these jobs with this one: they render on their own');
        rendered.length = 0;
      }
      const own = output.images.length - rendered.length;
      const outputs = output.images.slice(0, own).map((_, i) => ({
        index: i, key: outputKey(data.tenant, jobId, i), seed: output.seeds[i] ?? 0, subseed: output.subseeds[i] ?? 0, infotext: output.infotexts[i] ?? '',
      }));
      await storeOutputs({
        storage: ctx.storage, writes: outputs.map((o) => ({ key: o.key, bytes: output.images[o.index]! })), windowMs: ctx.cfg.storageRetryWindowMs, log,
        cancelled: () => isCancelRequested(ctx.redis, ctx.keys, jobId),
      });
      const renderMs = Math.round(performance.now() - started);
      stopRenewing();
      if (rendered.length > 0 && !stopped) {
        // Their progress events go out before their terminal ones.
        await progressChain;
        await finishBatched(ctx, log, batch, rendered, output, own, jobId, renderMs);
      }
      await closeBatch();
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
      stopRenewing();
      await closeBatch();
      ctx.heartbeat.setJob(null);
      clearInterval(poll);
      unwatch();
      ctx.cache.release(held);
      ctx.modelCache.release(held);
      await progressChain;
    }
  };
}

/**
 * Writes the outcome of each job rendered in this job's batch: its image stored under its own key, then its
 * terminal record (first writer wins: a cancel recorded first stands). Only jobs whose lease is still held are
 * written; a job that fails here is left to render on its own once its lease goes.
 */
async function finishBatched(
  ctx: ProcessorContext, log: Logger, batch: Batch, rendered: readonly GenerateJob[],
  output: { images: Uint8Array[]; infotexts: string[]; seeds: number[]; subseeds: number[] }, own: number, claimedId: string, renderMs: number,
): Promise<void> {
  const bctx: BatchContext = { redis: ctx.redis, keys: ctx.keys, cfg: ctx.cfg, workerName: ctx.workerName, waiting: ctx.waiting, budget: ctx.budget, log };
  const held = new Set((await stillHeld(bctx, batch)).map((j) => j.id!));
  for (const [i, b] of rendered.entries()) {
    const id = b.id!;
    if (!held.has(id)) continue;
    const at = own + i;
    const rec = { index: 0, key: outputKey(b.data.tenant, id, 0), seed: output.seeds[at] ?? 0, subseed: output.subseeds[at] ?? 0, infotext: output.infotexts[at] ?? '' };
    const evB: EventJob = { id, tenant: b.data.tenant, webhook: b.data.webhook };
    try {
      await storeOutputs({
        storage: ctx.storage, writes: [{ key: rec.key, bytes: output.images[at]! }], windowMs: ctx.cfg.storageRetryWindowMs, log,
        cancelled: () => isCancelRequested(ctx.redis, ctx.keys, id),
      });
      const result: GenerateJobResult = { outputs: [rec], worker: ctx.workerName, attempt: attemptNumber(b), renderMs, batched_with: claimedId };
      const url = await outputUrl(ctx.storage, ctx.cfg, id, 0, rec.key);
      const data = { outputs: [{ index: 0, url, seed: rec.seed, subseed: rec.subseed, infotext: rec.infotext }] };
      await recordTerminalEvent(ctx.events, evB, { type: 'completed', data, result });
      ctx.metrics.batchedJobs.inc();
    } catch (e) {
      log.warn({ batchedJob: id, err: (e as Error).message }, 'a batched job was not finished here: it renders on its own');
    }
  }
}
