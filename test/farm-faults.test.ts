import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { farmKeys, readTerminalRecord, recordTerminalEvent, verifyWebhook, type GenerateJobResult } from '@darkroom/farm';
import { freePort, HookReceiver, readEvents, startFarm, waitFor, type Farm } from './support/farm.js';

/**
 * Enough sampler steps that a job is still running when the test acts on it. The tiny model's step time sets
 * how long that is; LONG_JOB_STEPS can raise it on a fast machine.
 */
const LONG_STEPS = Number(process.env.LONG_JOB_STEPS ?? 150);
const SMALL = { width: 64, height: 64 };

interface JobJson {
  state: string;
  attempts: number;
  progress: { step: number; steps: number; preview?: string } | null;
  outputs: unknown[];
}

describe('farm under faults (two worker processes, short locks)', () => {
  let farm: Farm;
  let storageDir: string;

  before(async () => {
    farm = await startFarm({
      workers: 2,
      env: {
        WEBHOOK_ALLOWLIST: '127.0.0.1', WEBHOOK_RETRY_BASE_MS: '300',
        // A dead worker's lock lapses after 3 s; the survivors look for stalled jobs every second.
        LOCK_DURATION_MS: '3000', STALLED_INTERVAL_MS: '1000', JOB_BACKOFF_MS: '100',
        PREVIEW_EVERY_N_STEPS: '5',
      },
    });
    storageDir = fileURLToPath(farm.env.STORAGE_URL!);
  });

  after(async () => {
    await farm?.stop();
  });

  const job = async (id: string) => (await farm.request('GET', `/v1/jobs/${id}`)).json as JobJson;
  const outputsOf = async (id: string) => readdir(join(storageDir, 'outputs', 'default', id)).catch(() => [] as string[]);

  test('SIGKILL a worker mid-job: another worker finishes it, with exactly one set of outputs', async () => {
    const sub = await farm.request('POST', '/v1/txt2img', { body: { ...SMALL, prompt: 'survives a crash', steps: LONG_STEPS, batch_size: 2, seed: 99 } });
    const { id, events_url: eventsUrl } = sub.json as { id: string; events_url: string };
    await waitFor('job running with progress', async () => ((await job(id)).progress?.step ?? 0) >= 2, 30_000, 20);
    const events = (await farm.redis.xrange(`${farm.prefix}:darkroom:events:${id}`, '-', '+')).map(([, f]) => f);
    const startedBy = JSON.parse(events.find((f) => f[1] === 'started')![5]!) as { worker: string };
    const victim = farm.workers.find((w) => w.name === startedBy.worker)!;
    victim.child.kill('SIGKILL');
    await once(victim.child, 'exit');

    const done = await waitFor('job completed by the survivor', async () => {
      const j = await job(id);
      return j.state === 'completed' ? j : null;
    }, 60_000, 100);
    assert.equal(done.attempts, 2, 'started twice: once per worker');
    assert.deepEqual((await outputsOf(id)).sort(), ['0.png', '1.png'], 'one set of outputs, no temp files, no duplicates');
    const all = await readEvents(eventsUrl);
    const starts = all.filter((e) => e.event === 'started').map((e) => e.data.worker);
    assert.equal(starts.length, 2);
    assert.notEqual(starts[0], starts[1]);
    assert.equal(all.filter((e) => e.event === 'completed').length, 1);
    await farm.startWorker('w3');
  });

  test('a run that died after writing its outcome: the next run hands that outcome to the queue without rendering or a second event', async () => {
    // A finished job's record is what a run leaves when it dies between writing its outcome and BullMQ's completion.
    const keys = farmKeys(farm.prefix);
    const first = (await farm.request('POST', '/v1/txt2img', { body: { ...SMALL, prompt: 'outcome written once', steps: 3, seed: 7 } })).json as { id: string };
    await waitFor('first job completed', async () => (await job(first.id)).state === 'completed', 30_000, 50);
    const written = await readTerminalRecord<GenerateJobResult>(farm.redis, keys, first.id);
    assert.equal(written?.type, 'completed');
    assert.equal(written.result?.outputs.length, 1);

    const connection = farm.redis.duplicate();
    const queue = new Queue('generate', { connection, prefix: farm.prefix });
    try {
      await queue.pause();
      const { id, events_url: eventsUrl } = (await farm.request('POST', '/v1/txt2img', { body: { ...SMALL, prompt: 'outcome written once', steps: 3, seed: 7 } })).json as { id: string; events_url: string };
      const events = { redis: farm.redis, keys, webhooks: queue, retentionS: 600 };
      const evJob = { id, tenant: 'default', webhook: null };
      const dead = await recordTerminalEvent(events, evJob, { type: 'completed', data: written.data, result: written.result });
      assert.equal(dead.written, true);
      const again = await recordTerminalEvent(events, evJob, { type: 'failed', data: {}, reason: 'X: not written' });
      assert.equal(again.written, false, 'a second outcome is not written');
      assert.equal(again.record.type, 'completed');
      await queue.resume();

      assert.equal((await job(id)).state, 'completed', 'the API answers from the record at once');
      // BullMQ finishes the job once a worker takes it and finds the record.
      await waitFor('job handed to the queue as completed', async () => (await queue.getJobState(id)) === 'completed', 30_000, 50);
      const bull = await queue.getJob(id);
      assert.deepEqual(bull?.returnvalue, written.result, 'the recorded result, not a new render');
      const all = await readEvents(eventsUrl);
      assert.deepEqual(all.map((e) => e.event), ['queued', 'completed'], 'no started, no second completed');
      assert.deepEqual(await outputsOf(id), [], 'nothing rendered for it');
    } finally {
      await queue.resume().catch(() => undefined);
      await queue.close();
      // BullMQ leaves a connection it was handed open; an open one would keep this test process alive.
      await connection.quit();
    }
  });

  test('cancel mid-job: the job ends cancelled within one sampler step, with no outputs', async () => {
    const sub = await farm.request('POST', '/v1/txt2img', { body: { ...SMALL, prompt: 'to be cancelled', steps: LONG_STEPS, seed: 5 } });
    const { id, events_url: eventsUrl } = sub.json as { id: string; events_url: string };
    await waitFor('job running with progress', async () => ((await job(id)).progress?.step ?? 0) >= 3, 30_000, 20);
    const previewUrl = await waitFor('a live preview', async () => (await job(id)).progress?.preview, 30_000, 20);
    const preview = await fetch(previewUrl);
    assert.equal(preview.status, 200);
    assert.deepEqual([...new Uint8Array(await preview.arrayBuffer()).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    const del = await farm.request('DELETE', `/v1/jobs/${id}`);
    assert.equal(del.status, 202);
    assert.equal((del.json as { cancel_requested: boolean }).cancel_requested, true);
    const events = await readEvents(eventsUrl);
    const last = events.at(-1)!;
    assert.equal(last.event, 'cancelled');
    const stepAtCancel = Number(last.data.step_at_cancel);
    const lastStep = Number(last.data.last_step);
    assert.ok(stepAtCancel >= 3 && stepAtCancel < LONG_STEPS, `cancel seen at step ${stepAtCancel}`);
    assert.ok(lastStep - stepAtCancel <= 1, `ran ${lastStep - stepAtCancel} steps after the cancel was seen`);
    assert.equal((await job(id)).state, 'cancelled');
    assert.deepEqual(await outputsOf(id), []);
  });

  test('cancel a queued job: removed before any worker starts it', async () => {
    const body = { ...SMALL, prompt: 'busy', steps: LONG_STEPS };
    const busy: string[] = [];
    for (let i = 0; i < farm.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).length; i++) {
      busy.push(((await farm.request('POST', '/v1/txt2img', { body })).json as { id: string }).id);
    }
    await waitFor('workers busy', async () => (await Promise.all(busy.map(job))).every((j) => j.state === 'running'), 30_000);
    const { id } = (await farm.request('POST', '/v1/txt2img', { body: { ...body, prompt: 'never runs' } })).json as { id: string };
    const del = await farm.request('DELETE', `/v1/jobs/${id}`);
    assert.equal(del.status, 200);
    assert.equal((del.json as { state: string }).state, 'cancelled');
    const view = await job(id);
    assert.equal(view.state, 'cancelled');
    assert.equal(view.attempts, 0);
    for (const b of busy) await farm.request('DELETE', `/v1/jobs/${b}`);
    await waitFor('busy jobs cancelled', async () => (await Promise.all(busy.map(job))).every((j) => j.state === 'cancelled'), 30_000);
  });

  test('SIGTERM: a worker finishes the job in hand, then exits cleanly', async () => {
    const sub = await farm.request('POST', '/v1/txt2img', { body: { ...SMALL, prompt: 'finish me', steps: 40, seed: 3 } });
    const { id } = sub.json as { id: string };
    await waitFor('job running with progress', async () => ((await job(id)).progress?.step ?? 0) >= 1, 30_000, 20);
    const events = (await farm.redis.xrange(`${farm.prefix}:darkroom:events:${id}`, '-', '+')).map(([, f]) => f);
    const by = (JSON.parse(events.find((f) => f[1] === 'started')![5]!) as { worker: string }).worker;
    const w = farm.workers.find((x) => x.name === by)!;
    w.child.kill('SIGTERM');
    const [code] = (await once(w.child, 'exit')) as [number | null];
    assert.equal(code, 0);
    const view = await job(id);
    assert.equal(view.state, 'completed', 'the job finished before the worker exited');
    assert.equal(view.attempts, 1);
    await farm.startWorker('w4');
  });

  test('webhook receiver down: retried with backoff and delivered once it is back', async () => {
    const hooks = new HookReceiver(await freePort());
    const sub = await farm.request('POST', '/v1/txt2img', {
      body: { ...SMALL, prompt: 'notify me', steps: 2, webhook: { url: hooks.url, events: ['completed'] } },
    });
    const { id } = sub.json as { id: string };
    const deliveries = async () => ((await farm.request('GET', `/v1/jobs/${id}/webhooks`)).json as { deliveries: { ok: boolean; attempt: number }[] }).deliveries;
    await waitFor('two failed delivery attempts', async () => (await deliveries()).filter((d) => !d.ok).length >= 2, 30_000, 100);
    await hooks.start();
    try {
      const got = await waitFor('delivery after the receiver is back', async () => hooks.received[0], 30_000, 100);
      const { secret } = (await farm.request('GET', '/v1/webhook-secret')).json as { secret: string };
      const payload = verifyWebhook(secret, got.headers, got.body) as { type: string; data: { job_id: string } };
      assert.equal(payload.type, 'job.completed');
      assert.equal(payload.data.job_id, id);
      const log = await deliveries();
      assert.equal(log.at(-1)!.ok, true);
      assert.ok(log.at(-1)!.attempt >= 3, 'the successful delivery was a retry');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(hooks.received.length, 1, 'delivered once');
      const messageId = String(got.headers['webhook-id']);
      const again = await farm.request('POST', `/v1/jobs/${id}/webhooks/${messageId}/redeliver`);
      assert.equal(again.status, 202);
      const second = await waitFor('redelivery', async () => hooks.received[1], 30_000, 100);
      assert.equal(second.headers['webhook-id'], messageId, 'a redelivery keeps the message id');
      assert.equal(second.body, got.body);
      assert.equal((await farm.request('POST', `/v1/jobs/${id}/webhooks/msg_nope/redeliver`)).status, 404);
    } finally {
      await hooks.stop();
    }
  });
});
