/**
 * Whether a key's job was made already, from its job or the tombstone a removed one leaves; then the claim on a
 * real Redis (REDIS_URL): a live holder keeps it past its lease, a holder that
 * stopped renewing (Redis or its process died under it) loses it within the lease, and a holder's release never
 * takes away a claim that lapsed and went to another request.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connectRedis, isFarmError, redisReady, type Redis } from '@darkroom/farm';
import { claimIdempotentId, madeAlready, type ClaimTiming } from '../src/idempotency.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Idempotency-Key claim', () => {
  let redis: Redis;
  const keys: string[] = [];
  const freshKey = (): string => {
    const k = `darkroom-test:idem-claim:${randomUUID()}`;
    keys.push(k);
    return k;
  };

  before(async () => {
    redis = connectRedis(REDIS_URL, { role: 'request', name: 'idem-claim-test' });
    await redisReady(redis);
  });

  after(async () => {
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  const renewed: ClaimTiming = { leaseMs: 500, renewEveryMs: 100 };

  test('a live holder keeps its claim for longer than the lease; release frees it at once', async () => {
    const key = freshKey();
    const holder = await claimIdempotentId(redis, key, renewed);
    assert.ok(holder, 'the first request claims the key');
    await sleep(4 * renewed.leaseMs);
    assert.equal(await claimIdempotentId(redis, key, renewed), null, 'still held: its holder renews it');
    await holder.release();
    const next = await claimIdempotentId(redis, key, renewed);
    assert.ok(next, 'released: the next request claims it');
    await next.release();
  });

  test('a holder whose connection died loses the claim within the lease, and its release neither throws nor takes the new claim', async () => {
    const key = freshKey();
    const dying = connectRedis(REDIS_URL, { role: 'request', name: 'idem-claim-dying' });
    dying.on('error', () => undefined);
    await redisReady(dying);
    const holder = await claimIdempotentId(dying, key, renewed);
    assert.ok(holder);
    dying.disconnect();
    const lostAt = performance.now();
    let taken = await claimIdempotentId(redis, key, renewed);
    while (taken === null && performance.now() - lostAt < 10 * renewed.leaseMs) {
      await sleep(20);
      taken = await claimIdempotentId(redis, key, renewed);
    }
    const waited = performance.now() - lostAt;
    assert.ok(taken, `the claim lapsed (waited ${waited.toFixed(0)} ms)`);
    assert.ok(waited <= renewed.leaseMs + 500, `within the lease: ${waited.toFixed(0)} ms for a ${renewed.leaseMs} ms lease`);
    await holder.release();
    assert.equal(await claimIdempotentId(redis, key, renewed), null, "the dead holder's release left the new claim alone");
    await taken.release();
  });

  test("a holder that lost its claim to another request cannot renew or release that request's claim", async () => {
    const key = freshKey();
    const stalled = await claimIdempotentId(redis, key, { leaseMs: 150, renewEveryMs: 60_000 });
    assert.ok(stalled);
    await sleep(250);
    const current = await claimIdempotentId(redis, key, { leaseMs: 600, renewEveryMs: 60_000 });
    assert.ok(current, 'the stalled claim lapsed and another request took it');
    await stalled.release();
    assert.ok((await redis.pttl(key)) > 0, 'the other request still holds it');
    await current.release();
    assert.equal(await redis.exists(key), 0);
  });
});

test("a key's job, or its tombstone, replays the same body and refuses another with 422", async () => {
  const noTomb = async () => null;
  const tomb = (requestHash: string) => async () => JSON.stringify({ requestHash });
  assert.equal(await madeAlready(undefined, noTomb, 'h1'), false);
  assert.equal(await madeAlready({ data: { requestHash: 'h1' } }, tomb('other'), 'h1'), true, 'the job decides while it exists');
  assert.equal(await madeAlready(undefined, tomb('h1'), 'h1'), true);
  const reused = (e: unknown) => isFarmError(e) && e.code === 'IDEMPOTENCY_KEY_REUSED' && e.status === 422 && e.field === 'Idempotency-Key';
  await assert.rejects(madeAlready({ data: { requestHash: 'h2' } }, noTomb, 'h1'), reused);
  await assert.rejects(madeAlready(undefined, tomb('h2'), 'h1'), reused);
  await assert.rejects(madeAlready(undefined, async () => '{}', 'h1'), reused, 'a tombstone without a hash matches no body');
});
