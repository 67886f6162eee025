import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePng, encodePng, readPngText, type RasterImage } from '@darkroom/core/formats/png.js';
import { Queue } from 'bullmq';
import { inputKey, openStorage, verifyWebhook } from '@darkroom/farm';
import { freePort, HookReceiver, readEvents, startFarm, waitFor, type Farm, type ServiceProcess } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';

/**
 * Flows on the farm: one parent job fanned out into generation jobs on every worker (BullMQ flows) and composed
 * into a grid when the last child completes. Real HTTP, Redis, s3rver and worker processes; the tiny demo model
 * at 64x64.
 */
const KEY = 'flow-tenant-key-0123456789';
const BASE = { width: 64, height: 64, steps: 3, sampler_name: 'Euler' };

interface OutputJson { index: number; kind: string; child: number | null; job_id: string | null; url: string; seed: number; infotext: string }
interface ChildJson { id: string; index: number; state: string; outputs: { url: string }[] }
interface FlowJson {
  id: string;
  state: string;
  progress: { completed: number; total: number };
  children: ChildJson[];
  outputs: OutputJson[];
  error: { code: string; child?: number } | null;
}
interface HookBody { type: string; data: { flow_id?: string; job_id?: string; outputs?: OutputJson[] } }

const alive = (w: ServiceProcess) => w.child.exitCode === null && w.child.signalCode === null;

async function png(url: string): Promise<RasterImage> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return decodePng(new Uint8Array(await res.arrayBuffer()));
}

/** The cell at (col, row) of a grid of `w` x `h` cells. */
function cell(grid: RasterImage, col: number, row: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const from = ((row * h + y) * grid.width + col * w) * 3;
    out.set(grid.data.subarray(from, from + w * 3), y * w * 3);
  }
  return out;
}

describe('flows: fan-out generation jobs composed into a grid', () => {
  let s3: TestS3;
  let farm: Farm;
  let hooks: HookReceiver;

  before(async () => {
    s3 = await startS3();
    hooks = new HookReceiver(await freePort());
    await hooks.start();
    farm = await startFarm({
      storageUrl: s3.storageUrl,
      workers: 2,
      env: {
        ...s3.env, API_KEYS: `flows:${KEY}`, WEBHOOK_ALLOWLIST: '127.0.0.1', WEBHOOK_RETRY_BASE_MS: '300',
        // A SIGKILLed worker's job is found within a few seconds: its lock lapses after 3 s, survivors look every second.
        LOCK_DURATION_MS: '3000', STALLED_INTERVAL_MS: '1000', JOB_BACKOFF_MS: '100', MAX_STALLED_COUNT: '5',
      },
    });
  });

  after(async () => {
    await farm?.stop();
    await hooks?.stop();
    await s3?.close();
  });

  const flowHooks = (id: string, type: string) => hooks.received
    .map((h) => ({ h, body: JSON.parse(h.body) as HookBody }))
    .filter((x) => x.body.type === type && x.body.data.flow_id === id);

  const waitFlow = (id: string, states: string[], timeoutMs = 120_000) => waitFor(`flow ${id} to reach ${states.join('/')}`, async () => {
    const v = (await farm.request('GET', `/v1/flows/${id}`, { key: KEY })).json as FlowJson;
    return states.includes(v.state) ? v : null;
  }, timeoutMs, 200);

  test('a bad child is refused naming it; a grid too small for the images is refused', async () => {
    const bad = await farm.request('POST', '/v1/flows', { key: KEY, body: { children: [{ ...BASE }, { ...BASE, steps: 0 }] } });
    assert.equal(bad.status, 400);
    assert.equal((bad.json as { error: { field: string } }).error.field, 'children[1].steps');
    const unknown = await farm.request('POST', '/v1/flows', { key: KEY, body: { children: [{ ...BASE, stepz: 3 }] } });
    assert.equal((unknown.json as { error: { field: string } }).error.field, 'children[0].stepz');
    const sampler = await farm.request('POST', '/v1/flows', { key: KEY, body: { children: [{ ...BASE }, { ...BASE, sampler_name: 'Nope' }] } });
    assert.equal((sampler.json as { error: { field: string } }).error.field, 'children[1].sampler_name');
    const small = await farm.request('POST', '/v1/flows', {
      key: KEY, body: { children: [{ ...BASE }, { ...BASE, batch_size: 2 }], compose: { kind: 'grid', rows: 1, cols: 2 } },
    });
    assert.equal(small.status, 400);
    assert.equal((small.json as { error: { field: string } }).error.field, 'compose.rows');
    const both = await farm.request('POST', '/v1/flows', { key: KEY, body: { children: [{ ...BASE }], script: { name: 'prompt matrix' }, base: { ...BASE } } });
    assert.equal((both.json as { error: { field: string } }).error.field, 'children');
    const badBase = await farm.request('POST', '/v1/flows', { key: KEY, body: { script: { name: 'prompt matrix' }, base: { ...BASE, cfg_scale: 'high' } } });
    assert.equal((badBase.json as { error: { field: string } }).error.field, 'base.cfg_scale');
  });

  test('an Idempotency-Key makes one flow however often the POST is sent', async () => {
    const body = { children: [{ ...BASE, steps: 1, seed: 1 }, { ...BASE, steps: 1, seed: 2 }], webhook: { url: hooks.url, events: ['queued', 'completed'] } };
    const headers = { 'idempotency-key': 'flow-once-1' };
    const first = await farm.request('POST', '/v1/flows', { key: KEY, body, headers });
    const again = await farm.request('POST', '/v1/flows', { key: KEY, body, headers });
    assert.equal(first.status, 202);
    assert.equal(again.status, 202);
    assert.equal((again.json as { id: string }).id, (first.json as { id: string }).id);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    // The new flow's answer names the children it queued; the replay reads the same ones back from the flow.
    const firstChildren = (first.json as { children: string[] }).children;
    assert.equal(firstChildren.length, 2);
    assert.equal((first.json as { state: string }).state, 'queued');
    assert.deepEqual((again.json as { children: string[] }).children, firstChildren);
    const view = await farm.request('GET', `/v1/flows/${(first.json as { id: string }).id}`, { key: KEY });
    assert.deepEqual((view.json as FlowJson).children.map((c) => c.id), firstChildren);
    const other = await farm.request('POST', '/v1/flows', { key: KEY, body: { ...body, compose: { kind: 'grid', rows: 1, cols: 2 } }, headers });
    assert.equal(other.status, 422);
    const id = (first.json as { id: string }).id;
    await waitFlow(id, ['completed']);
    await waitFor('flow.completed webhook', async () => flowHooks(id, 'flow.completed').length > 0, 30_000);
    assert.equal(flowHooks(id, 'flow.queued').length, 1, 'the replay did not send `queued` again');
    // A `queued` message lost between the flow's add and its own (the submission answered 503): the retry that
    // 503 asks for queues it again, with the same id and body.
    const webhooks = new Queue('webhooks', { connection: farm.redis, prefix: farm.prefix });
    try {
      await (await webhooks.getJob(`msg_${id}_queued`))!.remove();
    } finally {
      await webhooks.close();
    }
    const retried = await farm.request('POST', '/v1/flows', { key: KEY, body, headers });
    assert.equal(retried.status, 202);
    await waitFor('the `queued` webhook again', async () => flowHooks(id, 'flow.queued').length === 2, 30_000);
    const [sent, resent] = flowHooks(id, 'flow.queued');
    assert.equal(resent!.h.headers['webhook-id'], sent!.h.headers['webhook-id']);
    assert.equal(resent!.h.body, sent!.h.body);
  });

  test('a 2x2 grid: cells equal single renders, partial results while it runs, one completion, one webhook', async () => {
    const cells = [
      { prompt: 'a lighthouse', seed: 11, cfg_scale: 5 }, { prompt: 'a lighthouse', seed: 12, cfg_scale: 5 },
      { prompt: 'a lighthouse', seed: 11, cfg_scale: 9 }, { prompt: 'a lighthouse', seed: 12, cfg_scale: 9 },
    ].map((c) => ({ ...BASE, ...c }));
    const sub = await farm.request('POST', '/v1/flows', {
      key: KEY, body: { children: cells, compose: { kind: 'grid', rows: 2, cols: 2 }, webhook: { url: hooks.url, events: ['progress', 'completed'] } },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id, events_url: eventsUrl } = sub.json as { id: string; events_url: string };

    // Partial results: some child done, the flow not yet; or it was too quick to see, which is fine.
    const early = (await farm.request('GET', `/v1/flows/${id}`, { key: KEY })).json as FlowJson;
    assert.equal(early.children.length, 4);
    if (early.state !== 'completed') {
      assert.equal(early.outputs.length, early.children.filter((c) => c.state === 'completed').length, 'partial outputs are the done children\'s');
    }

    const done = await waitFlow(id, ['completed', 'failed', 'cancelled']);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.deepEqual(done.progress, { ...done.progress, completed: 4, total: 4 });
    assert.deepEqual(done.outputs.map((o) => o.kind), ['grid', 'image', 'image', 'image', 'image']);
    assert.deepEqual(done.outputs.map((o) => o.child), [null, 0, 1, 2, 3]);

    const gridRes = await fetch(done.outputs[0]!.url);
    const gridBytes = new Uint8Array(await gridRes.arrayBuffer());
    assert.match(readPngText(gridBytes).parameters ?? '', /Seed: 11/, 'the grid carries the first image\'s infotext');
    const grid = decodePng(gridBytes);
    assert.equal(grid.width, 128);
    assert.equal(grid.height, 128);

    // Each cell equals the same parameters rendered as one plain job.
    for (const [i, c] of cells.entries()) {
      const single = await farm.request('POST', '/v1/txt2img', { key: KEY, body: c });
      assert.equal(single.status, 202);
      const jobId = (single.json as { id: string }).id;
      const job = await waitFor('single render', async () => {
        const j = (await farm.request('GET', `/v1/jobs/${jobId}`, { key: KEY })).json as { state: string; outputs: { url: string }[] };
        return j.state === 'completed' ? j : null;
      }, 60_000, 100);
      const plain = await png(job.outputs[0]!.url);
      assert.deepEqual(cell(grid, i % 2, Math.floor(i / 2), 64, 64), plain.data, `cell ${i} equals its single render`);
      assert.deepEqual((await png(done.outputs[i + 1]!.url)).data, plain.data, `image ${i} equals its single render`);
    }

    // One completed event in the log (the SSE stream ends at it), one flow.completed webhook, progress per child.
    const events = await readEvents(`${farm.url}/v1/flows/${id}/events`, { authorization: `Bearer ${KEY}` });
    assert.equal(eventsUrl, `${farm.url}/v1/flows/${id}/events`);
    assert.equal(events.filter((e) => e.event === 'completed').length, 1);
    assert.equal(events[0]!.event, 'queued');
    await waitFor('flow.completed webhook', async () => flowHooks(id, 'flow.completed').length > 0, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    const completed = flowHooks(id, 'flow.completed');
    assert.equal(new Set(completed.map((x) => x.h.headers['webhook-id'])).size, 1, 'one flow.completed message');
    const { secret } = (await farm.request('GET', '/v1/webhook-secret', { key: KEY })).json as { secret: string };
    const payload = verifyWebhook(secret, completed[0]!.h.headers, completed[0]!.h.body) as HookBody;
    assert.equal(payload.data.outputs?.[0]?.kind, 'grid');
    assert.ok(flowHooks(id, 'flow.progress').length >= 1, 'flow.progress as children complete');
  });

  test('a worker SIGKILLed mid-flow: nothing lost, nothing duplicated', async () => {
    const children = Array.from({ length: 6 }, (_, i) => ({ ...BASE, steps: 40, prompt: `a kite ${i}`, seed: 100 + i }));
    const sub = await farm.request('POST', '/v1/flows', {
      key: KEY, body: { children, compose: { kind: 'grid', rows: 2, cols: 3 }, webhook: { url: hooks.url, events: ['completed'] } },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id } = sub.json as { id: string };
    // A child is running: kill the worker that holds it, and start a replacement.
    const running = await waitFor('a running child', async () => {
      const v = (await farm.request('GET', `/v1/flows/${id}`, { key: KEY })).json as FlowJson;
      return v.children.find((c) => c.state === 'running') ?? null;
    }, 60_000, 25);
    const started = await waitFor('its started event', async () => {
      const log = await farm.redis.xrange(`${farm.prefix}:darkroom:events:${running.id}`, '-', '+');
      const s = log.filter(([, f]) => f[1] === 'started').at(-1);
      return s ? (JSON.parse(s[1][5]!) as { worker: string }).worker : null;
    }, 10_000, 25);
    const victim = farm.workers.find((w) => w.name === started && alive(w));
    assert.ok(victim, `worker ${started} is alive`);
    victim.child.kill('SIGKILL');
    await farm.startWorker(`${started}-replacement`);

    const done = await waitFlow(id, ['completed', 'failed', 'cancelled'], 180_000);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.equal(done.outputs.length, 7, 'one grid and six images');
    for (const c of done.children) {
      assert.equal(c.state, 'completed');
      assert.equal(c.outputs.length, 1);
      const log = await farm.redis.xrange(`${farm.prefix}:darkroom:events:${c.id}`, '-', '+');
      assert.equal(log.filter(([, f]) => f[1] === 'completed').length, 1, `child ${c.index} completed once`);
    }
    const flowLog = await farm.redis.xrange(`${farm.prefix}:darkroom:events:${id}`, '-', '+');
    assert.equal(flowLog.filter(([, f]) => f[1] === 'completed').length, 1, 'the flow completed once');
    await waitFor('flow.completed webhook', async () => flowHooks(id, 'flow.completed').length > 0, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(new Set(flowHooks(id, 'flow.completed').map((x) => x.h.headers['webhook-id'])).size, 1);
    // Storage holds exactly the grid beside the children's images.
    const grid = await png(done.outputs[0]!.url);
    assert.equal(grid.width, 192);
    assert.equal(grid.height, 128);
  });

  test('cancelling the flow stops every child', async () => {
    const children = Array.from({ length: 6 }, (_, i) => ({ ...BASE, steps: 60, prompt: `a storm ${i}`, seed: 200 + i }));
    const sub = await farm.request('POST', '/v1/flows', {
      key: KEY, body: { children, compose: { kind: 'grid', rows: null, cols: null }, webhook: { url: hooks.url, events: ['cancelled', 'completed'] } },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id } = sub.json as { id: string };
    await waitFor('a running child', async () => {
      const v = (await farm.request('GET', `/v1/flows/${id}`, { key: KEY })).json as FlowJson;
      return v.children.some((c) => c.state === 'running');
    }, 60_000, 25);
    const del = await farm.request('DELETE', `/v1/flows/${id}`, { key: KEY });
    assert.equal(del.status, 202, JSON.stringify(del.json));
    assert.equal((del.json as { cancel_requested: boolean }).cancel_requested, true);
    const done = await waitFlow(id, ['completed', 'failed', 'cancelled'], 60_000);
    assert.equal(done.state, 'cancelled');
    // A flow that has ended is not cancelled again.
    const again = await farm.request('DELETE', `/v1/flows/${id}`, { key: KEY });
    assert.equal(again.status, 200, JSON.stringify(again.json));
    assert.equal((again.json as { cancel_requested: boolean }).cancel_requested, false);
    // Children done before the cancel keep their images; every other one is cancelled, none still runs.
    const settled = await waitFor('children settled', async () => {
      const v = (await farm.request('GET', `/v1/flows/${id}`, { key: KEY })).json as FlowJson;
      return v.children.every((c) => c.state === 'cancelled' || c.state === 'completed') ? v : null;
    }, 30_000, 200);
    assert.ok(settled.children.filter((c) => c.state === 'cancelled').length >= 4, JSON.stringify(settled.children.map((c) => c.state)));
    await waitFor('flow.cancelled webhook', async () => flowHooks(id, 'flow.cancelled').length > 0, 30_000);
    assert.equal(flowHooks(id, 'flow.completed').length, 0);
    const events = await readEvents(`${farm.url}/v1/flows/${id}/events`, { authorization: `Bearer ${KEY}` });
    assert.equal(events.at(-1)!.event, 'cancelled');
  });
  test('a child that fails for good fails the flow with its error code, once', async () => {
    const init = Buffer.from(encodePng({ width: 64, height: 64, channels: 3, data: new Uint8Array(64 * 64 * 3).map((_, i) => (i * 31) % 256) }))
      .toString('base64');
    const children = [
      ...Array.from({ length: 4 }, (_, i) => ({ ...BASE, steps: 60, prompt: `a meadow ${i}`, seed: 300 + i })),
      { ...BASE, prompt: 'a meadow, repainted', seed: 399, init_images: [init], denoising_strength: 0.5 },
    ];
    const sub = await farm.request('POST', '/v1/flows', {
      key: KEY, body: { children, compose: { kind: 'grid', rows: null, cols: null }, webhook: { url: hooks.url, events: ['failed', 'completed'] } },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id, children: ids } = sub.json as { id: string; children: string[] };
    // The last child's input image vanishes from storage before a worker reaches it: INPUT_MISSING, not retried.
    await openStorage(s3.storageUrl).delete(inputKey('flows', ids[4]!, 'init-0'));
    const done = await waitFlow(id, ['completed', 'failed', 'cancelled'], 120_000);
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'INPUT_MISSING');
    assert.equal(done.error?.child, 4);
    await waitFor('flow.failed webhook', async () => flowHooks(id, 'flow.failed').length > 0, 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(new Set(flowHooks(id, 'flow.failed').map((x) => x.h.headers['webhook-id'])).size, 1);
    assert.equal(flowHooks(id, 'flow.completed').length, 0);
    const events = await readEvents(`${farm.url}/v1/flows/${id}/events`, { authorization: `Bearer ${KEY}` });
    assert.equal(events.filter((e) => e.event === 'failed').length, 1);
    assert.equal((events.at(-1)!.data.error as { code: string }).code, 'INPUT_MISSING');
  });
  test('a prompt matrix as a /v1 flow: one child per combination, the labelled grid first, each image a plain render', async () => {
    const sub = await farm.request('POST', '/v1/flows', {
      key: KEY, body: { script: { name: 'Prompt matrix', args: [] }, base: { ...BASE, prompt: 'a lighthouse|at night|in fog', seed: 21 } },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id } = sub.json as { id: string };
    const done = await waitFlow(id, ['completed', 'failed', 'cancelled']);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.equal(done.children.length, 4);
    assert.deepEqual(done.outputs.map((o) => o.kind), ['grid', 'image', 'image', 'image', 'image']);
    const prompts = done.outputs.slice(1).map((o) => o.infotext.split('\n')[0]);
    assert.deepEqual(prompts, ['a lighthouse', 'a lighthouse, at night', 'a lighthouse, in fog', 'a lighthouse, at night, in fog']);
    const grid = await png(done.outputs[0]!.url);
    assert.ok(grid.width >= 128 && grid.height > 128, `the 2x2 grid with its labels: ${grid.width}x${grid.height}`);
    // The last combination, rendered as one plain job, is the same image.
    const single = await farm.request('POST', '/v1/txt2img', { key: KEY, body: { ...BASE, prompt: prompts[3], seed: 21 } });
    const jobId = (single.json as { id: string }).id;
    const job = await waitFor('single render', async () => {
      const j = (await farm.request('GET', `/v1/jobs/${jobId}`, { key: KEY })).json as { state: string; outputs: { url: string }[] };
      return j.state === 'completed' ? j : null;
    }, 60_000, 100);
    assert.deepEqual((await png(done.outputs[4]!.url)).data, (await png(job.outputs[0]!.url)).data);
    // A bad script argument is named.
    const bad = await farm.request('POST', '/v1/flows', { key: KEY, body: { script: { name: 'prompt matrix', args: ['yes'] }, base: { ...BASE } } });
    assert.equal(bad.status, 400);
    assert.equal((bad.json as { error: { field: string } }).error.field, 'script.args[0]');
    const unknown = await farm.request('POST', '/v1/flows', { key: KEY, body: { script: { name: 'Loopback wave' }, base: { ...BASE } } });
    assert.equal((unknown.json as { error: { field: string } }).error.field, 'script.name');
  });

  test('/sdapi/v1/txt2img with the X/Y/Z plot script answers as A1111: the grid, then the info', async () => {
    const scripts = (await farm.request('GET', '/sdapi/v1/scripts', { key: KEY })).json as { txt2img: string[] };
    assert.ok(scripts.txt2img.includes('x/y/z plot'));
    assert.ok(((await farm.request('GET', '/sdapi/v1/script-info', { key: KEY })).json as unknown[]).length > 0);
    const r = await farm.request('POST', '/sdapi/v1/txt2img', {
      key: KEY,
      body: { ...BASE, prompt: 'a kite', seed: 5, cfg_scale: 7, script_name: 'X/Y/Z plot', script_args: ['Seed', '5,6', [], 'CFG Scale', '5,9', []] },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 500));
    const body = r.json as { images: string[]; info: string };
    const flowId = r.headers.get('x-darkroom-flow-id')!;
    const flow = (await farm.request('GET', `/v1/flows/${flowId}`, { key: KEY })).json as FlowJson;
    assert.equal(flow.children.length, 4);
    const info = JSON.parse(body.info) as { index_of_first_image: number; infotexts: string[] };
    assert.equal(body.images.length, info.infotexts.length);
    assert.ok(info.index_of_first_image >= 1, 'the grid leads the images');
    const grid = decodePng(new Uint8Array(Buffer.from(body.images[0]!, 'base64')));
    assert.ok(grid.width >= 128 && grid.height >= 128, `${grid.width}x${grid.height}`);
    assert.match(info.infotexts[0]!, /X Type: Seed/);
  });
  test('/sdapi/v1/progress counts a script\'s cells as jobs, and interrupt ends the whole script', async () => {
    const call = farm.request('POST', '/sdapi/v1/txt2img', {
      key: KEY,
      body: { ...BASE, steps: 60, prompt: 'a dune', seed: 7, script_name: 'x/y/z plot', script_args: ['Seed', '7,8,9', [], 'CFG Scale', '5,9', []] },
    });
    const progress = await waitFor('the script running', async () => {
      const p = (await farm.request('GET', '/sdapi/v1/progress', { key: KEY })).json as { state: { job_count: number; job: string }; current_task: string | null };
      return p.state.job_count === 6 && p.state.job.startsWith('flow ') ? p : null;
    }, 60_000, 25);
    assert.ok(progress.current_task);
    assert.deepEqual((await farm.request('POST', '/sdapi/v1/interrupt', { key: KEY })).json, {});
    const r = await call;
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 300));
    const flow = (await farm.request('GET', `/v1/flows/${progress.current_task}`, { key: KEY })).json as FlowJson;
    assert.equal(flow.state, 'cancelled');
    const after = (await farm.request('GET', '/sdapi/v1/progress', { key: KEY })).json as { state: { interrupted: boolean } };
    assert.equal(after.state.interrupted, true);
  });
  test('seed blending runs as a one-cell flow; txt2img2img runs its img2img stage on the txt2img\'s image', async () => {
    const image = (r: { json: unknown }) => decodePng(new Uint8Array(Buffer.from((r.json as { images: string[] }).images[0]!, 'base64')));
    // A blend of one seed is that seed's plain render.
    const r = await farm.request('POST', '/sdapi/v1/txt2img', {
      key: KEY, body: { ...BASE, prompt: 'a harbour', seed: 99, script_name: 'Advanced Seed Blending', script_args: ['31'] },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 300));
    assert.equal((r.json as { images: string[] }).images.length, 1);
    const plain = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY, body: { ...BASE, prompt: 'a harbour', seed: 31 } });
    assert.deepEqual(image(r).data, image(plain).data);

    // txt2img2img: the stage waits for the txt2img's image and equals the img2img of it written by hand.
    const staged = await farm.request('POST', '/sdapi/v1/txt2img', {
      key: KEY, body: { ...BASE, prompt: 'a harbour', seed: 44, script_name: 'txt2img2img', script_args: ['a harbour at dusk', '', 0.6, 0, 0] },
    });
    assert.equal(staged.status, 200, JSON.stringify(staged.json).slice(0, 300));
    assert.equal((staged.json as { images: string[] }).images.length, 1);
    const flow = (await farm.request('GET', `/v1/flows/${staged.headers.get('x-darkroom-flow-id')}`, { key: KEY })).json as FlowJson;
    assert.deepEqual(flow.children.map((c) => c.state), ['completed', 'completed']);
    const first = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY, body: { ...BASE, prompt: 'a harbour', seed: 44 } });
    const byHand = await farm.request('POST', '/sdapi/v1/img2img', {
      key: KEY, body: { ...BASE, prompt: 'a harbour at dusk', seed: 44, denoising_strength: 0.6, init_images: [(first.json as { images: string[] }).images[0]] },
    });
    assert.equal(byHand.status, 200, JSON.stringify(byHand.json).slice(0, 300));
    assert.deepEqual(image(staged).data, image(byHand).data);
    const listed = (await farm.request('GET', '/sdapi/v1/scripts', { key: KEY })).json as { txt2img: string[]; img2img: string[] };
    assert.ok(listed.txt2img.includes('txt2img2img') && !listed.img2img.includes('txt2img2img'));
  });
});
