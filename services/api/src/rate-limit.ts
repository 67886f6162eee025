import type { RequestHandler } from 'express';
import type { Redis } from 'ioredis';
import { FarmError, type FarmKeys } from '@darkroom/farm';
import { tenantOf } from './auth.js';

/**
 * A fixed one-minute window per tenant in Redis, so every API replica counts against the same budget.
 * 0 disables it.
 */
export function rateLimit(redis: Redis, keys: FarmKeys, perMinute: number): RequestHandler {
  return async (_req, res, next) => {
    if (perMinute <= 0) {
      next();
      return;
    }
    const window = Math.floor(Date.now() / 60_000);
    const key = keys.rateLimit(tenantOf(res), window);
    const [[, count]] = (await redis.multi().incr(key).expire(key, 120).exec()) as [[Error | null, number]];
    const reset = 60 - Math.floor((Date.now() / 1000) % 60);
    res.set('RateLimit-Limit', String(perMinute));
    res.set('RateLimit-Remaining', String(Math.max(0, perMinute - count)));
    res.set('RateLimit-Reset', String(reset));
    if (count > perMinute) {
      res.set('Retry-After', String(reset));
      next(new FarmError('RATE_LIMITED', 429, `more than ${perMinute} requests this minute; retry in ${reset} s`));
      return;
    }
    next();
  };
}
