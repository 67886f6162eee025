import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { Redis } from 'ioredis';
import { connectRedis, deliverWebhook, DeliveryError, farmKeys, isRedisUnavailable } from '../src/index.js';
import { acquireTenantSlot } from '../src/webhooks/tenant-slots.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A raw TCP receiver: reads the request, then writes `head` and one more byte of `drip` every 200 ms. */
async function receiver(head: string, drip: string): Promise<{ url: string; server: Server }> {
  const server = createServer((socket) => {
    let timer: NodeJS.Timeout | undefined;
    socket.once('data', () => {
      socket.write(head);
      timer = setInterval(() => socket.write(drip), 200);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => clearInterval(timer));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, server };
}

const deliver = (url: string, timeoutMs: number) => deliverWebhook({
  url, secret: 'whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdA==', messageId: 'msg_1', body: '{}', allowlist: ['127.0.0.1'], timeoutMs,
});

test('a webhook receiver trickling its headers is cut at the total deadline, however often it sends', async () => {
  const r = await receiver('HTTP/1.1 200 OK\r\nX-Slow: ', 'a');
  try {
    const t0 = performance.now();
    await assert.rejects(deliver(r.url, 700), (e: unknown) => e instanceof DeliveryError && /within 700 ms \(WEBHOOK_TIMEOUT_MS\)/.test(e.message));
    const took = performance.now() - t0;
    assert.ok(took >= 650 && took < 1_200, `cut after ${Math.round(took)} ms`);
  } finally {
    r.server.close();
  }
});

test('a 2xx status line is a delivery: a body that never ends is not waited for', async () => {
  const r = await receiver('HTTP/1.1 204 No Content\r\nContent-Length: 100000\r\n\r\n', 'b');
  try {
    const t0 = performance.now();
    const res = await deliver(r.url, 5_000);
    assert.equal(res.status, 204);
    assert.ok(performance.now() - t0 < 1_000);
    const failed = await receiver('HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n', 'b');
    await assert.rejects(deliver(failed.url, 5_000), (e: unknown) => e instanceof DeliveryError && e.status === 500);
    failed.server.close();
  } finally {
    r.server.close();
  }
});

test('tenant delivery slots: at most the limit per tenant, farm-wide; a released slot is taken again; tenants apart', async () => {
  const redis = new Redis(REDIS_URL);
  const keys = farmKeys(`dr-unit-${process.pid}-${Date.now().toString(36)}`);
  try {
    const a1 = await acquireTenantSlot(redis, keys, 'a', 2, 10_000);
    const a2 = await acquireTenantSlot(redis, keys, 'a', 2, 10_000);
    assert.ok(a1 && a2);
    assert.equal(await acquireTenantSlot(redis, keys, 'a', 2, 10_000), null, 'a third attempt of the same tenant waits');
    assert.ok(await acquireTenantSlot(redis, keys, 'b', 2, 10_000), 'another tenant is not affected');
    await a1.release();
    const a3 = await acquireTenantSlot(redis, keys, 'a', 2, 10_000);
    assert.ok(a3, 'a released slot is free again');
    // A lease left behind by a process that died expires by itself (deadline + margin); forge an expired one.
    await redis.zadd(keys.webhookSlots('c'), 1, 'dead-process');
    assert.ok(await acquireTenantSlot(redis, keys, 'c', 1, 10_000), 'an expired lease does not hold a slot');
    await redis.del(keys.webhookSlots('a'), keys.webhookSlots('b'), keys.webhookSlots('c'));
  } finally {
    redis.disconnect();
  }
});

test('a request connection to an unreachable Redis fails its command within the deadline, recognised as unavailable', async () => {
  const dead = createServer();
  dead.listen(0, '127.0.0.1');
  await once(dead, 'listening');
  const port = (dead.address() as { port: number }).port;
  dead.close();
  await once(dead, 'close');
  const client = connectRedis(`redis://127.0.0.1:${port}`, { role: 'request', timeoutMs: 300, name: 'unit' });
  try {
    const t0 = performance.now();
    const err = await client.get('x').then(() => null, (e: unknown) => e);
    assert.ok(err instanceof Error);
    assert.ok(isRedisUnavailable(err), `${(err as Error).name}: ${(err as Error).message}`);
    assert.ok(performance.now() - t0 < 1_000, 'within the deadline');
  } finally {
    client.disconnect();
  }
  const live = new Redis(REDIS_URL);
  try {
    const key = `dr-unit-${process.pid}-type`;
    await live.set(key, 'string', 'EX', 10);
    const refused = await live.lpush(key, 'x').then(() => null, (e: unknown) => e);
    assert.ok(refused instanceof Error);
    assert.equal(isRedisUnavailable(refused), false, 'a command Redis refused is not an outage');
  } finally {
    live.disconnect();
  }
});
