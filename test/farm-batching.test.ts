import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Queue } from 'bullmq';
import { farmKeys, type GenerateJobResult } from '@darkroom/farm';
import { decodePng } from '@darkroom/core/formats/png.js';
import { Engine } from '@darkroom/core/pipeline/engine.js';
import type { Txt2ImgParams } from '@darkroom/core/pipeline/params.js';
import { freePort, HookReceiver, startFarm, waitFor, type Farm } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';

/**
 * Dynamic batching with real processes (API, one worker, Redis, s3rver, HTTP webhooks): compatible jobs waiting
 * when the worker claims one are rendered in its UNet batch (BATCH_MAX=4), each completes once with its own
 * webhook and event log, and each image is the job's solo render.
 */
const BASE = { width: 64, height: 64, steps: 4, sampler_name: 'Euler a', cfg_scale: 6, negative_prompt: 'blurry' };
const JOBS = [
  { prompt: 'a red fox in the snow', seed: 11 },
  { prompt: 'a lighthouse at dusk', seed: 22 },
  { prompt: 'two cats on a (sofa:1.2)', seed: 33 },
  { prompt: 'a boat [at sea:in fog:2]', seed: 44 },
];

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  const x = decodePng(a).data;
  const y = decodePng(b).data;
  assert.equal(x.length, y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

describe('dynamic batching (one worker, BATCH_MAX=4)', () => {
  let s3: TestS3;
  let farm: Farm;
  let hooks: HookReceiver;
  let queue: Queue;

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({
      storageUrl: s3.storageUrl,
      workers: 0,
      env: { ...s3.env, RATE_LIMIT_PER_MINUTE: '0', WEBHOOK_ALLOWLIST: '127.0.0.1', BATCH_MAX: '4' },
    });
    hooks = new HookReceiver(await freePort());
    await hooks.start();
    queue = new Queue('generate', { connection: farm.redis, prefix: farm.prefix });
  });

  after(async () => {
    await queue?.close();
    await hooks?.stop();
    await farm?.stop();
    await s3?.close();
  });

  test('four compatible waiting jobs render as one batch; each completes once, with its own webhook, as its solo render', async () => {
    // All four wait before any worker runs, so the first one claimed finds the other three.
    const ids: string[] = [];
    for (const j of JOBS) {
      const r = await farm.request('POST', '/v1/txt2img', { body: { ...BASE, ...j, webhook: { url: hooks.url, events: ['started', 'completed'] } } });
      assert.equal(r.status, 202, JSON.stringify(r.json));
      ids.push((r.json as { id: string }).id);
    }
    const keys = await Promise.all(ids.map(async (id) => (await queue.getJob(id))!.data.batchKey));
    assert.ok(keys[0] && keys.every((k) => k === keys[0]), 'the API gave the four jobs one batch key');

    const worker = await farm.startWorker('w1');
    const done = await waitFor('all four finished', async () => {
      const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
      return jobs.every((j) => j?.finishedOn) ? jobs.map((j) => j!) : null;
    }, 120_000, 50);
    for (const j of done) assert.equal(await j.getState(), 'completed', j.failedReason);

    // One render: the claimed job's batch took the other three.
    const results = done.map((j) => j.returnvalue as GenerateJobResult);
    const claimed = results.findIndex((r) => r.batched_with === undefined);
    assert.ok(claimed >= 0);
    assert.deepEqual(results.filter((_, i) => i !== claimed).map((r) => r.batched_with), ids.filter((_, i) => i !== claimed).map(() => ids[claimed]));
    const metrics = await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
    assert.equal(Number(/^darkroom_worker_batched_jobs_total (\d+)/m.exec(metrics)?.[1]), 3);

    // Each job: one completed event in its log and one completed webhook of its own.
    const k = farmKeys(farm.prefix);
    for (const id of ids) {
      const events = await farm.redis.xrange(k.events(id), '-', '+');
      const types = events.map(([, f]) => f[f.indexOf('type') + 1]);
      assert.equal(types.filter((t) => t === 'completed').length, 1, `${id}: ${types.join(',')}`);
      assert.ok(types.includes('started'));
    }
    const hookOf = (id: string, type: string) => hooks.received.filter((h) => {
      const b = JSON.parse(h.body) as { type: string; data: { job_id: string } };
      return b.type === type && b.data.job_id === id;
    });
    await waitFor('a completed webhook per job', async () => ids.every((id) => hookOf(id, 'job.completed').length >= 1), 30_000);
    await new Promise((r) => setTimeout(r, 500));
    for (const id of ids) assert.equal(hookOf(id, 'job.completed').length, 1, `${id}: one completed webhook`);

    // Each image is the job's solo render (same engine, demo model), and its infotext the solo one.
    const engine = new Engine({ threads: 1 });
    try {
      for (const [i, id] of ids.entries()) {
        const job = (await farm.request('GET', `/v1/jobs/${id}`)).json as { outputs: { url: string; infotext: string; seed: number }[] };
        assert.equal(job.outputs.length, 1);
        const png = new Uint8Array(await (await fetch(job.outputs[0]!.url)).arrayBuffer());
        const solo = await engine.txt2img({ ...BASE, ...JOBS[i]! } as Txt2ImgParams);
        assert.equal(job.outputs[0]!.infotext, solo.infotexts[0]);
        assert.equal(job.outputs[0]!.seed, JOBS[i]!.seed);
        assert.ok(maxPixelDiff(png, solo.images[0]!) <= 1, `${id}: batched image differs from solo`);
      }
    } finally {
      await engine.close();
    }
    assert.equal((await farm.redis.keys(`${farm.prefix}:darkroom:batch-lease:*`)).length, 0, 'no lease left behind');
  });

  test('a batch is as large as the worker\'s memory budget holds: with room for two images, four jobs render in two batches', async () => {
    const w1 = farm.workers.find((w) => w.name === 'w1')!;
    w1.child.kill('SIGTERM');
    await once(w1.child, 'exit');
    const ids: string[] = [];
    for (const j of JOBS) {
      const r = await farm.request('POST', '/v1/txt2img', { body: { ...BASE, ...j, seed: j.seed + 100 } });
      assert.equal(r.status, 202, JSON.stringify(r.json));
      ids.push((r.json as { id: string }).id);
    }
    // The built-in model at 64x64 is estimated at about 450.4 MB for one image and 1.4 MB more per image.
    const worker = await farm.startWorker('w2', { WORKER_MEMORY_BUDGET: '452500000' });
    const done = await waitFor('all four finished', async () => {
      const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
      return jobs.every((j) => j?.finishedOn) ? jobs.map((j) => j!) : null;
    }, 120_000, 50);
    for (const j of done) assert.equal(await j.getState(), 'completed', j.failedReason);
    const results = done.map((j) => j.returnvalue as GenerateJobResult);
    assert.equal(results.filter((r) => r.batched_with === undefined).length, 2, 'two renders');
    assert.equal(results.filter((r) => r.batched_with !== undefined).length, 2, 'each with one batched job');
    const metrics = await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
    assert.equal(Number(/^darkroom_worker_batched_jobs_total (\d+)/m.exec(metrics)?.[1]), 2);
  });

  test('a job in a batch whose worker died is handed back while the lease lives, then renders on its own once', async () => {
    // A lease nobody renews stands for a batching worker that died mid-render.
    await queue.pause();
    const r = await farm.request('POST', '/v1/txt2img', { body: { ...BASE, prompt: 'an orphaned job', seed: 55 } });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    const id = (r.json as { id: string }).id;
    const k = farmKeys(farm.prefix);
    const leaseMs = 2_500;
    await farm.redis.set(k.batchLease(id), 'dead-worker\nsome-job', 'PX', leaseMs);
    const t0 = Date.now();
    await queue.resume();
    const job = await waitFor('the orphaned job finished', async () => {
      const j = await queue.getJob(id);
      return j?.finishedOn ? j : null;
    }, 60_000, 50);
    assert.equal(await job.getState(), 'completed', job.failedReason);
    assert.ok(job.finishedOn! - t0 >= leaseMs - 200, `rendered only after the lease expired (${job.finishedOn! - t0} ms)`);
    const result = job.returnvalue as GenerateJobResult;
    assert.equal(result.batched_with, undefined);
    assert.equal(result.outputs.length, 1);
    const types = (await farm.redis.xrange(k.events(id), '-', '+')).map(([, f]) => f[f.indexOf('type') + 1]);
    assert.equal(types.filter((t) => t === 'completed').length, 1, types.join(','));
  });
});
