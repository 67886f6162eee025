import { DelayedError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  jobFailure, jobMemoryBytes, liveWorkers, memoryRefusal, QUEUE_NAMES, type FarmKeys, type GenerateJobData, type Logger, type MemoryBudget,
} from '@darkroom/farm';

/** How long a job handed back waits before any worker may take it again (a bigger one usually does first). */
export const HAND_BACK_DELAY_MS = 1_000;

export interface AdmitContext {
  redis: Redis;
  keys: FarmKeys;
  budget: MemoryBudget;
  workerName: string;
  log: Logger;
  onHandBack: () => void;
}

/**
 * A worker never starts a job its memory budget cannot hold. BullMQ hands jobs out without asking the worker,
 * so the check is at the start: a job too large goes back to the queue with a short delay, for a worker whose
 * budget holds it (BullMQ's own DelayedError path: no attempt is used up); when no live worker's budget holds it
 * any more (the fleet changed since the API admitted it), it fails now with JOB_TOO_LARGE instead of circling.
 */
export async function admitOrHandBack(ctx: AdmitContext, job: Job<GenerateJobData>, token: string | undefined): Promise<void> {
  const need = jobMemoryBytes(job.data, ctx.budget);
  if (need <= ctx.budget.budgetBytes) return;
  const others = (await liveWorkers(ctx.redis, ctx.keys, QUEUE_NAMES.generate)).filter((w) => w.name !== ctx.workerName);
  const refusal = memoryRefusal(job.data, [ctx.budget, ...others]);
  if (refusal) throw jobFailure(refusal);
  ctx.log.info({ needBytes: need, budgetBytes: ctx.budget.budgetBytes }, 'job too large for this worker; handed back for a bigger one');
  ctx.onHandBack();
  await job.moveToDelayed(Date.now() + HAND_BACK_DELAY_MS, token);
  throw new DelayedError();
}
