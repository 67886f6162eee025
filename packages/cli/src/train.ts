/**
 * `darkroom train`: textual-inversion or hypernetwork training on the local engine, with the files A1111 writes,
 * a resumable checkpoint at every save, and a progress bar. Ctrl-C stops after the current step with a checkpoint.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { writeFileAtomically } from '@darkroom/core/atomic-write.js';
import { basename, join, resolve } from 'node:path';
import { Engine } from '@darkroom/core/pipeline/engine.js';
import { BUILTIN_MODEL_RESOLUTION } from '@darkroom/core/catalog/built-in-model.js';
import { createEmbedding } from '@darkroom/core/networks/embeddings/create.js';
import { loadEmbedding } from '@darkroom/core/networks/embeddings/load.js';
import { createHypernetwork, type WeightInit } from '@darkroom/core/networks/hypernetworks/create.js';
import { loadHypernetwork } from '@darkroom/core/networks/hypernetworks/hypernetwork.js';
import { decodeCheckpoint, encodeCheckpoint } from '@darkroom/core/training/checkpoint-file.js';
import type { DatasetFile } from '@darkroom/core/training/dataset.js';
import { KeyedStream } from '@darkroom/core/training/keyed-random.js';
import { lossCsv, prepareTraining, type TrainingSubject } from '@darkroom/core/training/train-job.js';
import type { TrainingCheckpoint } from '@darkroom/core/training/trainer.js';
import { UsageError } from './args.js';
import { progressBar } from './progress.js';
import type { TrainRequest } from './train-args.js';

const DEFAULT_TEMPLATE = 'a photo of [name], [filewords]\na rendering of [name], [filewords]\n[filewords], [name]\n';
const WEIGHT_INITS: readonly WeightInit[] = ['Normal', 'XavierUniform', 'XavierNormal', 'KaimingUniform', 'KaimingNormal'];

async function readFolder(dir: string): Promise<DatasetFile[]> {
  if (!existsSync(dir)) throw new UsageError(`--data ${dir} does not exist`);
  const names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  return Promise.all(names.map(async (name) => ({ name, bytes: new Uint8Array(await readFile(join(dir, name))) })));
}

export async function train(req: TrainRequest, home: string): Promise<number> {
  const engine = new Engine({
    root: home,
    ...(req.model ? { checkpoint: resolve(req.model) } : {}),
    ...(req.vocab ? { vocabulary: resolve(req.vocab) } : {}),
    ...(req.threads !== undefined ? { threads: req.threads } : {}),
  });
  const held = await engine.acquireForTraining();
  const { sd, model } = held;
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  try {
    let subject: TrainingSubject;
    if (req.kind === 'embedding') {
      const embedding = req.embedding
        ? await loadEmbedding(new Uint8Array(await readFile(req.embedding)), basename(req.embedding))
        : createEmbedding({ name: req.name, vectors: req.vectors, initText: req.initText, tokenizer: model.tokenizer, tokenEmbeddings: sd.textEncoder.tokenEmbedding });
      subject = { kind: 'embedding', embedding };
    } else {
      if (!WEIGHT_INITS.includes(req.weightInit as WeightInit)) throw new UsageError(`--weight-init must be one of ${WEIGHT_INITS.join(', ')}`);
      const hypernetwork = req.hypernetwork
        ? await loadHypernetwork(new Uint8Array(await readFile(req.hypernetwork)), basename(req.hypernetwork))
        : createHypernetwork({
            name: req.name,
            sizes: req.sizes ?? [sd.config.text.width, ...new Set([320, 640, 1280].filter(() => !!req.model))],
            layerStructure: req.layerStructure,
            activationFunc: req.activation,
            weightInit: req.weightInit as WeightInit,
            addLayerNorm: req.layerNorm,
            useDropout: false,
            random: new KeyedStream(req.seed, 'hypernetwork-init'),
          });
      subject = { kind: 'hypernetwork', hypernetwork };
    }
    const name = subject.kind === 'embedding' ? subject.embedding.name : subject.hypernetwork.name;
    const out = resolve(req.out ?? name);
    await mkdir(out, { recursive: true });
    const builtIn = req.model === undefined;
    const prepared = await prepareTraining(sd, model, subject, await readFolder(resolve(req.data)), {
      settings: {
        learnRate: req.learnRate,
        clipGradMode: req.clipGradMode,
        clipGradValue: req.clipGradValue,
        maxSteps: req.steps,
        batchSize: req.batchSize,
        gradientStep: req.gradientStep,
        seed: req.seed,
        saveEvery: req.saveEvery,
      },
      dataset: {
        width: req.width ?? (builtIn ? BUILTIN_MODEL_RESOLUTION : 512),
        height: req.height ?? (builtIn ? BUILTIN_MODEL_RESOLUTION : 512),
        template: req.template ? await readFile(req.template, 'utf8') : DEFAULT_TEMPLATE,
        wordRegex: '',
        joinString: ' ',
        latentSampling: req.latentSampling,
        useWeight: req.useWeight,
        shuffleTags: req.shuffleTags,
        tagDropOut: req.tagDropOut,
      },
      text: { clipSkip: req.clipSkip, emphasis: 'Original', commaPaddingBacktrack: 20 },
      ...(req.threads !== undefined ? { runtime: { threads: req.threads } } : {}),
    });
    try {
      const start: TrainingCheckpoint = req.resume ? decodeCheckpoint(new Uint8Array(await readFile(req.resume))).checkpoint : prepared.start();
      const bar = req.quiet ? undefined : progressBar();
      const csvName = subject.kind === 'embedding' ? 'textual_inversion_loss.csv' : 'hypernetwork_loss.csv';
      const result = await prepared.run.run(start, {
        signal: controller.signal,
        onStep: (e) => bar?.update(e.step, e.steps, `loss ${e.loss.toFixed(4)} lr ${e.learnRate}`),
        onRollback: (e) => {
          process.stderr.write(`\nnon-finite training at step ${e.atStep} (${e.reason}): back to step ${e.toStep}, learn rate x${e.lrScale}\n`);
        },
        onCheckpoint: async (c, reason) => {
          await writeFileAtomically(join(out, 'checkpoint.safetensors'), encodeCheckpoint(c, { kind: subject.kind, name }));
          await writeFileAtomically(join(out, csvName), lossCsv(c.lossLog));
          if (reason === 'interval' || reason === 'final') {
            for (const f of prepared.files(c, reason === 'final' ? 'final' : 'intermediate')) await writeFileAtomically(join(out, f.fileName), f.bytes);
          }
        },
      });
      bar?.done();
      const verb = result.status === 'completed' ? 'trained' : 'stopped';
      process.stdout.write(`${verb} ${name} to step ${result.checkpoint.step} in ${out}\n`);
      if (result.status === 'stopped') process.stdout.write(`continue with: darkroom train ... --resume ${join(out, 'checkpoint.safetensors')}\n`);
      return 0;
    } finally {
      await prepared.release();
    }
  } finally {
    process.off('SIGINT', onSignal);
    held.release();
    await engine.close();
  }
}
