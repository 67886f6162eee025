/**
 * A1111's `PersonalizedBase` for Darkroom's trainer: every image decoded, stretched to the training size, encoded
 * by the VAE (latent sampled once, deterministic, or re-sampled per use), its caption built from the template,
 * and, with `use_weight`, its alpha channel as a loss weight map. The batch order is a pure function of the run's
 * seed and the micro-batch's index (see keyed-random.ts), with A1111's arithmetic: full batches only, and
 * `len // batch - (len // batch) % gradient_step` micro-batches per epoch.
 */
import { DarkroomError } from '../errors.js';
import { float32, type Float32Tensor } from '../tensor.js';

export type { DatasetFile } from './dataset-files.js';
import { createText, templateLines } from './captions.js';
import { scanDatasetFiles, type DatasetFile } from './dataset-files.js';
import { lossWeightMap, trainingPixels } from './dataset-image.js';
import { KeyedStream, keyedNormals } from './keyed-random.js';
import type { BatchPlan } from './run-plan.js';

import type { LatentSampling } from '../catalog/training-options.js';

export { LATENT_SAMPLING_METHODS, type LatentSampling } from '../catalog/training-options.js';

export interface DatasetOptions {
  readonly width: number;
  readonly height: number;
  /** What `[name]` becomes: the embedding's or hypernetwork's name. */
  readonly placeholder: string;
  /** The template file's text. */
  readonly template: string;
  readonly wordRegex: string;
  readonly joinString: string;
  readonly latentSampling: LatentSampling;
  readonly useWeight: boolean;
  readonly shuffleTags: boolean;
  readonly tagDropOut: number;
  readonly seed: number;
}

/** The VAE encoder as training needs it. */
export interface LatentEncoder {
  readonly scaleFactor: number;
  encode(image: Float32Tensor): Promise<{ mean: Float32Tensor; std: Float32Tensor }>;
}

export interface DatasetEntry {
  readonly file: string;
  readonly filenameText: string;
  /** The caption fixed at build (A1111 draws the template line once per image). */
  readonly condText: string;
  readonly mean: Float32Tensor;
  readonly std: Float32Tensor;
  /** The latent used when sampling is 'once' or 'deterministic'. */
  readonly latent?: Float32Tensor;
  readonly weight?: Float32Tensor;
}

export interface PreparedDataset {
  readonly entries: readonly DatasetEntry[];
  /** Files that are not images, as A1111 skips them. */
  readonly skipped: readonly string[];
  readonly templateLines: readonly string[];
  readonly options: DatasetOptions;
}

function scaled(mean: Float32Tensor, std: Float32Tensor | undefined, noise: Float32Array | undefined, factor: number): Float32Tensor {
  const f = Math.fround;
  const out = new Float32Array(mean.data.length);
  for (let i = 0; i < out.length; i++) {
    const sample = std && noise ? f(mean.data[i]! + f(std.data[i]! * noise[i]!)) : mean.data[i]!;
    out[i] = f(factor * sample);
  }
  return float32(mean.shape, out);
}

/**
 * Builds the dataset from a folder's files as A1111 reads it (images, with captions in `<stem>.txt` beside
 * them; files that are not images are passed over); a folder without one image is TRAINING_DATASET_EMPTY.
 */
export async function prepareDataset(files: readonly DatasetFile[], opts: DatasetOptions, vae: LatentEncoder): Promise<PreparedDataset> {
  const lines = templateLines(opts.template);
  if (lines.length === 0) throw new DarkroomError('TRAINING_BAD_PARAMETER', 'the prompt template has no lines', { field: 'template' });
  const scan = scanDatasetFiles(files, { wordRegex: opts.wordRegex, joinString: opts.joinString });
  const entries: DatasetEntry[] = [];
  for (const { file, image: img, filenameText: text } of scan.images) {
    const index = entries.length;
    const line = lines[new KeyedStream(opts.seed, 'template', index).below(lines.length)]!;
    const condText = createText(line, text, opts.placeholder, {});
    const pixels = trainingPixels(img, opts.width, opts.height);
    const { mean, std } = await vae.encode(float32([1, ...pixels.shape], pixels.data));
    const [, , lh, lw] = mean.shape as [number, number, number, number];
    const latent =
      opts.latentSampling === 'once'
        ? scaled(mean, std, keyedNormals(mean.data.length, opts.seed, 'latent', index), vae.scaleFactor)
        : opts.latentSampling === 'deterministic'
          ? scaled(mean, undefined, undefined, vae.scaleFactor)
          : undefined;
    const weight = opts.useWeight ? lossWeightMap(img, lh, lw) : undefined;
    entries.push({ file, filenameText: text, condText, mean, std, ...(latent ? { latent } : {}), ...(weight ? { weight } : {}) });
  }
  const skipped = scan.skipped.map((s) => s.file);
  if (entries.length === 0) {
    throw new DarkroomError('TRAINING_DATASET_EMPTY', 'the dataset has no images', { field: 'dataset', skipped });
  }
  return { entries, skipped, templateLines: lines, options: opts };
}

/** A1111's batch arithmetic for a dataset of `length` images. */
/** The entry indices of micro-batch `micro` (counted from the start of the run): epoch order, full batches. */
export function batchAt(seed: number, length: number, plan: BatchPlan, micro: number): number[] {
  const epoch = Math.floor(micro / plan.microsPerEpoch);
  const position = micro % plan.microsPerEpoch;
  const order = new KeyedStream(seed, 'order', epoch).permutation(length);
  return order.slice(position * plan.batchSize, (position + 1) * plan.batchSize);
}

/** The inputs of one micro-batch: latents (re-sampled for 'random'), weights and captions. */
export function microBatchData(
  dataset: PreparedDataset,
  indices: readonly number[],
  micro: number,
  scaleFactor: number,
): { latents: Float32Tensor; weight?: Float32Tensor; captions: string[] } {
  const entries = indices.map((i) => dataset.entries[i]!);
  const { seed, latentSampling, shuffleTags, tagDropOut } = dataset.options;
  const latents = entries.map((e, k) =>
    latentSampling === 'random' ? scaled(e.mean, e.std, keyedNormals(e.mean.data.length, seed, 'latent-random', micro, k), scaleFactor) : e.latent!,
  );
  const captions = entries.map((e, k) => {
    if (!shuffleTags && !(tagDropOut > 0)) return e.condText;
    const rng = new KeyedStream(seed, 'caption', micro, k);
    const lines = dataset.templateLines;
    return createText(lines[rng.below(lines.length)]!, e.filenameText, dataset.options.placeholder, {
      shuffleTags,
      tagDropOut,
      random: () => rng.random(),
    });
  });
  const stack = (ts: readonly Float32Tensor[]): Float32Tensor => {
    const per = ts[0]!.data.length;
    const out = new Float32Array(per * ts.length);
    ts.forEach((t, i) => out.set(t.data, i * per));
    return float32([ts.length, ...ts[0]!.shape.slice(ts[0]!.shape.length === 4 ? 1 : 0)], out);
  };
  const weights = entries.map((e) => e.weight).filter((w): w is Float32Tensor => w !== undefined);
  return { latents: stack(latents), captions, ...(weights.length === entries.length && weights.length ? { weight: stack(weights) } : {}) };
}
