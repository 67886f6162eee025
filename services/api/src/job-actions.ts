import type { Request, Response } from 'express';
import {
  FarmError, isStreamId, leftWaiting, publishJobEvent, readJobEvents, requestCancel, TERMINAL_EVENTS, type JobView, type StoredEvent,
} from '@darkroom/farm';
import type { ApiContext } from './context.js';
import { jobView, loadJob, type Tombstone } from './job-view.js';

/**
 * Cancels a tenant's job. A queued job is removed at once (and leaves a tombstone so GET still answers
 * `cancelled`); a running one is told through Redis and stops after its current sampler step.
 */
export async function cancelJob(ctx: ApiContext, tenant: string, id: string): Promise<{ view: JobView; requested: boolean }> {
  const job = await loadJob(ctx, tenant, id);
  if (!job) {
    const view = await jobView(ctx, tenant, id);
    if (!view) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
    return { view, requested: false };
  }
  const state = await job.getState();
  if (state === 'completed' || state === 'failed') {
    return { view: (await jobView(ctx, tenant, id))!, requested: false };
  }
  await requestCancel(ctx.redis, ctx.keys, id, ctx.cfg.retainFailedS);
  if (state !== 'active') {
    try {
      await job.remove();
      // Only a job that never started still counts as waiting for its tenant.
      if (job.attemptsStarted === 0) await leftWaiting(ctx.redis, ctx.keys, tenant);
      const tomb: Tombstone = {
        tenant, kind: job.data.kind, created_at: new Date(job.timestamp).toISOString(), cancelled_at: new Date().toISOString(),
        webhook: job.data.webhook, requestHash: job.data.requestHash,
      };
      await ctx.redis.set(ctx.keys.tombstone(id), JSON.stringify(tomb), 'EX', ctx.cfg.retainFailedS);
      await publishJobEvent(
        { redis: ctx.redis, keys: ctx.keys, webhooks: ctx.queues.webhooks, retentionS: ctx.cfg.retainFailedS },
        { id, tenant, webhook: job.data.webhook }, 'cancelled', { before_start: true },
      );
    } catch {
      // A worker took it in the meantime: the cancel key and message reach that worker instead.
    }
  }
  ctx.log.info({ jobId: id, tenant, state }, 'cancel requested');
  return { view: (await jobView(ctx, tenant, id))!, requested: true };
}

/** Blocks until the job's terminal event (or the timeout); returns the events seen. */
/** How often a waiting call asks `giveUp` whether to stop waiting. */
const GIVE_UP_CHECK_MS = 2_000;

/**
 * Waits for the job's terminal event. `giveUp`, asked every few seconds while nothing ends the job, may return an
 * error to throw instead of waiting on (a synchronous call whose workers all died).
 */
export async function waitForTerminal(
  ctx: ApiContext, jobId: string, timeoutMs: number, signal?: AbortSignal, giveUp?: () => Promise<FarmError | null>,
): Promise<StoredEvent | null> {
  const redis = ctx.newBlockingRedis();
  const onAbort = () => redis.disconnect();
  signal?.addEventListener('abort', onAbort);
  try {
    let after = '0';
    const deadline = Date.now() + timeoutMs;
    let nextCheck = Date.now() + GIVE_UP_CHECK_MS;
    while (Date.now() < deadline && !signal?.aborted) {
      const blockMs = Math.min(giveUp ? GIVE_UP_CHECK_MS : 5000, Math.max(1, deadline - Date.now()));
      const events = await readJobEvents(redis, ctx.keys, jobId, after, blockMs);
      for (const e of events) {
        after = e.id;
        if (TERMINAL_EVENTS.has(e.type)) return e;
      }
      if (giveUp && Date.now() >= nextCheck) {
        nextCheck = Date.now() + GIVE_UP_CHECK_MS;
        const error = await giveUp();
        if (error) throw error;
      }
    }
    return null;
  } catch (e) {
    if (signal?.aborted) return null;
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    redis.disconnect();
  }
}

function writeEvent(res: Response, e: StoredEvent): void {
  res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify({ type: e.type, job_id: e.jobId, at: e.at, ...e.data })}\n\n`);
}

/**
 * Server-Sent Events from the job's event log. Event ids are stream ids; `Last-Event-ID` (or `?last_event_id=`)
 * replays what came after it. The stream ends after a terminal event.
 */
export async function streamJobEvents(ctx: ApiContext, req: Request, res: Response, jobId: string): Promise<void> {
  const header = req.get('last-event-id') ?? (typeof req.query.last_event_id === 'string' ? req.query.last_event_id : undefined);
  if (header !== undefined && !isStreamId(header)) {
    throw new FarmError('INVALID_LAST_EVENT_ID', 400, 'Last-Event-ID is not an id this API sent', 'Last-Event-ID');
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write('retry: 2000\n\n');
  let after = header ?? '0';
  const replay = await readJobEvents(ctx.redis, ctx.keys, jobId, after);
  for (const e of replay) {
    writeEvent(res, e);
    after = e.id;
    if (TERMINAL_EVENTS.has(e.type)) {
      res.end();
      return;
    }
  }
  const redis = ctx.newBlockingRedis();
  let closed = false;
  res.on('close', () => {
    closed = true;
    redis.disconnect();
  });
  try {
    while (!closed) {
      const events = await readJobEvents(redis, ctx.keys, jobId, after, 15_000);
      if (events.length === 0) res.write(': keep-alive\n\n');
      for (const e of events) {
        writeEvent(res, e);
        after = e.id;
        if (TERMINAL_EVENTS.has(e.type)) {
          closed = true;
          break;
        }
      }
    }
  } catch {
    // The client went away (disconnect interrupts the blocking read).
  } finally {
    redis.disconnect();
    res.end();
  }
}
