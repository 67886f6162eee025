/**
 * The ldm UNetModel (openaimodel.py) of SD1.x / SD2.x as a graph.
 *
 * Inputs: `x (B,Cin,H,W)`, `t (B,)` float32 (continuous timesteps allowed), `context_k` and `context_v`
 * (B,L,Dc): the sources of every cross-attention's k and v, separate so that hypernetworks and training can
 * treat them apart (the plain model is fed the same tensor twice). Output: `out (B,Cout,H,W)`.
 *
 * Semantics follow the model oracle README: timestep embedding [cos, sin] with max period 10000, ResBlocks
 * without scale-shift norm, GroupNorm(32) eps 1e-5 in ResBlocks and `out`, 1e-6 in SpatialTransformers,
 * LayerNorm 1e-5, GEGLU with exact GELU, skip concatenation `cat([h, skip])`, nearest x2 upsampling.
 */
import type { GraphBuilder, Value } from '../graph/builder.js';
import { hostTensor } from '../graph/builder.js';
import { evenChunks } from '../planning/attention-plan.js';
import type { Float32Tensor } from '../tensor.js';
import type { AttentionBuild } from '../planning/attention.js';
import { attentionHeads, type UNetConfig } from '../model-files/config.js';
import {
  conv2d,
  groupNorm,
  layerNorm,
  linear,
  ModuleWeights,
  multiHeadAttention,
  squeezeConv1x1,
  transpose2d,
  type ComputeDType,
} from './layers.js';

/** Where an attention layer sits, for hooks that treat layers differently. */
export interface AttentionSite {
  /** Module path of the attention, e.g. 'input_blocks.1.1.transformer_blocks.0.attn2'. */
  readonly block: string;
  readonly kind: 'self' | 'cross';
}

/**
 * Replaces the k and v sources of an attention before `to_k` / `to_v` (A1111 hypernetworks). Called for every
 * attention of the UNet: for self-attention both sources are the normed hidden states (B, HW, C) and `width`
 * is C; for cross-attention they are `context_k` / `context_v` and `width` is the context width. Return the
 * sources unchanged to leave a layer alone. The hook may add graph inputs (e.g. MLP weights) to `b`.
 */
export type AttentionContextHook = (
  b: GraphBuilder,
  sources: { readonly k: Value; readonly v: Value },
  width: number,
  site: AttentionSite,
) => { k: Value; v: Value };

export interface UNetBuildOptions {
  readonly batch: number;
  /** Circular padding in every padded convolution (A1111's `tiling`). */
  readonly circularPadding?: boolean;
  readonly height: number;
  readonly width: number;
  /** Tokens of the conditioning (77 per prompt chunk). */
  readonly contextLength: number;
  readonly dtype?: ComputeDType;
  /** com.microsoft MultiHeadAttention instead of the plain MatMul/Softmax form. */
  readonly fusedAttention?: boolean;
  /** The attention form by layer size (plain, split, sub-quadratic, fused); overrides `fusedAttention`. */
  readonly attention?: AttentionBuild;
  /**
   * Bytes the feed-forward's hidden activations may take at once: above it the tokens go through the
   * feed-forward in chunks (same values). Default: no chunking.
   */
  readonly feedForwardChunkBytes?: number;
  readonly attentionContext?: AttentionContextHook;
  /** Adds `t_emb` and `emb` outputs (parity checks). */
  readonly exposeEmbeddings?: boolean;
  /**
   * Values computed earlier in the same graph to use as `context_k` / `context_v` instead of declaring them
   * as inputs (text encoder and UNet in one training graph).
   */
  readonly context?: { readonly k: Value; readonly v: Value };
}

export interface UNetGraph {
  readonly x: Value;
  readonly t: Value;
  readonly contextK: Value;
  readonly contextV: Value;
  readonly out: Value;
  readonly tEmb: Value;
  readonly emb: Value;
  /** Checkpoint tensors the graph never read: non-empty means the config does not describe these weights. */
  readonly unusedWeights: readonly string[];
}

const RES_EPS = 1e-5;
const TRANSFORMER_GN_EPS = 1e-6;
const LN_EPS = 1e-5;

/** freqs = exp(-ln(10000) * arange(half) / half), each step rounded to float32 as torch computes it. */
function timestepFrequencies(half: number): Float32Tensor {
  const data = new Float32Array(half);
  const f = Math.fround;
  const c = f(-Math.log(10000));
  for (let i = 0; i < half; i++) data[i] = f(Math.exp(f(f(c * i) / half)));
  return { dtype: 'float32', shape: [1, half], data };
}

function timestepEmbedding(b: GraphBuilder, t: Value, channels: number): Value {
  const half = Math.floor(channels / 2);
  const freqs = b.constant(timestepFrequencies(half));
  const args = b.mul(b.unsqueeze(t, [1]), freqs);
  const cos = b.op('Cos', [args], {}, { outputInfo: [{ dtype: 'float32', shape: args.shape }] })[0]!;
  const sin = b.op('Sin', [args], {}, { outputInfo: [{ dtype: 'float32', shape: args.shape }] })[0]!;
  let emb = b.concat([cos, sin], 1);
  if (channels % 2) emb = b.concat([emb, b.constant(hostTensor('float32', [t.shape[0]!, 1], new Array<number>(t.shape[0]!).fill(0)))], 1);
  return emb;
}

const DTYPE_BYTES: Record<ComputeDType, number> = { float32: 4, float16: 2 };

/**
 * Token chunks for a feed-forward of `hidden` projected features over x (B, T, C): as few as keep the projection
 * and its two GEGLU halves (twice the projection) within `chunkBytes`.
 */
function feedForwardChunks(x: Value, hidden: number, chunkBytes: number | undefined): number[] {
  const [batch, tokens] = x.shape as [number, number];
  if (chunkBytes === undefined) return [tokens];
  const live = 2 * batch * tokens * hidden * DTYPE_BYTES[x.dtype === 'float16' ? 'float16' : 'float32'];
  return evenChunks(tokens, Math.ceil(live / chunkBytes));
}

/**
 * torch's F.interpolate(x, size, mode='nearest') over one axis: source index floor(i * in/out), the scale in
 * float32 as torch computes it, clamped to the last index.
 */
function nearestIndices(from: number, to: number): number[] {
  const scale = Math.fround(from / to);
  return Array.from({ length: to }, (_, i) => Math.min(Math.floor(Math.fround(i * scale)), from - 1));
}

/**
 * A1111's cat hijack (sd_hijack_unet.TorchHijackForUnet): where an output block's input and its skip connection
 * differ in size (an odd size halved by the stride-2 downsampling, then doubled by the upsampling), the input is
 * resized to the skip's size by nearest interpolation before the concatenation. That is what lets sizes that are
 * multiples of 8 but not of the UNet's downsampling factor render. Equal sizes add no node, so every other size
 * builds the same graph as before.
 */
function matchSkipSize(b: GraphBuilder, h: Value, skip: Value): Value {
  for (const axis of [2, 3]) {
    const from = h.shape[axis]!;
    const to = skip.shape[axis]!;
    if (from === to) continue;
    const idx = nearestIndices(from, to);
    // Doubling an odd size gives one extra row or column, and nearest keeps the first ones: a slice.
    h = idx.every((v, i) => v === i) ? b.slice(h, [0], [to], [axis]) : b.gather(h, b.ints(idx), axis);
  }
  return h;
}

class UNetBuilder {
  private readonly b: GraphBuilder;

  constructor(
    private readonly w: ModuleWeights,
    private readonly cfg: UNetConfig,
    private readonly opts: UNetBuildOptions,
    private readonly contextK: Value,
    private readonly contextV: Value,
  ) {
    this.b = w.b;
  }

  resBlock(x: Value, emb: Value, name: string): Value {
    const { b, w } = this;
    let h = conv2d(w, b.silu(groupNorm(w, x, `${name}.in_layers.0`, RES_EPS)), `${name}.in_layers.2`, { pad: 1 });
    const e = linear(w, b.silu(emb), `${name}.emb_layers.1`);
    h = b.add(h, b.unsqueeze(e, [2, 3]));
    h = conv2d(w, b.silu(groupNorm(w, h, `${name}.out_layers.0`, RES_EPS)), `${name}.out_layers.3`, { pad: 1 });
    const skip = w.has(`${name}.skip_connection.weight`) ? conv2d(w, x, `${name}.skip_connection`) : x;
    return b.add(skip, h);
  }

  private attention(x: Value, name: string, kind: 'self' | 'cross', heads: number): Value {
    const { b, w } = this;
    let sources = kind === 'self' ? { k: x, v: x } : { k: this.contextK, v: this.contextV };
    if (this.opts.attentionContext) {
      sources = this.opts.attentionContext(b, sources, sources.k.shape[2]!, { block: name, kind });
    }
    const q = linear(w, x, `${name}.to_q`, false);
    const k = linear(w, sources.k, `${name}.to_k`, false);
    const v = linear(w, sources.v, `${name}.to_v`, false);
    const out = multiHeadAttention(b, q, k, v, heads, {
      scaleAt: 'scores',
      fused: this.opts.fusedAttention ?? false,
      ...(this.opts.attention ? { attention: this.opts.attention } : {}),
    });
    return linear(w, out, `${name}.to_out.0`);
  }

  private feedForward(x: Value, name: string): Value {
    const { b, w } = this;
    const hidden = w.raw(`${name}.net.0.proj.weight`).shape[0]!;
    const chunks = feedForwardChunks(x, hidden, this.opts.feedForwardChunkBytes);
    if (chunks.length === 1) {
      const proj = linear(w, x, `${name}.net.0.proj`);
      const inner = proj.shape[2]! / 2;
      const [a, gate] = b.split(proj, [inner, inner], 2) as [Value, Value];
      return linear(w, b.mul(a, b.gelu(gate)), `${name}.net.2`);
    }
    // GEGLU works token by token: token chunks give the same values while only one chunk's hidden activations
    // (eight times the width) exist at a time.
    const w1 = w.param(`${name}.net.0.proj.weight`, transpose2d);
    const b1 = w.param(`${name}.net.0.proj.bias`);
    const w2 = w.param(`${name}.net.2.weight`, transpose2d);
    const b2 = w.param(`${name}.net.2.bias`);
    const outs = b.split(x, chunks, 1).map((xc) => {
      const [a, gate] = b.split(b.add(b.matmul(xc, w1), b1), [hidden / 2, hidden / 2], 2) as [Value, Value];
      return b.add(b.matmul(b.mul(a, b.gelu(gate)), w2), b2);
    });
    return b.concat(outs, 1);
  }

  spatialTransformer(x: Value, name: string): Value {
    const { b, w, cfg } = this;
    const [n, c, hh, ww] = x.shape as [number, number, number, number];
    const { heads } = attentionHeads(cfg, c);
    const normed = groupNorm(w, x, `${name}.norm`, TRANSFORMER_GN_EPS);
    const tokens = b.transpose(b.reshape(normed, [n, c, hh * ww]), [0, 2, 1]);
    // A 1x1 conv over NCHW is the same Linear over the channel axis of the token view.
    const projWeight = (t: Float32Tensor): Float32Tensor => transpose2d(t.shape.length === 4 ? squeezeConv1x1(t) : t);
    const projIn = (v: Value, pname: string): Value =>
      b.add(b.matmul(v, w.param(`${pname}.weight`, projWeight)), w.param(`${pname}.bias`));
    let h = projIn(tokens, `${name}.proj_in`);
    for (let d = 0; d < cfg.transformerDepth; d++) {
      const blk = `${name}.transformer_blocks.${d}`;
      h = b.add(this.attention(layerNorm(w, h, `${blk}.norm1`, LN_EPS), `${blk}.attn1`, 'self', heads), h);
      h = b.add(this.attention(layerNorm(w, h, `${blk}.norm2`, LN_EPS), `${blk}.attn2`, 'cross', heads), h);
      h = b.add(this.feedForward(layerNorm(w, h, `${blk}.norm3`, LN_EPS), `${blk}.ff`), h);
    }
    h = projIn(h, `${name}.proj_out`);
    const back = b.reshape(b.transpose(h, [0, 2, 1]), [n, c, hh, ww]);
    return b.add(back, x);
  }

  build(x: Value, t: Value): { out: Value; tEmb: Value; emb: Value } {
    const { b, w, cfg } = this;
    const tEmb = timestepEmbedding(b, t, cfg.modelChannels);
    const tEmbC = b.cast(tEmb, w.dtype);
    const emb = linear(w, b.silu(linear(w, tEmbC, 'time_embed.0')), 'time_embed.2');

    const skips: Value[] = [];
    let h = conv2d(w, b.cast(x, w.dtype), 'input_blocks.0.0', { pad: 1 });
    skips.push(h);
    let block = 1;
    let ds = 1;
    const levels = cfg.channelMult.length;
    for (let level = 0; level < levels; level++) {
      for (let r = 0; r < cfg.numResBlocks; r++) {
        h = this.resBlock(h, emb, `input_blocks.${block}.0`);
        if (cfg.attentionResolutions.includes(ds)) h = this.spatialTransformer(h, `input_blocks.${block}.1`);
        skips.push(h);
        block++;
      }
      if (level !== levels - 1) {
        h = conv2d(w, h, `input_blocks.${block}.0.op`, { stride: 2, pad: 1 });
        skips.push(h);
        block++;
        ds *= 2;
      }
    }
    h = this.resBlock(h, emb, 'middle_block.0');
    h = this.spatialTransformer(h, 'middle_block.1');
    h = this.resBlock(h, emb, 'middle_block.2');

    block = 0;
    for (let level = levels - 1; level >= 0; level--) {
      for (let r = 0; r <= cfg.numResBlocks; r++) {
        const skip = skips.pop()!;
        const name = `output_blocks.${block}`;
        h = this.resBlock(b.concat([matchSkipSize(b, h, skip), skip], 1), emb, `${name}.0`);
        let sub = 1;
        if (cfg.attentionResolutions.includes(ds)) h = this.spatialTransformer(h, `${name}.${sub++}`);
        if (level !== 0 && r === cfg.numResBlocks) {
          h = conv2d(w, b.resizeNearest(h, 2), `${name}.${sub}.conv`, { pad: 1 });
          ds /= 2;
        }
        block++;
      }
    }
    h = conv2d(w, b.silu(groupNorm(w, h, 'out.0', RES_EPS)), 'out.2', { pad: 1 });
    return { out: b.cast(h, 'float32'), tEmb, emb: b.cast(emb, 'float32') };
  }
}

/** Declares the UNet inputs on `b` and builds the network; the caller names the outputs it wants. */
export function buildUNet(b: GraphBuilder, weights: ReadonlyMap<string, Float32Tensor>, cfg: UNetConfig, opts: UNetBuildOptions): UNetGraph {
  const dtype = opts.dtype ?? 'float32';
  const w = new ModuleWeights(b, weights, 'unet.', dtype, opts.circularPadding ? 'circular' : 'zeros');
  const x = b.input('x', 'float32', [opts.batch, cfg.inChannels, opts.height, opts.width]);
  const t = b.input('t', 'float32', [opts.batch]);
  const contextK = opts.context?.k ?? b.input('context_k', 'float32', [opts.batch, opts.contextLength, cfg.contextDim]);
  const contextV = opts.context?.v ?? b.input('context_v', 'float32', [opts.batch, opts.contextLength, cfg.contextDim]);
  const unet = new UNetBuilder(w, cfg, opts, b.cast(contextK, dtype), b.cast(contextV, dtype));
  const { out, tEmb, emb } = unet.build(x, t);
  return { x, t, contextK, contextV, out, tEmb, emb, unusedWeights: w.unused() };
}
