import type { Request, Response } from 'express';
import {
  CANCELLED_REASON, FarmError, isStreamId, leftWaiting, readJobEvents, recordTerminalEvent, requestCancel, TERMINAL_EVENTS, type JobView, type StoredEvent,
} from '@darkroom/farm';
import { eventContext, type ApiContext } from './context.js';
import { JobEventReader } from './event-hub.js';
import { jobView, loadJob, type Tombstone } from './job-view.js';

/**
 * What a cancel found: `stopping` says it ends after the request (a running job stops on its worker, a flow's
 * parent records it once the children settle); `requested` is false for one that had already ended.
 */
export interface CancelOutcome<View> {
  view: View;
  requested: boolean;
  stopping: boolean;
}

/**
 * Answers a cancel: 202 follows what the request found (`stopping`), not the state read back after it, since a
 * worker can see the cancel and end the job before that read; 200 for one that ended at once or had ended.
 */
export function sendCancelOutcome(res: Response, { view, requested, stopping }: CancelOutcome<object>): void {
  res.status(stopping ? 202 : 200).json({ ...view, cancel_requested: requested });
}

/**
 * Cancels a tenant's job. A queued job is removed at once (and leaves a tombstone so GET still answers
 * `cancelled`); a running one is told through Redis and stops after its current sampler step.
 */
export async function cancelJob(ctx: ApiContext, tenant: string, id: string): Promise<CancelOutcome<JobView>> {
  const job = await loadJob(ctx, tenant, id);
  if (!job) {
    const view = await jobView(ctx, tenant, id);
    if (!view) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
    return { view, requested: false, stopping: false };
  }
  const state = await job.getState();
  if (state === 'completed' || state === 'failed') {
    return { view: (await jobView(ctx, tenant, id))!, requested: false, stopping: false };
  }
  await requestCancel(ctx.redis, ctx.keys, id, ctx.cfg.retainFailedS);
  // A queued job a worker took in the meantime cannot be removed: the cancel key and message reach that worker.
  const stopping = state === 'active' || !(await removeUnlessTaken(ctx.queues.generate, id));
  if (!stopping) {
    // Only a job that never started still counts as waiting for its tenant.
    if (job.attemptsStarted === 0) await leftWaiting(ctx.redis, ctx.keys, tenant);
    const tomb: Tombstone = {
      tenant, kind: job.data.kind, created_at: new Date(job.timestamp).toISOString(), cancelled_at: new Date().toISOString(),
      webhook: job.data.webhook, requestHash: job.data.requestHash,
    };
    await ctx.redis.set(ctx.keys.tombstone(id), JSON.stringify(tomb), 'EX', ctx.cfg.retainFailedS);
    await recordTerminalEvent(
      eventContext(ctx),
      { id, tenant, webhook: job.data.webhook }, { type: 'cancelled', data: { before_start: true }, reason: CANCELLED_REASON },
    );
  }
  ctx.log.info({ jobId: id, tenant, state }, 'cancel requested');
  return { view: (await jobView(ctx, tenant, id))!, requested: true, stopping };
}

/**
 * Removes a job that is not running; false where BullMQ refuses because a worker holds its lock now. Uses the
 * queue's remove, which answers 0 for a held lock, so a Redis failure still throws instead of reading as "taken".
 */
export async function removeUnlessTaken(queue: { remove(jobId: string): Promise<number> }, jobId: string): Promise<boolean> {
  return (await queue.remove(jobId)) === 1;
}

/** How often a waiting call asks `giveUp` whether to stop waiting. */
const GIVE_UP_CHECK_MS = 2_000;

/**
 * Waits for the job's terminal event, listening through the shared event hub. `giveUp`, asked every few seconds
 * while nothing ends the job, may return an error to throw instead of waiting on (a synchronous call whose
 * workers all died).
 */
export async function waitForTerminal(
  ctx: ApiContext, jobId: string, timeoutMs: number, signal?: AbortSignal, giveUp?: () => Promise<FarmError | null>,
): Promise<StoredEvent | null> {
  if (signal?.aborted) return null;
  let reader: JobEventReader | undefined;
  let timer: NodeJS.Timeout | undefined;
  let checker: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await new Promise<StoredEvent | null>((resolve, reject) => {
      reader = new JobEventReader({
        hub: ctx.events, redis: ctx.redis, keys: ctx.keys, jobId, after: '0', log: ctx.log,
        onEvents: (events) => {
          const terminal = events.find((e) => TERMINAL_EVENTS.has(e.type));
          if (!terminal) return true;
          resolve(terminal);
          return false;
        },
      });
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => resolve(null), timeoutMs);
      onAbort = () => resolve(null);
      signal?.addEventListener('abort', onAbort);
      if (giveUp) {
        let asking = false;
        checker = setInterval(() => {
          if (asking) return;
          asking = true;
          giveUp().then((error) => {
            if (error) reject(error);
          }, reject).finally(() => {
            asking = false;
          });
        }, GIVE_UP_CHECK_MS);
      }
    });
  } finally {
    reader?.stop();
    clearTimeout(timer);
    clearInterval(checker);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

function writeEvent(res: Response, e: StoredEvent): void {
  res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify({ type: e.type, job_id: e.jobId, at: e.at, ...e.data })}\n\n`);
}

/**
 * Server-Sent Events from the job's event log. Event ids are stream ids; `Last-Event-ID` (or `?last_event_id=`)
 * replays what came after it. The stream ends after a terminal event. A tenant holds at most
 * SSE_MAX_STREAMS_PER_TENANT streams at once on this process (429 TOO_MANY_STREAMS past it), and the first read
 * happens before the response starts, so a Redis outage is a 503 rather than an empty stream.
 */
export async function streamJobEvents(ctx: ApiContext, req: Request, res: Response, tenant: string, jobId: string): Promise<void> {
  const header = req.get('last-event-id') ?? (typeof req.query.last_event_id === 'string' ? req.query.last_event_id : undefined);
  if (header !== undefined && !isStreamId(header)) {
    throw new FarmError('INVALID_LAST_EVENT_ID', 400, 'Last-Event-ID is not an id this API sent', 'Last-Event-ID');
  }
  const release = ctx.streams.acquire(tenant);
  let reader: JobEventReader | undefined;
  res.on('close', () => {
    reader?.stop();
    release();
  });
  const replay = await readJobEvents(ctx.redis, ctx.keys, jobId, header ?? '0');
  if (res.destroyed) return;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write('retry: 2000\n\n');
  const send = (events: StoredEvent[]): boolean => {
    for (const e of events) {
      writeEvent(res, e);
      if (TERMINAL_EVENTS.has(e.type)) return false;
    }
    return true;
  };
  if (!send(replay)) {
    res.end();
    return;
  }
  reader = new JobEventReader({
    hub: ctx.events, redis: ctx.redis, keys: ctx.keys, jobId, after: replay.at(-1)?.id ?? header ?? '0', log: ctx.log,
    onEvents: (events) => {
      if (send(events)) return true;
      res.end();
      return false;
    },
    onTick: () => res.write(': keep-alive\n\n'),
  });
}
