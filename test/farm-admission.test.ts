import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readEvents, startFarm, waitFor, type Farm, type ServiceProcess } from './support/farm.js';

/**
 * Admission by need and worker deaths, against real worker processes: jobs no worker's memory budget can hold
 * are refused at submission; a worker too small for a job hands it to a bigger one; a job that killed two
 * workers is quarantined; with no worker alive, synchronous A1111 calls fail fast and /healthz says why.
 */
const MiB = 1024 ** 2;
const SMALL_BUDGET = 768 * MiB;
// The built-in model's 512x512 job is estimated at about 1.8 GiB, so the big worker holds one image but not eight.
const BIG_BUDGET = 2048 * MiB;
/** Sampler steps that keep a 64x64 job running while the test kills its worker. */
const LONG_STEPS = Number(process.env.LONG_JOB_STEPS ?? 150);

interface JobJson {
  state: string;
  attempts: number;
  error: { code: string; message: string } | null;
}

interface ErrorJson {
  error: { code: string; message: string; field?: string };
}

interface HealthJson {
  ok: boolean;
  workers: Record<string, { alive: number; workers: { name: string; memory_budget_bytes: number }[] }>;
  queues_without_workers: string[];
  message?: string;
}

describe('admission by need and worker deaths (worker processes, short locks and heartbeats)', () => {
  let farm: Farm;
  let small: ServiceProcess;

  before(async () => {
    farm = await startFarm({
      workers: 0,
      env: {
        // A dead worker's lock lapses after 3 s, survivors look for it every second; heartbeats expire after 1.5 s.
        LOCK_DURATION_MS: '3000', STALLED_INTERVAL_MS: '1000', JOB_BACKOFF_MS: '100', HEARTBEAT_INTERVAL_MS: '500',
        WORKER_MEMORY_BUDGET: String(BIG_BUDGET),
      },
    });
  });

  after(async () => {
    await farm?.stop();
  });

  const job = async (id: string) => (await farm.request('GET', `/v1/jobs/${id}`)).json as JobJson;
  const health = async () => (await farm.request('GET', '/healthz')).json as HealthJson;
  const submit = async (body: Record<string, unknown>) => farm.request('POST', '/v1/txt2img', { body });
  const startedBy = async (id: string) => (await farm.redis.xrange(`${farm.prefix}:darkroom:events:${id}`, '-', '+'))
    .filter(([, f]) => f[1] === 'started').map(([streamId, f]) => ({ streamId, ...(JSON.parse(f[5]!) as { worker: string; attempt: number }) }));
  const kill = async (p: ServiceProcess) => {
    p.child.kill('SIGKILL');
    await once(p.child, 'exit');
  };

  test('no worker alive: /sdapi/v1/txt2img answers 503 at once, /healthz says why, /v1 still queues against the default budget', async () => {
    const h = await health();
    assert.equal(h.ok, true, 'the API itself is healthy');
    assert.deepEqual(h.queues_without_workers, ['generate', 'train']);
    assert.match(h.message ?? '', /no live worker on the generate queue/);

    const t0 = Date.now();
    const sync = await farm.request('POST', '/sdapi/v1/txt2img', { body: { prompt: 'nobody home', width: 64, height: 64, steps: 2 } });
    assert.equal(sync.status, 503);
    assert.equal((sync.json as ErrorJson).error.code, 'NO_WORKERS');
    assert.ok(Date.now() - t0 < 3000, `answered in ${Date.now() - t0} ms`);

    // Nothing registered: the configured default budget decides (1.5 GiB holds 64x64, not 1024x1024).
    const queued = await submit({ prompt: 'waits for a worker', width: 64, height: 64, steps: 2 });
    assert.equal(queued.status, 202);
    const tooLarge = await submit({ prompt: 'too large anywhere', width: 1024, height: 1024 });
    assert.equal(tooLarge.status, 422);
    assert.equal((tooLarge.json as ErrorJson).error.field, 'width');
    assert.equal((await farm.request('DELETE', `/v1/jobs/${(queued.json as { id: string }).id}`)).status, 200);
  });

  test('a job larger than every worker budget is refused at submission, naming the field and what fits', async () => {
    small = await farm.startWorker('w-small', { WORKER_MEMORY_BUDGET: String(SMALL_BUDGET) });
    await farm.startWorker('w-big');
    const h = await waitFor('both workers in /healthz', async () => {
      const x = await health();
      return x.workers.generate?.alive === 2 ? x : null;
    }, 10_000, 100);
    assert.deepEqual(h.workers.generate!.workers.map((w) => [w.name, w.memory_budget_bytes]).sort(), [['w-big', BIG_BUDGET], ['w-small', SMALL_BUDGET]]);
    assert.deepEqual(h.queues_without_workers, ['train']);

    const cases: [Record<string, unknown>, string][] = [
      [{ width: 1024, height: 1024 }, 'width'],
      [{ width: 512, height: 1024 }, 'height'],
      [{ width: 512, height: 512, batch_size: 8 }, 'batch_size'],
      [{ width: 256, height: 256, enable_hr: true, hr_scale: 4 }, 'hr_scale'],
    ];
    for (const [fields, field] of cases) {
      const r = await submit({ prompt: 'too large', ...fields });
      assert.equal(r.status, 422, JSON.stringify(fields));
      const e = (r.json as ErrorJson).error;
      assert.equal(e.code, 'JOB_TOO_LARGE');
      assert.equal(e.field, field);
      assert.match(e.message, /GiB/);
    }
    const sdapi = await farm.request('POST', '/sdapi/v1/txt2img', { body: { prompt: 'too large', width: 1024, height: 1024 } });
    assert.equal(sdapi.status, 422);
    assert.equal((sdapi.json as ErrorJson).error.field, 'width');
  });

  test('a worker too small for a job hands it back; the big worker renders it', async () => {
    // Both workers busy; the small one is freed first, so it is offered the large job before the big one.
    const busy = await Promise.all([1, 2].map(async (n) => ((await submit({ prompt: `busy ${n}`, width: 64, height: 64, steps: LONG_STEPS })).json as { id: string }).id));
    const holders = await waitFor('both workers busy', async () => {
      const by = await Promise.all(busy.map(async (b) => (await startedBy(b))[0]?.worker));
      return by.every(Boolean) ? new Map(by.map((w, i) => [w!, busy[i]!])) : null;
    }, 30_000, 50);
    // 384x384 on the built-in model needs about 1.25 GiB: more than the small worker's 768 MiB, less than the big one's 2 GiB.
    const { id } = (await submit({ prompt: 'needs the big worker', width: 384, height: 384, steps: 2, seed: 4 })).json as { id: string };
    await farm.request('DELETE', `/v1/jobs/${holders.get('w-small')!}`);
    const handedBack = async () => {
      const text = await (await fetch(`http://127.0.0.1:${small.port}/metrics`)).text();
      return Number(/^darkroom_worker_jobs_handed_back_total (\d+)/m.exec(text)?.[1] ?? 0);
    };
    await waitFor('the small worker handing the job back', async () => (await handedBack()) >= 1, 30_000, 100);
    await farm.request('DELETE', `/v1/jobs/${holders.get('w-big')!}`);
    const done = await waitFor('the job rendered', async () => {
      const j = await job(id);
      return j.state === 'completed' || j.state === 'failed' ? j : null;
    }, 120_000, 200);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.deepEqual((await startedBy(id)).map((s) => [s.worker, s.attempt]), [['w-big', 1]], 'started once, by the big worker, as attempt 1');
  });

  test('a job that killed two workers is quarantined; with none alive sdapi answers 503; the next job renders on a fresh worker', async () => {
    const { id, events_url: eventsUrl } = (await submit({ prompt: 'poison', width: 64, height: 64, steps: LONG_STEPS, seed: 9 })).json as { id: string; events_url: string };
    const victims: string[] = [];
    for (const attempt of [1, 2]) {
      const start = await waitFor(`attempt ${attempt} started`, async () => (await startedBy(id)).find((s) => s.attempt === attempt), 60_000, 50);
      // Rendering, not still fetching: a progress event after this attempt's start.
      await waitFor(`attempt ${attempt} rendering`, async () => (await farm.redis.xrange(`${farm.prefix}:darkroom:events:${id}`, `(${start.streamId}`, '+'))
        .some(([, f]) => f[1] === 'progress'), 60_000, 20);
      victims.push(start.worker);
      await kill(farm.workers.find((w) => w.name === start.worker)!);
    }
    assert.deepEqual([...victims].sort(), ['w-big', 'w-small']);

    // Both workers dead: their heartbeats lapse within 1.5 s.
    const h = await waitFor('no live worker in /healthz', async () => {
      const x = await health();
      return x.workers.generate?.alive === 0 ? x : null;
    }, 10_000, 100);
    assert.ok(h.queues_without_workers.includes('generate'));
    const t0 = Date.now();
    const sync = await farm.request('POST', '/sdapi/v1/txt2img', { body: { prompt: 'nobody home', width: 64, height: 64, steps: 2 } });
    assert.equal(sync.status, 503);
    assert.ok(Date.now() - t0 < 3000);

    await farm.startWorker('w-fresh');
    const failed = await waitFor('the job quarantined', async () => {
      const j = await job(id);
      return j.state === 'failed' ? j : null;
    }, 60_000, 100);
    assert.equal(failed.error?.code, 'JOB_QUARANTINED');
    for (const v of victims) assert.match(failed.error!.message, new RegExp(v));
    assert.match(failed.error!.message, /not retried/);

    const events = await readEvents(eventsUrl);
    const lost = await waitFor('both losses in the event log', async () => {
      const l = (await readEvents(eventsUrl)).filter((e) => e.event === 'worker_lost');
      return l.length === 2 ? l : null;
    }, 10_000, 100);
    assert.deepEqual(lost.map((e) => [e.data.attempt, e.data.worker]).sort(), [[1, victims[0]], [2, victims[1]]]);
    assert.equal(events.at(-1)!.event, 'failed');
    assert.ok(!(await startedBy(id)).some((s) => s.worker === 'w-fresh'), 'the fresh worker never started rendering it');

    const next = (await submit({ prompt: 'the next job', width: 64, height: 64, steps: 3, seed: 1 })).json as { id: string };
    const done = await waitFor('the next job completed', async () => {
      const j = await job(next.id);
      return j.state === 'completed' ? j : null;
    }, 60_000, 100);
    assert.equal(done.attempts, 1);
    assert.deepEqual((await startedBy(next.id)).map((s) => s.worker), ['w-fresh']);
  });
});
