/**
 * What the pipeline needs of a loaded model and of the networks a job brings, as plain structural types: the
 * models and networks modules provide objects of these shapes; tests and the parity suite can too.
 */
import type { ModelUpscaler } from './upscalers.js';
import type { Float32Tensor } from '../tensor.js';
import type { ChunkEmbedding, EmbeddingLookup } from '../text/chunking.js';
import type { FragmentTokenizer } from '../text/chunking.js';

export interface PipelineTextEncoder {
  /** Width D of the conditioning. */
  readonly width: number;
  /** The clip skip the model was trained with: SD2 always encodes at 2 (penultimate layer), whatever the setting. */
  readonly defaultClipSkip?: number;
  /** Token rows are padded with after the first EOS (49407 = EOS for SD1: nothing changes; 0 for SD2). */
  readonly padTokenId: number;
  /** (vocab, D): token embeddings before position embeddings; TI vectors replace rows of their lookup. */
  readonly tokenEmbedding: Float32Tensor;
  /** inputs_embeds (N,77,D) -> (N,77,D) at clip skip N (1 = last layer). */
  encode(inputsEmbeds: Float32Tensor, clipSkip: number): Promise<Float32Tensor>;
}

import type { UNetVariant } from '../models/load.js';

/** A UNet compiled with an attention hook (hypernetworks), with the per-job weights as feeds. */
export type { UNetVariant };

export interface PipelineUNet {
  /** x (R,4,h,w) already scaled by c_in, t (R) continuous timesteps, context (R,T,D) -> eps (or v). */
  run(x: Float32Tensor, t: Float32Array, contextK: Float32Tensor, contextV?: Float32Tensor, variant?: UNetVariant): Promise<Float32Tensor>;
}

export interface PipelineVae {
  /** Latent in sampler space (1,4,h,w) -> image (1,3,8h,8w) in [-1,1] before clamping. */
  decode(latent: Float32Tensor): Promise<Float32Tensor>;
  /** Image (1,3,H,W) in [-1,1] -> the VAE posterior; a latent is scaleFactor * (mean + std * noise). */
  encode(image: Float32Tensor): Promise<{ mean: Float32Tensor; std: Float32Tensor }>;
}

export interface PipelineModel {
  readonly kind: 'sd1' | 'sd2';
  /** Checkpoint file stem: the infotext's `Model`. */
  readonly name: string;
  /** sha256 of the checkpoint file: `Model hash` is its first 10 hex. */
  readonly sha256: string;
  /** A separate VAE file in place of the checkpoint's: `VAE` (its file name) and `VAE hash` (10 hex). */
  readonly vaeFile?: { readonly name: string; readonly sha256: string };
  readonly parameterization: 'eps' | 'v';
  readonly alphasCumprod: Float32Array;
  /** 0.18215 for SD1/SD2. */
  readonly scaleFactor: number;
  readonly textEncoder: PipelineTextEncoder;
  readonly unet: PipelineUNet;
  readonly vae: PipelineVae;
  /** The CLIP tokenizer of this model's vocabulary. */
  readonly tokenizer: PipelineTokenizer;
  /**
   * An inpainting checkpoint (ldm's hybrid conditioning): the UNet takes 9 channels, the latent followed by the
   * 5-channel image conditioning (mask and masked-image latent).
   */
  readonly inpainting?: boolean;
  /** The same model with circular padding in every UNet and VAE convolution (A1111's `tiling`), if it has one. */
  withCircularPadding?(): PipelineModel;
}

/** A textual-inversion embedding as conditioning uses it. */
export interface ConditioningEmbedding extends ChunkEmbedding {
  /** (vectors, D): the vectors that replace the placeholder token rows. */
  readonly vec: Float32Tensor;
  /** First 12 hex of the file's sha256 (TI hashes); empty when unknown. */
  readonly shorthash: string;
}

/** The tokenizer facts chunking needs. */
export interface PipelineTokenizer extends FragmentTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly commaId: number | undefined;
}

/** Hypernetworks named in a prompt, resolved to what the UNet runs with. */
export interface HypernetworkProvider {
  /**
   * The UNet variant for the given (name, multiplier) list, or throws a typed error when a name is unknown.
   * Called once per job pass.
   */
  resolve(uses: ReadonlyArray<{ name: string; multiplier: number }>): Promise<UNetVariant | undefined>;
}

/** A model upscaler by its name (file stem), or undefined when the job has none of that name. */
export type UpscalerLookup = (name: string) => Promise<ModelUpscaler> | undefined;

/** What a job brings besides the model: embeddings, hypernetworks and upscaler models. */
export interface JobNetworks {
  readonly embeddings?: EmbeddingLookup<ConditioningEmbedding>;
  readonly hypernetworks?: HypernetworkProvider;
  readonly upscalers?: UpscalerLookup;
}
