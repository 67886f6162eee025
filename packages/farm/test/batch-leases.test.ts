import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import {
  batchCandidates, batchHolder, batchLeaseHolder, embeddingsInPrompts, farmKeys, jobBatchKey, releaseBatchLeases, renewBatchLeases, takeBatchLeases,
  Txt2ImgRequest, type GenerateRequest,
} from '../src/index.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

test('batch candidates: same tenant and key, queue order, at most max - 1, none without a key', () => {
  const claimed = { id: 'a', tenant: 't1', batchKey: 'K' };
  const waiting = [
    { id: 'a', tenant: 't1', batchKey: 'K' },
    { id: 'b', tenant: 't1', batchKey: 'K' },
    { id: 'c', tenant: 't2', batchKey: 'K' },
    { id: 'd', tenant: 't1', batchKey: 'other' },
    { id: 'e', tenant: 't1', batchKey: null },
    { id: 'f', tenant: 't1', batchKey: 'K' },
    { id: 'g', tenant: 't1', batchKey: 'K' },
    { id: 'h', tenant: 't1', batchKey: 'K' },
  ];
  assert.deepEqual(batchCandidates(claimed, waiting, 4), ['b', 'f', 'g']);
  assert.deepEqual(batchCandidates(claimed, waiting, 2), ['b']);
  assert.deepEqual(batchCandidates(claimed, waiting, 1), [], 'BATCH_MAX 1 is off');
  assert.deepEqual(batchCandidates({ ...claimed, batchKey: null }, waiting, 4), [], 'a job that must render alone takes nobody');
});

test('batch leases: two workers racing never hold the same job; only the holder renews or releases; an expired lease frees the job', async () => {
  const redis = new Redis(REDIS_URL);
  const keys = farmKeys(`dr-unit-batch-${process.pid}-${Date.now().toString(36)}`);
  const jobs = ['j1', 'j2', 'j3', 'j4'];
  const w1 = batchHolder('worker-1', 'a');
  const w2 = batchHolder('worker-2', 'b');
  try {
    const [one, two] = await Promise.all([
      takeBatchLeases(redis, keys, w1, jobs, 10_000),
      takeBatchLeases(redis, keys, w2, [...jobs].reverse(), 10_000),
    ]);
    assert.deepEqual([...one, ...two].sort(), jobs, 'every job leased once');
    assert.equal(one.filter((j) => two.includes(j)).length, 0, 'no job leased twice');
    for (const j of one) assert.equal(await batchLeaseHolder(redis, keys, j), w1);

    // the other worker can neither renew nor release the first one's leases
    assert.deepEqual(await renewBatchLeases(redis, keys, w2, one, 10_000), []);
    await releaseBatchLeases(redis, keys, w2, one);
    for (const j of one) assert.equal(await batchLeaseHolder(redis, keys, j), w1);
    assert.deepEqual(await renewBatchLeases(redis, keys, w1, one, 10_000), one);

    // released by its holder, a job can be leased again
    await releaseBatchLeases(redis, keys, w1, one);
    for (const j of one) assert.equal(await batchLeaseHolder(redis, keys, j), null);
    assert.deepEqual(await takeBatchLeases(redis, keys, w2, one, 10_000), one);

    // a holder that stops renewing (it died) loses its leases when they expire; its renew then keeps nothing
    const short = await takeBatchLeases(redis, keys, w1, ['j5', 'j6'], 150);
    assert.deepEqual(short, ['j5', 'j6']);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await batchLeaseHolder(redis, keys, 'j5'), null);
    assert.deepEqual(await renewBatchLeases(redis, keys, w1, short, 10_000), []);
    assert.deepEqual(await takeBatchLeases(redis, keys, w2, ['j5'], 10_000), ['j5']);
  } finally {
    await redis.del(...['j1', 'j2', 'j3', 'j4', 'j5', 'j6'].map((j) => keys.batchLease(j)));
    await redis.quit();
  }
});

test('a queued job\'s batch key: API defaults batch, prompts and seeds may differ; tenant, settings, scripts and embeddings keep jobs apart', () => {
  const req = (body: Record<string, unknown>): GenerateRequest => Txt2ImgRequest.parse({ steps: 4, width: 64, height: 64, ...body });
  const key = (body: Record<string, unknown>, tenant = 't1', embeddings: string[] = []) =>
    jobBatchKey({ tenant, kind: 'txt2img', request: req(body), embeddings });
  const a = key({ prompt: 'a fox', seed: 1 });
  assert.ok(a !== null, 'a plain request with the schema\'s defaults can batch');
  assert.equal(key({ prompt: 'a lighthouse', negative_prompt: 'fog', seed: 2 }), a);
  assert.notEqual(key({ prompt: 'a fox' }, 't2'), a, 'tenants never share');
  assert.notEqual(key({ prompt: 'a fox', steps: 5 }), a);
  assert.notEqual(key({ prompt: 'a fox', model: 'other' }), a);
  assert.notEqual(key({ prompt: 'a fox', hypernetworks: ['h'] }), a);
  assert.equal(key({ prompt: 'a fox', comments: { note: 'x' }, send_images: false }), a, 'fields that never reach the render do not count');
  assert.equal(key({ prompt: 'a fox', script_args: [1] }), null, 'a script keeps the job alone');
  assert.equal(key({ prompt: 'a fox', batch_size: 2 }), null);
  assert.equal(jobBatchKey({ tenant: 't1', kind: 'img2img', request: req({ prompt: 'a fox' }), embeddings: [] }), null);
  // with an embedding offered a prompt's chunk count is unknown: only the identical prompt shares
  const withEmb = key({ prompt: 'a fox in style-x', seed: 1 }, 't1', ['style-x']);
  assert.equal(key({ prompt: 'a fox in style-x', seed: 9 }, 't1', ['style-x']), withEmb);
  assert.notEqual(key({ prompt: 'a cat in style-x' }, 't1', ['style-x']), withEmb);
  assert.deepEqual(embeddingsInPrompts(['Style-X', 'other'], req({ prompt: 'a fox in style-x' })), ['Style-X']);
});
