import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFarm, waitFor, type Farm } from './support/farm.js';
import { startPrivateRedis, type PrivateRedis } from './support/redis-server.js';

/**
 * Redis goes away under a running farm (its own redis-server, not the shared one): requests that need it get
 * 503 REDIS_UNAVAILABLE with Retry-After within REDIS_TIMEOUT_MS, whether Redis hangs (SIGSTOP: connections stay
 * open, commands time out) or is stopped for 10 s (connections close); the job running then finishes in its first
 * attempt, and the API and worker take new work again by themselves once Redis is back.
 */
const TIMEOUT_MS = 1_000;
const SMALL = { width: 64, height: 64 };

describe('Redis outage', () => {
  let redis: PrivateRedis;
  let farm: Farm;

  before(async () => {
    redis = await startPrivateRedis();
    farm = await startFarm({ workers: 1, env: { REDIS_URL: redis.url, REDIS_TIMEOUT_MS: String(TIMEOUT_MS), LOG_LEVEL: 'info' } });
  });

  after(async () => {
    await farm?.stop();
    await redis?.close();
  });

  const timed = async (method: string, path: string, body?: unknown) => {
    const t0 = performance.now();
    const r = await farm.request(method, path, body === undefined ? {} : { body });
    return { ...r, ms: performance.now() - t0 };
  };
  const expect503 = (r: Awaited<ReturnType<typeof timed>>, what: string) => {
    assert.equal(r.status, 503, `${what}: ${JSON.stringify(r.json)}`);
    assert.equal((r.json as { error: { code: string } }).error.code, 'REDIS_UNAVAILABLE', what);
    assert.ok(Number(r.headers.get('retry-after')) > 0, `${what}: Retry-After`);
    assert.ok(r.ms < TIMEOUT_MS + 700, `${what} took ${Math.round(r.ms)} ms, past the ${TIMEOUT_MS} ms deadline`);
  };

  test('503 within the deadline while Redis hangs or is stopped; work resumes by itself', async () => {
    const running = await farm.request('POST', '/v1/txt2img', { body: { ...SMALL, prompt: 'through the outage', steps: 60, seed: 1 } });
    assert.equal(running.status, 202);
    const { id } = running.json as { id: string };
    await waitFor('job running', async () => ((await farm.request('GET', `/v1/jobs/${id}`)).json as { state: string }).state === 'running', 30_000, 50);

    // Hung: the connection stays open, so only the command deadline can answer.
    redis.pause();
    try {
      expect503(await timed('GET', `/v1/jobs/${id}`), 'GET /v1/jobs/:id, Redis hung');
      expect503(await timed('POST', '/v1/txt2img', { ...SMALL, prompt: 'refused', steps: 1 }), 'POST /v1/txt2img, Redis hung');
    } finally {
      redis.resume();
    }

    // Stopped for 10 s.
    await redis.stop();
    const stoppedAt = Date.now();
    let worst = 0;
    let asked = 0;
    while (Date.now() - stoppedAt < 10_000) {
      for (const [method, path, body] of [
        ['POST', '/v1/txt2img', { ...SMALL, prompt: 'refused', steps: 1 }],
        ['GET', `/v1/jobs/${id}`, undefined],
        ['GET', `/v1/jobs/${id}/events`, undefined],
        ['POST', '/sdapi/v1/txt2img', { ...SMALL, prompt: 'refused', steps: 1 }],
      ] as const) {
        const r = await timed(method, path, body);
        expect503(r, `${method} ${path}, Redis stopped`);
        worst = Math.max(worst, r.ms);
        asked++;
      }
      const health = await timed('GET', '/healthz');
      assert.equal(health.status, 503);
      assert.ok(health.ms < TIMEOUT_MS + 700);
      await new Promise((r) => setTimeout(r, 500));
    }
    console.log(`# ${asked} requests during a 10 s Redis stop: all 503 REDIS_UNAVAILABLE, slowest ${Math.round(worst)} ms`);
    await redis.start();
    const restartedAt = Date.now();

    const accepted = await waitFor('a submission accepted again', async () => {
      const r = await farm.request('POST', '/v1/txt2img', { body: { ...SMALL, prompt: 'after the outage', steps: 2, seed: 2 } });
      return r.status === 202 ? (r.json as { id: string }) : null;
    }, 15_000, 200);
    console.log(`# API accepted jobs again ${Date.now() - restartedAt} ms after Redis came back`);
    for (const jobId of [id, accepted.id]) {
      const done = await waitFor(`job ${jobId} completed`, async () => {
        const j = (await farm.request('GET', `/v1/jobs/${jobId}`)).json as { state: string; attempts: number; outputs: unknown[] };
        return j.state === 'completed' ? j : null;
      }, 60_000, 200);
      assert.equal(done.attempts, 1, `job ${jobId} finished in its first attempt`);
      assert.equal(done.outputs.length, 1);
    }

    const logs = { api: farm.api.log.join(''), worker: farm.workers[0]!.log.join('') };
    for (const [name, text] of Object.entries(logs)) {
      assert.doesNotMatch(text, /Unhandled error event/, `${name}: ioredis errors are handled`);
      const lines = text.split('\n').filter((l) => l.trim());
      for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `${name} logs structured lines only: ${l.slice(0, 200)}`);
      const lost = lines.filter((l) => l.includes('redis unavailable')).length;
      assert.ok(lost >= 1 && lost <= 4, `${name}: one line per connection for the outage, got ${lost}`);
    }
    assert.match(logs.api, /redis reconnected/);
  });
});
