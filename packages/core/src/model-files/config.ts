/**
 * Model configuration: what the graph builders need to know about an SD1.x / SD2.x checkpoint.
 *
 * Most of it is read from tensor names and shapes. Two facts are not visible in the weights and come from
 * known full-size models or from an explicit config (the ldm yaml `model:` section as JSON, optionally with a
 * `text_encoder` block, the shape of `sd15-config.json`): the attention head layout (`num_heads` for SD1,
 * `num_head_channels` for SD2, text encoder heads) and the parameterization (eps or v).
 */
import { DarkroomError } from '../errors.js';
import type { DType } from '../tensor.js';

export type ModelKind = 'sd1' | 'sd2';
export type Parameterization = 'eps' | 'v';

export interface UNetConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly modelChannels: number;
  readonly channelMult: readonly number[];
  readonly numResBlocks: number;
  /** Downsample factors (1, 2, 4, ...) of the levels that carry a SpatialTransformer (ldm attention_resolutions). */
  readonly attentionResolutions: readonly number[];
  /** ldm `num_heads`; -1 when `numHeadChannels` decides. */
  readonly numHeads: number;
  /** ldm `num_head_channels`; -1 when `numHeads` decides. */
  readonly numHeadChannels: number;
  readonly contextDim: number;
  readonly transformerDepth: number;
  readonly useLinearInTransformer: boolean;
  readonly legacy: boolean;
}

export interface VaeConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly ch: number;
  readonly chMult: readonly number[];
  readonly numResBlocks: number;
  readonly zChannels: number;
  readonly embedDim: number;
  /** Levels (index into chMult) with attention blocks next to their ResnetBlocks; empty for SD. */
  readonly attnLevels: readonly number[];
}

export interface TextEncoderConfig {
  /** 'hf-clip': HF CLIPTextModel keys (SD1); 'open-clip': OpenCLIP text tower keys (SD2). */
  readonly layout: 'hf-clip' | 'open-clip';
  readonly prefix: string;
  readonly width: number;
  readonly heads: number;
  readonly layers: number;
  readonly intermediate: number;
  readonly activation: 'quick_gelu' | 'gelu';
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly layerNormEps: number;
  /** Token A1111 pads rows with after the first EOS. */
  readonly padTokenId: number;
  /** The conditioning the model was trained with: 1 = last layer (SD1), 2 = penultimate (SD2). */
  readonly defaultClipSkip: number;
}

/** Checkpoint key of the token embedding matrix (vocab, D). */
export function tokenEmbeddingKey(cfg: TextEncoderConfig): string {
  return cfg.layout === 'hf-clip' ? `${cfg.prefix}embeddings.token_embedding.weight` : `${cfg.prefix}token_embedding.weight`;
}

export interface ScheduleConfig {
  readonly linearStart: number;
  readonly linearEnd: number;
  readonly timesteps: number;
}

export interface ModelConfig {
  readonly kind: ModelKind;
  readonly parameterization: Parameterization;
  readonly scaleFactor: number;
  readonly schedule: ScheduleConfig;
  readonly unet: UNetConfig;
  readonly vae: VaeConfig;
  readonly text: TextEncoderConfig;
}

/** Name, dtype and shape of every tensor of a checkpoint: all that inference needs. */
export type TensorIndex = ReadonlyMap<string, { readonly dtype: DType; readonly shape: readonly number[] }>;

export const UNET_PREFIX = 'model.diffusion_model.';
export const VAE_PREFIX = 'first_stage_model.';
export const SD1_TEXT_PREFIX = 'cond_stage_model.transformer.text_model.';
export const SD2_TEXT_PREFIX = 'cond_stage_model.model.';

/** Heads and default channels of an attention level of the UNet (ldm UNetModel.__init__). */
export function attentionHeads(unet: UNetConfig, channels: number): { heads: number; dimHead: number } {
  if (unet.numHeadChannels === -1) {
    if (unet.numHeads <= 0 || channels % unet.numHeads !== 0) {
      throw new DarkroomError('MODEL_CONFIG_INVALID', `num_heads ${unet.numHeads} does not divide ${channels} channels`);
    }
    return { heads: unet.numHeads, dimHead: channels / unet.numHeads };
  }
  if (channels % unet.numHeadChannels !== 0) {
    throw new DarkroomError(
      'MODEL_CONFIG_INVALID',
      `num_head_channels ${unet.numHeadChannels} does not divide ${channels} channels`,
    );
  }
  const heads = channels / unet.numHeadChannels;
  // ldm's legacy flag keeps dim_head = channels / heads, which is the same number here.
  return { heads, dimHead: unet.numHeadChannels };
}

// ---------------------------------------------------------------------------------------------------------------
// Inference from tensor names and shapes

function unsupported(message: string, details: Record<string, unknown> = {}): never {
  throw new DarkroomError('MODEL_UNSUPPORTED', message, details);
}

function shapeOf(index: TensorIndex, key: string): readonly number[] {
  const e = index.get(key);
  if (!e) throw new DarkroomError('MODEL_MISSING_TENSOR', `checkpoint has no tensor "${key}"`, { key });
  return e.shape;
}

/** Sorted distinct integers found at `<prefix><n>.` in the keys. */
function indicesUnder(index: TensorIndex, prefix: string): number[] {
  const found = new Set<number>();
  for (const k of index.keys()) {
    if (!k.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(k.slice(prefix.length));
    if (m) found.add(Number(m[1]));
  }
  return [...found].sort((a, b) => a - b);
}

function hasPrefix(index: TensorIndex, prefix: string): boolean {
  for (const k of index.keys()) if (k.startsWith(prefix)) return true;
  return false;
}

/** Refuses checkpoints of other families with a message that names what was found. */
export function detectKind(index: TensorIndex): ModelKind {
  if (hasPrefix(index, 'conditioner.embedders.')) {
    unsupported('this looks like an SDXL checkpoint (conditioner.embedders.*); only SD1.x and SD2.x are supported', {
      family: 'sdxl',
    });
  }
  if (!hasPrefix(index, UNET_PREFIX)) {
    unsupported('no model.diffusion_model.* tensors: not an SD1.x/SD2.x single-file checkpoint');
  }
  if (hasPrefix(index, `${UNET_PREFIX}label_emb.`)) {
    unsupported('the UNet has a class/vector embedding (label_emb: SDXL or unCLIP); only SD1.x and SD2.x are supported', {
      family: 'label_emb',
    });
  }
  if (!hasPrefix(index, `${UNET_PREFIX}input_blocks.`) || !hasPrefix(index, `${UNET_PREFIX}time_embed.`)) {
    unsupported('the UNet is not an ldm UNetModel (no input_blocks/time_embed)');
  }
  if (!hasPrefix(index, VAE_PREFIX)) unsupported('no first_stage_model.* (VAE) tensors in the checkpoint');
  const sd1 = hasPrefix(index, SD1_TEXT_PREFIX);
  const sd2 = hasPrefix(index, `${SD2_TEXT_PREFIX}transformer.resblocks.`);
  if (sd1 === sd2) {
    unsupported(
      sd1
        ? 'the checkpoint has both an SD1 and an SD2 text encoder'
        : 'no known text encoder (cond_stage_model.transformer.text_model.* or cond_stage_model.model.*)',
    );
  }
  return sd1 ? 'sd1' : 'sd2';
}

/** What the weights say about the UNet; heads are left for the caller (not visible in weights). */
export function inferUNet(index: TensorIndex): Omit<UNetConfig, 'numHeads' | 'numHeadChannels' | 'legacy'> {
  const p = UNET_PREFIX;
  const convIn = shapeOf(index, `${p}input_blocks.0.0.weight`);
  const modelChannels = convIn[0]!;
  const inChannels = convIn[1]!;
  const outChannels = shapeOf(index, `${p}out.2.weight`)[0]!;
  const blocks = indicesUnder(index, `${p}input_blocks.`).filter((i) => i > 0);

  const channelMult: number[] = [];
  const attentionResolutions: number[] = [];
  let numResBlocks = -1;
  let inLevel = 0;
  let ds = 1;
  let levelHasAttention = false;
  let contextDim = -1;
  let transformerDepth = -1;
  let useLinear: boolean | undefined;
  const closeLevel = (): void => {
    if (numResBlocks === -1) numResBlocks = inLevel;
    else if (numResBlocks !== inLevel) unsupported('UNet levels have different numbers of ResBlocks');
    if (levelHasAttention) attentionResolutions.push(ds);
  };
  for (const i of blocks) {
    const b = `${p}input_blocks.${i}.`;
    if (index.has(`${b}0.op.weight`)) {
      closeLevel();
      ds *= 2;
      inLevel = 0;
      levelHasAttention = false;
      continue;
    }
    const out = shapeOf(index, `${b}0.out_layers.3.weight`)[0]!;
    if (inLevel === 0) channelMult.push(out / modelChannels);
    inLevel++;
    if (index.has(`${b}1.proj_in.weight`)) {
      levelHasAttention = true;
      const rank = shapeOf(index, `${b}1.proj_in.weight`).length;
      const linear = rank === 2;
      if (useLinear !== undefined && useLinear !== linear) unsupported('mixed conv/linear transformer projections');
      useLinear = linear;
      contextDim = shapeOf(index, `${b}1.transformer_blocks.0.attn2.to_k.weight`)[1]!;
      transformerDepth = Math.max(transformerDepth, indicesUnder(index, `${b}1.transformer_blocks.`).length);
    }
  }
  closeLevel();
  if (!index.has(`${p}middle_block.1.proj_in.weight`)) {
    unsupported('the UNet middle block has no SpatialTransformer (not an SD1/SD2 text-conditioned UNet)');
  }
  if (contextDim === -1) {
    contextDim = shapeOf(index, `${p}middle_block.1.transformer_blocks.0.attn2.to_k.weight`)[1]!;
    useLinear = shapeOf(index, `${p}middle_block.1.proj_in.weight`).length === 2;
    transformerDepth = indicesUnder(index, `${p}middle_block.1.transformer_blocks.`).length;
  }
  return {
    inChannels,
    outChannels,
    modelChannels,
    channelMult,
    numResBlocks,
    attentionResolutions,
    contextDim,
    transformerDepth,
    useLinearInTransformer: useLinear ?? false,
  };
}

export function inferVae(index: TensorIndex): VaeConfig {
  const p = `${VAE_PREFIX}encoder.`;
  const convIn = shapeOf(index, `${p}conv_in.weight`);
  const ch = convIn[0]!;
  const levels = indicesUnder(index, `${p}down.`);
  const chMult = levels.map((l) => {
    const blocks = indicesUnder(index, `${p}down.${l}.block.`);
    return shapeOf(index, `${p}down.${l}.block.${blocks[blocks.length - 1]}.conv2.weight`)[0]! / ch;
  });
  const numResBlocks = indicesUnder(index, `${p}down.0.block.`).length;
  const attnLevels = levels.filter((l) => hasPrefix(index, `${p}down.${l}.attn.`));
  const moments = shapeOf(index, `${p}conv_out.weight`)[0]!;
  return {
    inChannels: convIn[1]!,
    outChannels: shapeOf(index, `${VAE_PREFIX}decoder.conv_out.weight`)[0]!,
    ch,
    chMult,
    numResBlocks,
    zChannels: moments / 2,
    embedDim: shapeOf(index, `${VAE_PREFIX}quant_conv.weight`)[0]! / 2,
    attnLevels,
  };
}

/** Heads of the text encoders that ship with real checkpoints (CLIP ViT-L/14, OpenCLIP ViT-H/14, ViT-bigG/14). */
const KNOWN_TEXT_HEADS: Readonly<Record<number, number>> = { 768: 12, 1024: 16, 1280: 20 };

export function inferText(index: TensorIndex, kind: ModelKind): Omit<TextEncoderConfig, 'heads'> & { heads?: number } {
  if (kind === 'sd1') {
    const p = SD1_TEXT_PREFIX;
    const tok = shapeOf(index, `${p}embeddings.token_embedding.weight`);
    const width = tok[1]!;
    return {
      layout: 'hf-clip',
      prefix: p,
      width,
      ...(KNOWN_TEXT_HEADS[width] ? { heads: KNOWN_TEXT_HEADS[width] } : {}),
      layers: indicesUnder(index, `${p}encoder.layers.`).length,
      intermediate: shapeOf(index, `${p}encoder.layers.0.mlp.fc1.weight`)[0]!,
      activation: 'quick_gelu',
      vocabSize: tok[0]!,
      maxPositions: shapeOf(index, `${p}embeddings.position_embedding.weight`)[0]!,
      layerNormEps: 1e-5,
      padTokenId: 49407,
      defaultClipSkip: 1,
    };
  }
  const p = SD2_TEXT_PREFIX;
  const tok = shapeOf(index, `${p}token_embedding.weight`);
  const width = tok[1]!;
  return {
    layout: 'open-clip',
    prefix: p,
    width,
    ...(KNOWN_TEXT_HEADS[width] ? { heads: KNOWN_TEXT_HEADS[width] } : {}),
    layers: indicesUnder(index, `${p}transformer.resblocks.`).length,
    intermediate: shapeOf(index, `${p}transformer.resblocks.0.mlp.c_fc.weight`)[0]!,
    activation: 'gelu',
    vocabSize: tok[0]!,
    maxPositions: shapeOf(index, `${p}positional_embedding`)[0]!,
    layerNormEps: 1e-5,
    padTokenId: 0,
    defaultClipSkip: 2,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Explicit configs (ldm yaml as JSON, optionally with a text_encoder block)

type Json = Record<string, unknown>;

function obj(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function nums(v: unknown): number[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined;
}

/** The facts an explicit config can add or fix; everything optional. */
export interface ConfigOverrides {
  readonly parameterization?: Parameterization;
  readonly scaleFactor?: number;
  readonly schedule?: Partial<ScheduleConfig>;
  readonly unet?: Partial<UNetConfig>;
  readonly vae?: Partial<VaeConfig>;
  readonly text?: Partial<TextEncoderConfig>;
}

/** Reads the `tiny-*.json` / `sd15-config.json` shape, or a bare ldm yaml converted to JSON. */
export function overridesFromJson(json: unknown): ConfigOverrides {
  const root = obj(json);
  if (!root) throw new DarkroomError('MODEL_CONFIG_INVALID', 'model config must be a JSON object');
  const model = obj(root.model) ?? root;
  const params = obj(model.params) ?? {};
  const unetParams = obj(obj(params.unet_config)?.params) ?? {};
  const firstStage = obj(obj(params.first_stage_config)?.params) ?? {};
  const dd = obj(firstStage.ddconfig) ?? {};
  const condParams = obj(obj(params.cond_stage_config)?.params) ?? {};
  const text = obj(root.text_encoder) ?? {};
  const textCfg = obj(text.text_cfg) ?? {};

  const paramRaw = params.parameterization ?? root.parameterization;
  const parameterization = paramRaw === 'v' ? 'v' : paramRaw === 'eps' ? 'eps' : undefined;
  if (paramRaw !== undefined && parameterization === undefined) {
    throw new DarkroomError('MODEL_CONFIG_INVALID', `unknown parameterization ${JSON.stringify(paramRaw)}`);
  }

  const unet: Partial<Record<keyof UNetConfig, unknown>> = {
    inChannels: num(unetParams.in_channels),
    outChannels: num(unetParams.out_channels),
    modelChannels: num(unetParams.model_channels),
    channelMult: nums(unetParams.channel_mult),
    numResBlocks: num(unetParams.num_res_blocks),
    attentionResolutions: nums(unetParams.attention_resolutions)?.slice().sort((a, b) => a - b),
    contextDim: num(unetParams.context_dim),
    transformerDepth: num(unetParams.transformer_depth),
    useLinearInTransformer:
      typeof unetParams.use_linear_in_transformer === 'boolean' ? unetParams.use_linear_in_transformer : undefined,
    legacy: typeof unetParams.legacy === 'boolean' ? unetParams.legacy : undefined,
  };
  const headChannels = num(unetParams.num_head_channels);
  const heads = num(unetParams.num_heads);
  if (headChannels !== undefined && headChannels !== -1) {
    unet.numHeadChannels = headChannels;
    unet.numHeads = -1;
  } else if (heads !== undefined && heads !== -1) {
    unet.numHeads = heads;
    unet.numHeadChannels = -1;
  }

  const attnResolutions = nums(dd.attn_resolutions);
  const resolution = num(dd.resolution);
  const chMult = nums(dd.ch_mult);
  const vae: Partial<Record<keyof VaeConfig, unknown>> = {
    inChannels: num(dd.in_channels),
    outChannels: num(dd.out_ch),
    ch: num(dd.ch),
    chMult,
    numResBlocks: num(dd.num_res_blocks),
    zChannels: num(dd.z_channels),
    embedDim: num(firstStage.embed_dim),
    attnLevels:
      attnResolutions && resolution && chMult
        ? chMult.map((_, l) => l).filter((l) => attnResolutions.includes(resolution / 2 ** l))
        : undefined,
  };

  const act = typeof text.hidden_act === 'string' ? text.hidden_act : undefined;
  const layer = typeof condParams.layer === 'string' ? condParams.layer : typeof text.layer === 'string' ? text.layer : undefined;
  const textOut: Partial<Record<keyof TextEncoderConfig, unknown>> = {
    width: num(text.hidden_size) ?? num(textCfg.width),
    heads: num(text.num_attention_heads) ?? num(textCfg.heads),
    layers: num(text.num_hidden_layers) ?? num(textCfg.layers),
    intermediate: num(text.intermediate_size),
    activation: act === undefined ? undefined : act.startsWith('quick_gelu') ? 'quick_gelu' : act.startsWith('gelu') ? 'gelu' : undefined,
    vocabSize: num(text.vocab_size) ?? num(textCfg.vocab_size),
    maxPositions: num(text.max_position_embeddings) ?? num(textCfg.context_length),
    layerNormEps: num(text.layer_norm_eps),
    padTokenId: num(text.pad_token_id_a1111),
    defaultClipSkip: layer === 'penultimate' ? 2 : layer === 'last' ? 1 : undefined,
  };

  const schedule: Partial<Record<keyof ScheduleConfig, unknown>> = {
    linearStart: num(params.linear_start),
    linearEnd: num(params.linear_end),
    timesteps: num(params.timesteps),
  };
  return {
    ...(parameterization ? { parameterization } : {}),
    ...(num(params.scale_factor ?? root.scale_factor) !== undefined
      ? { scaleFactor: num(params.scale_factor ?? root.scale_factor)! }
      : {}),
    schedule: defined(schedule) as Partial<ScheduleConfig>,
    unet: defined(unet) as Partial<UNetConfig>,
    vae: defined(vae) as Partial<VaeConfig>,
    text: defined(textOut) as Partial<TextEncoderConfig>,
  };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Default head layout of the two real families (v1-inference.yaml / v2-inference*.yaml). */
function defaultHeads(kind: ModelKind, unet: { modelChannels: number; contextDim: number }): Pick<UNetConfig, 'numHeads' | 'numHeadChannels'> | undefined {
  if (kind === 'sd1' && unet.modelChannels === 320 && unet.contextDim === 768) return { numHeads: 8, numHeadChannels: -1 };
  if (kind === 'sd2' && unet.modelChannels === 320 && unet.contextDim === 1024) return { numHeads: -1, numHeadChannels: 64 };
  return undefined;
}

function checkAgree(what: string, fromWeights: unknown, fromConfig: unknown): void {
  if (fromConfig === undefined) return;
  if (JSON.stringify(fromWeights) !== JSON.stringify(fromConfig)) {
    throw new DarkroomError(
      'MODEL_CONFIG_MISMATCH',
      `config says ${what} = ${JSON.stringify(fromConfig)} but the checkpoint weights say ${JSON.stringify(fromWeights)}`,
      { field: what },
    );
  }
}

/**
 * The full config of a checkpoint: shapes from the weights, heads and parameterization from `overrides` or from
 * the known full-size models. Throws MODEL_UNSUPPORTED for other families and MODEL_CONFIG_REQUIRED when a fact
 * cannot be known (a non-standard model without a config).
 */
export function inferModelConfig(index: TensorIndex, overrides: ConfigOverrides = {}): ModelConfig {
  const kind = detectKind(index);
  const unetW = inferUNet(index);
  const ou = overrides.unet ?? {};
  for (const k of Object.keys(unetW) as (keyof typeof unetW)[]) checkAgree(`unet.${k}`, unetW[k], ou[k]);
  const heads =
    ou.numHeads !== undefined && ou.numHeadChannels !== undefined
      ? { numHeads: ou.numHeads, numHeadChannels: ou.numHeadChannels }
      : defaultHeads(kind, unetW);
  if (!heads) {
    throw new DarkroomError(
      'MODEL_CONFIG_REQUIRED',
      `the UNet attention head layout of this ${kind} checkpoint (model_channels ${unetW.modelChannels}, context ` +
        `${unetW.contextDim}) is not one of the standard models: pass a config with num_heads or num_head_channels`,
      { kind },
    );
  }
  const unet: UNetConfig = { ...unetW, ...heads, legacy: ou.legacy ?? false };

  const vaeW = inferVae(index);
  const ov = overrides.vae ?? {};
  for (const k of Object.keys(vaeW) as (keyof VaeConfig)[]) checkAgree(`vae.${k}`, vaeW[k], ov[k]);

  const textW = inferText(index, kind);
  const ot = overrides.text ?? {};
  for (const k of ['width', 'layers', 'intermediate', 'vocabSize', 'maxPositions'] as const) {
    checkAgree(`text.${k}`, textW[k], ot[k]);
  }
  const textHeads = ot.heads ?? textW.heads;
  if (textHeads === undefined) {
    throw new DarkroomError(
      'MODEL_CONFIG_REQUIRED',
      `the text encoder width ${textW.width} is not a standard one: pass a config with its number of heads`,
      { kind },
    );
  }
  const text: TextEncoderConfig = {
    ...textW,
    heads: textHeads,
    activation: ot.activation ?? textW.activation,
    layerNormEps: ot.layerNormEps ?? textW.layerNormEps,
    padTokenId: ot.padTokenId ?? textW.padTokenId,
    defaultClipSkip: ot.defaultClipSkip ?? textW.defaultClipSkip,
  };
  const config: ModelConfig = {
    kind,
    parameterization: overrides.parameterization ?? 'eps',
    scaleFactor: overrides.scaleFactor ?? 0.18215,
    schedule: { linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000, ...(overrides.schedule ?? {}) },
    unet,
    vae: vaeW,
    text,
  };
  for (const level of unet.channelMult.keys()) {
    if (unet.attentionResolutions.includes(2 ** level)) attentionHeads(unet, unet.modelChannels * unet.channelMult[level]!);
  }
  return config;
}
