import { Queue, type ConnectionOptions, type DefaultJobOptions, type WorkerOptions } from 'bullmq';
import type { JobRunnerConfig, SharedConfig } from './config.js';

export const QUEUE_NAMES = { generate: 'generate', train: 'train', webhooks: 'webhooks' } as const;

export function generateJobOptions(cfg: SharedConfig): DefaultJobOptions {
  return {
    attempts: cfg.jobAttempts,
    backoff: { type: 'exponential', delay: cfg.jobBackoffMs },
    removeOnComplete: { age: cfg.retainCompletedS },
    removeOnFail: { age: cfg.retainFailedS },
  };
}

/**
 * One job per process (one process per GPU). A lapsed lock re-queues the job (stalled recovery), and the
 * engine runs in a worker thread so the main thread always renews the lock in time.
 */
export function generateWorkerOptions(cfg: JobRunnerConfig, connection: ConnectionOptions): WorkerOptions {
  return {
    connection,
    prefix: cfg.queuePrefix,
    concurrency: 1,
    lockDuration: cfg.lockDurationMs,
    stalledInterval: cfg.stalledIntervalMs,
    maxStalledCount: cfg.maxStalledCount,
  };
}

/**
 * Trainings keep the generation jobs' attempts and retention. An attempt that ends early (a crash, a stall, a
 * lost device) costs no work beyond the last checkpoint: the next attempt resumes from it.
 */
export function trainJobOptions(cfg: SharedConfig): DefaultJobOptions {
  return generateJobOptions(cfg);
}

/**
 * One training per process (one process per GPU). Its lock is renewed by the main thread while the training
 * thread computes; a trainer that dies stops renewing, and the stalled check hands the job to another trainer.
 */
export function trainWorkerOptions(cfg: JobRunnerConfig, connection: ConnectionOptions): WorkerOptions {
  return generateWorkerOptions(cfg, connection);
}

export const WEBHOOK_BACKOFF = 'capped-exponential';
const WEBHOOK_BACKOFF_CAP_MS = 3600_000;

/** Delay before retry `attemptsMade` (1-based): base·2^(n−1), capped at an hour. */
export function webhookBackoffDelay(attemptsMade: number, baseMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), WEBHOOK_BACKOFF_CAP_MS);
}

/** How many attempts fit in the retry window, so deliveries keep trying for about a day by default. */
export function webhookAttempts(baseMs: number, windowMs: number): number {
  let total = 0;
  let attempts = 1;
  while (attempts < 200) {
    const next = webhookBackoffDelay(attempts, baseMs);
    if (total + next > windowMs) break;
    total += next;
    attempts++;
  }
  return attempts;
}

export function webhookJobOptions(cfg: SharedConfig): DefaultJobOptions {
  return {
    attempts: webhookAttempts(cfg.webhookRetryBaseMs, cfg.webhookRetryWindowMs),
    backoff: { type: WEBHOOK_BACKOFF },
    removeOnComplete: { age: cfg.retainCompletedS },
    removeOnFail: { age: cfg.retainFailedS },
  };
}

export function webhookWorkerOptions(cfg: JobRunnerConfig, connection: ConnectionOptions): WorkerOptions {
  return {
    connection,
    prefix: cfg.queuePrefix,
    concurrency: cfg.webhookConcurrency,
    settings: { backoffStrategy: (attemptsMade: number) => webhookBackoffDelay(attemptsMade, cfg.webhookRetryBaseMs) },
  };
}

export interface FarmQueues {
  generate: Queue;
  train: Queue;
  webhooks: Queue;
  close(): Promise<void>;
}

export function openQueues(cfg: SharedConfig, connection: ConnectionOptions): FarmQueues {
  const generate = new Queue(QUEUE_NAMES.generate, { connection, prefix: cfg.queuePrefix, defaultJobOptions: generateJobOptions(cfg) });
  const train = new Queue(QUEUE_NAMES.train, { connection, prefix: cfg.queuePrefix, defaultJobOptions: trainJobOptions(cfg) });
  const webhooks = new Queue(QUEUE_NAMES.webhooks, { connection, prefix: cfg.queuePrefix, defaultJobOptions: webhookJobOptions(cfg) });
  return {
    generate,
    train,
    webhooks,
    async close() {
      await Promise.all([generate.close(), train.close(), webhooks.close()]);
    },
  };
}

/** Jobs waiting for a worker: BullMQ keeps prioritized and delayed jobs outside the `wait` list. */
export async function queueBacklog(queue: Queue): Promise<number> {
  const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
  return (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
}
