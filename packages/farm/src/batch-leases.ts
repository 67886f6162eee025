import type { Redis } from 'ioredis';
import type { FarmKeys } from './keys.js';

/**
 * Dynamic batching in the farm: the worker that claims a job takes compatible jobs still waiting in the queue into
 * the same render (one UNet batch, core's pipeline/request-batch.ts), without taking them out of BullMQ.
 *
 * Nothing may be lost or done twice when a worker dies, so the batched jobs stay waiting in BullMQ and the batching
 * worker only holds a short lease on each (SET NX PX, renewed with its heartbeat, released at the end):
 * - a job whose lease another worker holds is handed back with a delay by whoever claims it (as warm routing hands
 *   jobs back), so it is never rendered twice at once;
 * - the batching worker writes each batched job's outputs and its terminal record (recordTerminalEvent: first
 *   writer wins, so a cancel the API recorded first stands); the worker that later claims the job from BullMQ finds
 *   the record and replays it, as it replays any finished run;
 * - if the batching worker dies, its leases expire and the jobs render normally.
 * Which jobs are compatible is the batch key computed at submission (core's catalog/batch-key.ts) and kept in the
 * job's data; jobs of another tenant never share (their names resolve to other files).
 */

/** Who holds a batch: the worker and the job it claimed (so one worker's two batches never mix). */
export function batchHolder(workerName: string, claimedJobId: string): string {
  return `${workerName}\n${claimedJobId}`;
}

export interface BatchCandidate {
  readonly id: string;
  readonly tenant: string;
  readonly batchKey: string | null | undefined;
}

/**
 * The waiting jobs (in queue order) that may join the claimed job's batch: same tenant, the same non-null batch
 * key, not the claimed job itself, at most `max - 1` of them (the batch is `max` with the claimed job).
 */
export function batchCandidates(claimed: BatchCandidate, waiting: readonly BatchCandidate[], max: number): string[] {
  if (max <= 1 || !claimed.batchKey) return [];
  const out: string[] = [];
  for (const j of waiting) {
    if (out.length >= max - 1) break;
    if (j.id !== claimed.id && j.tenant === claimed.tenant && j.batchKey === claimed.batchKey) out.push(j.id);
  }
  return out;
}

/** Takes a lease on each job nobody holds one on; returns the jobs leased, in the order asked. */
export async function takeBatchLeases(redis: Redis, keys: FarmKeys, holder: string, jobIds: readonly string[], ttlMs: number): Promise<string[]> {
  if (jobIds.length === 0) return [];
  const multi = redis.multi();
  for (const id of jobIds) multi.set(keys.batchLease(id), holder, 'PX', ttlMs, 'NX');
  const replies = (await multi.exec()) ?? [];
  return jobIds.filter((_, i) => replies[i]?.[1] === 'OK');
}

// KEYS: lease keys. ARGV: holder, ttl ms. Extends the leases the holder still holds; returns 1/0 per key.
const RENEW = `
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2]); out[i] = 1 else out[i] = 0 end
end
return out
`;

// KEYS: lease keys. ARGV: holder. Deletes the leases the holder holds.
const RELEASE = `
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 1
`;

/**
 * Extends the holder's leases (with its heartbeat); returns the jobs it still holds. A job whose lease expired
 * (the holder stalled past the TTL) may already be rendering elsewhere and must be left out of the batch's writes.
 */
export async function renewBatchLeases(redis: Redis, keys: FarmKeys, holder: string, jobIds: readonly string[], ttlMs: number): Promise<string[]> {
  if (jobIds.length === 0) return [];
  const kept = (await redis.eval(RENEW, jobIds.length, ...jobIds.map((id) => keys.batchLease(id)), holder, String(ttlMs))) as number[];
  return jobIds.filter((_, i) => kept[i] === 1);
}

/** Lets the holder's leases go (after the batch's terminal records are written, or when it gives up). */
export async function releaseBatchLeases(redis: Redis, keys: FarmKeys, holder: string, jobIds: readonly string[]): Promise<void> {
  if (jobIds.length === 0) return;
  await redis.eval(RELEASE, jobIds.length, ...jobIds.map((id) => keys.batchLease(id)), holder);
}

/** The holder of a job's batch lease, or null: a claimer hands back a job another worker is batching. */
export async function batchLeaseHolder(redis: Redis, keys: FarmKeys, jobId: string): Promise<string | null> {
  return redis.get(keys.batchLease(jobId));
}
