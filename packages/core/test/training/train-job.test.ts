/**
 * Training on Darkroom's demo model end to end in one process: a synthetic dataset, a new embedding and a new
 * hypernetwork trained for a few dozen steps, the loss on a fixed evaluation set, stop-and-resume bit-identity,
 * and the files A1111 would write, loaded back.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDarkroomError } from '../../src/errors.js';
import { encodePng } from '../../src/formats/png.js';
import { loadModel, type StableDiffusionModel } from '../../src/models/load.js';
import { createEmbedding } from '../../src/networks/embeddings/create.js';
import { loadEmbedding } from '../../src/networks/embeddings/load.js';
import { createHypernetwork } from '../../src/networks/hypernetworks/create.js';
import { loadHypernetwork } from '../../src/networks/hypernetworks/hypernetwork.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import { pipelineModel } from '../../src/pipeline/model.js';
import type { PipelineModel } from '../../src/pipeline/types.js';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/training/checkpoint-file.js';
import type { DatasetFile } from '../../src/training/dataset.js';
import { KeyedStream } from '../../src/training/keyed-random.js';
import { prepareTraining, type TrainingJobOptions } from '../../src/training/train-job.js';

let dir: string;
let sd: StableDiffusionModel;
let pipeline: PipelineModel;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'darkroom-train-'));
  const demo = await ensureDemoModel(dir);
  sd = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir: join(dir, 'cache'), threads: 1 });
  pipeline = pipelineModel(sd, demo.tokenizer);
});

after(async () => {
  await sd?.release();
  await rm(dir, { recursive: true, force: true });
});

/** 64x64 pictures of a red disc on blue at a few positions; captions in .txt for half of them. */
function dataset(n: number): DatasetFile[] {
  return Array.from({ length: n }).flatMap((_, i) => {
    const data = new Uint8Array(64 * 64 * 3);
    const cx = 16 + ((i * 11) % 32);
    const cy = 20 + ((i * 7) % 24);
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < 64; x++) {
        const inside = (x - cx) ** 2 + (y - cy) ** 2 < 100;
        data.set(inside ? [220, 30, 30] : [20, 40, 200], (y * 64 + x) * 3);
      }
    }
    const image = { name: `${i}-disc.png`, bytes: encodePng({ width: 64, height: 64, channels: 3, data }) };
    return i % 2 ? [image, { name: `${i}-disc.txt`, bytes: new TextEncoder().encode('a red disc, blue background') }] : [image];
  });
}

function options(steps: number, learnRate: string): TrainingJobOptions {
  return {
    settings: { learnRate, clipGradMode: 'disabled', clipGradValue: '0.1', maxSteps: steps, batchSize: 2, gradientStep: 1, seed: 99, saveEvery: 10 },
    dataset: {
      width: 64,
      height: 64,
      template: 'a photo of [name]\n[filewords], [name]\n',
      wordRegex: '',
      joinString: ' ',
      latentSampling: 'once',
      useWeight: false,
      shuffleTags: false,
      tagDropOut: 0,
    },
    text: { clipSkip: 1, emphasis: 'Original', commaPaddingBacktrack: 20 },
    runtime: { threads: 1 },
  };
}

function newEmbedding(name: string) {
  return createEmbedding({ name, vectors: 2, initText: 'thing', tokenizer: pipeline.tokenizer, tokenEmbeddings: sd.textEncoder.tokenEmbedding });
}

test('an embedding trained on the demo model lowers a fixed evaluation loss; its files load back as the same vectors', async () => {
  const prepared = await prepareTraining(sd, pipeline, { kind: 'embedding', embedding: newEmbedding('discstyle') }, dataset(6), options(40, '0.02'));
  try {
    const start = prepared.start();
    const before = await prepared.evaluationLoss(start.params, { seed: 4242 });
    const saves: number[] = [];
    const r = await prepared.run.run(start, { onCheckpoint: (c) => void saves.push(c.step) });
    assert.equal(r.status, 'completed');
    // A1111's save_every 10 saves name-10 after 9 steps, name-20 after 19, ...; then the final save.
    assert.deepEqual(saves, [9, 19, 29, 39, 40]);
    const afterLoss = await prepared.evaluationLoss(r.checkpoint.params, { seed: 4242 });
    assert.ok(afterLoss < before * 0.97, `evaluation loss ${before} -> ${afterLoss}`);

    const files = prepared.files(r.checkpoint, 'final');
    assert.deepEqual(files.map((f) => f.fileName), ['discstyle.pt', 'discstyle.pt.optim', 'discstyle.safetensors']);
    const loaded = await loadEmbedding(files[0]!.bytes, files[0]!.fileName);
    assert.equal(loaded.name, 'discstyle');
    assert.equal(loaded.step, 40);
    assert.deepEqual(Array.from(loaded.vec.data), Array.from(r.checkpoint.params[0]!));
    assert.equal(loaded.sdCheckpoint, sd.sha256.slice(0, 10));
    const fromSafetensors = await loadEmbedding(files[2]!.bytes, files[2]!.fileName);
    assert.deepEqual(Array.from(fromSafetensors.vec.data), Array.from(r.checkpoint.params[0]!));
    const intermediate = prepared.files(r.checkpoint, 'intermediate');
    assert.equal(intermediate[0]!.fileName, 'discstyle-41.pt');
  } finally {
    await prepared.release();
  }
});

test('stopped, stored and resumed in a new run, an embedding ends bit-identical to an uninterrupted run', async () => {
  const whole = await prepareTraining(sd, pipeline, { kind: 'embedding', embedding: newEmbedding('resumed') }, dataset(4), options(12, '0.01'));
  const uninterrupted = await whole.run.run(whole.start());
  await whole.release();

  const first = await prepareTraining(sd, pipeline, { kind: 'embedding', embedding: newEmbedding('resumed') }, dataset(4), options(12, '0.01'));
  const stop = new AbortController();
  let stored: Uint8Array | undefined;
  const partial = await first.run.run(first.start(), {
    signal: stop.signal,
    onStep: (e) => {
      if (e.step === 5) stop.abort();
    },
    onCheckpoint: (c) => void (stored = encodeCheckpoint(c, { kind: 'embedding' })),
  });
  await first.release();
  assert.equal(partial.status, 'stopped');
  assert.equal(partial.checkpoint.step, 5);

  const second = await prepareTraining(sd, pipeline, { kind: 'embedding', embedding: newEmbedding('resumed') }, dataset(4), options(12, '0.01'));
  const resumed = await second.run.run(decodeCheckpoint(stored!).checkpoint);
  await second.release();
  assert.deepEqual(Array.from(resumed.checkpoint.params[0]!), Array.from(uninterrupted.checkpoint.params[0]!));
  assert.deepEqual(resumed.checkpoint.lossLog, uninterrupted.checkpoint.lossLog);
});

test('a hypernetwork trained on the demo model lowers the evaluation loss and saves a loadable .pt', async () => {
  const width = sd.config.text.width;
  const hn = createHypernetwork({ name: 'discnet', sizes: [width], layerStructure: [1, 2, 1], activationFunc: 'relu', weightInit: 'Normal', addLayerNorm: false, useDropout: false, random: new KeyedStream(5, 'init') });
  const prepared = await prepareTraining(sd, pipeline, { kind: 'hypernetwork', hypernetwork: hn }, dataset(4), options(30, '0.002'));
  try {
    const start = prepared.start();
    const before = await prepared.evaluationLoss(start.params, { seed: 4242 });
    const r = await prepared.run.run(start);
    const afterLoss = await prepared.evaluationLoss(r.checkpoint.params, { seed: 4242 });
    assert.ok(afterLoss < before, `evaluation loss ${before} -> ${afterLoss}`);
    const [pt] = prepared.files(r.checkpoint, 'final');
    const loaded = await loadHypernetwork(pt!.bytes, pt!.fileName);
    assert.equal(loaded.name, 'discnet');
    assert.equal(loaded.step, 30);
    assert.deepEqual(loaded.sizes, [width]);
  } finally {
    await prepared.release();
  }
});

test('bad parameters are refused before any training, naming the field', async () => {
  await assert.rejects(
    prepareTraining(sd, pipeline, { kind: 'embedding', embedding: newEmbedding('bad') }, dataset(2), { ...options(10, '0.01'), settings: { ...options(10, '0.01').settings, batchSize: 3 } }),
    (e: unknown) => isDarkroomError(e) && e.details.field === 'batch_size',
  );
  await assert.rejects(
    prepareTraining(sd, pipeline, { kind: 'embedding', embedding: newEmbedding('bad') }, dataset(2), options(10, '0.01:abc')),
    (e: unknown) => isDarkroomError(e) && e.details.field === 'learn_rate',
  );
  await assert.rejects(
    prepareTraining(sd, pipeline, { kind: 'embedding', embedding: newEmbedding('bad') }, [{ name: 'x.png', bytes: new Uint8Array([1, 2, 3]) }], options(10, '0.01')),
    (e: unknown) => isDarkroomError(e, 'TRAINING_DATASET_EMPTY'),
  );
});
