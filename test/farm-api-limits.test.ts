import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFarm, type Farm } from './support/farm.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';

describe('API limits (API process only)', () => {
  let farm: Farm;

  before(async () => {
    farm = await startFarm({ workers: 0, env: { API_KEYS: `alice:${KEY_A},bob:${KEY_B}`, RATE_LIMIT_PER_MINUTE: '5' } });
  });

  after(async () => {
    await farm?.stop();
  });

  test('per-tenant rate limit: 429 with Retry-After past the budget, other tenants unaffected', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 7; i++) {
      const r = await farm.request('GET', '/v1/embeddings', { key: KEY_A });
      statuses.push(r.status);
      if (r.status === 429) {
        retryAfter = r.headers.get('retry-after');
        assert.equal((r.json as { error: { code: string } }).error.code, 'RATE_LIMITED');
      }
    }
    // A minute boundary may fall inside the loop and reset the window once.
    assert.ok(statuses.filter((s) => s === 429).length >= 1, statuses.join(','));
    assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60);
    assert.equal((await farm.request('GET', '/v1/embeddings', { key: KEY_B })).status, 200);
  });

  test('admin routes are off without ADMIN_KEY; health and OpenAPI need no key', async () => {
    assert.equal((await farm.request('GET', '/admin/queues', { key: KEY_A })).status, 404);
    assert.equal((await farm.request('GET', '/v1/queue', { key: KEY_A })).status, 404);
    assert.equal((await farm.request('GET', '/healthz')).status, 200);
    assert.equal((await farm.request('GET', '/openapi.json')).status, 200);
  });
});
