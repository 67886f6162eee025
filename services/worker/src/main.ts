import { hostname } from 'node:os';
import { join } from 'node:path';
import { Job, Worker } from 'bullmq';
import {
  AssetCache, AssetRegistry, CancelListener, connectRedis, createLogger, farmKeys, Heartbeat, isCancelledReason, loadConfig, type WorkerConfig, openQueues, openStorage,
  QUEUE_NAMES, recordTerminalEvent, generateWorkerOptions, reportWorkerLost, splitFailedReason, startHealthServer, webhookMasterSecret,
  webhookProcessor, webhookWorkerOptions, memoryBudgetFromConfig, type GenerateJobData, type GenerateJobResult, type MemoryBudget, type WebhookJobData,
  pingWithin, throttledErrorLog, watchAssetDeletions,
} from '@darkroom/farm';
import { createWorkerMetrics } from './metrics.js';
import { startFlowWorker } from './flow-processor.js';
import { generateProcessor, type ProcessorContext } from './processor.js';
import type { GenerateJob } from './batch.js';
import { RenderHost } from './render-host.js';
import { WarmModels } from './route.js';

/**
 * A generation worker: one BullMQ worker on `generate` (concurrency 1, one per GPU), the engine in a render
 * thread, the webhook delivery worker, and /healthz + /metrics. SIGTERM finishes the current job first.
 */
async function main(): Promise<void> {
  const cfg: WorkerConfig = loadConfig();
  const log = createLogger('worker', cfg.logLevel);
  const workerName = cfg.workerName;
  const keys = farmKeys(cfg.queuePrefix);
  // Commands wait for Redis rather than fail: an outage must not spend the attempts of the job in hand.
  const redis = connectRedis(cfg.redisUrl, { role: 'worker', name: 'darkroom-worker', log });
  const bullConnection = connectRedis(cfg.redisUrl, { role: 'blocking', name: 'darkroom-worker-bull', log });
  const storage = openStorage(cfg.storageUrl);
  const queues = openQueues(cfg, bullConnection);
  for (const q of [queues.generate, queues.train, queues.webhooks]) q.on('error', throttledErrorLog(log, `queue ${q.name}: redis error`));
  const metrics = createWorkerMetrics();
  const host = new RenderHost({
    provider: cfg.executionProvider, modelCacheBytes: cfg.modelCacheBytes, cacheDir: join(cfg.cacheDir, 'graphs'), fallbackToCpu: cfg.fallbackToCpu,
    previewEvery: cfg.previewEveryNSteps, attention: cfg.attention, memoryMode: cfg.memoryMode, weightsDtype: cfg.weightsDtype, maxInputPixels: cfg.maxInputPixels,
    intraOpThreads: cfg.ortIntraOpThreads,
  });
  const engine = await host.ready();
  // Without its render thread a worker would fail every job it takes: exit, so the job in hand is retried
  // elsewhere and the supervisor (compose, Kubernetes) starts a fresh process.
  host.onUnexpectedExit = (code) => {
    log.error({ code }, 'render thread died; exiting');
    setTimeout(() => process.exit(1), 1000).unref();
  };
  const cancels = await CancelListener.open(connectRedis(cfg.redisUrl, { role: 'blocking', name: 'darkroom-worker-cancel', log }), keys);
  const events = { redis, keys, webhooks: queues.webhooks, retentionS: cfg.retainFailedS };
  // What a job needs here depends on how the render thread builds attention (ATTENTION), so that goes out too.
  const budget: MemoryBudget = memoryBudgetFromConfig(cfg);
  const heartbeat = new Heartbeat(redis, keys, {
    name: workerName, queue: QUEUE_NAMES.generate, ...budget,
    host: hostname(), pid: process.pid, startedAt: new Date().toISOString(), job: null,
  }, cfg.heartbeatIntervalMs, (e) => log.warn({ err: e.message }, 'heartbeat failed'));
  const ctx: ProcessorContext = {
    cfg, redis, keys, storage, registry: new AssetRegistry(redis, keys),
    cache: new AssetCache(storage, join(cfg.cacheDir, 'assets'), cfg.networkCacheBytes, metrics.cache),
    modelCache: new AssetCache(storage, join(cfg.cacheDir, 'assets'), cfg.modelDiskCacheBytes, metrics.cache),
    host, cancels, events, metrics, log, workerName, budget, heartbeat, cancelDetails: new Map(), warm: new WarmModels(heartbeat),
    // In the order a worker takes them: by priority (fair share), then FIFO.
    waiting: async (n) => (await queues.generate.getJobs(['prioritized', 'waiting'], 0, n - 1, true)).filter((j): j is GenerateJob => !!j),
  };
  // What the engine holds after each render goes out in the heartbeat, for warm routing.
  host.onModels = (paths) => ctx.warm.engineHolds(paths);
  await watchAssetDeletions(connectRedis(cfg.redisUrl, { role: 'blocking', name: 'darkroom-worker-assets', log }), keys, [ctx.cache, ctx.modelCache], log);

  const generate = new Worker<GenerateJobData, GenerateJobResult>(QUEUE_NAMES.generate, generateProcessor(ctx), {
    ...generateWorkerOptions(cfg, bullConnection), name: workerName,
  });
  // The completed event was written by the processor before BullMQ heard of the result (terminal-events.ts).
  generate.on('completed', () => metrics.jobs.inc({ outcome: 'completed' }));
  // Claims and empty fetches, at debug: when a job waits while this worker says it is idle, they show whether it asked.
  generate.on('active', (job: Job<GenerateJobData>) => log.debug({ jobId: job.id }, 'claimed'));
  generate.on('drained', () => log.debug('queue drained: waiting for work'));
  generate.on('failed', (job: Job<GenerateJobData> | undefined, err: Error) => {
    if (!job) return;
    void (async () => {
      // Final only when BullMQ left it failed: a retry puts it back to waiting/delayed. (Attempt counting alone
      // would miss jobs failed for stalling too often, and cancellations, which skip retries.)
      const state = await job.getState();
      if (state !== 'failed') {
        log.warn({ jobId: job.id, attempt: job.attemptsMade, err: err.message }, 'job attempt failed; it will be retried');
        return;
      }
      const cancelled = isCancelledReason(err.message);
      metrics.jobs.inc({ outcome: cancelled ? 'cancelled' : 'failed' });
      const evJob = { id: job.id!, tenant: job.data.tenant, webhook: job.data.webhook };
      const data = cancelled ? { ...(ctx.cancelDetails.get(job.id!) ?? {}) } : { error: splitFailedReason(err.message) };
      ctx.cancelDetails.delete(job.id!);
      if (!cancelled) log.error({ jobId: job.id, err: err.message }, 'job failed');
      // Unrecoverable failures were recorded by the processor already (this writes nothing then); a retryable
      // failure on its last attempt, or a job failed by BullMQ itself, is recorded here.
      await recordTerminalEvent(events, evJob, { type: cancelled ? 'cancelled' : 'failed', data, reason: err.message });
    })().catch((e: Error) => log.error({ jobId: job.id, err: e.message }, 'could not publish failure'));
  });
  // BullMQ's stalled check found a job whose worker stopped renewing its lock (died, or was killed for memory):
  // it is back in the queue with the loss counted, and its event log says so.
  generate.on('stalled', (jobId: string) => {
    metrics.workersLost.inc();
    void (async () => {
      const job = await Job.fromId<GenerateJobData>(queues.generate, jobId);
      if (!job) return;
      const lost = await reportWorkerLost(events, { id: jobId, tenant: job.data.tenant, webhook: job.data.webhook }, job, workerName, cfg.maxStalledCount);
      log.warn({ jobId, lostWorker: lost.worker, attempt: lost.attempt, lostWorkers: job.stalledCounter }, 'job stalled: its worker died; it is re-queued');
    })().catch((e: Error) => log.error({ jobId, err: e.message }, 'could not report a lost worker'));
  });
  // Flow parents (compose a grid, record the flow's end) run beside the renders: they never render themselves.
  const flows = startFlowWorker({ cfg, redis, keys, storage, events, generate: queues.generate, log, workerName }, generate, bullConnection);
  // Connection errors come once per reconnection attempt while Redis is away: logged once, then counted.
  generate.on('error', throttledErrorLog(log, 'generate worker error', 30_000));

  let webhooks: Worker<WebhookJobData> | null = null;
  if (cfg.webhookDelivery) {
    const masterSecret = await webhookMasterSecret(cfg, redis, keys);
    webhooks = new Worker<WebhookJobData>(QUEUE_NAMES.webhooks, webhookProcessor({ cfg, redis, keys, masterSecret, deliveries: metrics.webhooks, log }), {
      ...webhookWorkerOptions(cfg, bullConnection), name: `${workerName}-webhooks`,
    });
    webhooks.on('error', throttledErrorLog(log, 'webhook worker error', 30_000));
  }

  await heartbeat.start();

  const health = await startHealthServer({
    host: cfg.workerHost, port: cfg.workerPort, registry: metrics.registry,
    status: async () => {
      const redisOk = await pingWithin(redis, 1_000);
      return {
        ok: redisOk && host.alive && generate.isRunning(), redis: redisOk, render_thread: host.alive, engine, worker: workerName,
        memory_budget_bytes: budget.budgetBytes,
      };
    },
  });
  log.info({ worker: workerName, port: cfg.workerPort, engine, storage: storage.driver, memoryBudgetBytes: budget.budgetBytes }, 'worker ready');

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      log.warn('second signal: exiting without waiting for the current job');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: finishing the current job first');
    health.close();
    await flows.close();
    await generate.close();
    // Gone from the API's view at once, rather than when the heartbeat expires.
    await heartbeat.stop().catch(() => undefined);
    await webhooks?.close();
    await host.close();
    await cancels.close();
    await queues.close();
    await Promise.all([redis.quit(), bullConnection.quit()]).catch(() => undefined);
    log.info('worker stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
