import {
  FarmError, liveWorkers, memoryBudgetFromConfig, QUEUE_NAMES, type MemoryBudget, type WorkerAdvert,
} from '@darkroom/farm';
import type { ApiContext } from './context.js';

/** The queues a process serves, each of which needs at least one live one for its jobs to run. */
export const SERVED_QUEUES = [QUEUE_NAMES.generate, QUEUE_NAMES.train] as const;

export async function liveOn(ctx: ApiContext, queue: string): Promise<WorkerAdvert[]> {
  return liveWorkers(ctx.redis, ctx.keys, queue);
}

/**
 * The budgets a generation job is admitted against: every live worker's, or, when none is alive (none started
 * yet, or scaled to zero), the configured default budget and attention (WORKER_MEMORY_BUDGET, ATTENTION), so a
 * farm that starts its workers later still takes jobs.
 */
export function admissionBudgets(ctx: ApiContext, live: readonly WorkerAdvert[]): MemoryBudget[] {
  if (live.length > 0) return [...live];
  return [memoryBudgetFromConfig(ctx.cfg)];
}

/** A synchronous call with nobody to render it fails now instead of waiting out SYNC_TIMEOUT_MS. */
export function noWorkerError(jobId?: string): FarmError {
  const queued = jobId ? ` Job ${jobId} stays queued and runs when a worker is back (GET /v1/jobs/${jobId}).` : '';
  return new FarmError('NO_WORKERS', 503,
    `no generation worker is alive (none has sent a heartbeat within the last few seconds), so this request cannot be rendered now.${queued} ` +
    'Start a worker, or submit through /v1/txt2img and /v1/img2img, which queue the job until one is up.');
}
