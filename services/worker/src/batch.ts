import { DelayedError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  batchCandidates, batchHolder, fitsBudget, type MemoryBudget, batchLeaseHolder, isCancelRequested, readTerminalRecord, releaseBatchLeases, renewBatchLeases, takeBatchLeases,
  type WorkerConfig, type FarmKeys, type GenerateJobData, type GenerateJobResult, type Logger,
} from '@darkroom/farm';

/**
 * The worker's side of dynamic batching (packages/farm/src/batch-leases.ts has the design): the jobs a claimed job
 * takes into its render, leased while they stay waiting in BullMQ, and the hand-back of a job another worker is
 * batching.
 */

/** How far down the waiting list a claimed job looks for company. */
export const WAITING_LOOKAHEAD = 32;
/** A job another worker is batching comes back after this (by then its terminal record is usually written). */
const LEASED_RETRY_MS = 500;

export type GenerateJob = Job<GenerateJobData, GenerateJobResult>;

export interface BatchContext {
  redis: Redis;
  keys: FarmKeys;
  cfg: Pick<WorkerConfig, 'batchMax' | 'batchLeaseMs'>;
  workerName: string;
  /** The first `n` jobs waiting on the generate queue, in the order workers take them. */
  waiting: (n: number) => Promise<GenerateJob[]>;
  /** What this worker takes jobs up to: a batch is as large as the budget holds at its batch size. */
  budget: MemoryBudget;
  log: Logger;
}

/** A job whose batch lease another worker holds is handed back (no attempt used up) until that batch is done. */
export async function handBackIfBatched(ctx: BatchContext, job: GenerateJob, token: string | undefined): Promise<void> {
  const holder = await batchLeaseHolder(ctx.redis, ctx.keys, job.id!);
  if (holder === null) return;
  ctx.log.debug({ holder }, 'job is in another worker\'s batch: handed back');
  await job.moveToDelayed(Date.now() + LEASED_RETRY_MS, token);
  throw new DelayedError();
}

/** The waiting jobs taken into a claimed job's batch, leased under `holder`. */
export interface Batch {
  readonly holder: string;
  jobs: GenerateJob[];
}

/**
 * Leases compatible waiting jobs for the claimed one (up to BATCH_MAX with it). A job is kept only if, with its
 * lease taken, it is still waiting (not claimed by a worker that checked for a lease before this one took it), not
 * cancelled and not finished; the others' leases are let go at once.
 */
export async function gatherBatch(ctx: BatchContext, job: GenerateJob): Promise<Batch> {
  const holder = batchHolder(ctx.workerName, job.id!);
  const data = job.data;
  if (ctx.cfg.batchMax <= 1 || !data.batchKey || data.kind !== 'txt2img') return { holder, jobs: [] };
  const waiting = (await ctx.waiting(WAITING_LOOKAHEAD)).filter((j) => j?.id);
  let ids = batchCandidates(
    { id: job.id!, tenant: data.tenant, batchKey: data.batchKey },
    waiting.map((j) => ({ id: j.id!, tenant: j.data.tenant, batchKey: j.data.batchKey })),
    ctx.cfg.batchMax,
  );
  // The render holds every image of the batch at once, as one request of that batch_size would.
  while (ids.length > 0 && !fitsBudget({ ...data, request: { ...data.request, batch_size: 1 + ids.length } }, ctx.budget)) ids = ids.slice(0, -1);
  const leased = await takeBatchLeases(ctx.redis, ctx.keys, holder, ids, ctx.cfg.batchLeaseMs);
  const byId = new Map(waiting.map((j) => [j.id!, j]));
  const kept: GenerateJob[] = [];
  const dropped: string[] = [];
  for (const id of leased) {
    const j = byId.get(id)!;
    const state = await j.getState();
    const free = (state === 'waiting' || state === 'prioritized') &&
      !(await isCancelRequested(ctx.redis, ctx.keys, id)) && (await readTerminalRecord(ctx.redis, ctx.keys, id)) === null;
    if (free) kept.push(j);
    else dropped.push(id);
  }
  await releaseBatchLeases(ctx.redis, ctx.keys, holder, dropped);
  return { holder, jobs: kept };
}

/** Leaves jobs out of the batch, letting their leases go: they render on their own claim. */
export async function dropFromBatch(ctx: BatchContext, batch: Batch, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  batch.jobs = batch.jobs.filter((j) => !ids.includes(j.id!));
  await releaseBatchLeases(ctx.redis, ctx.keys, batch.holder, ids);
}

/**
 * Renews the batch's leases every third of their TTL while it renders; a job whose lease was lost (this worker
 * stalled past the TTL) may be rendering elsewhere and is left out of the batch's writes. Returns the stopper.
 */
export function keepBatchLeases(ctx: BatchContext, batch: Batch): () => void {
  if (batch.jobs.length === 0) return () => undefined;
  const timer = setInterval(() => {
    const ids = batch.jobs.map((j) => j.id!);
    void renewBatchLeases(ctx.redis, ctx.keys, batch.holder, ids, ctx.cfg.batchLeaseMs).then((held) => {
      const lost = ids.filter((id) => !held.includes(id));
      if (lost.length === 0) return;
      ctx.log.warn({ lost }, 'batch leases lost: those jobs render on their own');
      batch.jobs = batch.jobs.filter((j) => !lost.includes(j.id!));
    }, () => undefined);
  }, Math.max(100, Math.floor(ctx.cfg.batchLeaseMs / 3)));
  return () => clearInterval(timer);
}

/** The jobs of the batch whose leases this worker still holds now (checked before their outcomes are written). */
export async function stillHeld(ctx: BatchContext, batch: Batch): Promise<GenerateJob[]> {
  const held = await renewBatchLeases(ctx.redis, ctx.keys, batch.holder, batch.jobs.map((j) => j.id!), ctx.cfg.batchLeaseMs);
  return batch.jobs.filter((j) => held.includes(j.id!));
}

export async function releaseBatch(ctx: BatchContext, batch: Batch): Promise<void> {
  await releaseBatchLeases(ctx.redis, ctx.keys, batch.holder, batch.jobs.map((j) => j.id!));
}
