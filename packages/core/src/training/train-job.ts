/**
 * One training job end to end on a loaded model: the dataset built, the target (embedding or hypernetwork), the
 * run, and the files A1111 writes at each save (the `.pt`, its `.optim`, an embedding's `.safetensors`) plus the
 * loss log as A1111's CSV. The CLI and the trainer service both call this; they only decide where files go.
 */
import { DarkroomError } from '../errors.js';
import type { Embedding } from '../networks/embeddings/embedding.js';
import { saveEmbeddingSafetensors } from '../networks/embeddings/save.js';
import type { Hypernetwork } from '../networks/hypernetworks/hypernetwork.js';
import type { PipelineModel } from '../pipeline/types.js';
import { float32, type Float32Tensor } from '../tensor.js';
import { KeyedStream, keyedNormals } from './keyed-random.js';
import { pyFloatRepr } from '../text/python-compat.js';
import { prepareDataset, type DatasetOptions, type DatasetFile, type PreparedDataset } from './dataset.js';
import { hypernetworkParams, paramValues, withParamValues } from './hypernetwork-params.js';
import type { RuntimeOptions, TrainableModel } from './objective.js';
import {
  embeddingTrainingOptim,
  embeddingTrainingPt,
  hypernetworkOptimHash,
  hypernetworkTrainingOptim,
  hypernetworkTrainingPt,
  savedEmbedding,
  type CheckpointInfo,
  type SavedFile,
  type SaveKind,
} from './saved-files.js';
import { embeddingTarget, hypernetworkTarget, type ReleasableTarget, type TextSettings } from './targets.js';
import { initialCheckpoint, TrainingRun, type LossEntry, type TrainingCheckpoint, type TrainingSettings } from './trainer.js';
import { runSchedule } from './run-plan.js';

export type TrainingSubject =
  | { readonly kind: 'embedding'; readonly embedding: Embedding }
  | { readonly kind: 'hypernetwork'; readonly hypernetwork: Hypernetwork };

/** What the model must offer: the training graphs' weights and buffers, the VAE and the text side. */
export interface TrainingModel extends TrainableModel {
  readonly name: string;
  readonly sha256: string;
  readonly scaleFactor: number;
}

export interface TrainingJobOptions {
  readonly settings: TrainingSettings;
  readonly dataset: Omit<DatasetOptions, 'placeholder' | 'seed'>;
  readonly text: TextSettings;
  readonly runtime?: RuntimeOptions;
  /** The rate a loaded optimizer state carries (A1111 keeps it until the schedule changes); see saved-files.ts. */
  readonly optimizerLr?: number;
}

export interface PreparedTraining {
  readonly run: TrainingRun;
  readonly dataset: PreparedDataset;
  readonly subject: TrainingSubject;
  /** The state a fresh run starts from. */
  start(): TrainingCheckpoint;
  /** The embedding or hypernetwork with a checkpoint's parameters, named and stepped as A1111 saves it. */
  trained(c: TrainingCheckpoint, kind: SaveKind): TrainingSubject;
  /**
   * The mean loss over a fixed evaluation set of `samples` (image, timestep, noise) triples drawn from `seed`,
   * with the given parameters: the same set before and after training, so a fall means the parameters learned.
   */
  evaluationLoss(params: readonly Float32Array[], opts?: { seed?: number; samples?: number }): Promise<number>;
  /** The files A1111 writes at a save. */
  files(c: TrainingCheckpoint, kind: SaveKind): SavedFile[];
  release(): Promise<void>;
}

function baseName(subject: TrainingSubject): string {
  return subject.kind === 'embedding' ? subject.embedding.name : subject.hypernetwork.name;
}

export async function prepareTraining(
  model: TrainingModel,
  pipeline: PipelineModel,
  subject: TrainingSubject,
  files: readonly DatasetFile[],
  opts: TrainingJobOptions,
): Promise<PreparedTraining> {
  const name = baseName(subject);
  const dataset = await prepareDataset(files, { ...opts.dataset, placeholder: name, seed: opts.settings.seed }, {
    scaleFactor: model.scaleFactor,
    encode: (image) => pipeline.vae.encode(image),
  });
  const startStep = subject.kind === 'embedding' ? (subject.embedding.step ?? 0) : subject.hypernetwork.step;
  const { plan } = runSchedule(opts.settings, dataset.entries.length, startStep, opts.optimizerLr);
  if (plan.optimizerSteps === 0) {
    throw new DarkroomError('TRAINING_NOTHING_TO_DO', `the schedule ends at step ${startStep}: nothing to train`, { field: 'steps' });
  }
  let target: ReleasableTarget;
  let initial: Float32Array[];
  if (subject.kind === 'embedding') {
    const e = subject.embedding;
    if (e.width !== pipeline.textEncoder.width) {
      throw new DarkroomError('EMBEDDING_WIDTH_MISMATCH', `embedding "${e.name}" has width ${e.width}, the model's text encoder ${pipeline.textEncoder.width}`, {
        field: 'embedding',
      });
    }
    target = await embeddingTarget(model, pipeline, { name: e.name, vectors: e.vectors }, opts.text, opts.runtime);
    initial = [e.vec.data.slice()];
  } else {
    target = await hypernetworkTarget(model, pipeline, subject.hypernetwork, opts.text, opts.runtime);
    initial = paramValues(subject.hypernetwork, hypernetworkParams(subject.hypernetwork));
  }
  const run = new TrainingRun(target, dataset, opts.settings, startStep, model.scaleFactor, opts.optimizerLr);
  const checkpoint: CheckpointInfo = { shorthash: model.sha256.slice(0, 10), modelName: model.name };

  const trained = (c: TrainingCheckpoint, kind: SaveKind): TrainingSubject => {
    // An intermediate save after s steps is A1111's `name-(s+1)` storing step s; the final one stores s too.
    const step = c.step;
    if (subject.kind === 'embedding') {
      const vec = float32(subject.embedding.vec.shape, c.params[0]!.slice());
      return { kind: 'embedding', embedding: savedEmbedding({ baseName: name, vec, step, kind, checkpoint }) };
    }
    const hn = withParamValues(subject.hypernetwork, hypernetworkParams(subject.hypernetwork), c.params);
    return { kind: 'hypernetwork', hypernetwork: { ...hn, step, sdCheckpoint: checkpoint.shorthash, sdCheckpointName: checkpoint.modelName } };
  };

  return {
    run: run,
    dataset,
    subject,
    start: () => initialCheckpoint(target, initial, startStep, run.firstLearnRate),
    trained,
    files(c, kind) {
      const step = c.step;
      const t = trained(c, kind);
      if (t.kind === 'embedding') {
        const save = { baseName: name, vec: t.embedding.vec, step, kind, checkpoint };
        const pt = embeddingTrainingPt(save);
        const stem = pt.fileName.replace(/\.pt$/, '');
        return [pt, embeddingTrainingOptim(save, c.optimizer), { fileName: `${stem}.safetensors`, bytes: saveEmbeddingSafetensors(t.embedding) }];
      }
      const save = { hn: t.hypernetwork, baseName: name, step, kind, checkpoint };
      const pt = hypernetworkTrainingPt(save);
      // A1111 trains from `<name>.pt` and its final save overwrites that file (so the .optim carries the new file's
      // hash); intermediate saves carry the hash of the file training started from.
      const loadedHash = subject.kind === 'hypernetwork' ? subject.hypernetwork.hash : '';
      const hash = hypernetworkOptimHash({ loadedPath: `${name}.pt`, loadedHash, savedPath: pt.fileName, savedBytes: pt.bytes });
      return [pt, hypernetworkTrainingOptim(save, c.optimizer, hash)];
    },
    async evaluationLoss(params, { seed = 0, samples = 8 } = {}) {
      let total = 0;
      for (let i = 0; i < samples; i++) {
        const index = i % dataset.entries.length;
        const e = dataset.entries[index]!;
        const latents = e.latent ?? scaledMean(e.mean, model.scaleFactor);
        const t = [new KeyedStream(seed, 'eval-t', i).below(1000)];
        const noise = float32(latents.shape, keyedNormals(latents.data.length, seed, 'eval-noise', i));
        total += (await target.gradients(params, { latents, t, noise, captions: [e.condText], entries: [index] })).loss;
      }
      return total / samples;
    },
    release: () => target.release(),
  };
}

function scaledMean(mean: Float32Tensor, factor: number): Float32Tensor {
  return float32(mean.shape, Float32Array.from(mean.data, (v) => Math.fround(v * factor)));
}

/** A1111's loss CSV (`textual_inversion_loss.csv` / `hypernetwork_loss.csv`), one row per optimizer step. */
export function lossCsv(log: readonly LossEntry[]): string {
  const rows = ['step,epoch,epoch_step,loss,learn_rate'];
  for (const e of log) rows.push(`${e.step},${e.epoch},${e.epochStep - 1},${e.loss.toFixed(7)},${pyFloatRepr(e.learnRate)}`);
  return `${rows.join('\r\n')}\r\n`;
}
