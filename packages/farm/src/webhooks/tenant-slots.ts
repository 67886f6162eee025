import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FarmKeys } from '../keys.js';

/**
 * A counting semaphore per tenant in Redis, shared by every delivery process: a lease per delivery attempt in a
 * sorted set scored by its expiry. A lease outlives the attempt's deadline by a margin, so the slot of a process
 * that died mid-delivery comes back by itself. Redis' clock decides expiry, so hosts' clocks need not agree.
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/** Leases outlive the attempt's deadline by this much. */
const LEASE_MARGIN_MS = 5_000;

export interface TenantSlot {
  release(): Promise<void>;
}

/** A slot for one delivery attempt of `tenant`, or null when `limit` of its attempts are in flight. */
export async function acquireTenantSlot(
  redis: Redis, keys: FarmKeys, tenant: string, limit: number, attemptDeadlineMs: number,
): Promise<TenantSlot | null> {
  const key = keys.webhookSlots(tenant);
  const token = randomUUID();
  const got = await redis.eval(ACQUIRE, 1, key, String(limit), String(attemptDeadlineMs + LEASE_MARGIN_MS), token);
  if (got !== 1) return null;
  return {
    async release() {
      await redis.zrem(key, token);
    },
  };
}
