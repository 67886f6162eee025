/**
 * Stable Diffusion 1.x / 2.x models built as ONNX graphs from A1111 single-file checkpoints.
 *
 * ```ts
 * const model = await loadModel({ checkpoint: 'models/v1-5-pruned-emaonly.safetensors', cacheDir: '.darkroom/cache' });
 * // text: token ids -> embeddings on the host (TI vectors spliced here), then the transformer
 * const embeds = lookupRows(model.textEncoder.tokenEmbedding, ids);          // (N, 77, D)
 * const cond = await model.textEncoder.encode(embeds, clipSkip);           // (N, 77, D)
 * // denoiser: eps (or v, see model.parameterization) at float timesteps
 * const eps = await model.unet.run(x, t, cond);                            // x (B,4,H,W), t Float32Array(B)
 * // VAE: latents in the sampler's space (no manual 1/0.18215)
 * const image = await model.vae.decode(latent);                            // (B,3,8H,8W), unclamped
 * const { mean, std } = await model.vae.encode(image);                     // latent = scaleFactor*(mean+std*noise)
 * await model.release();
 * ```
 *
 * Contract details:
 * - `textEncoder.encode(embeds, clipSkip)` = final LayerNorm of `hidden_states[-clipSkip]`; 1 = last layer.
 *   SD2 was trained on clip skip 2 (`defaultClipSkip`), which A1111 always uses for SD2.
 * - `unet.run(x, t, contextK, contextV?)`: `contextV` defaults to `contextK`; they are the k and v sources of
 *   every cross-attention. `variant` compiles (once per `variant.key`) a UNet whose attentions pass their k/v
 *   sources through `variant.attentionContext` (hypernetworks; see `AttentionContextHook` in unet.ts), with
 *   per-job tensors supplied as `variant.feeds`.
 * - Graphs have static shapes: each new (batch, size, context length, variant) compiles once, is cached on
 *   disk under `cacheDir` keyed by the checkpoint sha256, and reused by later loads.
 * - `fp16` / `fusedAttention` make GPU-oriented graphs; the default float32 plain graph is the reference.
 * - `attention` (auto | plain | split | subquad | fused, or A1111's flag names) picks how the UNet and VAE
 *   attentions are built: split and sub-quadratic chunks never hold a whole score matrix, `auto` keeps the plain
 *   reference wherever its scores fit `attentionChunkBytes` (CPU) and uses the fused kernel above that (and on
 *   GPUs). Same pixels within float rounding; part of the compile-cache key.
 * - `vaeTiling`: decode/encode large images in overlapping blended tiles (auto above 1024x1024 pixels).
 * - Config: inferred from tensor shapes; an explicit `config` (JSON or ldm yaml) or a `<checkpoint>.yaml` beside
 *   the checkpoint adds what shapes cannot say (non-standard head layouts, v parameterization).
 * - Errors: MODEL_UNSUPPORTED (SDXL and other families, unknown files), MODEL_CONFIG_REQUIRED (non-standard
 *   model without a config), MODEL_CONFIG_MISMATCH, MODEL_BAD_INPUT.
 */
export {
  loadModel,
  detectVParameterization,
  type LoadModelOptions,
  type StableDiffusionModel,
  type TextEncoder,
  type UNet,
  type UNetVariant,
  type Vae,
} from './load.js';
export type { Provider } from '../runtime/session.js';
export {
  attentionHeads,
  inferModelConfig,
  overridesFromJson,
  type ConfigOverrides,
  type ModelConfig,
  type ModelKind,
  type Parameterization,
  type TensorIndex,
  type TextEncoderConfig,
  type UNetConfig,
  type VaeConfig,
} from '../model-files/config.js';
export { openCheckpoint, normalizeKeys, withVae, readComponent, readFloat32, checkpointFromTensors, sha256File, type CheckpointSource } from '../model-files/checkpoint.js';
export { CompileCache, DEFAULT_CACHE_DIR, type GraphKey } from './cache.js';
export { computeAlphasCumprod } from './schedule.js';
export { parseYaml, type YamlValue } from '../model-files/yaml.js';
export { buildUNet, type AttentionContextHook, type AttentionSite, type UNetBuildOptions, type UNetGraph } from './unet.js';
export { buildTextEncoder, textOutputName, type TextBuildOptions, type TextGraph } from './clip.js';
export { buildVaeDecoder, buildVaeEncoder, type VaeBuildOptions } from './vae.js';
export { textEncoderModel, unetBuilder, unetModel, vaeDecoderModel, vaeEncoderModel, type Weights } from './graphs.js';
export type { ComputeDType } from './layers.js';
export {
  ATTENTION_MODES,
  DEFAULT_ATTENTION_CHUNK_BYTES,
  attentionBuild,
  parseAttentionMode,
  type AttentionBuild,
  type AttentionForm,
  type AttentionMode,
} from '../planning/attention.js';
export { DEFAULT_VAE_TILING, vaeTiling, type VaeTiling, type VaeTilingMode, type VaeTilingOption } from '../planning/vae-tiles.js';

import type { Float32Tensor } from '../tensor.js';

/** Rows of the token embedding matrix for token ids (N,77) -> (N,77,D): the input of `textEncoder.encode`. */
export function lookupRows(table: Float32Tensor, ids: ArrayLike<number>, shape: readonly number[]): Float32Tensor {
  const d = table.shape[1]!;
  const out = new Float32Array(ids.length * d);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= table.shape[0]!) throw new RangeError(`token id ${id} outside the vocabulary`);
    out.set(table.data.subarray(id * d, (id + 1) * d), i * d);
  }
  return { dtype: 'float32', shape: [...shape, d], data: out };
}
