import { isExtrasJob } from '@darkroom/farm/extras-jobs.js';
import { Job } from 'bullmq';
import {
  outputUrl, readTerminalRecord, settledOutcome, splitFailedReason, type GenerateJobData, type GenerateJobResult, type GenerateKind, type JobProgress,
  type JobView, type WebhookSpec,
} from '@darkroom/farm';
import type { ApiContext } from './context.js';

export interface Tombstone {
  tenant: string;
  kind: GenerateKind;
  created_at: string;
  cancelled_at: string;
  webhook: WebhookSpec | null;
  requestHash: string;
}

export async function loadJob(ctx: ApiContext, tenant: string, id: string): Promise<Job<GenerateJobData, GenerateJobResult> | null> {
  const job = await Job.fromId<GenerateJobData, GenerateJobResult>(ctx.queues.generate, id);
  // Another tenant's job answers exactly like a missing one: no way to probe ids. Extras jobs share the queue but
  // are no renders: their call answers for them.
  return job && job.data.tenant === tenant && !isExtrasJob(job) ? job : null;
}

export async function loadTombstone(ctx: ApiContext, tenant: string, id: string): Promise<Tombstone | null> {
  const raw = await ctx.redis.get(ctx.keys.tombstone(id));
  if (!raw) return null;
  const t = JSON.parse(raw) as Tombstone;
  return t.tenant === tenant ? t : null;
}

const iso = (ms: number | undefined): string | null => (ms ? new Date(ms).toISOString() : null);

/** A job's result: BullMQ's, or its terminal record's while BullMQ has not yet finished the job. */
export async function jobResult(ctx: ApiContext, job: Job<GenerateJobData, GenerateJobResult>): Promise<GenerateJobResult | null> {
  return job.returnvalue ?? (await readTerminalRecord<GenerateJobResult>(ctx.redis, ctx.keys, job.id!))?.result ?? null;
}

function isProgress(p: unknown): p is JobProgress {
  return typeof p === 'object' && p !== null && 'step' in p && 'steps' in p;
}

export async function jobView(ctx: ApiContext, tenant: string, id: string): Promise<JobView | null> {
  let job = await loadJob(ctx, tenant, id);
  if (!job) {
    const t = await loadTombstone(ctx, tenant, id);
    if (!t) return null;
    return {
      id, kind: t.kind, state: 'cancelled', created_at: t.created_at, started_at: null, finished_at: t.cancelled_at, attempts: 0,
      progress: null, outputs: [], error: null, webhook: t.webhook,
    };
  }
  const [bullState, record] = await Promise.all([job.getState(), readTerminalRecord<GenerateJobResult>(ctx.redis, ctx.keys, id)]);
  // The job may have finished between reading its data and its state: read the data again so a finished
  // state never comes with the running job's (empty) result.
  if ((bullState === 'completed' || bullState === 'failed') && !job.finishedOn) job = (await loadJob(ctx, tenant, id)) ?? job;
  // The terminal record is written before BullMQ finishes the job: it settles the state in between.
  const { state, result, failedReason, finishedOn } = settledOutcome(bullState, job, record);
  const outputs = result
    ? await Promise.all(result.outputs.map(async (o) => ({
      index: o.index, url: await outputUrl(ctx.storage, ctx.cfg, id, o.index, o.key), seed: o.seed, subseed: o.subseed, infotext: o.infotext,
    })))
    : [];
  return {
    id,
    kind: job.data.kind,
    state,
    created_at: new Date(job.timestamp).toISOString(),
    started_at: iso(job.processedOn),
    finished_at: finishedOn === null ? null : iso(finishedOn),
    attempts: job.attemptsStarted ?? job.attemptsMade,
    progress: isProgress(job.progress) ? job.progress : null,
    outputs,
    error: state === 'failed' ? splitFailedReason(failedReason) : null,
    webhook: job.data.webhook,
    ...(result?.skipped_embeddings ? { skipped_embeddings: result.skipped_embeddings } : {}),
  };
}
