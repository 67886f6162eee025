/**
 * Training oracle, `dataset/`: A1111's `PersonalizedBase` over an in-memory copy of the recorded folder (the
 * images re-encoded as PNG from their pixels, the caption and extra files with their content): the captions
 * under every option set, the skipped files, the resized pixels, the `use_weight` maps and the
 * deterministic latents.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { encodePng, type RasterImage } from '../src/formats/png.js';
import { loadModel, type StableDiffusionModel } from '../src/models/load.js';
import { float32, type HostTensor } from '../src/tensor.js';
import { captionFileName, createText, templateLines } from '../src/training/captions.js';
import { scanDatasetFiles, type DatasetFile, type DatasetImage } from '../src/training/dataset-files.js';
import { lossWeightMap, pixelsFromRgb, trainingImage } from '../src/training/dataset-image.js';
import { combine, elementwiseClose, scaledClose, type CaseResult } from './report.js';
import { findCheckpoint, findModelConfig, type FixtureModel, type TrainingGroup } from './training-support.js';

/** Pixels from /127.5 - 1 are float32 roundings of the same arithmetic. */
const PIXEL_ATOL = 1e-6;
/** Weight maps: max|a-b| <= 1e-6 * max|ref|. */
const WEIGHT_TOL = 1e-6;
/** Latents through an independent float32 VAE encoder (the model oracle's spread). */
const LATENT_TOL = 5e-5;

interface ImageSpec {
  readonly file: string;
  readonly caption_txt?: string | null;
}

interface OptionSet {
  readonly id?: string;
  readonly dataset_filename_word_regex?: string;
  readonly dataset_filename_join_string?: string | null;
  readonly template_lines?: string[];
  readonly entries?: { readonly file: string; readonly filename_text: string; readonly texts: string[] }[];
  readonly skipped_files?: string[];
}

interface DatasetJson {
  readonly images?: ImageSpec[];
  readonly extra_files?: { readonly file: string; readonly content: string }[];
  readonly template_file_text?: string;
  readonly placeholder_token?: string;
  /** [width, height] of the training images. */
  readonly training_size?: [number, number];
  readonly option_sets?: OptionSet[];
  readonly weight_latent_shapes?: Record<string, [number, number, number]>;
  readonly model?: FixtureModel;
}

type Tensors = ReadonlyMap<string, HostTensor>;

function skip(name: string, detail: string): CaseResult {
  return { name, status: 'skip', detail };
}

function fail(name: string, detail: string): CaseResult {
  return { name, status: 'fail', detail };
}

function numeric(t: HostTensor): ArrayLike<number> {
  if (t.data instanceof BigInt64Array) throw new Error('an integer tensor where numbers were expected');
  return t.data;
}

/** A recorded `(H, W, C)` (or `(H, W)` gray) uint8 tensor as an image. */
function rasterFromHwc(t: HostTensor): RasterImage {
  const [height, width, channels = 1] = t.shape as [number, number, number?];
  if (t.dtype !== 'uint8' || (t.shape.length !== 3 && t.shape.length !== 2) || ![1, 2, 3, 4].includes(channels)) {
    throw new Error(`expected a (H, W, C) uint8 tensor, got ${t.dtype} [${t.shape.join(', ')}]`);
  }
  return { width, height, channels: channels as RasterImage['channels'], data: t.data as Uint8Array };
}

/**
 * The training size [width, height]: the recorded pixels' shape when there is one (it cannot be misread),
 * else `training_size`, which the fixtures write as [width, height].
 */
function trainingSize(json: DatasetJson, tensors: Tensors, file: string): [number, number] | undefined {
  const pixels = tensors.get(`pixels.${file}`);
  if (pixels?.shape.length === 3) return [pixels.shape[2]!, pixels.shape[1]!];
  const resized = tensors.get(`resized_u8.${file}`);
  if (resized && resized.shape.length >= 2) return [resized.shape[1]!, resized.shape[0]!];
  return json.training_size;
}

/** The recorded folder as files: images re-encoded losslessly, caption `.txt` files, extra files. */
function folderFiles(json: DatasetJson, tensors: Tensors): { files: DatasetFile[]; problems: string[] } {
  const text = new TextEncoder();
  const files: DatasetFile[] = [];
  const problems: string[] = [];
  for (const img of json.images ?? []) {
    const source = tensors.get(`source_u8.${img.file}`);
    if (!source) problems.push(`no source_u8.${img.file}`);
    else files.push({ name: img.file, bytes: encodePng(rasterFromHwc(source)) });
    if (img.caption_txt !== null && img.caption_txt !== undefined) files.push({ name: captionFileName(img.file), bytes: text.encode(img.caption_txt) });
  }
  for (const extra of json.extra_files ?? []) files.push({ name: extra.file, bytes: text.encode(extra.content) });
  return { files, problems };
}

function captionCase(json: DatasetJson, set: OptionSet, index: number, files: readonly DatasetFile[]): CaseResult {
  const name = `captions/${set.id ?? `#${index}`}`;
  if (set.dataset_filename_word_regex === undefined) return skip(name, 'option set lacks dataset_filename_word_regex');
  if (!set.entries) return skip(name, 'option set lacks entries');
  if (json.placeholder_token === undefined) return skip(name, 'fixture lacks placeholder_token');
  const problems: string[] = [];
  let lines = set.template_lines;
  if (json.template_file_text !== undefined) {
    const parsed = templateLines(json.template_file_text);
    if (lines && JSON.stringify(parsed) !== JSON.stringify(lines)) problems.push(`template lines ${JSON.stringify(parsed)}, expected ${JSON.stringify(lines)}`);
    lines ??= parsed;
  }
  if (!lines) return skip(name, 'fixture has neither template_file_text nor template_lines');
  const scan = scanDatasetFiles(files, { wordRegex: set.dataset_filename_word_regex, joinString: set.dataset_filename_join_string });
  const got = scan.images.map((e) => e.file);
  const want = set.entries.map((e) => e.file);
  if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`entries ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  let texts = 0;
  for (const ref of set.entries) {
    const entry = scan.images.find((e) => e.file === ref.file);
    if (!entry) continue;
    if (entry.filenameText !== ref.filename_text) {
      problems.push(`${ref.file}: filename_text ${JSON.stringify(entry.filenameText)}, expected ${JSON.stringify(ref.filename_text)}`);
    }
    for (const [j, want] of ref.texts.entries()) {
      texts++;
      const line = lines[j];
      const text = line === undefined ? undefined : createText(line, entry.filenameText, json.placeholder_token);
      if (text !== want) problems.push(`${ref.file} line ${j}: ${JSON.stringify(text)}, expected ${JSON.stringify(want)}`);
    }
  }
  if (set.skipped_files) {
    const skipped = scan.skipped.map((s) => s.file).sort();
    const wantSkipped = [...set.skipped_files].sort();
    if (JSON.stringify(skipped) !== JSON.stringify(wantSkipped)) problems.push(`skipped ${JSON.stringify(skipped)}, expected ${JSON.stringify(wantSkipped)}`);
  }
  if (problems.length) return fail(name, problems.slice(0, 4).join('; ') + (problems.length > 4 ? `; and ${problems.length - 4} more` : ''));
  return { name, status: 'pass', detail: `${set.entries.length} entries, ${texts} captions, ${scan.skipped.length} skipped` };
}

function resizeCase(json: DatasetJson, image: DatasetImage, tensors: Tensors): CaseResult {
  const name = `resize/${image.file}`;
  const refU8 = tensors.get(`resized_u8.${image.file}`);
  const refPixels = tensors.get(`pixels.${image.file}`);
  if (!refU8 && !refPixels) return skip(name, `no resized_u8.${image.file} or pixels.${image.file}`);
  const [width, height] = trainingSize(json, tensors, image.file)!;
  const rgb = trainingImage(image.image, width, height);
  const checks: Parameters<typeof combine>[1][number][] = [];
  let extra = '';
  if (json.training_size && (json.training_size[0] !== width || json.training_size[1] !== height)) {
    extra = `training_size ${JSON.stringify(json.training_size)} read as [width, height] disagrees with the recorded ${width}x${height}; `;
  }
  if (refU8) {
    const [h, w] = refU8.shape as [number, number];
    if (h !== height || w !== width) return fail(name, `resized_u8 is ${w}x${h}, pixels are ${width}x${height}`);
    const u8 = elementwiseClose(rgb.data, numeric(refU8), 0, 0);
    checks.push(['resized_u8', u8]);
    extra += `${u8.failing} of ${rgb.data.length} bytes differ`;
  }
  if (refPixels) checks.push(['pixels', elementwiseClose(pixelsFromRgb(rgb).data, numeric(refPixels), PIXEL_ATOL, 0)]);
  return combine(name, checks, extra);
}

function weightCase(key: string, shape: readonly number[], image: DatasetImage, tensors: Tensors): CaseResult {
  const name = `weight_${key}/${image.file}`;
  const ref = tensors.get(`weight_${key}.${image.file}`);
  if (!ref) return skip(name, `no weight_${key}.${image.file}`);
  const [channels, h, w] = shape as [number, number, number];
  const actual = lossWeightMap(image.image, h, w, channels);
  if (JSON.stringify(actual.shape) !== JSON.stringify(ref.shape)) return fail(name, `shape [${actual.shape.join(', ')}], expected [${ref.shape.join(', ')}]`);
  return combine(name, [['weight', scaledClose(actual.data, numeric(ref), WEIGHT_TOL)]]);
}

async function* latentCases(json: DatasetJson, images: readonly DatasetImage[], tensors: Tensors, trainingFolder: string): AsyncGenerator<CaseResult> {
  const wanted = images.filter((im) => tensors.has(`latent_deterministic.${im.file}`));
  if (!wanted.length) return;
  if (!json.model) {
    for (const im of wanted) yield skip(`latent/${im.file}`, 'fixture lacks model');
    return;
  }
  const sized = wanted.filter((im) => trainingSize(json, tensors, im.file));
  for (const im of wanted) if (!sized.includes(im)) yield skip(`latent/${im.file}`, 'fixture lacks training_size');
  if (!sized.length) return;
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-parity-dataset-'));
  let model: StableDiffusionModel | undefined;
  try {
    try {
      const checkpoint = await findCheckpoint(trainingFolder, json.model);
      const config = findModelConfig(checkpoint);
      model = await loadModel({ checkpoint, ...(config ? { config } : {}), cacheDir, threads: 1 });
    } catch (e) {
      for (const im of sized) yield fail(`latent/${im.file}`, `cannot load the model: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    for (const im of sized) {
      const [width, height] = trainingSize(json, tensors, im.file)!;
      const pixels = pixelsFromRgb(trainingImage(im.image, width, height));
      const { mean } = await model.vae.encode(float32([1, ...pixels.shape], pixels.data));
      // A1111 sets std = 0, so the sample is the mean; the scale is applied in float32.
      const scale = Math.fround(model.scaleFactor);
      const latent = mean.data.map((v) => Math.fround(scale * v));
      yield combine(`latent/${im.file}`, [['latent', scaledClose(latent, numeric(tensors.get(`latent_deterministic.${im.file}`)!), LATENT_TOL)]]);
    }
  } finally {
    await model?.release();
    await rm(cacheDir, { recursive: true, force: true });
  }
}

export const runGroup: TrainingGroup = async function* (groupFolder, trainingFolder) {
  const json = JSON.parse(await readFile(join(groupFolder, 'dataset.json'), 'utf8')) as DatasetJson;
  const tensors = (await readSafetensorsFile(join(groupFolder, 'dataset.safetensors'))).tensors;
  if (!json.images) {
    yield skip('dataset', 'dataset.json has no images');
    return;
  }
  const { files, problems } = folderFiles(json, tensors);
  if (problems.length) yield fail('folder', problems.join('; '));
  if (!json.option_sets) yield skip('captions', 'dataset.json has no option_sets');
  for (const [i, set] of (json.option_sets ?? []).entries()) {
    try {
      yield captionCase(json, set, i, files);
    } catch (e) {
      yield fail(`captions/${set.id ?? `#${i}`}`, e instanceof Error ? e.message : String(e));
    }
  }
  // Pixels do not depend on the caption options: one scan gives every decoded image.
  const images = scanDatasetFiles(files, { wordRegex: '' }).images;
  for (const image of images) yield resizeCase(json, image, tensors);
  if (!json.weight_latent_shapes) yield skip('weight', 'dataset.json has no weight_latent_shapes');
  for (const [key, shape] of Object.entries(json.weight_latent_shapes ?? {})) {
    for (const image of images) yield weightCase(key, shape, image, tensors);
  }
  yield* latentCases(json, images, tensors, trainingFolder);
};
