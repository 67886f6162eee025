import type { Redis } from 'ioredis';
import { enqueueEventWebhook, STREAM_MAX_LEN, type EventContext, type EventJob } from './events.js';
import { mapBullState } from './jobs.js';
import type { FarmKeys } from './keys.js';
import type { JobState } from './schemas.js';

/**
 * A job's terminal event (completed, failed, cancelled) is written exactly once, however often the job runs.
 *
 * BullMQ marks a job finished and only then tells its worker; an event published from that notification is lost
 * when the worker dies (or Redis goes away) in between, and a client waiting for it waits for ever. So the
 * processor records the terminal event itself, before it hands the result to BullMQ, in one script that also
 * keeps the outcome under the job's terminal key. A job that runs again after that (its worker died before BullMQ
 * heard of the result) finds the record and returns the same result, or fails with the same reason, without
 * rendering or publishing again. The record outlives the job's event log by nothing: both expire together.
 */
export type TerminalType = 'completed' | 'failed' | 'cancelled';

export interface TerminalRecord<R = unknown> {
  type: TerminalType;
  at: string;
  /** The event's data (as in the event log and the webhook). */
  data: Record<string, unknown>;
  /** A completed job's BullMQ result, returned again by a rerun. */
  result?: R;
  /** A failed or cancelled job's BullMQ failure reason, thrown again by a rerun. */
  reason?: string;
}

// KEYS: terminal record, event stream. ARGV: type, at, data JSON, record JSON, retention s, stream max length,
// events channel, job id. Returns {1, record} when this call wrote the event, {0, record} when one was there.
const RECORD_TERMINAL = `
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'type', ARGV[1], 'at', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return {1, ARGV[4]}
`;

export interface RecordedTerminal<R> {
  /** True when this call wrote the event; false when an earlier run had (the record returned is that one). */
  written: boolean;
  record: TerminalRecord<R>;
}

/**
 * Writes the job's terminal event and its record in one step unless a terminal record exists, then queues the
 * webhook (its message id is fixed per job and event, so queueing it again after a crash sends nothing twice).
 */
export async function recordTerminalEvent<R>(
  ctx: EventContext,
  job: EventJob,
  outcome: Omit<TerminalRecord<R>, 'at'>,
): Promise<RecordedTerminal<R>> {
  const record: TerminalRecord<R> = { ...outcome, at: new Date().toISOString() };
  const reply = await ctx.redis.eval(
    RECORD_TERMINAL, 2, ctx.keys.terminal(job.id), ctx.keys.events(job.id),
    record.type, record.at, JSON.stringify(record.data), JSON.stringify(record), String(ctx.retentionS), String(STREAM_MAX_LEN),
    ctx.keys.eventsChannel, job.id,
  ) as [number, string];
  const stored = parseRecord<R>(reply[1]);
  if (!stored) throw new Error(`job ${job.id}: its terminal record does not parse`);
  // Queued on both paths: a run that wrote the event may have died before queueing its webhook.
  await enqueueEventWebhook(ctx, job, { id: '', type: stored.type, at: stored.at, data: stored.data });
  return { written: reply[0] === 1, record: stored };
}

/** The job's terminal record, if a run has written one. */
export async function readTerminalRecord<R>(redis: Redis, keys: FarmKeys, jobId: string): Promise<TerminalRecord<R> | null> {
  const raw = await redis.get(keys.terminal(jobId));
  return raw === null ? null : parseRecord<R>(raw);
}

function parseRecord<R>(raw: string): TerminalRecord<R> | null {
  try {
    const r = JSON.parse(raw) as TerminalRecord<R>;
    return r && (r.type === 'completed' || r.type === 'failed' || r.type === 'cancelled') ? r : null;
  } catch {
    return null;
  }
}

export interface SettledOutcome<R> {
  state: JobState;
  result: R | null;
  failedReason: string | undefined;
  /** When the job ended (ms since the epoch), or null while it has not. */
  finishedOn: number | null;
}

/**
 * A job's state as its terminal record and BullMQ tell it together. The record is written before BullMQ finishes
 * the job, so in between — for a moment, or for as long as a dead worker's job waits to be handed its recorded
 * outcome — the record is the truth, and a client told of the terminal event finds the job finished.
 */
export function settledOutcome<R>(
  bullState: string,
  job: { readonly failedReason?: string; readonly returnvalue: R | null | undefined; readonly finishedOn?: number },
  record: TerminalRecord<R> | null,
): SettledOutcome<R> {
  if (record) {
    const state: JobState = record.type === 'completed' ? 'completed' : record.type;
    return { state, result: record.result ?? job.returnvalue ?? null, failedReason: record.reason ?? job.failedReason, finishedOn: job.finishedOn ?? Date.parse(record.at) };
  }
  const state = mapBullState(bullState, job.failedReason);
  const finished = state === 'completed' || state === 'failed' || state === 'cancelled';
  return { state, result: state === 'completed' ? job.returnvalue ?? null : null, failedReason: job.failedReason, finishedOn: finished ? job.finishedOn ?? null : null };
}
