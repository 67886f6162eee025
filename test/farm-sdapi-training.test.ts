import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGenerationParameters } from '@darkroom/core/formats/infotext.js';
import { openStorage } from '@darkroom/farm';
import { startFarm, waitFor, type Farm } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';
import { uploadDataset } from './support/training-data.js';

const KEY = 'alice-key-0123456789';

/** A1111's train_embedding arguments as its UI sends them, sized for the demo model: a few steps at 64x64. */
const TRAIN_EMBEDDING = {
  id_task: 'task(abc)', embedding_name: 'sdemb', learn_rate: '0.02', batch_size: 1, gradient_step: 1, data_root: 'stripes',
  log_directory: 'runs/sdapi', training_width: 64, training_height: 64, varsize: false, steps: 6, clip_grad_mode: 'disabled',
  clip_grad_value: '0.1', shuffle_tags: false, tag_drop_out: 0, latent_sampling_method: 'once', use_weight: false, create_image_every: 0,
  save_embedding_every: 3, template_filename: 'subject_filewords.txt', save_image_with_stored_embedding: true, preview_from_txt2img: false,
  preview_prompt: '', preview_negative_prompt: '', preview_steps: 20, preview_sampler_name: 'Euler a', preview_cfg_scale: 7, preview_seed: -1,
  preview_width: 64, preview_height: 64,
};

interface TrainingJson {
  state: string;
  step: number | null;
  asset: { name: string; sha256: string } | null;
}

describe('A1111 training calls on /sdapi/v1 (real HTTP, Redis, s3rver, a trainer process)', () => {
  let s3: TestS3;
  let farm: Farm;
  let datasetId: string;

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({ storageUrl: s3.storageUrl, workers: 1, env: { ...s3.env, API_KEYS: `alice:${KEY}` } });
    await farm.startTrainer();
    datasetId = await uploadDataset(farm, KEY, 'stripes');
  });

  after(async () => {
    await farm?.stop();
    await s3?.close();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) => farm.request('POST', path, { key: KEY, body, headers });
  const info = (r: { json: unknown }) => (r.json as { info: string }).info;
  const training = async (id: string) => (await farm.request('GET', `/v1/trainings/${id}`, { key: KEY })).json as TrainingJson;

  test('an embedding is created on the tenant\'s checkpoint, trained from a dataset named by name, and renders with its TI hash', async () => {
    const created = await post('/sdapi/v1/create/embedding', { name: 'sdemb', num_vectors_per_token: 2, overwrite_old: false, init_text: 'photo' });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    assert.equal(info(created), 'create embedding filename: embeddings/sdemb.pt');
    assert.equal(info(await post('/sdapi/v1/create/embedding', { name: 'sdemb', num_vectors_per_token: 2, overwrite_old: false, init_text: 'photo' })),
      'create embedding error: file embeddings/sdemb.pt already exists');
    const listed = (await farm.request('GET', '/sdapi/v1/embeddings', { key: KEY })).json as { loaded: Record<string, unknown> };
    assert.ok('sdemb' in listed.loaded);

    // The client goes away once the training is queued (the id is in the headers, sent before the wait)...
    const t0 = performance.now();
    const gone = new AbortController();
    const res = await fetch(`${farm.url}/sdapi/v1/train/embedding`, {
      method: 'POST', signal: gone.signal, body: JSON.stringify(TRAIN_EMBEDDING),
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'idempotency-key': 'sdemb-run-1' },
    });
    assert.equal(res.status, 200);
    const id = res.headers.get('x-darkroom-training-id')!;
    assert.ok(id, 'the training id is in the headers');
    gone.abort();
    // ...and the training goes on without it.
    const done = await waitFor('the training', async () => {
      const v = await training(id);
      return ['completed', 'failed', 'cancelled'].includes(v.state) ? v : null;
    }, 180_000, 200);
    const trainMs = performance.now() - t0;
    assert.equal(done.state, 'completed');
    assert.equal(done.step, 6);

    // The same call again (same Idempotency-Key) finds that training and answers as A1111 does.
    const again = await post('/sdapi/v1/train/embedding', TRAIN_EMBEDDING, { 'idempotency-key': 'sdemb-run-1' });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('x-darkroom-training-id'), id);
    assert.equal(info(again), 'train embedding complete: filename: embeddings/sdemb.pt error: None');

    // A file already trained to `steps` is left as it is, and A1111 calls that no error; this call blocks until the trainer says so.
    assert.equal(info(await post('/sdapi/v1/train/embedding', TRAIN_EMBEDDING)), 'train embedding complete: filename: embeddings/sdemb.pt error: None');

    // The trained file replaced the created one under the same name: the next txt2img naming it uses it.
    const assets = (await farm.request('GET', '/v1/embeddings', { key: KEY })).json as { items: { name: string; sha256: string }[] };
    assert.equal(assets.items.find((a) => a.name === 'sdemb')?.sha256, done.asset?.sha256);
    const t1 = performance.now();
    const img = await post('/sdapi/v1/txt2img', { prompt: 'a photo of sdemb', width: 64, height: 64, steps: 3, seed: 7 });
    assert.equal(img.status, 200, JSON.stringify(img.json));
    const infotext = (JSON.parse((img.json as { info: string }).info) as { infotexts: string[] }).infotexts[0]!;
    assert.equal(parseGenerationParameters(infotext).get('TI hashes'), `sdemb: ${done.asset!.sha256.slice(0, 12)}`);

    // log_directory is a prefix in the farm's storage, laid out as A1111 lays out its log folder.
    const keys = await openStorage(s3.storageUrl).list('logs/alice/runs/sdapi/');
    assert.ok(keys.some((k) => /\/sdemb\/embeddings\/sdemb-\d+\.pt$/.test(k)), keys.join('\n'));
    assert.ok(keys.some((k) => k.endsWith('/sdemb/textual_inversion_loss.csv')), keys.join('\n'));
    console.log(`sdapi embedding: 6 steps queued to completed ${(trainMs / 1000).toFixed(1)} s; txt2img ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  });

  test('a hypernetwork is created and trained briefly; the call blocks until the training ends', async () => {
    const created = await post('/sdapi/v1/create/hypernetwork', {
      name: 'sdhn', overwrite_old: false, layer_structure: '1, 2, 1', activation_func: 'relu', weight_init: 'KaimingNormal',
      add_layer_norm: false, use_dropout: false, dropout_structure: '0, 0, 0',
    });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    assert.equal(info(created), 'create hypernetwork filename: models/hypernetworks/sdhn.pt');
    const listed = (await farm.request('GET', '/sdapi/v1/hypernetworks', { key: KEY })).json as { name: string }[];
    assert.ok(listed.some((h) => h.name === 'sdhn'));

    const t0 = performance.now();
    const trained = await post('/sdapi/v1/train/hypernetwork', {
      hypernetwork_name: 'sdhn', learn_rate: 0.0005, data_root: datasetId, steps: 4, training_width: 64, training_height: 64,
      save_hypernetwork_every: 0, create_image_every: 0, template_filename: 'hypernetwork.txt', log_directory: 'hn',
    });
    assert.equal(trained.status, 200, JSON.stringify(trained.json));
    // A1111's wording for both training calls.
    assert.equal(info(trained), 'train embedding complete: filename: models/hypernetworks/sdhn.pt error: None');
    const v = await training(trained.headers.get('x-darkroom-training-id')!);
    assert.equal(v.state, 'completed');
    assert.equal(v.step, 4);
    console.log(`sdapi hypernetwork: 4 steps, blocking call ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

  test('bad calls are 4xx naming the field, and queue nothing', async () => {
    const train = { ...TRAIN_EMBEDDING, embedding_name: 'sdemb' };
    const cases: [string, Record<string, unknown>, string, string][] = [
      ['/sdapi/v1/train/embedding', { ...train, data_root: 'no-such-dataset' }, 'data_root', 'UNKNOWN_DATASET'],
      ['/sdapi/v1/train/embedding', { ...train, data_root: '/etc' }, 'data_root', 'INVALID_REQUEST'],
      ['/sdapi/v1/train/embedding', { ...train, data_root: '../x' }, 'data_root', 'INVALID_REQUEST'],
      ['/sdapi/v1/train/embedding', { ...train, log_directory: '/etc' }, 'log_directory', 'INVALID_REQUEST'],
      ['/sdapi/v1/train/embedding', { ...train, log_directory: '../x' }, 'log_directory', 'INVALID_REQUEST'],
      ['/sdapi/v1/train/embedding', { ...train, learn_rate: '0.005:2, fast:4' }, 'learn_rate', 'TRAINING_SCHEDULE_INVALID'],
      ['/sdapi/v1/train/embedding', { ...train, clip_grad_mode: 'norm', clip_grad_value: 'ten' }, 'clip_grad_value', 'TRAINING_SCHEDULE_INVALID'],
      ['/sdapi/v1/train/embedding', { ...train, batch_size: 5 }, 'batch_size', 'TRAINING_BAD_PARAMETER'],
      ['/sdapi/v1/train/embedding', { ...train, embedding_name: 'missing' }, 'embedding_name', 'UNKNOWN_ASSET'],
      ['/sdapi/v1/train/embedding', { ...train, template_filename: 'mine.txt' }, 'template_filename', 'INVALID_REQUEST'],
      ['/sdapi/v1/train/embedding', { ...train, varsize: true }, 'varsize', 'INVALID_REQUEST'],
      ['/sdapi/v1/train/embedding', { ...train, save_embedding_every: -1 }, 'save_embedding_every', 'INVALID_REQUEST'],
      ['/sdapi/v1/train/hypernetwork', { hypernetwork_name: 'sdemb', data_root: 'stripes' }, 'hypernetwork_name', 'UNKNOWN_ASSET'],
      ['/sdapi/v1/create/embedding', { name: '../evil', num_vectors_per_token: 1 }, 'name', 'INVALID_REQUEST'],
      ['/sdapi/v1/create/embedding', { name: 'ok', num_vectors_per_token: 0 }, 'num_vectors_per_token', 'INVALID_REQUEST'],
      ['/sdapi/v1/create/hypernetwork', { name: 'hn2', layer_structure: '1, 2' }, 'layer_structure', 'HYPERNETWORK_BAD_STRUCTURE'],
    ];
    for (const [path, body, field, code] of cases) {
      const r = await post(path, body);
      assert.equal(r.status, 400, `${path} ${field}: ${JSON.stringify(r.json)}`);
      const error = (r.json as { error: { code: string; field: string } }).error;
      assert.equal(error.field, field, JSON.stringify(error));
      assert.equal(error.code, code, JSON.stringify(error));
    }
    const queued = await farm.redis.zcard(`${farm.prefix}:train:completed`);
    assert.equal(queued, 2, 'only the two trainings above ever reached the queue');
    const doc = (await farm.request('GET', '/openapi.json')).json as { paths: Record<string, unknown> };
    for (const p of ['/sdapi/v1/create/embedding', '/sdapi/v1/create/hypernetwork', '/sdapi/v1/train/embedding', '/sdapi/v1/train/hypernetwork']) {
      assert.ok(doc.paths[p], p);
    }
  });
});
