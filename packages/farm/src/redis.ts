import { Redis, type RedisOptions } from 'ioredis';
import { RetryLaterError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * How a connection behaves while Redis is away:
 * - `request`: the API's connections, which answer clients. A command fails at once while the connection is down,
 *   and a command in flight when it drops fails then, rather than wait in ioredis' offline queue or be sent again
 *   after the reconnection: a command whose request was already answered 503 must never run later (a job queued
 *   after its client was told it was not, and queued again by the client's retry). Every command also has a
 *   deadline (REDIS_TIMEOUT_MS, `commandTimeout`) for a Redis that hangs with its connections open; a command
 *   already sent then may still run when Redis wakes, which only an Idempotency-Key makes safe to retry.
 * - `worker`: workers' and trainers' own connections. Nobody waits on them but the job in hand, and a job's
 *   attempts must not be spent on an outage, so commands wait (offline queue, no retry limit) until Redis is back.
 * - `blocking`: BullMQ worker and subscriber connections; BullMQ requires `maxRetriesPerRequest: null`.
 * All three reconnect for ever, at most every 2 s (ioredis' default backoff), so every process resumes by itself.
 */
export type RedisRole = 'request' | 'worker' | 'blocking';

export interface ConnectRedisOptions {
  /** Deprecated spelling of `role: 'blocking'`. */
  blocking?: boolean;
  role?: RedisRole;
  name?: string;
  /** Connection errors are logged here, once per outage (without one they are only counted). */
  log?: Logger;
  /** The per-command deadline of `request` connections. */
  timeoutMs?: number;
}

export const DEFAULT_REDIS_TIMEOUT_MS = 2_000;
/** What a client is told to wait (Retry-After) when Redis is away: a couple of reconnection attempts. */
export const REDIS_RETRY_AFTER_S = 5;

export function connectRedis(url: string, opts: ConnectRedisOptions = {}): Redis {
  const role: RedisRole = opts.role ?? (opts.blocking ? 'blocking' : 'request');
  const options: RedisOptions = {
    lazyConnect: false,
    connectionName: opts.name,
    ...(role === 'request'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, commandTimeout: opts.timeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS }
      : { maxRetriesPerRequest: null }),
  };
  const client = new Redis(url, options);
  watchConnection(client, opts.name ?? 'redis', opts.log);
  return client;
}

/**
 * ioredis emits 'error' on every failed reconnection attempt, and prints "Unhandled error event" when nobody
 * listens. One structured line when the connection is lost and one when it is back, with how long it was away.
 */
export function watchConnection(client: Redis, name: string, log: Logger | undefined): void {
  let downSince: number | null = null;
  client.on('error', (e: Error & { code?: string }) => {
    if (downSince !== null) return;
    downSince = Date.now();
    log?.warn({ redis: name, code: e.code, err: e.message }, 'redis unavailable; reconnecting');
  });
  client.on('ready', () => {
    if (downSince === null) return;
    log?.info({ redis: name, downMs: Date.now() - downSince }, 'redis reconnected');
    downSince = null;
  });
}

/**
 * For emitters that forward connection errors without saying when the connection is back (BullMQ's Worker and
 * Queue): the first error is logged, the ones within the next `windowMs` are counted and reported with the next.
 */
export function throttledErrorLog(log: Logger, what: string, windowMs = 60_000): (e: Error) => void {
  let lastAt = 0;
  let suppressed = 0;
  return (e) => {
    const now = Date.now();
    if (now - lastAt < windowMs) {
      suppressed++;
      return;
    }
    log.warn({ err: e.message, code: (e as { code?: string }).code, suppressed }, what);
    lastAt = now;
    suppressed = 0;
  };
}

const UNAVAILABLE_MESSAGES = [
  'Command timed out',
  'Connection is closed.',
  "Stream isn't writeable and enableOfflineQueue options is false",
  'Reached the max retries per request limit',
];

/** True for the errors ioredis gives a command when Redis cannot be reached (not for a command Redis refused). */
export function isRedisUnavailable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e.name === 'MaxRetriesPerRequestError') return true;
  if (UNAVAILABLE_MESSAGES.some((m) => e.message.startsWith(m))) return true;
  // A Redis restarting with persistence answers LOADING until its data set is read back.
  return e.name === 'ReplyError' && /^(LOADING|BUSY|MASTERDOWN)\b/.test(e.message);
}

export function redisUnavailableError(): RetryLaterError {
  return new RetryLaterError('REDIS_UNAVAILABLE',
    `the job store (Redis) cannot be reached right now; retry in ${REDIS_RETRY_AFTER_S} s`,
    REDIS_RETRY_AFTER_S);
}

/**
 * Resolves once the connection is ready: a `request` connection refuses commands until then (no offline queue), so
 * a service that starts before Redis waits here instead of failing its first command.
 */
export async function redisReady(client: Redis): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'end') throw new Error('the Redis connection was closed');
  await new Promise<void>((resolve) => client.once('ready', () => resolve()));
}

/** PING with a deadline, for health checks on connections whose commands otherwise wait for Redis. */
export async function pingWithin(client: Redis, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return (await Promise.race([client.ping().catch(() => null), timeout])) === 'PONG';
  } finally {
    clearTimeout(timer);
  }
}

export type { Redis };
