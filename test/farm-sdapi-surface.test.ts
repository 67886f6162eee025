import { BUILTIN_MODEL_NAME } from '@darkroom/core/catalog/built-in-model.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFarm, waitFor, type Farm } from './support/farm.js';

const KEY = 'dora-key-0123456789';
const BASE = { width: 64, height: 64, steps: 2 };

/**
 * Response shapes written from A1111 v1.10.1's API models (modules/api/models.py): keys and JSON types, `null`
 * where the model says Optional. Objects are checked for exactly these keys, as pydantic serialises them.
 */
type Shape =
  | 'string' | 'number' | 'integer' | 'boolean' | 'null' | 'any'
  | { nullable: Shape } | { list: Shape } | { dict: Shape } | { object: Record<string, Shape> } | { either: Shape[] };

const n = (s: Shape): Shape => ({ nullable: s });
const list = (s: Shape): Shape => ({ list: s });
const dict = (s: Shape): Shape => ({ dict: s });
const obj = (o: Record<string, Shape>): Shape => ({ object: o });

const SamplerItem = obj({ name: 'string', aliases: list('string'), options: dict('string') });
const SchedulerItem = obj({ name: 'string', label: 'string', aliases: n(list('string')), default_rho: n('number'), need_inner_model: n('boolean') });
const UpscalerItem = obj({ name: 'string', model_name: n('string'), model_path: n('string'), model_url: n('string'), scale: n('number') });
const SDModelItem = obj({ title: 'string', model_name: 'string', hash: n('string'), sha256: n('string'), filename: 'string', config: n('string') });
const EmbeddingItem = obj({ step: n('integer'), sd_checkpoint: n('string'), sd_checkpoint_name: n('string'), shape: 'integer', vectors: 'integer' });
const GenerationResponse = obj({ images: list('string'), parameters: dict('any'), info: 'string' });
const ProgressState = obj({
  skipped: 'boolean', interrupted: 'boolean', stopping_generation: 'boolean', job: 'string', job_count: 'integer', job_timestamp: 'string',
  job_no: 'integer', sampling_step: 'integer', sampling_steps: 'integer',
});
const ProgressResponse = obj({ progress: 'number', eta_relative: 'number', state: ProgressState, current_image: n('string'), textinfo: n('string'), current_task: n('string') });
/** FastAPI's validation error body. */
const ValidationBody = obj({ detail: list(obj({ loc: list({ either: ['string', 'integer'] }), msg: 'string', type: 'string', ctx: 'any' })) });
/** A refusal: A1111's `detail` text with Darkroom's error object. */
const Refusal = obj({ detail: 'string', error: 'any' });
/** processed.js() of A1111's Processed: the keys of `info`. */
const InfoKeys = [
  'prompt', 'all_prompts', 'negative_prompt', 'all_negative_prompts', 'seed', 'all_seeds', 'subseed', 'all_subseeds', 'subseed_strength', 'width',
  'height', 'sampler_name', 'cfg_scale', 'steps', 'batch_size', 'restore_faces', 'face_restoration_model', 'sd_model_name', 'sd_model_hash',
  'sd_vae_name', 'sd_vae_hash', 'seed_resize_from_w', 'seed_resize_from_h', 'denoising_strength', 'extra_generation_params',
  'index_of_first_image', 'infotexts', 'styles', 'job_timestamp', 'clip_skip', 'is_using_inpainting_conditioning', 'version',
];

function shapeErrors(v: unknown, s: Shape, at: string): string[] {
  const t = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  if (s === 'any') return [];
  if (typeof s === 'string') {
    if (s === 'integer') return Number.isInteger(v) ? [] : [`${at}: ${JSON.stringify(v)} is not an integer`];
    return t === s ? [] : [`${at}: ${t} where ${s} was expected`];
  }
  if ('either' in s) return s.either.some((x) => shapeErrors(v, x, at).length === 0) ? [] : [`${at}: ${t} matches none of ${JSON.stringify(s.either)}`];
  if ('nullable' in s) return v === null ? [] : shapeErrors(v, s.nullable, at);
  if ('list' in s) return Array.isArray(v) ? v.flatMap((x, i) => shapeErrors(x, s.list, `${at}[${i}]`)) : [`${at}: ${t} where a list was expected`];
  if (t !== 'object') return [`${at}: ${t} where an object was expected`];
  const o = v as Record<string, unknown>;
  if ('dict' in s) return Object.entries(o).flatMap(([k, x]) => shapeErrors(x, s.dict, `${at}.${k}`));
  const want = Object.keys(s.object);
  // `ctx` is optional in FastAPI's entries (only bounded checks carry it).
  const missing = want.filter((k) => !(k in o) && k !== 'ctx');
  const extra = Object.keys(o).filter((k) => !want.includes(k));
  return [
    ...missing.map((k) => `${at}.${k} missing`), ...extra.map((k) => `${at}.${k} is not in A1111's model`),
    ...want.filter((k) => k in o).flatMap((k) => shapeErrors(o[k], s.object[k]!, `${at}.${k}`)),
  ];
}

function assertShape(v: unknown, s: Shape, label: string): void {
  const errors = shapeErrors(v, s, label);
  assert.deepEqual(errors, [], `${label}: ${JSON.stringify(v).slice(0, 300)}`);
}

/** A1111's train_* arguments on a dataset that does not exist: refused before anything is queued. */
const TRAIN = {
  learn_rate: '0.005', batch_size: 1, gradient_step: 1, data_root: 'no-such-dataset', log_directory: 'textual_inversion', training_width: 64,
  training_height: 64, varsize: false, steps: 2, clip_grad_mode: 'disabled', clip_grad_value: '0.1', shuffle_tags: false, tag_drop_out: 0,
  latent_sampling_method: 'once', use_weight: false, create_image_every: 0, save_embedding_every: 0, template_filename: 'subject_filewords.txt',
  preview_from_txt2img: false,
};
const dataRootNamed = (j: unknown) => assert.equal((j as { error: { field: string } }).error.field, 'data_root');

interface Row {
  method: 'GET' | 'POST';
  path: string;
  body?: () => unknown;
  /** '4xx': any client error (the row checks which field it names). */
  status: number | '4xx';
  shape: Shape;
  check?: (json: unknown, headers: Headers) => void;
}

describe('the A1111 /sdapi/v1 surface: every route of v1.10.1 with A1111\'s request and response shapes', () => {
  let farm: Farm;
  let image = '';

  before(async () => {
    farm = await startFarm({ workers: 1, env: { API_KEYS: `dora:${KEY}`, RATE_LIMIT_PER_MINUTE: '0', PREVIEW_EVERY_N_STEPS: '1' } });
  });

  after(async () => {
    await farm?.stop();
  });

  const call = (method: string, path: string, body?: unknown) => farm.request(method, path, { key: KEY, body });

  test('every route answers with A1111\'s response model, and /openapi.json lists it', async () => {
    const rows: Row[] = [
      { method: 'POST', path: '/sdapi/v1/txt2img', body: () => ({ ...BASE, prompt: 'a lantern', seed: 7, sampler_name: 'Euler a' }), status: 200, shape: GenerationResponse,
        check: (j) => {
          const r = j as { images: string[]; info: string };
          image = r.images[0]!;
          assert.deepEqual(Object.keys(JSON.parse(r.info) as object).sort(), [...InfoKeys].sort());
        } },
      { method: 'POST', path: '/sdapi/v1/img2img', body: () => ({ ...BASE, prompt: 'a lantern at night', init_images: [image], denoising_strength: 0.5 }), status: 200, shape: GenerationResponse },
      { method: 'POST', path: '/sdapi/v1/extra-single-image', body: () => ({ image, upscaler_1: 'Lanczos', upscaling_resize: 2 }), status: 200, shape: obj({ image: n('string'), html_info: 'string' }) },
      { method: 'POST', path: '/sdapi/v1/extra-batch-images', body: () => ({ imageList: [{ data: image, name: 'a.png' }], upscaler_1: 'Lanczos' }), status: 200, shape: obj({ images: list('string'), html_info: 'string' }) },
      { method: 'POST', path: '/sdapi/v1/png-info', body: () => ({ image }), status: 200, shape: obj({ info: 'string', items: dict('any'), parameters: dict('any') }) },
      { method: 'GET', path: '/sdapi/v1/progress', status: 200, shape: ProgressResponse,
        check: (j) => {
          const p = j as { state: { job_timestamp: string }; current_task: unknown };
          assert.match(p.state.job_timestamp, /^\d{14}$/, 'the last job\'s start, not "0"');
          assert.equal(p.current_task, null, 'nothing running');
        } },
      { method: 'POST', path: '/sdapi/v1/interrogate', body: () => ({ image, model: 'clip' }), status: 422, shape: Refusal,
        check: (j) => assert.equal((j as { error: { field: string } }).error.field, 'model') },
      { method: 'POST', path: '/sdapi/v1/interrupt', status: 200, shape: obj({}) },
      { method: 'POST', path: '/sdapi/v1/skip', status: 200, shape: 'null' },
      { method: 'GET', path: '/sdapi/v1/options', status: 200, shape: dict('any'),
        check: (j) => assert.equal((j as Record<string, unknown>).sd_model_checkpoint, BUILTIN_MODEL_NAME) },
      { method: 'POST', path: '/sdapi/v1/options', body: () => ({ samples_save: false, eta_noise_seed_delta: 0 }), status: 200, shape: 'null' },
      { method: 'GET', path: '/sdapi/v1/cmd-flags', status: 200, shape: dict('any') },
      { method: 'GET', path: '/sdapi/v1/samplers', status: 200, shape: list(SamplerItem) },
      { method: 'GET', path: '/sdapi/v1/schedulers', status: 200, shape: list(SchedulerItem) },
      { method: 'GET', path: '/sdapi/v1/upscalers', status: 200, shape: list(UpscalerItem),
        check: (j) => assert.deepEqual((j as { name: string }[]).map((u) => u.name).sort(), ['Lanczos', 'Nearest', 'None']) },
      { method: 'GET', path: '/sdapi/v1/latent-upscale-modes', status: 200, shape: list(obj({ name: 'string' })),
        check: (j) => assert.ok((j as { name: string }[]).some((m) => m.name === 'Latent')) },
      { method: 'GET', path: '/sdapi/v1/sd-models', status: 200, shape: list(SDModelItem) },
      { method: 'GET', path: '/sdapi/v1/sd-vae', status: 200, shape: list(obj({ model_name: 'string', filename: 'string' })) },
      { method: 'GET', path: '/sdapi/v1/hypernetworks', status: 200, shape: list(obj({ name: 'string', path: n('string') })) },
      { method: 'GET', path: '/sdapi/v1/face-restorers', status: 200, shape: list(obj({ name: 'string', cmd_dir: n('string') })), check: (j) => assert.deepEqual(j, []) },
      { method: 'GET', path: '/sdapi/v1/realesrgan-models', status: 200, shape: list(obj({ name: 'string', path: n('string'), scale: n('integer') })) },
      { method: 'GET', path: '/sdapi/v1/prompt-styles', status: 200, shape: list(obj({ name: 'string', prompt: n('string'), negative_prompt: n('string') })), check: (j) => assert.deepEqual(j, []) },
      { method: 'POST', path: '/sdapi/v1/create/embedding', body: () => ({ name: 'surface-emb', num_vectors_per_token: 2, overwrite_old: false, init_text: 'lamp' }), status: 200, shape: obj({ info: 'string' }) },
      { method: 'POST', path: '/sdapi/v1/create/hypernetwork', body: () => ({ name: 'surface-hn', enable_sizes: [32], overwrite_old: false }), status: 200, shape: obj({ info: 'string' }) },
      { method: 'GET', path: '/sdapi/v1/embeddings', status: 200, shape: obj({ loaded: dict(EmbeddingItem), skipped: dict(EmbeddingItem) }),
        check: (j) => {
          const e = (j as { loaded: Record<string, { vectors: number }> }).loaded['surface-emb'];
          assert.equal(e?.vectors, 2, 'the created embedding is loaded, with the vectors its file records');
        } },
      { method: 'POST', path: '/sdapi/v1/refresh-embeddings', status: 200, shape: 'null' },
      { method: 'POST', path: '/sdapi/v1/refresh-checkpoints', status: 200, shape: 'null', check: (_j, h) => assert.ok(h.get('x-darkroom-no-op')) },
      { method: 'POST', path: '/sdapi/v1/refresh-vae', status: 200, shape: 'null' },
      // The built-in Lora extension's two routes (lora_script.py api_networks).
      { method: 'GET', path: '/sdapi/v1/loras', status: 200, shape: list(obj({ name: 'string', alias: 'string', path: 'string', metadata: dict('any') })) },
      { method: 'POST', path: '/sdapi/v1/refresh-loras', status: 200, shape: 'null', check: (_j, h) => assert.ok(h.get('x-darkroom-no-op')) },
      // The training calls' success shape ({info}) is driven with a real training in farm-sdapi-training.test.ts.
      { method: 'POST', path: '/sdapi/v1/train/embedding', body: () => ({ ...TRAIN, embedding_name: 'surface-emb' }), status: '4xx', shape: 'any', check: dataRootNamed },
      { method: 'POST', path: '/sdapi/v1/train/hypernetwork', body: () => ({ ...TRAIN, hypernetwork_name: 'surface-hn', learn_rate: '0.00001' }), status: '4xx', shape: 'any', check: dataRootNamed },
      { method: 'GET', path: '/sdapi/v1/memory', status: 200, shape: obj({ ram: dict('any'), cuda: dict('any') }),
        check: (j) => {
          const ram = (j as { ram: { total: number; used: number; free: number } }).ram;
          assert.ok(ram.total > 0 && ram.used > 0 && ram.free >= 0, `the live worker's figures: ${JSON.stringify(ram)}`);
        } },
      { method: 'POST', path: '/sdapi/v1/unload-checkpoint', status: 200, shape: obj({}) },
      { method: 'POST', path: '/sdapi/v1/reload-checkpoint', status: 200, shape: obj({}) },
      { method: 'GET', path: '/sdapi/v1/scripts', status: 200, shape: obj({ txt2img: n(list('string')), img2img: n(list('string')) }) },
      { method: 'GET', path: '/sdapi/v1/script-info', status: 200, shape: list('any') },
      { method: 'GET', path: '/sdapi/v1/extensions', status: 200, shape: list('any') },
      // A1111 serves these only with --api-server-stop: without it FastAPI answers 404 {"detail": "Not Found"}.
      { method: 'POST', path: '/sdapi/v1/server-kill', status: 404, shape: obj({ detail: 'string', error: 'any' }) },
      { method: 'POST', path: '/sdapi/v1/server-restart', status: 404, shape: obj({ detail: 'string', error: 'any' }) },
      { method: 'POST', path: '/sdapi/v1/server-stop', status: 404, shape: obj({ detail: 'string', error: 'any' }) },
    ];
    const doc = (await farm.request('GET', '/openapi.json')).json as { paths: Record<string, Record<string, unknown>> };
    for (const row of rows) {
      const label = `${row.method} ${row.path}`;
      const r = await call(row.method, row.path, row.body?.());
      if (row.status === '4xx') assert.ok(r.status >= 400 && r.status < 500, `${label} -> ${r.status}`);
      else assert.equal(r.status, row.status, `${label} -> ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
      assertShape(r.json, row.shape, label);
      row.check?.(r.json, r.headers);
      assert.ok(doc.paths[row.path]?.[row.method.toLowerCase()], `${label} is in /openapi.json`);
    }
    // 39 routes of api.py (options twice) with the server commands, and the Lora extension's two.
    assert.equal(new Set(rows.map((r) => `${r.method} ${r.path}`)).size, 41);
  });

  test('validation errors are FastAPI\'s 422 detail lists on /sdapi/v1 and stay Darkroom\'s 400 on /v1', async () => {
    const cases: [string, unknown, (string | number)[], string][] = [
      ['/sdapi/v1/txt2img', { steps: 'many' }, ['body', 'steps'], 'type_error.integer'],
      ['/sdapi/v1/txt2img', { steps: -1 }, ['body', 'steps'], 'value_error.number.not_ge'],
      ['/sdapi/v1/txt2img', { width: 65 }, ['body', 'width'], 'value_error.number.not_multiple'],
      ['/sdapi/v1/txt2img', [1, 2], ['body'], 'type_error.dict'],
      ['/sdapi/v1/img2img', { prompt: 'x' }, ['body', 'init_images'], 'value_error.missing'],
      ['/sdapi/v1/png-info', {}, ['body', 'image'], 'value_error.missing'],
      ['/sdapi/v1/extra-single-image', { upscaling_resize: 0 }, ['body', 'upscaling_resize'], 'value_error.number.not_gt'],
      ['/sdapi/v1/interrogate', { model: 5 }, ['body', 'model'], 'type_error.str'],
    ];
    for (const [path, body, loc, type] of cases) {
      const r = await call('POST', path, body);
      const label = `${path} ${JSON.stringify(body)}`;
      assert.equal(r.status, 422, `${label}: ${r.status} ${JSON.stringify(r.json)}`);
      assertShape(r.json, ValidationBody, label);
      const first = (r.json as { detail: { loc: unknown[]; type: string; msg: string }[] }).detail[0]!;
      assert.deepEqual([first.loc, first.type], [loc, type], label);
    }
    // Every problem is listed, as pydantic lists them.
    const two = await call('POST', '/sdapi/v1/txt2img', { steps: 0, cfg_scale: 'high' });
    assert.deepEqual((two.json as { detail: { loc: unknown[] }[] }).detail.map((d) => d.loc).sort(), [['body', 'cfg_scale'], ['body', 'steps']]);
    // A body that is not JSON, as FastAPI reports it; a route A1111 does not have, as FastAPI's 404.
    const broken = await call('POST', '/sdapi/v1/txt2img', '{"prompt": "x",');
    assert.equal(broken.status, 422);
    assertShape(broken.json, ValidationBody, 'broken JSON');
    assert.equal((broken.json as { detail: { type: string }[] }).detail[0]!.type, 'value_error.jsondecode');
    const nowhere = await call('GET', '/sdapi/v1/no-such-route');
    assert.deepEqual([nowhere.status, (nowhere.json as { detail: string }).detail], [404, 'Not Found']);
    const v1 = await call('POST', '/v1/txt2img', { steps: 'many' });
    assert.equal(v1.status, 400);
    assert.equal((v1.json as { error: { field: string } }).error.field, 'steps');
  });

  test('fields A1111 knows and the farm cannot honour are refused by name with 422, never ignored', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ restore_faces: true }, 'restore_faces'],
      [{ script_name: 'Loopback wave', script_args: [] }, 'script_name'],
      [{ alwayson_scripts: { ControlNet: { args: [] } } }, 'alwayson_scripts.ControlNet'],
      [{ refiner_checkpoint: 'sdxl-refiner', refiner_switch_at: 0.8 }, 'refiner_checkpoint'],
      [{ infotext: 'a cat\nSteps: 3' }, 'infotext'],
    ];
    for (const [extra, field] of cases) {
      const r = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', ...extra });
      assert.equal(r.status, 422, `${field}: ${r.status} ${JSON.stringify(r.json)}`);
      assertShape(r.json, Refusal, field);
      assert.equal((r.json as { error: { field: string } }).error.field, field);
      assert.match((r.json as { detail: string }).detail, new RegExp(`^${field.replace(/\./g, '\\.')}: `));
    }
    // The values that ask for nothing are accepted as A1111 accepts them.
    const plain = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', restore_faces: false, script_name: '', styles: [], alwayson_scripts: {} });
    assert.equal(plain.status, 200, JSON.stringify(plain.json).slice(0, 300));
  });

  test('prompt styles: A1111\'s styles CSV per tenant, listed by /sdapi/v1/prompt-styles, applied to the prompts as A1111 applies them', async () => {
    const csvText = 'name,prompt,negative_prompt\n"Film","{prompt}, film grain","blurry"\nSepia,sepia toned,\n';
    const put = await farm.request('PUT', '/v1/styles', { key: KEY, body: csvText, headers: { 'content-type': 'text/csv' } });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    const listed = await call('GET', '/sdapi/v1/prompt-styles');
    assertShape(listed.json, list(obj({ name: 'string', prompt: n('string'), negative_prompt: n('string') })), 'prompt-styles');
    assert.deepEqual(listed.json, [
      { name: 'Film', prompt: '{prompt}, film grain', negative_prompt: 'blurry' },
      { name: 'Sepia', prompt: 'sepia toned', negative_prompt: '' },
    ]);
    const styled = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'a harbour', negative_prompt: 'fog', seed: 4, styles: ['Film', 'Sepia'] });
    assert.equal(styled.status, 200, JSON.stringify(styled.json).slice(0, 300));
    const info = JSON.parse((styled.json as { info: string }).info) as { prompt: string; negative_prompt: string; styles: string[]; infotexts: string[] };
    assert.equal(info.prompt, 'a harbour, film grain, sepia toned');
    assert.equal(info.negative_prompt, 'fog, blurry');
    assert.deepEqual(info.styles, ['Film', 'Sepia']);
    assert.match(info.infotexts[0]!, /^a harbour, film grain, sepia toned\nNegative prompt: fog, blurry\n/);
    // the same image as the styled text written out by hand
    const byHand = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'a harbour, film grain, sepia toned', negative_prompt: 'fog, blurry', seed: 4 });
    assert.deepEqual((byHand.json as { images: string[] }).images, (styled.json as { images: string[] }).images);
    const unknown = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', styles: ['Film', 'Noir'] });
    assert.ok(unknown.status >= 400 && unknown.status < 500, String(unknown.status));
    assert.equal((unknown.json as { error: { field: string } }).error.field, 'styles.1');
    const bad = await farm.request('PUT', '/v1/styles', { key: KEY, body: 'prompt\nx\n', headers: { 'content-type': 'text/csv' } });
    assert.deepEqual([bad.status, (bad.json as { error: { code: string } }).error.code], [400, 'STYLES_BAD_CSV']);
    assert.equal((await farm.request('PUT', '/v1/styles', { key: KEY, body: 'name,prompt\n', headers: { 'content-type': 'text/csv' } })).status, 200);
    assert.deepEqual((await call('GET', '/sdapi/v1/prompt-styles')).json, []);
  });

  test('an unknown sampler renders with A1111\'s fallback and says so in X-Darkroom-Sampler-Fallback', async () => {
    const odd = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', seed: 3, sampler_name: 'Euler ancestral' });
    assert.equal(odd.status, 200, JSON.stringify(odd.json).slice(0, 300));
    assert.match(odd.headers.get('x-darkroom-sampler-fallback') ?? '', /"Euler ancestral" is not a sampler; rendered with DPM\+\+ 2M/);
    assert.equal((JSON.parse((odd.json as { info: string }).info) as { sampler_name: string }).sampler_name, 'DPM++ 2M');
    const known = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', seed: 3, sampler_name: 'DPM++ 2M Karras' });
    assert.equal(known.status, 200);
    assert.equal(known.headers.get('x-darkroom-sampler-fallback'), null);
    // `sampler_name or sampler_index`: an empty name is the API's legacy default, Euler.
    const empty = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', seed: 3, sampler_name: '' });
    assert.equal((JSON.parse((empty.json as { info: string }).info) as { sampler_name: string }).sampler_name, 'Euler');
    assert.equal(empty.headers.get('x-darkroom-sampler-fallback'), null);
  });

  test('send_images, save_images, include_init_images and override_settings_restore_afterwards do what A1111 does', async () => {
    const jobOutputs = async (id: string) => {
      const job = (await call('GET', `/v1/jobs/${id}`)).json as { outputs: { url: string }[] };
      const urls = job.outputs.map((o) => o.url);
      return Promise.all(urls.map(async (u) => (await fetch(u.startsWith('http') ? u : `${farm.url}${u}`, { headers: { authorization: `Bearer ${KEY}` } })).status));
    };
    // A1111's default save_images=false keeps no copy; send_images=false returns none.
    const unsaved = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', send_images: false });
    assert.deepEqual((unsaved.json as { images: string[] }).images, []);
    assert.deepEqual(await jobOutputs(unsaved.headers.get('x-darkroom-job-id')!), [404]);
    const saved = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', save_images: true });
    assert.equal((saved.json as { images: string[] }).images.length, 1);
    assert.deepEqual(await jobOutputs(saved.headers.get('x-darkroom-job-id')!), [200]);

    const init = (saved.json as { images: string[] }).images[0]!;
    const withInit = (await call('POST', '/sdapi/v1/img2img', { ...BASE, prompt: 'x', init_images: [init], include_init_images: true })).json as { parameters: Record<string, unknown> };
    assert.deepEqual(withInit.parameters.init_images, [init]);
    assert.ok(!('include_init_images' in withInit.parameters), 'A1111 excludes the switch from the echo');
    const without = (await call('POST', '/sdapi/v1/img2img', { ...BASE, prompt: 'x', init_images: [init] })).json as { parameters: Record<string, unknown> };
    assert.equal(without.parameters.init_images, null);

    const clip = async () => ((await call('GET', '/sdapi/v1/options')).json as { CLIP_stop_at_last_layers: number }).CLIP_stop_at_last_layers;
    assert.equal(await clip(), 1);
    await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', override_settings: { CLIP_stop_at_last_layers: 2 } });
    assert.equal(await clip(), 1, 'restored afterwards by default');
    const kept = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', override_settings: { CLIP_stop_at_last_layers: 2 }, override_settings_restore_afterwards: false });
    assert.equal(kept.status, 200);
    assert.equal(await clip(), 2, 'kept as the tenant\'s setting');
    const bad = await call('POST', '/sdapi/v1/txt2img', { ...BASE, prompt: 'x', override_settings: { show_progress_every_n_steps: 999 }, override_settings_restore_afterwards: false });
    assert.equal(bad.status, 400, 'a value /sdapi/v1/options would refuse is refused before a job is queued');
    assert.equal(bad.headers.get('x-darkroom-job-id'), null);
    await call('POST', '/sdapi/v1/options', { CLIP_stop_at_last_layers: 1 });
  });

  /** Starts a long /sdapi render and waits until progress shows it sampling in its first iteration. */
  async function renderInProgress(body: Record<string, unknown>) {
    const render = call('POST', '/sdapi/v1/txt2img', body);
    const running = await waitFor('a running job in progress', async () => {
      const p = (await call('GET', '/sdapi/v1/progress')).json as { current_task: string | null; state: { job_timestamp: string; job_no: number; sampling_step: number } };
      return p.current_task && p.state.sampling_step > 0 ? p : null;
    }, 60_000, 10);
    return { render, running };
  }

  test('progress names the running task and its start; skip ends the current iteration and keeps the rest', async () => {
    const body = { ...BASE, steps: 150, n_iter: 2, seed: 11, prompt: 'a long render' };
    const { render, running } = await renderInProgress(body);
    assertShape(running, ProgressResponse, 'progress while running');
    assert.equal(running.state.job_no, 0, 'caught in the first iteration');
    const job = (await call('GET', `/v1/jobs/${running.current_task}`)).json as { state: string; started_at: string };
    assert.equal(job.state, 'running');
    assert.equal(running.state.job_timestamp, job.started_at.replace(/[-:T]/g, '').slice(0, 14));
    const skip = await call('POST', '/sdapi/v1/skip');
    assert.deepEqual([skip.status, skip.json], [200, null]);
    const skipped = (await render).json as { images: string[]; info: string };
    assert.equal(skipped.images.length, 2, 'the skipped iteration keeps its image and the next one runs');
    const full = (await call('POST', '/sdapi/v1/txt2img', body)).json as { images: string[] };
    assert.notEqual(skipped.images[0], full.images[0], 'the first image stopped early');
    assert.equal(skipped.images[1], full.images[1], 'the second rendered in full');
  });

  test('interrupt returns the image reached and runs no further iteration, as A1111', async () => {
    const { render, running } = await renderInProgress({ ...BASE, steps: 150, n_iter: 2, seed: 12, prompt: 'a long render', force_task_id: 'task(dora-1)' });
    assert.equal(running.current_task, 'task(dora-1)', 'A1111 names the task by the force_task_id the request sent');
    assert.deepEqual((await call('POST', '/sdapi/v1/interrupt')).json, {});
    const done = await render;
    assert.equal(done.status, 200, JSON.stringify(done.json).slice(0, 300));
    const r = done.json as { images: string[]; info: string };
    assert.equal(r.images.length, 1, 'the interrupted iteration\'s image, and no second iteration');
    assert.equal((JSON.parse(r.info) as { infotexts: string[] }).infotexts.length, 1);
    const after = (await call('GET', '/sdapi/v1/progress')).json as { current_task: unknown; state: { interrupted: boolean } };
    assert.equal(after.current_task, null);
    assert.equal(after.state.interrupted, true);
    const job = (await call('GET', `/v1/jobs/${done.headers.get('x-darkroom-job-id')}`)).json as { state: string };
    assert.equal(job.state, 'completed');
  });
});
