import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { parseGenerationParameters } from '@darkroom/core/formats/infotext.js';
import { loadEmbedding } from '@darkroom/core/networks/embeddings/load.js';
import { loadHypernetwork } from '@darkroom/core/networks/hypernetworks/hypernetwork.js';
import { Engine } from '@darkroom/core/pipeline/engine.js';
import { hypernetworkParams, paramValues } from '@darkroom/core/training/hypernetwork-params.js';
import { prepareTraining } from '@darkroom/core/training/train-job.js';
import { farmKeys, readJobEvents, trainingJobOptions, TrainingRequest, verifyWebhook } from '@darkroom/farm';
import { newSubject } from '../services/trainer/src/subjects.js';
import { freePort, HookReceiver, readEvents, startFarm, waitFor, type Farm, type ServiceProcess } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';
import { STRIPES_DATASET, uploadDataset } from './support/training-data.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';
const ADMIN = 'admin-key-0123456789';

const DATASET = STRIPES_DATASET;

/** An embedding run: a few hundred steps on the demo model with a checkpoint every 25. */
const EMBEDDING = {
  kind: 'embedding', name: 'tinyemb', steps: 200, learn_rate: '0.02', save_every: 25, create_image_every: 50,
  training_width: 64, training_height: 64, template_filename: 'subject_filewords.txt', seed: 1234, preview_seed: 5,
  create: { init_text: 'photo', num_vectors_per_token: 2 },
};
const HYPERNETWORK = {
  kind: 'hypernetwork', name: 'tinyhn', steps: 60, learn_rate: '0.0005', save_every: 20, create_image_every: 30,
  training_width: 64, training_height: 64, template_filename: 'hypernetwork.txt', seed: 99, preview_seed: 3,
  create: { layer_structure: '1, 2, 1', activation_func: 'relu', weight_initialization: 'KaimingNormal' },
};
/** The evaluation set: 32 (image, timestep, noise) triples drawn from this seed, the same before and after. */
const EVAL = { seed: 2026, samples: 32 };
/** The loss over the evaluation set must fall by at least this fraction (measured: about 5% for both kinds). */
const MIN_LOSS_DROP = 0.02;

interface TrainingJson {
  id: string;
  state: string;
  step: number | null;
  steps: number;
  attempts: number;
  resumed_from: string | null;
  checkpoints: { step: number; reason: string; files: string[] }[];
  files: { name: string; url: string }[];
  previews: { name: string; step: number; url: string }[];
  asset: { kind: string; name: string; filename: string; sha256: string } | null;
  error: { code: string; message: string } | null;
  progress: { step: number; loss: number; learn_rate: number; eta: number } | null;
}

interface JobJson {
  state: string;
  outputs: { url: string; infotext: string }[];
  error: { code: string } | null;
}

describe('training as queued jobs (real HTTP, Redis, s3rver, trainer processes)', () => {
  let s3: TestS3;
  let farm: Farm;
  let hooks: HookReceiver;
  const datasets: Record<string, string> = {};

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({
      storageUrl: s3.storageUrl,
      workers: 1,
      // A killed trainer's lock lapses after 2 s and another trainer's stalled check (every second) takes the job.
      env: {
        ...s3.env, API_KEYS: `alice:${KEY_A},bob:${KEY_B}`, ADMIN_KEY: ADMIN, WEBHOOK_ALLOWLIST: '127.0.0.1', LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000',
      },
    });
    hooks = new HookReceiver(await freePort());
    await hooks.start();
    for (const [tenant, key] of [['alice', KEY_A], ['bob', KEY_B]] as const) datasets[tenant] = await uploadDataset(farm, key, 'stripes');
  });

  after(async () => {
    await hooks?.stop();
    await farm?.stop();
    await s3?.close();
  });

  const submit = async (key: string, body: Record<string, unknown>): Promise<string> => {
    const r = await farm.request('POST', '/v1/trainings', { key, body });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    return (r.json as { id: string }).id;
  };
  const view = async (key: string, id: string): Promise<TrainingJson> => (await farm.request('GET', `/v1/trainings/${id}`, { key })).json as TrainingJson;
  const finished = (key: string, id: string, timeoutMs = 180_000) => waitFor(`training ${id} finished`, async () => {
    const v = await view(key, id);
    return ['completed', 'failed', 'cancelled'].includes(v.state) ? v : null;
  }, timeoutMs, 200);
  const download = async (url: string): Promise<Uint8Array> => {
    const res = await fetch(url);
    assert.equal(res.status, 200, url);
    return new Uint8Array(await res.arrayBuffer());
  };
  const file = (v: TrainingJson, name: string) => {
    const f = v.files.find((x) => x.name === name);
    assert.ok(f, `${name} is among ${v.files.map((x) => x.name).join(', ')}`);
    return download(f.url);
  };
  const render = async (key: string, prompt: string): Promise<JobJson> => {
    const sub = await farm.request('POST', '/v1/txt2img', { key, body: { prompt, width: 64, height: 64, steps: 3, seed: 77 } });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const id = (sub.json as { id: string }).id;
    return waitFor('render', async () => {
      const j = (await farm.request('GET', `/v1/jobs/${id}`, { key })).json as JobJson;
      return j.state === 'completed' || j.state === 'failed' ? j : null;
    }, 60_000);
  };
  const kill = async (p: ServiceProcess, signal: NodeJS.Signals): Promise<void> => {
    p.child.kill(signal);
    if (p.child.exitCode === null && p.child.signalCode === null) await once(p.child, 'exit');
  };

  /** The loss over the fixed evaluation set, computed here with the engine's objective, for the start and the given parameters. */
  async function evaluationLosses(body: Record<string, unknown>, trained: () => Float32Array[]): Promise<{ before: number; after: number }> {
    // Under the farm's cache folder, which stopping the farm removes.
    const engine = new Engine({ cacheDir: join(farm.env.CACHE_DIR!, 'eval-graphs') });
    const held = await engine.acquireForTraining();
    try {
      const req = TrainingRequest.parse({ ...body, dataset: datasets.alice });
      const prepared = await prepareTraining(held.sd, held.model, newSubject(req, held.sd, held.model), DATASET, trainingJobOptions(req));
      try {
        return {
          before: await prepared.evaluationLoss(prepared.start().params, EVAL),
          after: await prepared.evaluationLoss(trained(), EVAL),
        };
      } finally {
        await prepared.release();
      }
    } finally {
      held.release();
      await engine.close();
    }
  }

  test('an embedding training survives a SIGKILLed trainer bit-identically, learns, renders and round-trips through its PNG', async () => {
    // Two trainers; the one that takes the job is killed, the other takes it over once its lock lapses.
    await Promise.all([farm.startTrainer('t1'), farm.startTrainer('t2')]);
    const hook = { url: hooks.url, events: ['started', 'checkpoint', 'completed'] };
    const started = performance.now();
    const killed = await submit(KEY_A, { ...EMBEDDING, dataset: datasets.alice, webhook: hook });
    // Killed once a checkpoint is stored and a few steps after it are lost.
    const atKill = await waitFor('a stored checkpoint', async () => {
      const v = await view(KEY_A, killed);
      return v.checkpoints.length > 0 && (v.progress?.step ?? 0) > v.checkpoints[0]!.step + 3 ? v : null;
    }, 120_000, 20);
    const holder = (await readJobEvents(farm.redis, farmKeys(farm.prefix), killed, '0')).find((e) => e.type === 'started')?.data.worker;
    const victim = farm.trainers.find((t) => t.name === holder);
    assert.ok(victim, `trainer ${String(holder)} holds the job`);
    await kill(victim, 'SIGKILL');
    assert.equal(atKill.state, 'running');
    const a = await finished(KEY_A, killed);
    const interruptedMs = performance.now() - started;
    assert.equal(a.state, 'completed', JSON.stringify(a.error));
    assert.equal(a.step, 200);
    assert.ok(a.attempts >= 2, `attempts ${a.attempts}: the second trainer took the stalled job`);
    const events = await readEvents(`${farm.url}/v1/trainings/${killed}/events`, { authorization: `Bearer ${KEY_A}` });
    const starts = events.filter((e) => e.event === 'started');
    assert.deepEqual(starts.map((e) => e.data.resuming), [false, true], 'the second attempt resumed from the stored checkpoint');
    assert.ok(events.some((e) => e.event === 'checkpoint') && events.some((e) => e.event === 'preview') && events.at(-1)!.event === 'completed');

    // The same job, same seed, for another tenant, never interrupted.
    const t0 = performance.now();
    const whole = await submit(KEY_B, { ...EMBEDDING, dataset: datasets.bob });
    const b = await finished(KEY_B, whole);
    const wholeMs = performance.now() - t0;
    assert.equal(b.state, 'completed', JSON.stringify(b.error));
    assert.equal(b.attempts, 1);
    const [ptA, ptB] = [await file(a, 'tinyemb.pt'), await file(b, 'tinyemb.pt')];
    const [embA, embB] = [await loadEmbedding(ptA, 'tinyemb.pt'), await loadEmbedding(ptB, 'tinyemb.pt')];
    assert.equal(embA.step, 200);
    assert.deepEqual(Buffer.from(embA.vec.data.buffer, embA.vec.data.byteOffset, embA.vec.data.byteLength),
      Buffer.from(embB.vec.data.buffer, embB.vec.data.byteOffset, embB.vec.data.byteLength), 'vectors are bit-identical');
    assert.equal(Buffer.from(await file(a, 'textual_inversion_loss.csv')).toString(), Buffer.from(await file(b, 'textual_inversion_loss.csv')).toString());

    // A1111's files at every save: name-<steps+1>.pt, its .optim and .safetensors and the PNG; the final ones; the CSV.
    for (const n of ['tinyemb-25.pt', 'tinyemb-25.pt.optim', 'tinyemb-25.safetensors', 'tinyemb-25.png', 'tinyemb-200.pt', 'tinyemb.pt.optim', 'tinyemb.safetensors', 'tinyemb.png']) {
      assert.ok(a.files.some((f) => f.name === n), `${n} is stored`);
    }
    assert.deepEqual(a.previews.map((p) => p.step), [49, 99, 149, 199]);
    assert.equal(a.checkpoints.at(-1)!.reason, 'final');

    // The loss over the fixed evaluation set falls.
    const losses = await evaluationLosses(EMBEDDING, () => [embA.vec.data]);
    const drop = 1 - losses.after / losses.before;
    console.log(`embedding: loss ${losses.before.toFixed(5)} -> ${losses.after.toFixed(5)} (${(drop * 100).toFixed(2)}% lower); `
      + `200 steps uninterrupted ${(wholeMs / 1000).toFixed(1)} s (${(200 / (wholeMs / 1000)).toFixed(1)} steps/s incl. queueing, previews and saves), `
      + `with a SIGKILL and a restart ${(interruptedMs / 1000).toFixed(1)} s`);
    assert.ok(drop >= MIN_LOSS_DROP, `loss ${losses.before} -> ${losses.after}`);

    // Registered for the tenant: the next txt2img naming it uses it, with its hash in the infotext.
    assert.deepEqual(a.asset, { kind: 'embeddings', name: 'tinyemb', filename: 'tinyemb.pt', sha256: createHash('sha256').update(ptA).digest('hex') });
    const job = await render(KEY_A, 'a photo of tinyemb');
    assert.equal(job.state, 'completed', JSON.stringify(job.error));
    assert.equal(parseGenerationParameters(job.outputs[0]!.infotext).get('TI hashes'), `tinyemb: ${a.asset!.sha256.slice(0, 12)}`);

    // The PNG carries the same vectors.
    const fromPng = await loadEmbedding(await file(a, 'tinyemb.png'), 'tinyemb.png');
    assert.deepEqual(Array.from(fromPng.vec.data), Array.from(embA.vec.data));
    assert.equal(fromPng.step, 200);

    // Signed webhooks: training.started, .checkpoint and .completed.
    const types = await waitFor('webhooks', async () => {
      const mine = hooks.received.map((h) => ({ h, body: JSON.parse(h.body) as { type: string; data: { job_id: string } } })).filter((x) => x.body.data.job_id === killed);
      return mine.some((x) => x.body.type === 'training.completed') ? mine : null;
    }, 30_000);
    const { secret } = (await farm.request('GET', '/v1/webhook-secret', { key: KEY_A })).json as { secret: string };
    for (const x of types) verifyWebhook(secret, x.h.headers, x.h.body);
    const seen = new Set(types.map((x) => x.body.type));
    for (const t of ['training.started', 'training.checkpoint', 'training.completed']) assert.ok(seen.has(t), `${t} delivered`);
  });

  test('a hypernetwork training stopped by SIGTERM goes back to the queue and finishes on another trainer; it learns and renders', async () => {
    const trainer = farm.trainers.find((t) => t.child.exitCode === null && t.child.signalCode === null) ?? await farm.startTrainer();
    const id = await submit(KEY_A, { ...HYPERNETWORK, dataset: datasets.alice });
    await waitFor('a checkpoint', async () => ((await view(KEY_A, id)).checkpoints.length > 0 ? true : null), 120_000, 20);
    await kill(trainer, 'SIGTERM');
    assert.equal(trainer.child.exitCode, 0, 'the trainer stored a checkpoint and exited cleanly');
    const between = await view(KEY_A, id);
    assert.equal(between.state, 'queued', 'the training went back to the queue');
    assert.equal(between.checkpoints.at(-1)!.reason, 'stopped');
    await farm.startTrainer();
    const v = await finished(KEY_A, id);
    assert.equal(v.state, 'completed', JSON.stringify(v.error));
    assert.equal(v.step, 60);
    for (const n of ['tinyhn-20.pt', 'tinyhn-20.pt.optim', 'tinyhn.pt', 'tinyhn.pt.optim', 'hypernetwork_loss.csv']) assert.ok(v.files.some((f) => f.name === n), n);

    const hn = await loadHypernetwork(await file(v, 'tinyhn.pt'), 'tinyhn.pt');
    assert.equal(hn.step, 60);
    const losses = await evaluationLosses(HYPERNETWORK, () => paramValues(hn, hypernetworkParams(hn)));
    const drop = 1 - losses.after / losses.before;
    console.log(`hypernetwork: loss ${losses.before.toFixed(5)} -> ${losses.after.toFixed(5)} (${(drop * 100).toFixed(2)}% lower)`);
    assert.ok(drop >= MIN_LOSS_DROP, `loss ${losses.before} -> ${losses.after}`);

    const job = await render(KEY_A, 'red stripes <hypernet:tinyhn:1>');
    assert.equal(job.state, 'completed', JSON.stringify(job.error));
    assert.match(job.outputs[0]!.infotext, /^red stripes <hypernet:tinyhn:1>/);
  });

  test('a cancel stops a running training within a step of reaching its trainer, with a checkpoint; resume continues it', async () => {
    if (!farm.trainers.some((t) => t.child.exitCode === null && t.child.signalCode === null)) await farm.startTrainer();
    const id = await submit(KEY_A, {
      ...EMBEDDING, name: 'longemb', steps: 100_000, save_every: 0, create_image_every: 0, dataset: datasets.alice,
    });
    await waitFor('training under way', async () => ((await view(KEY_A, id)).progress?.step ?? 0) >= 10, 120_000, 20);
    // What the trainers' autoscaler reads: a running training counts, so its trainer is not scaled in.
    const queue = (await farm.request('GET', '/v1/queue', { key: ADMIN })).json as { train: { active: number; load: number } };
    assert.equal(queue.train.active, 1);
    assert.equal(queue.train.load, 1);
    const c = await farm.request('POST', `/v1/trainings/${id}/cancel`, { key: KEY_A });
    assert.equal(c.status, 202, JSON.stringify(c.json));
    const v = await finished(KEY_A, id, 30_000);
    assert.equal(v.state, 'cancelled');
    const cancelled = (await readEvents(`${farm.url}/v1/trainings/${id}/events`, { authorization: `Bearer ${KEY_A}` })).at(-1)!;
    assert.equal(cancelled.event, 'cancelled');
    const { step_at_cancel: heard, checkpoint_step: stopped } = cancelled.data as { step_at_cancel: number; checkpoint_step: number };
    console.log(`cancel: heard at step ${heard}, stopped with a checkpoint at step ${stopped}`);
    // The step in flight when the cancel arrived finishes; no further step starts. (The main thread can be one
    // step message behind the training thread.)
    assert.ok(stopped >= heard && stopped <= heard + 2, `heard ${heard}, stopped ${stopped}`);
    assert.deepEqual(v.checkpoints.map((x) => [x.step, x.reason]), [[stopped, 'stopped']]);
    assert.ok(v.files.some((f) => f.name === `longemb-${stopped + 1}.pt`));

    const r = await farm.request('POST', `/v1/trainings/${id}/resume`, { key: KEY_A, body: { steps: stopped + 5 } });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    const next = await finished(KEY_A, (r.json as { id: string }).id);
    assert.equal(next.state, 'completed', JSON.stringify(next.error));
    assert.equal(next.resumed_from, id);
    assert.equal(next.step, stopped + 5);
    const emb = await loadEmbedding(await file(next, 'longemb.pt'), 'longemb.pt');
    assert.equal(emb.step, stopped + 5, 'the step count went on from the stored checkpoint');
    const tooFew = await farm.request('POST', `/v1/trainings/${id}/resume`, { key: KEY_A, body: { steps: stopped } });
    assert.equal(tooFew.status, 400);
    assert.equal((tooFew.json as { error: { field: string } }).error.field, 'steps');
  });

  test('a diverging training reports each rollback as an event, then fails with TRAINING_DIVERGED', async () => {
    if (!farm.trainers.some((t) => t.child.exitCode === null && t.child.signalCode === null)) await farm.startTrainer();
    // An infinite rate (A1111's parser takes "inf") makes every step's parameters non-finite, at any halving.
    const id = await submit(KEY_A, { ...EMBEDDING, name: 'wildemb', learn_rate: 'inf', steps: 20, dataset: datasets.alice, webhook: { url: hooks.url, events: ['rollback', 'failed'] } });
    const v = await finished(KEY_A, id, 60_000);
    assert.equal(v.state, 'failed');
    assert.equal(v.error?.code, 'TRAINING_DIVERGED');
    assert.match(v.error!.message, /rolled back 3 times/);
    assert.equal(v.attempts, 1, 'a diverged training is not retried');
    const events = await readEvents(`${farm.url}/v1/trainings/${id}/events`, { authorization: `Bearer ${KEY_A}` });
    assert.deepEqual(events.filter((e) => e.event === 'rollback').map((e) => e.data.lr_scale), [0.5, 0.25, 0.125]);
    assert.deepEqual((events.at(-1)!.data as { error: unknown }).error, v.error);
    await waitFor('failed webhook', async () => hooks.received.some((h) => {
      const b = JSON.parse(h.body) as { type: string; data: { job_id: string; error?: { code: string } } };
      return b.type === 'training.failed' && b.data.job_id === id && b.data.error?.code === 'TRAINING_DIVERGED';
    }), 30_000);
  });

  test('bad schedules, a batch larger than the dataset and unknown names are 4xx naming the field', async () => {
    const base = { ...EMBEDDING, dataset: datasets.alice };
    const cases: [Record<string, unknown>, string, string][] = [
      [{ ...base, learn_rate: 'fast' }, 'learn_rate', 'TRAINING_SCHEDULE_INVALID'],
      [{ ...base, learn_rate: '0.005:10, 0.001:x' }, 'learn_rate', 'TRAINING_SCHEDULE_INVALID'],
      [{ ...base, clip_grad_mode: 'norm', clip_grad_value: '1e-1:ten' }, 'clip_grad_value', 'TRAINING_SCHEDULE_INVALID'],
      [{ ...base, batch_size: 5 }, 'batch_size', 'TRAINING_BAD_PARAMETER'],
      [{ ...base, dataset: '01J0000000000000000000000A' }, 'dataset', 'UNKNOWN_DATASET'],
      [{ ...base, model: 'nope' }, 'model', 'UNKNOWN_MODEL'],
      [{ ...base, continue_from: 'missing', create: null }, 'continue_from', 'UNKNOWN_ASSET'],
      [{ ...base, preview_sampler_name: 'Eulerish' }, 'preview_sampler_name', 'UNKNOWN_SAMPLER'],
      [{ ...HYPERNETWORK, dataset: datasets.alice, create: { layer_structure: '1, 2' } }, 'create.layer_structure', 'HYPERNETWORK_BAD_STRUCTURE'],
      [{ ...base, training_width: 100 }, 'training_width', 'INVALID_REQUEST'],
      [{ ...base, kind: 'lora' }, 'kind', 'INVALID_REQUEST'],
      [{ ...base, steps_per_image: 3 }, 'steps_per_image', 'INVALID_REQUEST'],
    ];
    for (const [body, field, code] of cases) {
      const r = await farm.request('POST', '/v1/trainings', { key: KEY_A, body });
      assert.equal(r.status, 400, `${field}: ${JSON.stringify(r.json)}`);
      const error = (r.json as { error: { code: string; field: string; message: string } }).error;
      assert.equal(error.field, field, JSON.stringify(error));
      assert.equal(error.code, code, JSON.stringify(error));
    }
    assert.equal((await farm.request('GET', '/v1/trainings/01J0000000000000000000000A', { key: KEY_A })).status, 404);
    const doc = (await farm.request('GET', '/openapi.json')).json as { paths: Record<string, unknown> };
    for (const p of ['/v1/trainings', '/v1/trainings/{id}', '/v1/trainings/{id}/cancel', '/v1/trainings/{id}/resume', '/v1/trainings/{id}/events']) assert.ok(doc.paths[p], p);
  });
});
