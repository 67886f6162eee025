/**
 * The ldm AutoencoderKL (model.py Encoder/Decoder) as two graphs.
 *
 * Decoder input `latent (B,z,h,w)` is in the **sampler's space**: the graph multiplies by 1/scale_factor
 * (float32, as A1111's `decode_first_stage`) before post_quant_conv, so callers never rescale. Output
 * `image (B,3,8h,8w)` is not clamped (roughly [-1,1]). The scaled `z` is returned too.
 *
 * Encoder input `image (B,3,H,W)` in [-1,1]. Outputs: `mean`, `std` (from logvar clamped to [-30,20]) of the
 * diagonal Gaussian, plus `moments` (quant_conv output) and the clamped `logvar`. The caller
 * draws `latent = scale_factor * (mean + std * noise)` with its own noise source.
 *
 * GroupNorm(32) eps 1e-6 everywhere; downsampling pads (0,1,0,1) then convolves 3x3 stride 2 unpadded; the
 * mid-block attention is single-head over all pixels with 1x1 convs and scale C^-0.5.
 */
import type { GraphBuilder, Value } from '../graph/builder.js';
import type { Float32Tensor } from '../tensor.js';
import type { VaeConfig } from '../model-files/config.js';
import type { AttentionBuild } from '../planning/attention.js';
import { conv2d, groupNorm, ModuleWeights, multiHeadAttention, type AttentionOptions, type ComputeDType } from './layers.js';

const EPS = 1e-6;

export interface VaeBuildOptions {
  readonly batch: number;
  /** Image height/width for the encoder, latent height/width for the decoder. */
  readonly height: number;
  readonly width: number;
  readonly scaleFactor: number;
  readonly dtype?: ComputeDType;
  /** com.microsoft MultiHeadAttention for the mid-block attention. */
  readonly fusedAttention?: boolean;
  /** The attention form by layer size (plain, split, sub-quadratic, fused); overrides `fusedAttention`. */
  readonly attention?: AttentionBuild;
  /**
   * Circular padding in every padded convolution (A1111's `tiling`). The encoder's downsampling pads (0,1,0,1)
   * with zeros itself and convolves unpadded, so it stays as it is, as in A1111.
   */
  readonly circularPadding?: boolean;
}

/** The attention options of a VAE build: A1111 applies its attention optimizations to the VAE's AttnBlock too. */
function attentionOf(opts: VaeBuildOptions): AttentionOptions {
  return { scaleAt: 'scores', fused: opts.fusedAttention ?? false, ...(opts.attention ? { attention: opts.attention } : {}) };
}

function resnetBlock(w: ModuleWeights, x: Value, name: string): Value {
  const b = w.b;
  let h = conv2d(w, b.silu(groupNorm(w, x, `${name}.norm1`, EPS)), `${name}.conv1`, { pad: 1 });
  h = conv2d(w, b.silu(groupNorm(w, h, `${name}.norm2`, EPS)), `${name}.conv2`, { pad: 1 });
  const skip = w.has(`${name}.nin_shortcut.weight`) ? conv2d(w, x, `${name}.nin_shortcut`) : x;
  return b.add(skip, h);
}

function attnBlock(w: ModuleWeights, x: Value, name: string, attention: AttentionOptions): Value {
  const b = w.b;
  const [n, c, hh, ww] = x.shape as [number, number, number, number];
  const h = groupNorm(w, x, `${name}.norm`, EPS);
  const tokens = (v: Value): Value => b.transpose(b.reshape(v, [n, c, hh * ww]), [0, 2, 1]);
  const q = tokens(conv2d(w, h, `${name}.q`));
  const k = tokens(conv2d(w, h, `${name}.k`));
  const v = tokens(conv2d(w, h, `${name}.v`));
  const out = multiHeadAttention(b, q, k, v, 1, attention);
  const back = b.reshape(b.transpose(out, [0, 2, 1]), [n, c, hh, ww]);
  return b.add(x, conv2d(w, back, `${name}.proj_out`));
}

function midBlock(w: ModuleWeights, h: Value, prefix: string, attention: AttentionOptions): Value {
  h = resnetBlock(w, h, `${prefix}.mid.block_1`);
  h = attnBlock(w, h, `${prefix}.mid.attn_1`, attention);
  return resnetBlock(w, h, `${prefix}.mid.block_2`);
}

export function buildVaeDecoder(
  b: GraphBuilder,
  weights: ReadonlyMap<string, Float32Tensor>,
  cfg: VaeConfig,
  opts: VaeBuildOptions,
): { latent: Value; z: Value; image: Value; unusedWeights: readonly string[] } {
  const dtype = opts.dtype ?? 'float32';
  const w = new ModuleWeights(b, weights, 'vae.', dtype, opts.circularPadding ? 'circular' : 'zeros');
  const latent = b.input('latent', 'float32', [opts.batch, cfg.embedDim, opts.height, opts.width]);
  const z = b.mul(latent, Math.fround(1 / opts.scaleFactor));
  let h = conv2d(w, b.cast(z, dtype), 'post_quant_conv');
  h = conv2d(w, h, 'decoder.conv_in', { pad: 1 });
  h = midBlock(w, h, 'decoder', attentionOf(opts));
  for (let level = cfg.chMult.length - 1; level >= 0; level--) {
    for (let i = 0; i <= cfg.numResBlocks; i++) {
      h = resnetBlock(w, h, `decoder.up.${level}.block.${i}`);
      if (cfg.attnLevels.includes(level)) h = attnBlock(w, h, `decoder.up.${level}.attn.${i}`, attentionOf(opts));
    }
    if (level !== 0) h = conv2d(w, b.resizeNearest(h, 2), `decoder.up.${level}.upsample.conv`, { pad: 1 });
  }
  h = conv2d(w, b.silu(groupNorm(w, h, 'decoder.norm_out', EPS)), 'decoder.conv_out', { pad: 1 });
  return { latent, z, image: b.cast(h, 'float32'), unusedWeights: w.unused() };
}

export function buildVaeEncoder(
  b: GraphBuilder,
  weights: ReadonlyMap<string, Float32Tensor>,
  cfg: VaeConfig,
  opts: VaeBuildOptions,
): { image: Value; moments: Value; mean: Value; logvar: Value; std: Value; unusedWeights: readonly string[] } {
  const dtype = opts.dtype ?? 'float32';
  const w = new ModuleWeights(b, weights, 'vae.', dtype, opts.circularPadding ? 'circular' : 'zeros');
  const image = b.input('image', 'float32', [opts.batch, cfg.inChannels, opts.height, opts.width]);
  let h = conv2d(w, b.cast(image, dtype), 'encoder.conv_in', { pad: 1 });
  for (let level = 0; level < cfg.chMult.length; level++) {
    for (let i = 0; i < cfg.numResBlocks; i++) {
      h = resnetBlock(w, h, `encoder.down.${level}.block.${i}`);
      if (cfg.attnLevels.includes(level)) h = attnBlock(w, h, `encoder.down.${level}.attn.${i}`, attentionOf(opts));
    }
    if (level !== cfg.chMult.length - 1) {
      h = conv2d(w, b.pad(h, [0, 0, 0, 0, 0, 0, 1, 1]), `encoder.down.${level}.downsample.conv`, { stride: 2 });
    }
  }
  h = midBlock(w, h, 'encoder', attentionOf(opts));
  h = conv2d(w, b.silu(groupNorm(w, h, 'encoder.norm_out', EPS)), 'encoder.conv_out', { pad: 1 });
  const moments = b.cast(conv2d(w, h, 'quant_conv'), 'float32');
  const e = cfg.embedDim;
  const [mean, rawLogvar] = b.split(moments, [e, e], 1) as [Value, Value];
  const logvar = b.min(b.max(rawLogvar, -30), 20);
  const std = b.exp(b.mul(logvar, 0.5));
  return { image, moments, mean, logvar, std, unusedWeights: w.unused() };
}
