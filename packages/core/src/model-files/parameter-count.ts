/**
 * Parameter counts of the SD components from a model config alone, without the weights: what a memory estimate
 * needs before a checkpoint is loaded (or at an API that never loads one). The counts follow the ldm and CLIP
 * module definitions the graph builders mirror, so they equal the numbers of tensors a checkpoint carries for
 * each component (buffers such as position_ids and SD2's unused text projection aside).
 */
import { attentionHeads, type ModelConfig, type TextEncoderConfig, type UNetConfig, type VaeConfig } from './config.js';

export interface ParameterCounts {
  readonly unet: number;
  readonly vaeDecoder: number;
  readonly vaeEncoder: number;
  readonly text: number;
}

const conv = (cin: number, cout: number, k: number): number => cin * cout * k * k + cout;
const linear = (cin: number, cout: number, bias = true): number => cin * cout + (bias ? cout : 0);
const norm = (c: number): number => 2 * c;

function unetResBlock(cin: number, cout: number, embDim: number): number {
  return norm(cin) + conv(cin, cout, 3) + linear(embDim, cout) + norm(cout) + conv(cout, cout, 3) + (cin === cout ? 0 : conv(cin, cout, 1));
}

function spatialTransformer(u: UNetConfig, ch: number): number {
  const { heads, dimHead } = attentionHeads(u, ch);
  const inner = heads * dimHead;
  const proj = (a: number, b: number): number => (u.useLinearInTransformer ? linear(a, b) : conv(a, b, 1));
  const block =
    3 * linear(inner, inner, false) + linear(inner, inner) + // self-attention: q, k, v, out
    linear(inner, inner, false) + 2 * linear(u.contextDim, inner, false) + linear(inner, inner) + // cross-attention
    linear(inner, inner * 8) + linear(inner * 4, inner) + // GEGLU feed-forward
    3 * norm(inner);
  return norm(ch) + proj(ch, inner) + u.transformerDepth * block + proj(inner, ch);
}

export function unetParameters(u: UNetConfig): number {
  const mc = u.modelChannels;
  const emb = mc * 4;
  let total = linear(mc, emb) + linear(emb, emb) + conv(u.inChannels, mc, 3);
  const skips = [mc];
  let ch = mc;
  u.channelMult.forEach((mult, level) => {
    const attends = u.attentionResolutions.includes(2 ** level);
    for (let i = 0; i < u.numResBlocks; i++) {
      total += unetResBlock(ch, mult * mc, emb);
      ch = mult * mc;
      if (attends) total += spatialTransformer(u, ch);
      skips.push(ch);
    }
    if (level < u.channelMult.length - 1) {
      total += conv(ch, ch, 3);
      skips.push(ch);
    }
  });
  total += 2 * unetResBlock(ch, ch, emb) + spatialTransformer(u, ch);
  [...u.channelMult.keys()].reverse().forEach((level) => {
    const mult = u.channelMult[level]!;
    const attends = u.attentionResolutions.includes(2 ** level);
    for (let i = 0; i <= u.numResBlocks; i++) {
      total += unetResBlock(ch + skips.pop()!, mult * mc, emb);
      ch = mult * mc;
      if (attends) total += spatialTransformer(u, ch);
      if (level > 0 && i === u.numResBlocks) total += conv(ch, ch, 3);
    }
  });
  return total + norm(mc) + conv(mc, u.outChannels, 3);
}

const vaeResBlock = (cin: number, cout: number): number =>
  norm(cin) + conv(cin, cout, 3) + norm(cout) + conv(cout, cout, 3) + (cin === cout ? 0 : conv(cin, cout, 1));
const vaeAttention = (c: number): number => norm(c) + 4 * conv(c, c, 1);

export function vaeEncoderParameters(v: VaeConfig): number {
  let total = conv(v.inChannels, v.ch, 3);
  let ch = v.ch;
  v.chMult.forEach((mult, level) => {
    for (let i = 0; i < v.numResBlocks; i++) {
      total += vaeResBlock(ch, v.ch * mult);
      ch = v.ch * mult;
      if (v.attnLevels.includes(level)) total += vaeAttention(ch);
    }
    if (level < v.chMult.length - 1) total += conv(ch, ch, 3);
  });
  total += 2 * vaeResBlock(ch, ch) + vaeAttention(ch);
  // double_z: the encoder emits mean and log-variance; quant_conv maps them to the embedding moments
  return total + norm(ch) + conv(ch, 2 * v.zChannels, 3) + conv(2 * v.zChannels, 2 * v.embedDim, 1);
}

export function vaeDecoderParameters(v: VaeConfig): number {
  let ch = v.ch * v.chMult[v.chMult.length - 1]!;
  let total = conv(v.embedDim, v.zChannels, 1) + conv(v.zChannels, ch, 3);
  total += 2 * vaeResBlock(ch, ch) + vaeAttention(ch);
  [...v.chMult.keys()].reverse().forEach((level) => {
    for (let i = 0; i <= v.numResBlocks; i++) {
      total += vaeResBlock(ch, v.ch * v.chMult[level]!);
      ch = v.ch * v.chMult[level]!;
      if (v.attnLevels.includes(level)) total += vaeAttention(ch);
    }
    if (level > 0) total += conv(ch, ch, 3);
  });
  return total + norm(ch) + conv(ch, v.outChannels, 3);
}

/** HF CLIPTextModel and OpenCLIP's text tower have the same parameters per layer, under different names. */
export function textParameters(t: TextEncoderConfig): number {
  const w = t.width;
  const layer = 4 * linear(w, w) + 2 * norm(w) + linear(w, t.intermediate) + linear(t.intermediate, w);
  return t.vocabSize * w + t.maxPositions * w + t.layers * layer + norm(w);
}

export function parameterCounts(config: ModelConfig): ParameterCounts {
  return {
    unet: unetParameters(config.unet),
    vaeDecoder: vaeDecoderParameters(config.vae),
    vaeEncoder: vaeEncoderParameters(config.vae),
    text: textParameters(config.text),
  };
}
