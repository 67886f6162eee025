/**
 * One function per component that turns weights and build options into a serialized model, with the graph
 * input/output names everyone else relies on. `loadModel` caches what these return; parity checks call them
 * directly for the diagnostic outputs.
 */
import { DarkroomError } from '../errors.js';
import { GraphBuilder } from '../graph/builder.js';
import type { BuiltModel } from '../graph/ir.js';
import type { Float32Tensor } from '../tensor.js';
import type { AttentionBuild } from '../planning/attention.js';
import type { TextEncoderConfig, UNetConfig, VaeConfig } from '../model-files/config.js';
import { buildTextEncoder, hiddenOutputName, textOutputName } from './clip.js';
import type { ComputeDType } from './layers.js';
import { buildUNet, type AttentionContextHook } from './unet.js';
import { buildVaeDecoder, buildVaeEncoder } from './vae.js';

export type Weights = ReadonlyMap<string, Float32Tensor>;

export interface SerializeOptions {
  /** Initializers above this many bytes go to external data files (default: only past the 2 GB protobuf limit). */
  readonly externalDataAboveBytes?: number;
}

function serialize(b: GraphBuilder, opts: SerializeOptions): BuiltModel {
  return b.toModel(opts.externalDataAboveBytes !== undefined ? { externalDataAboveBytes: opts.externalDataAboveBytes } : {});
}

export interface TextGraphOptions extends SerializeOptions {
  readonly batch: number;
  readonly dtype?: ComputeDType;
  readonly exposeHidden?: boolean;
}

/** Input `inputs_embeds`; outputs `skip_1..skip_{layers+1}` (+ `hidden_0..hidden_L`). */
export function textEncoderModel(weights: Weights, cfg: TextEncoderConfig, opts: TextGraphOptions): BuiltModel {
  return serialize(textEncoderBuilder(weights, cfg, opts), opts);
}

/** The text encoder's graph before serialization (the loader times the two apart). */
export function textEncoderBuilder(weights: Weights, cfg: TextEncoderConfig, opts: TextGraphOptions): GraphBuilder {
  const b = new GraphBuilder('text_encoder');
  const g = buildTextEncoder(b, weights, cfg, opts);
  g.skips.forEach((v, i) => b.output(v, textOutputName(i + 1)));
  if (opts.exposeHidden) g.hidden.forEach((v, i) => b.output(v, hiddenOutputName(i)));
  return b;
}

export interface UNetGraphOptions extends SerializeOptions {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly contextLength: number;
  readonly dtype?: ComputeDType;
  readonly fusedAttention?: boolean;
  /** Plain, split, sub-quadratic or fused attention by layer size; overrides `fusedAttention`. */
  readonly attention?: AttentionBuild;
  /** Feed-forwards run in token chunks whose hidden activations stay within this (same values). */
  readonly feedForwardChunkBytes?: number;
  readonly exposeEmbeddings?: boolean;
  readonly attentionContext?: AttentionContextHook;
  /** Circular padding in every padded convolution (A1111's `tiling`). */
  readonly circularPadding?: boolean;
}

/** Inputs `x`, `t`, `context_k`, `context_v` (+ whatever the hook adds); output `out` (+ `t_emb`, `emb`). */
export function unetModel(weights: Weights, cfg: UNetConfig, opts: UNetGraphOptions): BuiltModel {
  return serialize(unetBuilder(weights, cfg, opts), opts);
}

/** The UNet graph before serialization, for callers that add to it (training losses, gradients). */
export function unetBuilder(weights: Weights, cfg: UNetConfig, opts: UNetGraphOptions): GraphBuilder {
  const b = new GraphBuilder('unet');
  const g = buildUNet(b, weights, cfg, opts);
  if (g.unusedWeights.length) {
    // Weights the config has no place for: the graph would silently compute another network.
    throw new DarkroomError(
      'MODEL_CONFIG_MISMATCH',
      `the UNet config leaves ${g.unusedWeights.length} checkpoint tensors unused (e.g. ${g.unusedWeights.slice(0, 3).join(', ')})`,
      { unused: g.unusedWeights.slice(0, 20) },
    );
  }
  b.output(g.out, 'out');
  if (opts.exposeEmbeddings) {
    b.output(g.tEmb, 't_emb');
    b.output(g.emb, 'emb');
  }
  return b;
}

export interface VaeGraphOptions extends SerializeOptions {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly scaleFactor: number;
  readonly dtype?: ComputeDType;
  readonly fusedAttention?: boolean;
  /** Plain, split, sub-quadratic or fused attention by layer size; overrides `fusedAttention`. */
  readonly attention?: AttentionBuild;
  readonly expose?: boolean;
  /** Circular padding in every padded convolution (A1111's `tiling`). */
  readonly circularPadding?: boolean;
}

/** Input `latent` (sampler space); output `image` (+ `z`). */
export function vaeDecoderModel(weights: Weights, cfg: VaeConfig, opts: VaeGraphOptions): BuiltModel {
  return serialize(vaeDecoderBuilder(weights, cfg, opts), opts);
}

/** The VAE decoder's graph before serialization. */
export function vaeDecoderBuilder(weights: Weights, cfg: VaeConfig, opts: VaeGraphOptions): GraphBuilder {
  const b = new GraphBuilder('vae_decoder');
  const g = buildVaeDecoder(b, weights, cfg, opts);
  b.output(g.image, 'image');
  if (opts.expose) b.output(g.z, 'z');
  return b;
}

/** Input `image` in [-1,1]; outputs `mean`, `std` (+ `moments`, `logvar`). */
export function vaeEncoderModel(weights: Weights, cfg: VaeConfig, opts: VaeGraphOptions): BuiltModel {
  return serialize(vaeEncoderBuilder(weights, cfg, opts), opts);
}

/** The VAE encoder's graph before serialization. */
export function vaeEncoderBuilder(weights: Weights, cfg: VaeConfig, opts: VaeGraphOptions): GraphBuilder {
  const b = new GraphBuilder('vae_encoder');
  const g = buildVaeEncoder(b, weights, cfg, opts);
  b.output(g.mean, 'mean');
  b.output(g.std, 'std');
  if (opts.expose) {
    b.output(g.moments, 'moments');
    b.output(g.logvar, 'logvar');
  }
  return b;
}
