/**
 * The full-size SD 1.5 model as the training objectives see it (`TrainableModel`): the real config, the DDPM
 * schedule roots, and seeded random weights for the UNet (the shapes in fullsize-models.json) and the SD1 text
 * encoder (CLIP ViT-L/14 text tower in HF CLIPTextModel layout). Weights are made when a graph builder asks
 * for one and not kept, so the builder's initializers are the only copy we hold. With the oracle present
 * (../shared/oracle/model/sd15-*.json) the config and the text encoder's key list are checked against it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../packages/core/parity/oracle.js';
import { DarkroomError } from '../../packages/core/src/errors.js';
import {
  inferModelConfig,
  inferText,
  overridesFromJson,
  SD1_TEXT_PREFIX,
  type ModelConfig,
  type TensorIndex,
  type TextEncoderConfig,
  type VaeConfig,
} from '../../packages/core/src/model-files/config.js';
import { computeAlphasCumprod64 } from '../../packages/core/src/models/schedule.js';
import type { Float32Tensor } from '../../packages/core/src/tensor.js';
import type { TrainableModel } from '../../packages/core/src/training/objective.js';
import { fullsizeSpec, RandomWeights, type FullsizeSpec } from './fullsize-model.js';

/** CLIP ViT-L/14's text tower, the SD1 conditioning model. */
const SD1_TEXT = { width: 768, layers: 12, intermediate: 3072, vocab: 49408, positions: 77 } as const;

/** The HF CLIPTextModel tensors of the SD1 text encoder (names without the checkpoint prefix). */
export function sd1TextTensors(): Array<[string, number[]]> {
  const { width: d, layers, intermediate, vocab, positions } = SD1_TEXT;
  const out: Array<[string, number[]]> = [
    ['embeddings.token_embedding.weight', [vocab, d]],
    ['embeddings.position_embedding.weight', [positions, d]],
  ];
  for (let i = 0; i < layers; i++) {
    const p = `encoder.layers.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      out.push([`${p}.self_attn.${proj}.weight`, [d, d]], [`${p}.self_attn.${proj}.bias`, [d]]);
    }
    for (const ln of ['layer_norm1', 'layer_norm2']) out.push([`${p}.${ln}.weight`, [d]], [`${p}.${ln}.bias`, [d]]);
    out.push([`${p}.mlp.fc1.weight`, [intermediate, d]], [`${p}.mlp.fc1.bias`, [intermediate]]);
    out.push([`${p}.mlp.fc2.weight`, [d, intermediate]], [`${p}.mlp.fc2.bias`, [d]]);
  }
  out.push(['final_layer_norm.weight', [d]], ['final_layer_norm.bias', [d]]);
  return out;
}

/** SD's KL-f8 autoencoder (v1-inference.yaml first_stage_config); the objectives never read it. */
const SD_VAE: VaeConfig = { inChannels: 3, outChannels: 3, ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 4, embedDim: 4, attnLevels: [] };

/** v1-inference.yaml's schedule, parameterization and latent scale (also inferModelConfig's defaults). */
const SD1_SCHEDULE = { linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000 };

function textConfig(tensors: ReadonlyArray<readonly [string, readonly number[]]>): TextEncoderConfig {
  const index: TensorIndex = new Map(tensors.map(([k, shape]) => [`${SD1_TEXT_PREFIX}${k}`, { dtype: 'float32', shape }]));
  const inferred = inferText(index, 'sd1');
  if (inferred.heads === undefined) throw new DarkroomError('BENCH_SPEC_STALE', `no known head count for text width ${inferred.width}`);
  return { ...inferred, heads: inferred.heads };
}

/** The oracle's config and text key list, when the oracle is at hand. */
function oracleFacts(): { config: ModelConfig; text: Array<[string, number[]]> } | undefined {
  const folder = join(oracleRoot(), 'model');
  const keysFile = join(folder, 'sd15-keys.json');
  const configFile = join(folder, 'sd15-config.json');
  if (!existsSync(keysFile) || !existsSync(configFile)) return undefined;
  const keys = JSON.parse(readFileSync(keysFile, 'utf8')) as { keys: Record<string, { shape: number[] }> };
  const index: TensorIndex = new Map(Object.entries(keys.keys).map(([k, v]) => [k, { dtype: 'float32', shape: v.shape }]));
  const config = inferModelConfig(index, overridesFromJson(JSON.parse(readFileSync(configFile, 'utf8'))));
  const text = [...index]
    .filter(([k]) => k.startsWith(SD1_TEXT_PREFIX))
    .map(([k, v]): [string, number[]] => [k.slice(SD1_TEXT_PREFIX.length), [...v.shape]])
    // A buffer (position ids 0..76), not a weight: the graph builds its positions itself.
    .filter(([k]) => k !== 'embeddings.position_ids');
  return { config, text };
}

/**
 * A `Map` (what `TrainableModel.readWeights` returns) whose values are generated on each read and never stored:
 * a graph build reads each weight once and keeps its own (often transposed) copy.
 */
class GeneratedWeights extends Map<string, Float32Tensor> {
  constructor(private readonly source: RandomWeights) {
    super();
  }

  override get size(): number {
    return this.source.size;
  }

  override has(name: string): boolean {
    return this.source.has(name);
  }

  override get(name: string): Float32Tensor | undefined {
    return this.source.get(name);
  }

  override keys(): MapIterator<string> {
    return this.source.keys();
  }

  override entries(): MapIterator<[string, Float32Tensor]> {
    return this.source.entries();
  }

  override values(): MapIterator<Float32Tensor> {
    return this.source.values();
  }

  override [Symbol.iterator](): MapIterator<[string, Float32Tensor]> {
    return this.source.entries();
  }

  override forEach(fn: (value: Float32Tensor, key: string, map: Map<string, Float32Tensor>) => void): void {
    for (const [k, v] of this.source.entries()) fn(v, k, this);
  }
}

export interface FullsizeTrainable {
  readonly model: TrainableModel;
  readonly unet: FullsizeSpec;
  /** Parameters of each component that the training graphs read (the token embedding table is looked up on the host). */
  readonly unetParameters: number;
  readonly textParameters: number;
  readonly checkedAgainst: 'oracle' | 'shipped copy only';
}

export function fullsizeSd15Trainable(seed = 1): FullsizeTrainable {
  const unet = fullsizeSpec('sd15');
  const text = sd1TextTensors();
  const config: ModelConfig = {
    kind: 'sd1',
    parameterization: 'eps',
    scaleFactor: 0.18215,
    schedule: SD1_SCHEDULE,
    unet: unet.unet,
    vae: SD_VAE,
    text: textConfig(text),
  };
  const oracle = oracleFacts();
  if (oracle) {
    const sorted = (xs: Array<[string, number[]]>): string => JSON.stringify([...xs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    if (JSON.stringify(oracle.config) !== JSON.stringify(config) || sorted(oracle.text) !== sorted(text)) {
      throw new DarkroomError('BENCH_SPEC_STALE', "the bench's SD 1.5 config or text encoder key list disagrees with the oracle's sd15 files", {
        oracle: oracle.config,
        ours: config,
      });
    }
  }
  const acp = computeAlphasCumprod64(config.schedule);
  const count = (xs: ReadonlyArray<readonly [string, readonly number[]]>): number => xs.reduce((s, [, sh]) => s + sh.reduce((a, d) => a * d, 1), 0);
  const model: TrainableModel = {
    config,
    parameterization: config.parameterization,
    // ldm registers both roots from the float64 schedule and stores them as float32 (see models/load.ts).
    sqrtAlphasCumprod: Float32Array.from(acp, (a) => Math.sqrt(a)),
    sqrtOneMinusAlphasCumprod: Float32Array.from(acp, (a) => Math.sqrt(1 - a)),
    async readWeights(component) {
      return new GeneratedWeights(component === 'text' ? new RandomWeights(text, seed + 1) : new RandomWeights(unet.tensors, seed));
    },
  };
  return {
    model,
    unet,
    unetParameters: unet.parameters,
    textParameters: count(text.filter(([k]) => k !== 'embeddings.token_embedding.weight')),
    checkedAgainst: oracle ? 'oracle' : 'shipped copy only',
  };
}
