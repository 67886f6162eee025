import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openStorage } from '@darkroom/farm';
import { encodePng } from '@darkroom/core/formats/png.js';
import { readEvents, startFarm, waitFor, type Farm } from './support/farm.js';
import { startRestartableS3, type RestartableS3 } from './support/s3-restartable.js';

/**
 * Storage (s3rver) stops answering for 30 s while jobs render. Workers keep the finished images, retry the writes
 * without giving up the job, and complete every job once storage is back: each rendered once, in its first
 * attempt, with exactly one set of outputs. The API answers what needs storage meanwhile with 503.
 */
const OUTAGE_MS = 30_000;
const JOBS = 3;
const BATCH = 2;

describe('storage outage during renders', () => {
  let s3: RestartableS3;
  let farm: Farm;

  before(async () => {
    s3 = await startRestartableS3();
    farm = await startFarm({ storageUrl: s3.storageUrl, workers: 1, env: { ...s3.env, LOG_LEVEL: 'info' } });
  });

  after(async () => {
    await farm?.stop();
    await s3?.close();
  });

  test('every job completes once storage is back, rendered once, one set of outputs each', async () => {
    await s3.stop();
    const stoppedAt = Date.now();
    // The API cannot store an img2img input now: a 503 to retry, not a 500.
    const init = Buffer.from(encodePng({ width: 64, height: 64, channels: 3, data: new Uint8Array(64 * 64 * 3).fill(128) })).toString('base64');
    const refused = await farm.request('POST', '/v1/img2img', { body: { width: 64, height: 64, steps: 2, prompt: 'no storage', init_images: [init] } });
    assert.equal(refused.status, 503, JSON.stringify(refused.json));
    assert.equal((refused.json as { error: { code: string } }).error.code, 'STORAGE_UNAVAILABLE');
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      const r = await farm.request('POST', '/v1/txt2img', { body: { width: 64, height: 64, steps: 2, batch_size: BATCH, prompt: `kept ${i}`, seed: i } });
      assert.equal(r.status, 202, JSON.stringify(r.json));
      ids.push((r.json as { id: string }).id);
    }
    const job = async (id: string) => (await farm.request('GET', `/v1/jobs/${id}`)).json as { state: string; attempts: number; outputs: unknown[] };
    const workerLogs = () => farm.workers.map((w) => w.log.join('')).join('');
    // The worker rendered a job and holds its images; the others wait in the queue.
    await waitFor('renders waiting for storage', async () => (workerLogs().match(/storage unavailable/g) ?? []).length >= 1, 20_000, 100);
    while (Date.now() - stoppedAt < OUTAGE_MS) {
      for (const id of ids) {
        const j = await job(id);
        assert.ok(j.state === 'running' || j.state === 'queued', `job ${id} is ${j.state} during the outage`);
        assert.ok(j.attempts <= 1, `job ${id} started ${j.attempts} times during the outage`);
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
    await s3.start();
    const back = Date.now();

    for (const id of ids) {
      const done = await waitFor(`job ${id} completed`, async () => {
        const j = await job(id);
        assert.notEqual(j.state, 'failed');
        return j.state === 'completed' ? j : null;
      }, 30_000, 200);
      assert.equal(done.attempts, 1, 'completed in its first attempt');
      assert.equal(done.outputs.length, BATCH);
    }
    console.log(`# ${JOBS} jobs completed ${Date.now() - back} ms after storage came back from a ${OUTAGE_MS / 1000} s outage`);

    const storage = openStorage(s3.storageUrl);
    for (const id of ids) {
      assert.deepEqual(await storage.list(`outputs/default/${id}/`), [`outputs/default/${id}/0.png`, `outputs/default/${id}/1.png`], 'exactly one set of outputs');
      const events = await readEvents(`${farm.url}/v1/jobs/${id}/events`);
      assert.equal(events.filter((e) => e.event === 'started').length, 1, 'rendered once');
      assert.equal(events.filter((e) => e.event === 'completed').length, 1);
    }
    assert.equal((workerLogs().match(/"msg":"job rendered"/g) ?? []).length, JOBS, 'one render per job');
    assert.ok((workerLogs().match(/storage is back: outputs stored/g) ?? []).length >= 1);
  });
});
