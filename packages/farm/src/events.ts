import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FarmKeys } from './keys.js';
import type { JobEvent, WebhookJobData } from './jobs.js';
import type { WebhookEvent } from './schemas.js';
import type { TrainingEvent } from './training-schemas.js';

/**
 * Each job has an event log, a Redis stream: its entry ids are the SSE event ids, so a client that reconnects
 * with `Last-Event-ID` gets exactly what it missed (BullMQ's own event stream is shared and trimmed, so it is
 * not used for replay). Publishing an event also enqueues its webhook when the job asked for that event.
 */
export interface EventContext {
  redis: Redis;
  keys: FarmKeys;
  webhooks: Queue;
  retentionS: number;
}

/** Generation jobs and trainings share the event log and webhook machinery; trainings add their own events. */
export type EventType = WebhookEvent | TrainingEvent;

export interface EventJob {
  id: string;
  tenant: string;
  webhook: { url: string; events: readonly EventType[] } | null;
  attempt?: number;
  /** The webhook payload's type prefix: `job.completed`, `training.completed`. Default `job`. */
  family?: 'job' | 'training';
}

const PROGRESS_WEBHOOK_INTERVAL_MS = 500;
export const STREAM_MAX_LEN = 5000;

export const TERMINAL_EVENTS: ReadonlySet<EventType> = new Set<EventType>(['completed', 'failed', 'cancelled']);

export async function publishJobEvent(
  ctx: EventContext,
  job: EventJob,
  type: EventType,
  data: Record<string, unknown> = {},
): Promise<string> {
  const appended = await appendJobEvent(ctx, job, type, data);
  await enqueueEventWebhook(ctx, job, appended);
  return appended.id;
}

export interface AppendedEvent {
  id: string;
  type: EventType;
  at: string;
  data: Record<string, unknown>;
}

/**
 * Writes the event to the job's log and announces it on the events channel, in one transaction, so a listener
 * told about a job always finds the event there. No webhook yet: see `enqueueEventWebhook`.
 */
export async function appendJobEvent(
  ctx: EventContext,
  job: EventJob,
  type: EventType,
  data: Record<string, unknown> = {},
): Promise<AppendedEvent> {
  const at = new Date().toISOString();
  const key = ctx.keys.events(job.id);
  const res = await ctx.redis.multi()
    .xadd(key, 'MAXLEN', '~', String(STREAM_MAX_LEN), '*', 'type', type, 'at', at, 'data', JSON.stringify(data))
    .expire(key, ctx.retentionS)
    .publish(ctx.keys.eventsChannel, job.id)
    .exec();
  const [xaddErr, streamId] = res?.[0] ?? [new Error('the event transaction was discarded'), null];
  if (xaddErr) throw xaddErr;
  return { id: String(streamId), type, at, data };
}

/** Queues the webhook of an appended event when the job asked for that event. */
export async function enqueueEventWebhook(ctx: EventContext, job: EventJob, event: AppendedEvent): Promise<void> {
  const { id: streamId, type, at, data } = event;
  if (!job.webhook?.events.includes(type)) return;
  if (type === 'progress') {
    const gate = await ctx.redis.set(`${ctx.keys.events(job.id)}:progress-webhook`, '1', 'PX', PROGRESS_WEBHOOK_INTERVAL_MS, 'NX');
    if (gate === null) return;
  }
  // Terminal and queued events get one id per job, so a job that ran twice (stalled, redone) still
  // notifies once; other events are unique per occurrence.
  const messageId = TERMINAL_EVENTS.has(type) || type === 'queued'
    ? `msg_${job.id}_${type}`
    : `msg_${job.id}_${type}_${streamId.replace('-', '_')}`;
  const payload: WebhookJobData = {
    jobId: job.id,
    tenant: job.tenant,
    url: job.webhook.url,
    messageId,
    event: type,
    payload: { type: `${job.family ?? 'job'}.${type}`, timestamp: at, data: { job_id: job.id, ...data } },
  };
  await ctx.webhooks.add(type, payload, { jobId: messageId });
}

/**
 * Puts a job on its queue with its `queued` event written first. A worker may take a job the moment it is added,
 * and its `started` must follow `queued` in the log; written after the add, as it used to be, a fast worker's
 * `started` could land first. When the add fails, or finds another request's job under the same id (`isOurs`
 * false: an Idempotency-Key race), the event is taken out again; the webhook is queued only for a job that exists.
 */
export async function addWithQueuedEvent<T>(
  ctx: EventContext,
  job: EventJob,
  data: Record<string, unknown>,
  add: () => Promise<T>,
  isOurs: (added: T) => boolean,
): Promise<T> {
  const event = await appendJobEvent(ctx, job, 'queued', data);
  let added: T;
  try {
    added = await add();
  } catch (e) {
    await ctx.redis.xdel(ctx.keys.events(job.id), event.id).catch(() => undefined);
    throw e;
  }
  if (!isOurs(added)) {
    await ctx.redis.xdel(ctx.keys.events(job.id), event.id);
    return added;
  }
  await enqueueEventWebhook(ctx, job, event);
  return added;
}

/**
 * The `queued` event a job's log starts with, or null: a job's log is opened by that event (`addWithQueuedEvent`),
 * and one trimmed past its start (`STREAM_MAX_LEN`) no longer has it.
 */
export async function firstQueuedEvent(redis: Redis, keys: FarmKeys, jobId: string): Promise<AppendedEvent | null> {
  const [first] = (await redis.xrange(keys.events(jobId), '-', '+', 'COUNT', 1)) as StreamEntry[];
  if (!first) return null;
  const event = decode(jobId, first);
  return event.type === 'queued' ? { id: event.id, type: event.type, at: event.at, data: event.data } : null;
}

/**
 * Queues a job's `queued` webhook again, for an Idempotency-Key replay. The first submission queues it after the
 * job's add, a separate Redis call: if that call failed, the client was answered 503 with its job queued and the
 * webhook never sent, and the retry a 503 asks for lands here. The message id is fixed per job and the message is
 * kept as long as a completed job is, so one already queued or delivered is not queued twice.
 */
export async function requeueQueuedWebhook(ctx: EventContext, job: EventJob): Promise<void> {
  if (!job.webhook?.events.includes('queued')) return;
  const event = await firstQueuedEvent(ctx.redis, ctx.keys, job.id);
  if (event) await enqueueEventWebhook(ctx, job, event);
}

export interface StoredEvent extends JobEvent {
  id: string;
}

type StreamEntry = [id: string, fields: string[]];

function decode(jobId: string, [id, fields]: StreamEntry): StoredEvent {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  let data: Record<string, unknown> = {};
  try {
    data = JSON.parse(f.data ?? '{}') as Record<string, unknown>;
  } catch {
    /* a malformed entry still yields its type */
  }
  return { id, jobId, type: f.type as EventType, at: f.at ?? '', data };
}

/**
 * Events after `afterId` ('0' = from the start). With `blockMs`, waits that long for new ones (needs its own
 * connection; the API instead listens on the events channel with one shared subscriber).
 */
export async function readJobEvents(
  redis: Redis,
  keys: FarmKeys,
  jobId: string,
  afterId: string,
  blockMs?: number,
): Promise<StoredEvent[]> {
  const key = keys.events(jobId);
  if (blockMs === undefined) {
    const entries = (await redis.xrange(key, afterId === '0' ? '-' : `(${afterId}`, '+')) as StreamEntry[];
    return entries.map((e) => decode(jobId, e));
  }
  const res = (await redis.xread('BLOCK', blockMs, 'STREAMS', key, afterId)) as [string, StreamEntry[]][] | null;
  return res ? res[0]![1].map((e) => decode(jobId, e)) : [];
}

/** A valid stream id, so a client-sent Last-Event-ID cannot inject anything into the XRANGE call. */
export function isStreamId(s: string): boolean {
  return /^\d{1,16}-\d{1,10}$/.test(s);
}
