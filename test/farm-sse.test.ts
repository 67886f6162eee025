import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readEvents, startFarm, waitFor, type Farm } from './support/farm.js';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.js';

/**
 * Job event streams: every stream and waiting call of the API shares one Redis subscriber (open streams add no
 * Redis connections), a tenant holds at most SSE_MAX_STREAMS_PER_TENANT streams (429 TOO_MANY_STREAMS past it,
 * other tenants unaffected), and a job's `queued` event always comes before its `started`.
 */
const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';
const MAX_STREAMS = 3;
const SMALL = { width: 64, height: 64 };

describe('job event streams', () => {
  let redis: PrivateRedis;
  let farm: Farm;

  before(async () => {
    // A Redis of its own, so its client count is this farm's alone.
    redis = await startPrivateRedis();
    farm = await startFarm({ workers: 1, env: { REDIS_URL: redis.url, API_KEYS: `alice:${KEY_A},bob:${KEY_B}`, SSE_MAX_STREAMS_PER_TENANT: String(MAX_STREAMS) } });
  });

  after(async () => {
    await farm?.stop();
    await redis?.close();
  });

  const submit = async (key: string, body: Record<string, unknown>) => {
    const r = await farm.request('POST', '/v1/txt2img', { key, body: { ...SMALL, ...body } });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    return (r.json as { id: string }).id;
  };
  const clients = async () => (await redis.client.client('LIST') as string).trim().split('\n').length;

  test('queued precedes started in every job\'s stream', async () => {
    const ids: string[] = [];
    // One at a time onto an idle worker, the case where it takes a job the moment it is added.
    for (let i = 0; i < 12; i++) {
      const id = await submit(KEY_A, { prompt: `order ${i}`, steps: 1, seed: i });
      ids.push(id);
      await waitFor('job finished', async () => ((await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A })).json as { state: string }).state === 'completed', 30_000, 20);
    }
    for (const id of ids) {
      const events = await readEvents(`${farm.url}/v1/jobs/${id}/events`, { authorization: `Bearer ${KEY_A}` });
      const order = events.map((e) => e.event);
      const rank = order.map((t) => ['queued', 'started', 'progress', 'completed'].indexOf(t));
      assert.ok(rank.every((r, i) => r >= 0 && (i === 0 || r >= rank[i - 1]!)), `job ${id}: ${order.join(', ')}`);
      assert.equal(order[0], 'queued', `job ${id}: ${order.join(', ')}`);
      assert.equal(order.filter((t) => t === 'queued').length, 1);
      assert.equal(order.at(-1), 'completed');
    }
  });

  test('streams share one subscriber; a tenant past its stream limit gets 429, others do not', async () => {
    const busy = await submit(KEY_A, { prompt: 'long', steps: 150 });
    const queued = [await submit(KEY_A, { prompt: 'waiting 1', steps: 150 }), await submit(KEY_A, { prompt: 'waiting 2', steps: 150 })];
    const before = await clients();
    const aborts: AbortController[] = [];
    const open = async (key: string, id: string) => {
      const ac = new AbortController();
      const res = await fetch(`${farm.url}/v1/jobs/${id}/events`, { headers: { authorization: `Bearer ${key}` }, signal: ac.signal });
      aborts.push(ac);
      return { res, ac };
    };
    try {
      const streams = [];
      for (const id of [busy, ...queued]) streams.push(await open(KEY_A, id));
      for (const s of streams) assert.equal(s.res.status, 200);
      const refused = await open(KEY_A, busy);
      assert.equal(refused.res.status, 429);
      const body = (await refused.res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'TOO_MANY_STREAMS');
      assert.match(body.error.message, /SSE_MAX_STREAMS_PER_TENANT/);

      const bobJob = await submit(KEY_B, { prompt: 'bob', steps: 150 });
      const bob = await open(KEY_B, bobJob);
      assert.equal(bob.res.status, 200, 'another tenant is not limited by the first one\'s streams');
      assert.equal(await clients(), before, 'open streams add no Redis connections');

      // A closed stream gives its slot back.
      streams[0]!.ac.abort();
      await waitFor('slot given back', async () => (await open(KEY_A, busy)).res.status === 200, 5_000, 100);

      // Events reach the shared subscriber's readers live.
      const reader = streams[1]!.res.body!.getReader();
      await farm.request('DELETE', `/v1/jobs/${queued[0]}`, { key: KEY_A });
      let text = '';
      while (!text.includes('event: cancelled')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      assert.match(text, /event: queued[\s\S]*event: cancelled/);
      await farm.request('DELETE', `/v1/jobs/${bobJob}`, { key: KEY_B });
    } finally {
      for (const a of aborts) a.abort();
      for (const id of [busy, ...queued]) await farm.request('DELETE', `/v1/jobs/${id}`, { key: KEY_A });
    }
  });
});
