import type { RequestHandler } from 'express';
import { redisUnavailableError, type Redis } from '@darkroom/farm';

/**
 * Every `/v1` and `/sdapi/v1` request needs Redis (the rate limit counts there first). While the API's connection
 * is down (reconnecting after Redis went away) such a request is answered 503 REDIS_UNAVAILABLE at once instead
 * of waiting out the command deadline; a Redis that hangs without closing the connection is caught by that
 * deadline (REDIS_TIMEOUT_MS) and the error handler's mapping instead.
 */
export function requireRedis(redis: Redis): RequestHandler {
  return (_req, _res, next) => {
    next(redis.status === 'ready' ? undefined : redisUnavailableError());
  };
}
