import { BUILTIN_MODEL_NAME } from '@darkroom/core/catalog/built-in-model.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { parseGenerationParameters } from '@darkroom/core/formats/infotext.js';
import { readPngText } from '@darkroom/core/formats/png.js';
import { writeSafetensors } from '@darkroom/core/formats/safetensors.js';
import { float32 } from '@darkroom/core/tensor.js';
import { createHypernetwork } from '@darkroom/core/networks/hypernetworks/create.js';
import { saveHypernetworkPt } from '@darkroom/core/networks/hypernetworks/save.js';
import { AssetRegistry, assetStorageKey, farmKeys, isJobId, openStorage, sha256Hex, verifyWebhook } from '@darkroom/farm';
import { freePort, HookReceiver, readEvents, startFarm, waitFor, type Farm } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';
/** Small and few steps: the tiny model renders this in well under a second. */
const BASE = { width: 64, height: 64, steps: 3 };

interface JobViewJson {
  id: string;
  state: string;
  attempts: number;
  outputs: { index: number; url: string; seed: number; infotext: string }[];
  error: { code: string } | null;
}

describe('farm end to end (real HTTP, Redis, s3rver, worker process)', () => {
  let s3: TestS3;
  let farm: Farm;
  let hooks: HookReceiver;

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({
      storageUrl: s3.storageUrl,
      workers: 1,
      env: { ...s3.env, API_KEYS: `alice:${KEY_A},bob:${KEY_B}`, WEBHOOK_ALLOWLIST: '127.0.0.1', MAX_BODY_BYTES: '262144', ADMIN_KEY: 'admin-key-0123456789' },
    });
    hooks = new HookReceiver(await freePort());
    await hooks.start();
  });

  after(async () => {
    await hooks?.stop();
    await farm?.stop();
    await s3?.close();
  });

  test('txt2img with a webhook: rendered, stored in S3, signed webhook, downloadable PNG with matching infotext', async () => {
    const body = {
      ...BASE, prompt: 'a red fox in the snow', negative_prompt: 'blurry', seed: 1234, cfg_scale: 5, sampler_name: 'Euler',
      webhook: { url: hooks.url, events: ['started', 'completed'] },
    };
    const sub = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id, events_url: eventsUrl } = sub.json as { id: string; events_url: string };
    assert.ok(isJobId(id));

    const hookFor = (type: string) => hooks.received.find((h) => (JSON.parse(h.body) as { type: string; data: { job_id: string } }).type === type
      && (JSON.parse(h.body) as { data: { job_id: string } }).data.job_id === id);
    const completed = await waitFor('completed webhook', async () => hookFor('job.completed'), 60_000);
    const { secret } = (await farm.request('GET', '/v1/webhook-secret', { key: KEY_A })).json as { secret: string };
    const payload = verifyWebhook(secret, completed.headers, completed.body) as { data: { job_id: string; outputs: { url: string }[] } };
    assert.equal(payload.data.job_id, id);
    assert.equal(payload.data.outputs.length, 1);
    // Deliveries are independent queue jobs: `started` may land after `completed`.
    const started = await waitFor('started webhook', async () => hookFor('job.started'), 30_000);
    assert.equal((verifyWebhook(secret, started.headers, started.body) as { data: { job_id: string } }).data.job_id, id);
    assert.notEqual(completed.headers['webhook-id'], started.headers['webhook-id']);
    // Bob's secret does not verify Alice's webhooks.
    const bobSecret = ((await farm.request('GET', '/v1/webhook-secret', { key: KEY_B })).json as { secret: string }).secret;
    assert.throws(() => verifyWebhook(bobSecret, completed.headers, completed.body));

    const job = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A })).json as JobViewJson;
    assert.equal(job.state, 'completed');
    assert.equal(job.outputs.length, 1);
    assert.ok(job.outputs[0]!.url.startsWith(s3.endpoint), 'S3 outputs come back as presigned URLs');

    const png = new Uint8Array(await (await fetch(job.outputs[0]!.url)).arrayBuffer());
    const infotext = readPngText(png).parameters!;
    assert.equal(infotext, job.outputs[0]!.infotext);
    const p = parseGenerationParameters(infotext);
    assert.equal(p.get('Prompt'), 'a red fox in the snow');
    assert.equal(p.get('Negative prompt'), 'blurry');
    assert.equal(p.get('Steps'), '3');
    assert.equal(p.get('Seed'), '1234');
    assert.equal(p.get('Size-1'), '64');
    assert.equal(p.get('Size-2'), '64');
    assert.equal(p.get('Sampler'), 'Euler');
    assert.equal(Number(p.get('CFG scale')), 5);

    const keys = await openStorage(s3.storageUrl).list(`outputs/alice/${id}/`);
    assert.deepEqual(keys, [`outputs/alice/${id}/0.png`]);

    const events = await readEvents(eventsUrl, { authorization: `Bearer ${KEY_A}` });
    const types = events.map((e) => e.event);
    assert.deepEqual([types[0], types[1], types.at(-1)], ['queued', 'started', 'completed']);
    const replay = await readEvents(eventsUrl, { authorization: `Bearer ${KEY_A}`, 'last-event-id': events[0]!.id });
    assert.deepEqual(replay.map((e) => e.id), events.slice(1).map((e) => e.id), 'Last-Event-ID replays exactly what came after');

    const log = (await farm.request('GET', `/v1/jobs/${id}/webhooks`, { key: KEY_A })).json as { deliveries: { ok: boolean; event: string }[] };
    assert.ok(log.deliveries.some((d) => d.ok && d.event === 'completed'));
  });

  test('fair share: a tenant\'s single job does not wait behind another tenant\'s backlog', async () => {
    const queue = new Queue('generate', { connection: farm.redis, prefix: farm.prefix });
    const aIds: string[] = [];
    for (let i = 0; i < 6; i++) {
      aIds.push(((await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { ...BASE, steps: 12, prompt: `backlog ${i}`, seed: i } })).json as { id: string }).id);
    }
    const bSubmitted = Date.now();
    const bId = ((await farm.request('POST', '/v1/txt2img', { key: KEY_B, body: { ...BASE, steps: 12, prompt: 'just one' } })).json as { id: string }).id;
    const starts = await waitFor('all started and done', async () => {
      const jobs = await Promise.all([...aIds, bId].map((id) => queue.getJob(id)));
      return jobs.every((j) => j?.finishedOn) ? jobs.map((j) => ({ id: j!.id!, at: j!.processedOn! })) : null;
    }, 120_000, 100);
    const bStarted = starts.find((x) => x.id === bId)!.at;
    // On a loaded host the single worker may get through several of A's jobs before B's is even submitted; what
    // fair share promises is that once B's job is queued, A's backlog does not go first: at most the one job the
    // worker was claiming as B's arrived starts between B's submission and B's start.
    const aheadOfB = starts.filter((x) => x.id !== bId && x.at > bSubmitted && x.at < bStarted);
    const order = starts.sort((x, y) => x.at - y.at).map((x) => x.id);
    assert.ok(aheadOfB.length <= 1, `${aheadOfB.length} of A's jobs started after B's was submitted and before it (B at position ${order.indexOf(bId)} of ${order.length})`);
    await queue.close();
  });

  test('tenant isolation: another tenant gets 404 for the job, its events, outputs and deliveries', async () => {
    const sub = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { ...BASE, prompt: 'private', seed: 1 } });
    const { id } = sub.json as { id: string };
    await waitFor('job done', async () => ((await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A })).json as JobViewJson).state === 'completed', 60_000);
    for (const [method, path] of [['GET', `/v1/jobs/${id}`], ['DELETE', `/v1/jobs/${id}`], ['GET', `/v1/jobs/${id}/events`],
      ['GET', `/v1/jobs/${id}/outputs/0.png`], ['GET', `/v1/jobs/${id}/webhooks`]] as const) {
      const r = await farm.request(method, path, { key: KEY_B });
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal((r.json as { error: { code: string } }).error.code, 'JOB_NOT_FOUND');
    }
    assert.equal((await farm.request('GET', `/v1/jobs/${id}/outputs/0.png`, { key: KEY_A })).status, 200);
    assert.equal((await farm.request('GET', `/v1/jobs/${id}`)).status, 401);
    assert.equal((await farm.request('GET', `/v1/jobs/${id}`, { key: 'wrong-key-0123456789' })).status, 401);
  });

  test('Idempotency-Key: a retried POST returns the same job and queues nothing new', async () => {
    const queue = new Queue('generate', { connection: farm.redis, prefix: farm.prefix });
    const total = async () => Object.values(await queue.getJobCounts()).reduce((a, b) => a + b, 0);
    const before = await total();
    const body = { ...BASE, prompt: 'once only', seed: 7 };
    const headers = { 'idempotency-key': 'order-42' };
    const a = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body, headers });
    const b = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body, headers });
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.equal((a.json as { id: string }).id, (b.json as { id: string }).id);
    assert.equal(b.headers.get('idempotent-replayed'), 'true');
    assert.equal(await total(), before + 1);
    assert.equal((a.json as { state: string }).state, 'queued', 'a new job is answered as queued');
    // A replay reads the job's state: once it has finished, a retry is told so.
    const id = (a.json as { id: string }).id;
    await waitFor('the job to finish', async () => {
      const view = await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A });
      return (view.json as { state: string }).state === 'completed';
    });
    const late = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body, headers });
    assert.equal(late.status, 202);
    assert.equal((late.json as { state: string }).state, 'completed');
    const changed = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { ...body, seed: 8 }, headers });
    assert.equal(changed.status, 422);
    assert.equal((changed.json as { error: { field: string } }).error.field, 'Idempotency-Key');
    const other = await farm.request('POST', '/v1/txt2img', { key: KEY_B, body, headers });
    assert.notEqual((other.json as { id: string }).id, (a.json as { id: string }).id, 'keys are scoped per tenant');
    // A burst of retries racing each other still makes one job.
    const beforeBurst = await total();
    const burst = await Promise.all(Array.from({ length: 6 }, () =>
      farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { ...body, seed: 9 }, headers: { 'idempotency-key': 'order-43' } })));
    assert.ok(burst.every((r) => r.status === 202), burst.map((r) => r.status).join(','));
    assert.equal(new Set(burst.map((r) => (r.json as { id: string }).id)).size, 1);
    assert.equal(await total(), beforeBurst + 1);
    const burstId = (burst[0]!.json as { id: string }).id;
    const log = await farm.redis.xrange(`${farm.prefix}:darkroom:events:${burstId}`, '-', '+');
    assert.equal(log.filter(([, f]) => f[1] === 'queued').length, 1, 'one queued event');
    await queue.close();
  });

  test('a corpus of bad requests gets 4xx JSON errors naming the field, never a 500', async () => {
    const { id: existing } = (await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { ...BASE, prompt: 'x' } })).json as { id: string };
    const tinyPng = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAG7buVgAAAABJRU5ErkJggg==', 'base64').toString('base64');
    const cases: [string, string, unknown, number, string | undefined, Record<string, string>?][] = [
      ['POST', '/v1/txt2img', '{"prompt":', 400, undefined],
      ['POST', '/v1/txt2img', '[1,2]', 400, undefined],
      ['POST', '/v1/txt2img', 'prompt=x', 415, undefined, { 'content-type': 'text/plain' }],
      ['POST', '/v1/txt2img', { steps: 0 }, 400, 'steps'],
      ['POST', '/v1/txt2img', { steps: '20' }, 400, 'steps'],
      ['POST', '/v1/txt2img', { steps: 1e9 }, 400, 'steps'],
      ['POST', '/v1/txt2img', { width: 65 }, 400, 'width'],
      ['POST', '/v1/txt2img', { height: -64 }, 400, 'height'],
      ['POST', '/v1/txt2img', { seed: 1.5 }, 400, 'seed'],
      ['POST', '/v1/txt2img', { cfg_scale: 'high' }, 400, 'cfg_scale'],
      ['POST', '/v1/txt2img', { prompt: 123 }, 400, 'prompt'],
      ['POST', '/v1/txt2img', { prompt: 'x', promt: 'typo' }, 400, 'promt'],
      ['POST', '/v1/txt2img', { batch_size: 0 }, 400, 'batch_size'],
      ['POST', '/v1/txt2img', { sampler_name: 'Nope Sampler' }, 400, 'sampler_name'],
      ['POST', '/v1/txt2img', { scheduler: 'nope' }, 400, 'scheduler'],
      ['POST', '/v1/txt2img', { override_settings: 'x' }, 400, 'override_settings'],
      ['POST', '/v1/txt2img', { override_settings: { sd_vae: 'x' } }, 400, 'override_settings.sd_vae'],
      ['POST', '/v1/txt2img', { override_settings: { randn_source: 'quantum' } }, 400, 'override_settings.randn_source'],
      ['POST', '/v1/txt2img', { restore_faces: true }, 400, 'restore_faces'],
      ['POST', '/v1/txt2img', { webhook: { url: 'ftp://example.com/x' } }, 400, 'webhook.url'],
      ['POST', '/v1/txt2img', { webhook: { url: 'http://10.0.0.1/x' } }, 400, 'webhook.url'],
      ['POST', '/v1/txt2img', { webhook: { url: 'http://169.254.169.254/latest/meta-data' } }, 400, 'webhook.url'],
      ['POST', '/v1/txt2img', { webhook: { url: 'https://example.com/x', events: ['bogus'] } }, 400, 'webhook.events.0'],
      ['POST', '/v1/txt2img', { model: 'no-such-model' }, 400, 'model'],
      ['POST', '/v1/txt2img', { model: '../../etc/passwd' }, 400, 'model'],
      ['POST', '/v1/txt2img', { embeddings: ['nope'] }, 400, 'embeddings.0'],
      ['POST', '/v1/txt2img', { prompt: 'a <hypernet:nope:1>' }, 400, 'prompt'],
      ['POST', '/v1/txt2img', { prompt: 'x'.repeat(300_000) }, 413, undefined],
      ['POST', '/v1/txt2img', { ...BASE }, 400, 'Idempotency-Key', { 'idempotency-key': 'k'.repeat(300) }],
      ['POST', '/v1/img2img', { prompt: 'x' }, 400, 'init_images'],
      ['POST', '/v1/img2img', { init_images: [] }, 400, 'init_images'],
      ['POST', '/v1/img2img', { init_images: ['not base64 !!'] }, 400, 'init_images.0'],
      ['POST', '/v1/img2img', { init_images: [Buffer.from('hello').toString('base64')] }, 400, 'init_images.0'],
      ['POST', '/v1/img2img', { init_images: [tinyPng], denoising_strength: 2 }, 400, 'denoising_strength'],
      ['GET', '/v1/jobs/not-a-job-id', undefined, 404, undefined],
      ['GET', '/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV', undefined, 404, undefined],
      ['DELETE', '/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV', undefined, 404, undefined],
      ['GET', `/v1/jobs/${existing}/events`, undefined, 400, 'Last-Event-ID', { 'last-event-id': "0-0'; FLUSHALL" }],
      ['GET', `/v1/jobs/${existing}/outputs/../../x.png`, undefined, 404, undefined],
      ['PUT', '/v1/embeddings/evil.exe', 'data', 400, 'filename', { 'content-type': 'application/octet-stream' }],
      ['PUT', '/v1/embeddings/empty.pt', '', 400, 'body', { 'content-type': 'application/octet-stream' }],
      ['PUT', '/v1/things/x.pt', 'data', 404, undefined, { 'content-type': 'application/octet-stream' }],
      ['POST', '/sdapi/v1/txt2img', { override_settings: { sd_model_checkpoint: 'nope' } }, 400, 'override_settings.sd_model_checkpoint'],
      ['POST', '/sdapi/v1/options', { sd_model_checkpoint: 'nope' }, 400, 'sd_model_checkpoint'],
      ['POST', '/sdapi/v1/options', { eta_noise_seed_delta: 1e308 }, 400, 'eta_noise_seed_delta'],
      ['POST', '/sdapi/v1/png-info', { image: Buffer.from('hello').toString('base64') }, 400, 'image'],
      ['GET', '/v1/nowhere', undefined, 404, undefined],
      ['GET', '/v1/queue', undefined, 401, undefined],
    ];
    // Bodies A1111's models reject are FastAPI's 422 `detail` lists on /sdapi/v1: test/farm-sdapi-surface.test.ts.
    for (const [method, path, body, status, field, headers] of cases) {
      const r = await farm.request(method, path, { key: KEY_A, body, headers });
      const label = `${method} ${path} ${JSON.stringify(body)?.slice(0, 80)}`;
      assert.equal(r.status, status, `${label} -> ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
      const err = (r.json as { error?: { code?: unknown; message?: unknown; field?: unknown } }).error;
      assert.equal(typeof err?.code, 'string', `${label}: JSON error body`);
      assert.equal(typeof err?.message, 'string', label);
      if (field !== undefined) assert.equal(err?.field, field, `${label}: ${String(err?.message)}`);
    }
  });

  test('A1111 client call shape: POST /sdapi/v1/txt2img with Basic auth returns images, parameters and info', async () => {
    const basic = `Basic ${Buffer.from(`alice:${KEY_A}`).toString('base64')}`;
    const a1111Body = {
      prompt: 'a lighthouse at dusk', negative_prompt: '', seed: 42, subseed: -1, subseed_strength: 0, sampler_name: 'Euler a',
      batch_size: 2, n_iter: 1, steps: 3, cfg_scale: 7, width: 64, height: 64, restore_faces: false, tiling: false,
      override_settings: { CLIP_stop_at_last_layers: 1 }, override_settings_restore_afterwards: true, script_args: [],
      send_images: true, save_images: false, alwayson_scripts: {}, some_extension_field: 'ignored as A1111 ignores it',
    };
    const r = await farm.request('POST', '/sdapi/v1/txt2img', { body: a1111Body, headers: { authorization: basic } });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 300));
    const res = r.json as { images: string[]; parameters: Record<string, unknown>; info: string };
    assert.deepEqual(Object.keys(res).sort(), ['images', 'info', 'parameters']);
    assert.equal(res.images.length, 2);
    assert.equal(res.parameters.prompt, 'a lighthouse at dusk');
    assert.equal(res.parameters.seed, 42);
    assert.equal(res.parameters.steps, 3);
    assert.equal(typeof res.info, 'string');
    const info = JSON.parse(res.info) as Record<string, unknown>;
    assert.deepEqual(info.all_seeds, [42, 43]);
    assert.equal(info.seed, 42);
    assert.equal((info.infotexts as string[]).length, 2);
    assert.match(String(info.job_timestamp), /^\d{14}$/);
    for (const k of ['prompt', 'all_prompts', 'negative_prompt', 'all_negative_prompts', 'all_subseeds', 'subseed_strength', 'width', 'height',
      'sampler_name', 'cfg_scale', 'steps', 'batch_size', 'restore_faces', 'sd_model_name', 'sd_model_hash', 'seed_resize_from_w',
      'seed_resize_from_h', 'denoising_strength', 'extra_generation_params', 'index_of_first_image', 'styles', 'clip_skip', 'version']) {
      assert.ok(k in info, `info.${k}`);
    }
    const pngInfo = (await farm.request('POST', '/sdapi/v1/png-info', { body: { image: res.images[0] }, headers: { authorization: basic } })).json as
      { info: string; parameters: Record<string, unknown> };
    assert.equal(pngInfo.info, (info.infotexts as string[])[0]);
    assert.equal(pngInfo.parameters.Seed, '42');
    assert.equal(pngInfo.parameters.Sampler, 'Euler a');

    const get = async (path: string) => (await farm.request('GET', path, { headers: { authorization: basic } })).json;
    const samplers = await get('/sdapi/v1/samplers') as { name: string; aliases: string[] }[];
    assert.ok(samplers.some((s) => s.name === 'Euler a' && s.aliases.includes('k_euler_a')));
    const schedulers = await get('/sdapi/v1/schedulers') as { name: string; label: string }[];
    assert.ok(schedulers.some((s) => s.name === 'karras' && s.label === 'Karras'));
    const models = await get('/sdapi/v1/sd-models') as { title: string; model_name: string }[];
    assert.ok(models.some((m) => m.model_name === BUILTIN_MODEL_NAME));
    const options = await get('/sdapi/v1/options') as Record<string, unknown>;
    assert.equal(options.sd_model_checkpoint, BUILTIN_MODEL_NAME);
    assert.deepEqual(await get('/sdapi/v1/embeddings'), { loaded: {}, skipped: {} });
    assert.deepEqual(await get('/sdapi/v1/hypernetworks'), []);
    const progress = await get('/sdapi/v1/progress') as Record<string, unknown>;
    assert.deepEqual(Object.keys(progress).sort(), ['current_image', 'current_task', 'eta_relative', 'progress', 'state', 'textinfo']);
    assert.deepEqual((await farm.request('POST', '/sdapi/v1/interrupt', { headers: { authorization: basic } })).json, {});
    assert.equal((await farm.request('POST', '/sdapi/v1/options', { body: { CLIP_stop_at_last_layers: 2 }, headers: { authorization: basic } })).json, null);
    assert.equal((await get('/sdapi/v1/options') as Record<string, unknown>).CLIP_stop_at_last_layers, 2);
  });

  test('uploads are stored by content hash and listed per tenant', async () => {
    const bytes = writeSafetensors({ emb_params: float32([1, 32], new Float32Array(32).fill(0.01)) });
    const up = await farm.request('PUT', '/v1/embeddings/my-style.safetensors', { key: KEY_A, body: new Uint8Array(bytes), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(up.status, 201);
    const view = up.json as { name: string; sha256: string; size: number };
    assert.equal(view.name, 'my-style');
    assert.equal(view.size, bytes.length);
    assert.ok(await openStorage(s3.storageUrl).exists(`assets/embeddings/${view.sha256}`));
    const listA = (await farm.request('GET', '/v1/embeddings', { key: KEY_A })).json as { items: { name: string }[] };
    const listB = (await farm.request('GET', '/v1/embeddings', { key: KEY_B })).json as { items: { name: string }[] };
    assert.deepEqual(listA.items.map((i) => i.name), ['my-style']);
    assert.deepEqual(listB.items, []);
    assert.equal((await farm.request('DELETE', '/v1/embeddings/my-style', { key: KEY_A })).status, 204);
  });

  test('a job uses an uploaded embedding: fetched by content hash on the worker, named in the infotext, cached', async () => {
    // A 2-vector textual-inversion embedding for the demo model's 32-wide text encoder (kohya's `emb_params` layout).
    const file = writeSafetensors({ emb_params: float32([2, 32], Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 0.02)) });
    const up = await farm.request('PUT', '/v1/embeddings/fox-style.safetensors', {
      key: KEY_A, body: file, headers: { 'content-type': 'application/octet-stream' },
    });
    assert.equal(up.status, 201, JSON.stringify(up.json));
    const { sha256 } = up.json as { sha256: string };
    const run = async (seed: number) => {
      const { id } = (await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { ...BASE, prompt: 'a fox, fox-style', seed } })).json as { id: string };
      return waitFor('job finished', async () => {
        const j = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A })).json as JobViewJson;
        return j.state === 'completed' || j.state === 'failed' ? j : null;
      }, 60_000);
    };
    const first = await run(11);
    assert.equal(first.state, 'completed', JSON.stringify(first.error));
    assert.match(first.outputs[0]!.infotext, new RegExp(`TI hashes: "fox-style: ${sha256.slice(0, 12)}"`));
    const second = await run(12);
    assert.equal(second.state, 'completed');
    const metrics = await (await fetch(`http://127.0.0.1:${farm.workers[0]!.port}/metrics`)).text();
    assert.match(metrics, /darkroom_worker_cache_requests_total\{cache="embeddings",result="miss"\} 1\b/);
    assert.match(metrics, /darkroom_worker_cache_requests_total\{cache="embeddings",result="hit"\} 1\b/);
    // Bob has no such embedding: the same prompt renders without it.
    const { id } = (await farm.request('POST', '/v1/txt2img', { key: KEY_B, body: { ...BASE, prompt: 'a fox, fox-style', seed: 11 } })).json as { id: string };
    const bob = await waitFor('bob job', async () => {
      const j = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_B })).json as JobViewJson;
      return j.state === 'completed' ? j : null;
    }, 60_000);
    assert.doesNotMatch(bob.outputs[0]!.infotext, /TI hashes/);
  });

  test('a prompt\'s <hypernet:…> tag loads the tenant\'s uploaded hypernetwork on the worker', async () => {
    let state = 7;
    const uniform = (): number => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const random = { uniform, normal: () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()) };
    // The demo model's attention widths: context 32, UNet channels 32 and 64.
    const hn = createHypernetwork({ name: 'glow', sizes: [32, 64], weightInit: 'KaimingNormal', random });
    const up = await farm.request('PUT', '/v1/hypernetworks/glow net.pt', {
      key: KEY_A, body: saveHypernetworkPt(hn), headers: { 'content-type': 'application/octet-stream' },
    });
    assert.equal(up.status, 201, JSON.stringify(up.json));
    const render = async (prompt: string) => {
      const { id } = (await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { ...BASE, prompt, seed: 21 } })).json as { id: string };
      const j = await waitFor('job finished', async () => {
        const v = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A })).json as JobViewJson;
        return v.state === 'completed' || v.state === 'failed' ? v : null;
      }, 60_000);
      assert.equal(j.state, 'completed', JSON.stringify(j.error));
      return { job: j, png: Buffer.from(await (await fetch(j.outputs[0]!.url)).arrayBuffer()) };
    };
    const plain = await render('a fox');
    const withNet = await render('a fox <hypernet:glow net:1>');
    assert.match(withNet.job.outputs[0]!.infotext, /^a fox <hypernet:glow net:1>/);
    assert.ok(!plain.png.equals(withNet.png), 'the hypernetwork changed the image');
    const unknown = await farm.request('POST', '/v1/txt2img', { key: KEY_B, body: { ...BASE, prompt: 'a fox <hypernet:glow net:1>' } });
    assert.equal(unknown.status, 400, 'another tenant cannot name it');
  });

  test('img2img: the init image travels through storage, the result carries its denoising strength', async () => {
    const basic = `Basic ${Buffer.from(`alice:${KEY_A}`).toString('base64')}`;
    const t2i = (await farm.request('POST', '/sdapi/v1/txt2img', { body: { ...BASE, prompt: 'a harbour', seed: 5 }, headers: { authorization: basic } })).json as { images: string[] };
    const sub = await farm.request('POST', '/v1/img2img', {
      key: KEY_A, body: { ...BASE, prompt: 'a harbour at night', seed: 6, init_images: [`data:image/png;base64,${t2i.images[0]}`], denoising_strength: 0.5 },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id } = sub.json as { id: string };
    const job = await waitFor('img2img done', async () => {
      const j = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A })).json as JobViewJson;
      return j.state === 'completed' || j.state === 'failed' ? j : null;
    }, 60_000);
    assert.equal(job.state, 'completed', JSON.stringify(job.error));
    assert.equal(parseGenerationParameters(job.outputs[0]!.infotext).get('Denoising strength'), '0.5');
    assert.deepEqual(await openStorage(s3.storageUrl).list(`inputs/alice/${id}/`), [`inputs/alice/${id}/init-0`]);
  });

  test('a job the engine refuses fails once, with the engine\'s error code, a failed event and webhook', async () => {
    // Uploads are checked, so a file the engine refuses is put in place as one stored before the checks were.
    const broken = new TextEncoder().encode('this is not a safetensors file');
    const rec = { name: 'broken', filename: 'broken.safetensors', sha256: sha256Hex(broken), size: broken.length, uploadedAt: new Date().toISOString() };
    await openStorage(s3.storageUrl).put(assetStorageKey('models', rec.sha256), broken);
    await new AssetRegistry(farm.redis, farmKeys(farm.prefix)).put('alice', 'models', rec);
    const sub = await farm.request('POST', '/v1/txt2img', {
      key: KEY_A, body: { ...BASE, prompt: 'x', model: 'broken', webhook: { url: hooks.url, events: ['failed'] } },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id, events_url: eventsUrl } = sub.json as { id: string; events_url: string };
    const events = await readEvents(eventsUrl, { authorization: `Bearer ${KEY_A}` });
    assert.equal(events.at(-1)!.event, 'failed');
    const job = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A })).json as JobViewJson;
    assert.equal(job.state, 'failed');
    assert.equal(job.attempts, 1, 'a deliberate refusal is not retried');
    assert.match(job.error!.code, /^[A-Z][A-Z0-9_]+$/);
    assert.notEqual(job.error!.code, 'RENDER_FAILED');
    await waitFor('failed webhook', async () => hooks.received.find((h) => h.body.includes(id) && h.body.includes('job.failed')), 30_000);
    const sync = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_A, body: { ...BASE, override_settings: { sd_model_checkpoint: 'broken' } } });
    assert.ok(sync.status >= 400 && sync.status < 500, `sdapi answers a refused job with 4xx, got ${sync.status}`);
    assert.equal((sync.json as { error: { code: string } }).error.code, job.error!.code);
    assert.equal((await farm.request('DELETE', '/v1/models/broken', { key: KEY_A })).status, 204);
  });

  test('OpenAPI 3.1 document, health, metrics and the admin queue endpoint', async () => {
    const doc = (await farm.request('GET', '/openapi.json')).json as { openapi: string; paths: Record<string, unknown>; components: { schemas: Record<string, { properties?: Record<string, { default?: unknown }> }> } };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/txt2img'] && doc.paths['/sdapi/v1/txt2img'] && doc.paths['/v1/jobs/{id}/events']);
    assert.equal(doc.components.schemas.Txt2ImgRequest!.properties!.steps!.default, 50);
    assert.equal(doc.components.schemas.Img2ImgRequest!.properties!.denoising_strength!.default, 0.75);
    assert.equal((await farm.request('GET', '/healthz')).status, 200);
    assert.equal((await farm.request('GET', '/metrics')).status, 401, 'metrics need the admin key once one is set');
    const metrics = await farm.request('GET', '/metrics', { key: 'admin-key-0123456789' });
    assert.match(String(metrics.json), /darkroom_queue_backlog\{queue="generate"\}/);
    const board = await fetch(`${farm.url}/admin/queues`, { headers: { authorization: `Basic ${Buffer.from('ops:admin-key-0123456789').toString('base64')}` } });
    assert.equal(board.status, 200, 'bull-board behind the admin key');
    assert.match(await board.text(), /<html/i);
    assert.equal((await farm.request('GET', '/admin/queues', { key: KEY_A })).status, 401);
    const q = (await farm.request('GET', '/v1/queue', { key: 'admin-key-0123456789' })).json as { generate: { backlog: number } };
    assert.equal(typeof q.generate.backlog, 'number');
    const w = farm.workers[0]!;
    const wm = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
    assert.match(wm, /darkroom_worker_jobs_total\{outcome="completed"\}/);
    assert.match(wm, /darkroom_worker_event_loop_delay_seconds\{stat="max"\}/);
  });
});
