import type { Redis } from 'ioredis';
import { publishJobEvent, readJobEvents, type EventContext, type EventJob } from './events.js';
import type { FarmKeys } from './keys.js';

/**
 * A worker that dies mid-job (killed, out of memory, its machine gone) stops renewing the job's lock; BullMQ's
 * stalled check in a surviving worker puts the job back and counts the loss on it (`stalledCounter`). These
 * helpers turn that into what a client sees: a `worker_lost` event per loss, and a quarantine once a job has
 * lost `maxLosses` workers, so one poisonous job cannot take down the fleet one worker at a time.
 */

/** What BullMQ counts on a job that tells how many times it was started for real. */
export interface AttemptCounters {
  readonly attemptsMade: number;
  readonly stalledCounter: number;
}

/**
 * The attempt a start is: failed attempts and lost workers before it, plus one. A worker that hands a job back
 * because it is too small for it counts neither.
 */
export function attemptNumber(job: AttemptCounters): number {
  return job.attemptsMade + job.stalledCounter + 1;
}

export interface WorkerLoss {
  readonly attempt: number;
  readonly worker: string;
}

/** The worker that held attempt `attempt`, from the job's `started` events. */
async function startedBy(redis: Redis, keys: FarmKeys, jobId: string, attempt: number): Promise<string> {
  const events = await readJobEvents(redis, keys, jobId, '0');
  const started = events.filter((e) => e.type === 'started' && e.data.attempt === attempt).at(-1);
  return typeof started?.data.worker === 'string' ? started.data.worker : 'unknown';
}

/**
 * Publishes `worker_lost` for the attempt a stall ended. Called after BullMQ counted the stall, so the lost
 * attempt is the last one counted (the job may already be running its next attempt elsewhere).
 */
export async function reportWorkerLost(
  events: EventContext, job: EventJob, counters: AttemptCounters, detectedBy: string, maxLosses: number,
): Promise<WorkerLoss> {
  const attempt = attemptNumber(counters) - 1;
  const worker = await startedBy(events.redis, events.keys, job.id, attempt);
  await publishJobEvent(events, job, 'worker_lost', {
    attempt, worker, detected_by: detectedBy, lost_workers: counters.stalledCounter, quarantine_at: maxLosses,
  });
  return { attempt, worker };
}

/** Whether a job has lost enough workers to be failed at its next start instead of rendered again. */
export function isQuarantined(counters: AttemptCounters, maxLosses: number): boolean {
  return counters.stalledCounter >= maxLosses;
}

/**
 * The reason a quarantined job fails with, naming the workers it was rendering on when they died. The stall that
 * made it quarantined may not be in the log yet (the worker that found it publishes it while the job is already
 * handed out again), so the last lost attempt is read from its `started` event when missing.
 */
export async function quarantineReason(redis: Redis, keys: FarmKeys, jobId: string, counters: AttemptCounters): Promise<string> {
  const events = await readJobEvents(redis, keys, jobId, '0');
  const losses = new Map<number, string>();
  for (const e of events) if (e.type === 'worker_lost') losses.set(Number(e.data.attempt), String(e.data.worker));
  const lastLost = attemptNumber(counters) - 1;
  if (!losses.has(lastLost)) {
    const started = events.filter((e) => e.type === 'started' && e.data.attempt === lastLost).at(-1);
    if (started) losses.set(lastLost, String(started.data.worker));
  }
  const which = [...losses].sort(([a], [b]) => a - b).map(([attempt, worker]) => `${worker} (attempt ${attempt})`);
  return `the job was quarantined after ${counters.stalledCounter} workers died while rendering it${which.length ? `: ${which.join(', ')}` : ''}. ` +
    'It is not retried, so it cannot take down more workers; check its size and parameters (a job too large for a worker\'s memory ' +
    'is the usual cause) and submit it again.';
}
