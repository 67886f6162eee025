import type { RequestHandler } from 'express';
import { redisUnavailableError, type Redis } from '@darkroom/farm';

/**
 * Every `/v1` and `/sdapi/v1` request needs Redis (the rate limit counts there first). While either of the API's
 * connections (its own and its queues') is down (reconnecting after Redis went away) such a request is answered
 * 503 REDIS_UNAVAILABLE at once: each reconnects on its own backoff, and a request let through while one was still
 * down would fail halfway, after writing with the other. A Redis that hangs without closing the connection is
 * caught by the command deadline (REDIS_TIMEOUT_MS) and the error handler's mapping instead.
 */
export function requireRedis(connections: readonly Redis[]): RequestHandler {
  return (_req, _res, next) => {
    next(allConnected(connections) ? undefined : redisUnavailableError());
  };
}

/** Every connection is up (not reconnecting): what a request, and so /healthz, needs. */
export function allConnected(connections: readonly Redis[]): boolean {
  return connections.every((c) => c.status === 'ready');
}
