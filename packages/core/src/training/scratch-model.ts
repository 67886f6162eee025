/**
 * A small SD1-shaped model to be trained from scratch on the procedural scenes: its architecture, random initial
 * weights (the demo model's initialisation), the config and vocabulary files the Engine loads beside a
 * checkpoint, and the checkpoint writer.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../atomic-write.js';
import { writeSafetensors } from '../formats/safetensors.js';
import { inferModelConfig, overridesFromJson, type ModelConfig, type Parameterization } from '../model-files/config.js';
import { checkpointCompanions, writeVocabularyFolder } from '../pipeline/checkpoint-files.js';
import { demoModelConfig, initialCheckpointTensors, type TinyArchitecture } from '../pipeline/demo-model.js';
import { buildDemoVocabulary, type BpeVocabulary } from '../text/bpe-vocab.js';
import { ClipTokenizer } from '../text/tokenizer.js';
import type { Float32Tensor, HostTensor } from '../tensor.js';
import { toHalf } from '../models/layers.js';
import { captionWords } from './scenes/captions.js';
import { COMPONENTS } from './whole-model.js';

/**
 * The smallest model the graphs allow: unit tests on 16x16 images. GroupNorm(32) needs 32 channels, and the UNet's
 * res blocks need 64: with one channel per group the norm right after the timestep embedding is added removes it
 * (a per-channel constant), so the model could not know the timestep (ldm needs channel_mult[0] = 1). The VAE has
 * four levels (three downsamplings) because the pipeline, as A1111, takes latents to be an eighth of the image.
 */
export const MICRO_ARCHITECTURE: TinyArchitecture = {
  unet: { inChannels: 4, outChannels: 4, channels: 64, mult: [1], resBlocks: 1, attention: [1], heads: 2, context: 32 },
  vae: { ch: 32, mult: [1, 1, 1, 1], resBlocks: 1, z: 4, embed: 4, inChannels: 3, outChannels: 3 },
  text: { width: 32, layers: 1, heads: 2, intermediate: 64, positions: 77 },
};

/**
 * The scene model: 64x64 images to 8x8x4 latents, a two-level UNet of 64 and 128 channels with attention at both,
 * a two-layer text encoder. Sized so that its training fits about an hour on two CPU cores. The VAE's blocks have
 * 64 channels from the first level on: with 32 (the demo model's [1, 2, 2, 2]) the decoder's last GroupNorm(32)
 * normalises each channel on its own, which takes every image's mean colour out of the features, and the
 * autoencoder does not learn (L1 stays at 0.6 over 50 steps where [2, 2, 2, 2] reaches 0.43).
 */
export const SCENE_ARCHITECTURE: TinyArchitecture = {
  unet: { inChannels: 4, outChannels: 4, channels: 64, mult: [1, 2], resBlocks: 1, attention: [1, 2], heads: 4, context: 32 },
  vae: { ch: 32, mult: [2, 2, 2, 2], resBlocks: 1, z: 4, embed: 4, inChannels: 3, outChannels: 3 },
  text: { width: 32, layers: 2, heads: 4, intermediate: 64, positions: 77 },
};

/** The demo vocabulary with every caption word a single token. */
export function sceneVocabulary(): BpeVocabulary {
  return buildDemoVocabulary(captionWords());
}

export interface ScratchModel {
  readonly tensors: Map<string, HostTensor>;
  /** The JSON written beside the checkpoint. */
  readonly configJson: object;
  readonly config: ModelConfig;
  readonly vocabulary: BpeVocabulary;
  readonly tokenizer: ClipTokenizer;
}

/** The config of `arch` with `scaleFactor`, read back the way the Engine reads a checkpoint and its JSON. */
export function scratchConfig(
  tensors: ReadonlyMap<string, HostTensor>,
  arch: TinyArchitecture,
  vocabSize: number,
  scaleFactor: number,
  parameterization: Parameterization = 'eps',
): { json: object; config: ModelConfig } {
  const json = demoModelConfig(vocabSize, arch, scaleFactor, parameterization);
  const index = new Map([...tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]));
  return { json, config: inferModelConfig(index, overridesFromJson(json)) };
}

/** A randomly initialised model of `arch` (deterministic from `seed`) with the scene vocabulary. */
export function newScratchModel(arch: TinyArchitecture, seed: number, scaleFactor = 1): ScratchModel {
  const vocabulary = sceneVocabulary();
  const tokenizer = new ClipTokenizer(vocabulary);
  const tensors = initialCheckpointTensors(tokenizer.vocabSize, arch, { text: seed, unet: seed + 1, vae: seed + 2 });
  const { json, config } = scratchConfig(tensors, arch, tokenizer.vocabSize, scaleFactor);
  return { tensors, configJson: json, config, vocabulary, tokenizer };
}

/**
 * The checkpoint's float32 weights as float16, as A1111's half-precision checkpoints store them (half the file; the
 * Engine widens them back on load). Buffers outside the three models (the DDPM `alphas_cumprod`) and integer
 * tensors stay as they are, so the schedule sampling reads is the one training used.
 */
export function halfPrecisionWeights(tensors: ReadonlyMap<string, HostTensor>): Map<string, HostTensor> {
  const models = [COMPONENTS.unet.checkpoint, COMPONENTS.vae.checkpoint, 'cond_stage_model.'];
  return new Map(
    [...tensors].map(([k, t]) => [k, t.dtype === 'float32' && models.some((m) => k.startsWith(m)) ? toHalf(t as Float32Tensor) : t]),
  );
}

/**
 * `<dir>/<name>.safetensors` (A1111 layout), `<name>.json` and `<name>.vocab/`: what the Engine loads as
 * `--model <dir>/<name>.safetensors`. Returns the checkpoint's path.
 */
export async function writeScratchCheckpoint(
  dir: string,
  name: string,
  tensors: ReadonlyMap<string, HostTensor>,
  configJson: object,
  vocabulary: BpeVocabulary,
  metadata: Record<string, string> = {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const checkpoint = join(dir, `${name}.safetensors`);
  const companions = checkpointCompanions(checkpoint);
  // Atomic: a snapshot rewritten while a long run is stopped is either the old file or the new one.
  await writeFileAtomically(checkpoint, writeSafetensors(tensors, { format: 'pt', ...metadata }));
  await writeFileAtomically(companions.config, `${JSON.stringify(configJson, null, 1)}\n`);
  await writeVocabularyFolder(companions.vocabulary, vocabulary);
  return checkpoint;
}
