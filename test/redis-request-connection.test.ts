import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectRedis, isRedisUnavailable, redisReady, type Redis } from '@darkroom/farm';
import { waitFor } from './support/farm.js';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.js';

/**
 * The API's connections (`role: 'request'`) answer clients: a command the API has given up on, and so answered
 * 503 for, must never run later. Otherwise a job is queued after its client was told it was not, and queued again
 * by the client's retry (the chaos test met exactly that: ten jobs more than were submitted).
 */
describe('a request connection never runs a command it has failed', () => {
  let redis: PrivateRedis;
  let client: Redis;
  const DEADLINE_MS = 5_000;

  before(async () => {
    redis = await startPrivateRedis();
    client = connectRedis(redis.url, { role: 'request', timeoutMs: DEADLINE_MS, name: 'request-unit' });
    client.on('error', () => undefined);
    await redisReady(client);
  });

  after(async () => {
    client?.disconnect();
    await redis?.close();
  });

  /** The command's error and how long after `from` it came (the outcome caught at once, so nothing goes unhandled). */
  const outcome = (command: Promise<unknown>) => {
    const settled = command.then(() => null, (e: unknown) => e).then((err) => ({ err, at: performance.now() }));
    return async (from: number): Promise<void> => {
      const { err, at } = await settled;
      assert.ok(err instanceof Error, 'the command failed');
      assert.ok(isRedisUnavailable(err), `recognised as Redis unavailable: ${(err as Error).name}: ${(err as Error).message}`);
      const ms = at - from;
      assert.ok(ms < DEADLINE_MS / 2, `failed at once (${ms.toFixed(0)} ms), not at the ${DEADLINE_MS} ms deadline`);
    };
  };

  test('issued while the connection is down: refused at once, and not run when Redis is back', async () => {
    await redis.crash();
    await waitFor('the connection to notice', async () => client.status !== 'ready', 5_000, 5);
    const issuedAt = performance.now();
    const refused = outcome(client.set('late:offline', '1'));
    // Redis back at once, before the next reconnection attempt: a command kept in an offline queue would be sent.
    const back = redis.start();
    await refused(issuedAt);
    await back;
    await redisReady(client);
    assert.equal(await client.get('late:offline'), null, 'the refused SET never ran');
  });

  test('in flight when the connection drops: failed then, and not sent again after the reconnection', async () => {
    // Redis stopped: the SET is written to the socket and waits there unread; then Redis dies with it unread.
    redis.pause();
    const inFlight = outcome(client.set('late:in-flight', '1'));
    await new Promise((r) => setTimeout(r, 100));
    const crashedAt = performance.now();
    await redis.crash();
    // Back at once again: a command kept for resending would be sent on the new connection.
    const back = redis.start();
    await inFlight(crashedAt);
    await back;
    await redisReady(client);
    // A resent command would have run by the time a later one answers (one connection keeps their order).
    assert.equal(await client.get('late:in-flight'), null, 'the failed SET was not sent again');
  });

  test('a service that starts before Redis waits for it instead of failing its first command', async () => {
    await redis.crash();
    const early = connectRedis(redis.url, { role: 'request', timeoutMs: DEADLINE_MS, name: 'request-early' });
    early.on('error', () => undefined);
    try {
      let ready = false;
      const waiting = redisReady(early).then(() => {
        ready = true;
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(ready, false, 'not ready while Redis is down');
      await redis.start();
      await waiting;
      assert.equal(await early.ping(), 'PONG');
    } finally {
      early.disconnect();
    }
  });
});
