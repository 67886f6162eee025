import type { Redis } from 'ioredis';
import type { FarmKeys } from './keys.js';

/**
 * Fair share between tenants without BullMQ Pro's groups: a job's priority is the number of jobs its tenant
 * already has waiting, plus one (lower runs first). A tenant that queues a hundred jobs does not make the
 * next tenant's single job wait behind all of them: it runs after at most one job of each busier tenant's
 * backlog position. The counter only orders jobs; if it drifts (a crash between count and add), order is
 * a little less fair, nothing is lost.
 */
const MAX_PRIORITY = 2_097_152;

export async function fairPriority(redis: Redis, keys: FarmKeys, tenant: string): Promise<number> {
  const n = await redis.incr(keys.tenantWaiting(tenant));
  await redis.expire(keys.tenantWaiting(tenant), 7 * 86400);
  return Math.min(Math.max(1, n), MAX_PRIORITY);
}

const DECR_FLOOR = `local v = redis.call('DECR', KEYS[1]) if v < 0 then redis.call('SET', KEYS[1], 0) return 0 end return v`;

/** A tenant's job left the waiting set (a worker started it, or it was cancelled before starting). */
export async function leftWaiting(redis: Redis, keys: FarmKeys, tenant: string): Promise<void> {
  await redis.eval(DECR_FLOOR, 1, keys.tenantWaiting(tenant));
}
