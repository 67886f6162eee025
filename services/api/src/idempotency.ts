/**
 * The Idempotency-Key rules every submission shares: what a key may be, the refusal of a key reused with another
 * body, and the claim that lets one of several concurrent retries create the job while the others wait for it.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FarmError } from '@darkroom/farm';

/** Checks an Idempotency-Key header: 1-255 printable ASCII characters, as the OpenAPI document states. */
export function checkIdempotencyKey(key: string): void {
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new FarmError('INVALID_IDEMPOTENCY_KEY', 400, 'Idempotency-Key must be 1-255 printable ASCII characters', 'Idempotency-Key');
  }
}

/** A key already used with a different request body. */
export function idempotencyKeyReused(): FarmError {
  return new FarmError('IDEMPOTENCY_KEY_REUSED', 422, 'this Idempotency-Key was used with a different request body', 'Idempotency-Key');
}

/** A key whose first request is still creating its job. */
export function idempotencyKeyBusy(): FarmError {
  return new FarmError('IDEMPOTENCY_KEY_BUSY', 409, 'a request with this Idempotency-Key is still being processed; retry shortly', 'Idempotency-Key');
}

/**
 * Whether the key's job was made already: its job, or the tombstone a removed job leaves, holds the hash of the body
 * it was made from. The same body is a replay (true); another body is refused.
 */
export async function madeAlready(
  job: { readonly data: { readonly requestHash?: string } } | undefined,
  tombstone: () => Promise<string | null>,
  requestHash: string,
): Promise<boolean> {
  const tomb = job ? null : await tombstone();
  if (!job && tomb === null) return false;
  const prior = job ? job.data.requestHash : (JSON.parse(tomb!) as { requestHash?: string }).requestHash;
  if (prior !== requestHash) throw idempotencyKeyReused();
  return true;
}

export interface IdempotencyClaim {
  /** Stops renewing the claim and takes it away if it is still this request's; never throws (Redis may be gone). */
  release(): Promise<void>;
}

export interface ClaimTiming {
  /** How long a claim outlives the last renewal of its holder. */
  readonly leaseMs: number;
  /** How often a live holder renews it (well within the lease, so one slow renewal does not lose it). */
  readonly renewEveryMs: number;
}

/**
 * A claim lapses this soon after its holder stops renewing it: a request that Redis (or its process) died under
 * blocks its key's retries for seconds, not for as long as a job could take to prepare.
 */
export const CLAIM_TIMING: ClaimTiming = { leaseMs: 5_000, renewEveryMs: 1_500 };

// Renewal and release touch the claim only while it holds this request's token: a claim that lapsed and was taken
// by another request is that request's.
const RENEW_IF_OWNED = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const DELETE_IF_OWNED = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Claims `key` for this request, or answers null when another live request holds it. The claim carries a token of
 * this request and a short lease that a timer renews while the request runs, so it lasts as long as its holder
 * and no longer. A lapsed claim only lets a retry prepare the job again: the job's id is the key's, so the queue
 * still holds one job.
 */
export async function claimIdempotentId(redis: Redis, key: string, timing: ClaimTiming = CLAIM_TIMING): Promise<IdempotencyClaim | null> {
  const token = randomBytes(12).toString('hex');
  if ((await redis.set(key, token, 'PX', timing.leaseMs, 'NX')) === null) return null;
  const renew = setInterval(() => {
    redis.eval(RENEW_IF_OWNED, 1, key, token, timing.leaseMs).catch(() => undefined);
  }, timing.renewEveryMs);
  renew.unref();
  return {
    async release() {
      clearInterval(renew);
      await redis.eval(DELETE_IF_OWNED, 1, key, token).catch(() => undefined);
    },
  };
}
