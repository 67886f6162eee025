import { hostname } from 'node:os';
import { join } from 'node:path';
import { Worker, type Job } from 'bullmq';
import {
  AssetCache, AssetRegistry, CancelListener, connectRedis, createLogger, farmKeys, Heartbeat, isCancelledReason, loadConfig, type TrainerConfig, openQueues, openStorage,
  recordTerminalEvent, QUEUE_NAMES, splitFailedReason, startHealthServer, trainWorkerOptions, webhookMasterSecret, webhookProcessor,
  webhookWorkerOptions, workerMemoryBudget, type EventJob, type TrainJobData, type TrainJobResult, type WebhookJobData,
  pingWithin, throttledErrorLog,
} from '@darkroom/farm';
import { CheckpointStore } from './checkpoint-store.js';
import { createTrainerMetrics } from './metrics.js';
import { trainProcessor, type TrainerContext } from './processor.js';
import { TrainHost } from './train-host.js';

/**
 * A trainer: one BullMQ worker on `train` (concurrency 1, one per GPU), the engine in a training thread, the
 * webhook delivery worker, and /healthz + /metrics. SIGTERM stores a checkpoint of the training in hand and
 * hands it back to the queue, so a scale-in or a deploy loses no training work.
 */
async function main(): Promise<void> {
  const cfg: TrainerConfig = loadConfig();
  const log = createLogger('trainer', cfg.logLevel);
  const workerName = cfg.workerName;
  const keys = farmKeys(cfg.queuePrefix);
  // Commands wait for Redis rather than fail: an outage must not spend the attempts of the job in hand.
  const redis = connectRedis(cfg.redisUrl, { role: 'worker', name: 'darkroom-trainer', log });
  const bullConnection = connectRedis(cfg.redisUrl, { role: 'blocking', name: 'darkroom-trainer-bull', log });
  const storage = openStorage(cfg.storageUrl);
  const queues = openQueues(cfg, bullConnection);
  for (const q of [queues.generate, queues.train, queues.webhooks]) q.on('error', throttledErrorLog(log, `queue ${q.name}: redis error`));
  const metrics = createTrainerMetrics();
  const host = new TrainHost({
    provider: cfg.executionProvider, modelCacheBytes: cfg.modelCacheBytes, cacheDir: join(cfg.cacheDir, 'graphs'), fallbackToCpu: cfg.fallbackToCpu,
  });
  const engine = await host.ready();
  // Without its training thread a trainer would fail every job it takes: exit, so the training in hand is
  // retried elsewhere (from its last checkpoint) and the supervisor starts a fresh process.
  host.onUnexpectedExit = (code) => {
    log.error({ code }, 'training thread died; exiting');
    setTimeout(() => process.exit(1), 1000).unref();
  };
  let stopping = false;
  const cancels = await CancelListener.open(connectRedis(cfg.redisUrl, { role: 'blocking', name: 'darkroom-trainer-cancel', log }), keys);
  const events = { redis, keys, webhooks: queues.webhooks, retentionS: cfg.retainFailedS };
  const ctx: TrainerContext = {
    cfg, redis, keys, storage, registry: new AssetRegistry(redis, keys),
    modelCache: new AssetCache(storage, join(cfg.cacheDir, 'assets'), cfg.modelDiskCacheBytes, metrics.cache),
    checkpoints: new CheckpointStore(storage, redis, keys, cfg.retainFailedS),
    host, cancels, events, metrics, log, workerName, cancelDetails: new Map(), running: new Set(), isStopping: () => stopping,
  };
  const evJob = (job: Job<TrainJobData>): EventJob => ({ id: job.id!, tenant: job.data.tenant, webhook: job.data.request.webhook, family: 'training' });

  const train = new Worker<TrainJobData, TrainJobResult>(QUEUE_NAMES.train, trainProcessor(ctx), {
    ...trainWorkerOptions(cfg, bullConnection), name: workerName,
  });
  // The completed event was written by the processor before BullMQ heard of the result (terminal-events.ts).
  train.on('completed', () => metrics.trainings.inc({ outcome: 'completed' }));
  train.on('failed', (job: Job<TrainJobData> | undefined, err: Error) => {
    if (!job) return;
    void (async () => {
      // Final only when BullMQ left it failed: a retry puts it back to waiting/delayed, where the next attempt
      // resumes from the last checkpoint.
      const state = await job.getState();
      if (state !== 'failed') {
        log.warn({ jobId: job.id, attempt: job.attemptsMade, err: err.message }, 'training attempt failed; it will be retried from its last checkpoint');
        return;
      }
      const cancelled = isCancelledReason(err.message);
      metrics.trainings.inc({ outcome: cancelled ? 'cancelled' : 'failed' });
      const data = cancelled ? { ...(ctx.cancelDetails.get(job.id!) ?? {}) } : { error: splitFailedReason(err.message) };
      ctx.cancelDetails.delete(job.id!);
      if (!cancelled) log.error({ jobId: job.id, err: err.message }, 'training failed');
      // Unrecoverable failures were recorded by the processor (nothing is written again); a retryable failure on
      // its last attempt, or a training failed by BullMQ itself, is recorded here.
      await recordTerminalEvent(events, evJob(job), { type: cancelled ? 'cancelled' : 'failed', data, reason: err.message });
    })().catch((e: Error) => log.error({ jobId: job.id, err: e.message }, 'could not publish failure'));
  });
  train.on('stalled', (jobId: string) => log.warn({ jobId }, 'training stalled: its trainer stopped renewing the lock; it is re-queued'));
  // Connection errors come once per reconnection attempt while Redis is away: logged once, then counted.
  train.on('error', throttledErrorLog(log, 'train worker error', 30_000));

  let webhooks: Worker<WebhookJobData> | null = null;
  if (cfg.webhookDelivery) {
    const masterSecret = await webhookMasterSecret(cfg, redis, keys);
    webhooks = new Worker<WebhookJobData>(QUEUE_NAMES.webhooks, webhookProcessor({ cfg, redis, keys, masterSecret, deliveries: metrics.webhooks, log }), {
      ...webhookWorkerOptions(cfg, bullConnection), name: `${workerName}-webhooks`,
    });
    webhooks.on('error', throttledErrorLog(log, 'webhook worker error', 30_000));
  }

  // The API lists live trainers by these heartbeats (GET /healthz); the budget is advertised for the operators.
  const heartbeat = new Heartbeat(redis, keys, {
    name: workerName, queue: QUEUE_NAMES.train, budgetBytes: workerMemoryBudget(cfg.workerMemoryBudget), attention: { kind: 'plain' },
    host: hostname(), pid: process.pid, startedAt: new Date().toISOString(), job: null,
  }, cfg.heartbeatIntervalMs, (e) => log.warn({ err: e.message }, 'heartbeat failed'));
  await heartbeat.start();

  const health = await startHealthServer({
    host: cfg.workerHost, port: cfg.workerPort, registry: metrics.registry,
    status: async () => {
      const redisOk = await pingWithin(redis, 1_000);
      return { ok: redisOk && host.alive && train.isRunning(), redis: redisOk, training_thread: host.alive, engine, worker: workerName };
    },
  });
  log.info({ worker: workerName, port: cfg.workerPort, engine, storage: storage.driver }, 'trainer ready');

  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      log.warn('second signal: exiting without waiting for the checkpoint');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: storing a checkpoint of the training in hand');
    health.close();
    for (const stop of ctx.running) stop();
    await train.close();
    await heartbeat.stop().catch(() => undefined);
    await webhooks?.close();
    await host.close();
    await cancels.close();
    await queues.close();
    await Promise.all([redis.quit(), bullConnection.quit()]).catch(() => undefined);
    log.info('trainer stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
