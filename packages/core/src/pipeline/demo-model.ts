/**
 * Darkroom's random-weight tiny model: an SD1-style single-file checkpoint (A1111 key names: ldm UNet and VAE,
 * HF CLIPTextModel text encoder) with small random weights, generated deterministically from fixed seeds, plus
 * the small demo BPE vocabulary. Its images are noise-like, but every stage of the real pipeline runs on it, and
 * its pixels are fixed forever by its seeds: tests that compare exact pixels, and tests that build LoRAs or
 * other files for its shapes, use it. (The model served when a request names none is the trained built-in model,
 * catalog/built-in-model.ts.) Its architecture is also where a model trained from scratch starts.
 *
 * The architecture numbers are Darkroom's "tiny-sd1" configuration: UNet with 32 channels, multipliers [1, 2],
 * 2 res blocks, attention at both levels, 4 heads, context 32; VAE with 32 channels, multipliers [1, 2, 2, 2],
 * 1 res block; a 3-layer, 32-wide CLIP text encoder with 4 heads.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { writeFileAtomically } from '../atomic-write.js';
import { join } from 'node:path';
import { writeSafetensors } from '../formats/safetensors.js';
import type { Parameterization } from '../model-files/config.js';
import { float32, numel, type Float32Tensor, type HostTensor } from '../tensor.js';
import { buildDemoVocabulary, vocabularyToHuggingFace } from '../text/bpe-vocab.js';
import { checkpointCompanions } from './checkpoint-files.js';
import { ClipTokenizer } from '../text/tokenizer.js';

export const DEMO_MODEL_NAME = 'darkroom-tiny-sd1';
export const DEMO_MODEL_DIR = '.darkroom/models';

/**
 * The shape of a small SD1-style model: the demo model's numbers, or another size for a model trained from
 * scratch (training/scenes). Channel counts are multiples of 32 (GroupNorm(32)).
 */
export interface TinyArchitecture {
  readonly unet: {
    readonly inChannels: number;
    readonly outChannels: number;
    readonly channels: number;
    readonly mult: readonly number[];
    readonly resBlocks: number;
    readonly attention: readonly number[];
    readonly heads: number;
    readonly context: number;
    /** Transformer blocks in each attention site (ldm's transformer_depth; default 1). */
    readonly depth?: number;
  };
  readonly vae: {
    readonly ch: number;
    readonly mult: readonly number[];
    readonly resBlocks: number;
    readonly z: number;
    readonly embed: number;
    readonly inChannels: number;
    readonly outChannels: number;
  };
  readonly text: { readonly width: number; readonly layers: number; readonly heads: number; readonly intermediate: number; readonly positions: number };
}

const UNET: TinyArchitecture['unet'] = { inChannels: 4, outChannels: 4, channels: 32, mult: [1, 2], resBlocks: 2, attention: [1, 2], heads: 4, context: 32 };
const VAE: TinyArchitecture['vae'] = { ch: 32, mult: [1, 2, 2, 2], resBlocks: 1, z: 4, embed: 4, inChannels: 3, outChannels: 3 };
const TEXT: TinyArchitecture['text'] = { width: 32, layers: 3, heads: 4, intermediate: 64, positions: 77 };
const SEEDS = { unet: 1101, vae: 1102, text: 1103 };

export const DEMO_ARCHITECTURE: TinyArchitecture = { unet: UNET, vae: VAE, text: TEXT };

/** The config loadModel needs beside the weights (heads are not visible in tensor shapes). */
export function demoModelConfig(vocabSize: number, arch: TinyArchitecture = DEMO_ARCHITECTURE, scaleFactor = 0.18215, parameterization: Parameterization = 'eps'): object {
  const { unet: UNET, vae: VAE, text: TEXT } = arch;
  return {
    model: {
      params: {
        linear_start: 0.00085,
        linear_end: 0.012,
        timesteps: 1000,
        scale_factor: scaleFactor,
        parameterization,
        unet_config: {
          params: {
            in_channels: UNET.inChannels,
            out_channels: UNET.outChannels,
            model_channels: UNET.channels,
            attention_resolutions: UNET.attention,
            num_res_blocks: UNET.resBlocks,
            channel_mult: UNET.mult,
            num_heads: UNET.heads,
            transformer_depth: UNET.depth ?? 1,
            context_dim: UNET.context,
            use_linear_in_transformer: false,
            legacy: false,
          },
        },
        first_stage_config: {
          params: {
            embed_dim: VAE.embed,
            ddconfig: {
              double_z: true,
              z_channels: VAE.z,
              resolution: 256,
              in_channels: VAE.inChannels,
              out_ch: VAE.outChannels,
              ch: VAE.ch,
              ch_mult: VAE.mult,
              num_res_blocks: VAE.resBlocks,
              attn_resolutions: [],
            },
          },
        },
      },
    },
    text_encoder: {
      hidden_size: TEXT.width,
      intermediate_size: TEXT.intermediate,
      num_attention_heads: TEXT.heads,
      num_hidden_layers: TEXT.layers,
      max_position_embeddings: TEXT.positions,
      vocab_size: vocabSize,
      hidden_act: 'quick_gelu',
      layer_norm_eps: 1e-5,
      pad_token_id_a1111: vocabSize - 1,
    },
  };
}

type Init = 'weight' | 'bias' | 'normWeight' | 'normBias' | 'token' | 'position';
type Spec = readonly [name: string, shape: readonly number[], init: Init];

/** Tensors of a conv or linear layer: weight and (optionally) bias. */
function layer(out: Spec[], name: string, shape: readonly number[], bias = true): void {
  out.push([`${name}.weight`, shape, 'weight']);
  if (bias) out.push([`${name}.bias`, [shape[0]!], 'bias']);
}

function norm(out: Spec[], name: string, channels: number): void {
  out.push([`${name}.weight`, [channels], 'normWeight'], [`${name}.bias`, [channels], 'normBias']);
}

/** ldm ResBlock (UNet) with a timestep embedding of width `emb`. */
function unetResBlock(out: Spec[], p: string, cin: number, cout: number, emb: number): void {
  norm(out, `${p}.in_layers.0`, cin);
  layer(out, `${p}.in_layers.2`, [cout, cin, 3, 3]);
  layer(out, `${p}.emb_layers.1`, [cout, emb]);
  norm(out, `${p}.out_layers.0`, cout);
  layer(out, `${p}.out_layers.3`, [cout, cout, 3, 3]);
  if (cin !== cout) layer(out, `${p}.skip_connection`, [cout, cin, 1, 1]);
}

/** ldm SpatialTransformer with conv projections (SD1) and `depth` BasicTransformerBlocks. */
function spatialTransformer(out: Spec[], p: string, ch: number, context: number, depth: number): void {
  norm(out, `${p}.norm`, ch);
  layer(out, `${p}.proj_in`, [ch, ch, 1, 1]);
  for (let d = 0; d < depth; d++) {
    const b = `${p}.transformer_blocks.${d}`;
    layer(out, `${b}.attn1.to_q`, [ch, ch], false);
    layer(out, `${b}.attn1.to_k`, [ch, ch], false);
    layer(out, `${b}.attn1.to_v`, [ch, ch], false);
    layer(out, `${b}.attn1.to_out.0`, [ch, ch]);
    layer(out, `${b}.ff.net.0.proj`, [ch * 8, ch]);
    layer(out, `${b}.ff.net.2`, [ch, ch * 4]);
    layer(out, `${b}.attn2.to_q`, [ch, ch], false);
    layer(out, `${b}.attn2.to_k`, [ch, context], false);
    layer(out, `${b}.attn2.to_v`, [ch, context], false);
    layer(out, `${b}.attn2.to_out.0`, [ch, ch]);
    norm(out, `${b}.norm1`, ch);
    norm(out, `${b}.norm2`, ch);
    norm(out, `${b}.norm3`, ch);
  }
  layer(out, `${p}.proj_out`, [ch, ch, 1, 1]);
}

/**
 * Whether `key` is one of the three projections through which a BasicTransformerBlock adds to its input
 * (self-attention, cross-attention and feed-forward outputs): with all three zero, the block is the identity.
 */
export function isTransformerBlockOutput(key: string): boolean {
  return /\.transformer_blocks\.\d+\.(attn1\.to_out\.0|attn2\.to_out\.0|ff\.net\.2)\.(weight|bias)$/.test(key);
}

export function unetSpecs(UNET: TinyArchitecture['unet'] = DEMO_ARCHITECTURE.unet): Spec[] {
  const out: Spec[] = [];
  const p = 'model.diffusion_model';
  const c = UNET.channels;
  const emb = c * 4;
  const depth = UNET.depth ?? 1;
  layer(out, `${p}.time_embed.0`, [emb, c]);
  layer(out, `${p}.time_embed.2`, [emb, emb]);
  layer(out, `${p}.input_blocks.0.0`, [c, UNET.inChannels, 3, 3]);
  const chans = [c];
  let ch = c;
  let ds = 1;
  let block = 1;
  UNET.mult.forEach((mult, level) => {
    for (let r = 0; r < UNET.resBlocks; r++, block++) {
      unetResBlock(out, `${p}.input_blocks.${block}.0`, ch, mult * c, emb);
      ch = mult * c;
      if (UNET.attention.includes(ds)) spatialTransformer(out, `${p}.input_blocks.${block}.1`, ch, UNET.context, depth);
      chans.push(ch);
    }
    if (level !== UNET.mult.length - 1) {
      layer(out, `${p}.input_blocks.${block}.0.op`, [ch, ch, 3, 3]);
      chans.push(ch);
      ds *= 2;
      block++;
    }
  });
  unetResBlock(out, `${p}.middle_block.0`, ch, ch, emb);
  spatialTransformer(out, `${p}.middle_block.1`, ch, UNET.context, depth);
  unetResBlock(out, `${p}.middle_block.2`, ch, ch, emb);
  block = 0;
  [...UNET.mult.entries()].reverse().forEach(([level, mult]) => {
    for (let i = 0; i <= UNET.resBlocks; i++, block++) {
      const skip = chans.pop()!;
      unetResBlock(out, `${p}.output_blocks.${block}.0`, ch + skip, c * mult, emb);
      ch = c * mult;
      let sub = 1;
      if (UNET.attention.includes(ds)) spatialTransformer(out, `${p}.output_blocks.${block}.${sub++}`, ch, UNET.context, depth);
      if (level && i === UNET.resBlocks) {
        layer(out, `${p}.output_blocks.${block}.${sub}.conv`, [ch, ch, 3, 3]);
        ds /= 2;
      }
    }
  });
  norm(out, `${p}.out.0`, c);
  layer(out, `${p}.out.2`, [UNET.outChannels, c, 3, 3]);
  return out;
}

function vaeResBlock(out: Spec[], p: string, cin: number, cout: number): void {
  norm(out, `${p}.norm1`, cin);
  layer(out, `${p}.conv1`, [cout, cin, 3, 3]);
  norm(out, `${p}.norm2`, cout);
  layer(out, `${p}.conv2`, [cout, cout, 3, 3]);
  if (cin !== cout) layer(out, `${p}.nin_shortcut`, [cout, cin, 1, 1]);
}

function vaeMid(out: Spec[], p: string, ch: number): void {
  vaeResBlock(out, `${p}.mid.block_1`, ch, ch);
  norm(out, `${p}.mid.attn_1.norm`, ch);
  for (const n of ['q', 'k', 'v', 'proj_out']) layer(out, `${p}.mid.attn_1.${n}`, [ch, ch, 1, 1]);
  vaeResBlock(out, `${p}.mid.block_2`, ch, ch);
}

export function vaeSpecs(VAE: TinyArchitecture['vae'] = DEMO_ARCHITECTURE.vae): Spec[] {
  const out: Spec[] = [];
  const e = 'first_stage_model.encoder';
  const d = 'first_stage_model.decoder';
  const { ch, mult } = VAE;
  layer(out, `${e}.conv_in`, [ch, VAE.inChannels, 3, 3]);
  const inMult = [1, ...mult];
  let blockIn = ch;
  mult.forEach((m, level) => {
    blockIn = ch * inMult[level]!;
    for (let j = 0; j < VAE.resBlocks; j++) {
      vaeResBlock(out, `${e}.down.${level}.block.${j}`, blockIn, ch * m);
      blockIn = ch * m;
    }
    if (level !== mult.length - 1) layer(out, `${e}.down.${level}.downsample.conv`, [blockIn, blockIn, 3, 3]);
  });
  vaeMid(out, e, blockIn);
  norm(out, `${e}.norm_out`, blockIn);
  layer(out, `${e}.conv_out`, [2 * VAE.z, blockIn, 3, 3]);

  blockIn = ch * mult[mult.length - 1]!;
  layer(out, `${d}.conv_in`, [blockIn, VAE.z, 3, 3]);
  vaeMid(out, d, blockIn);
  for (let level = mult.length - 1; level >= 0; level--) {
    const blockOut = ch * mult[level]!;
    for (let j = 0; j <= VAE.resBlocks; j++) {
      vaeResBlock(out, `${d}.up.${level}.block.${j}`, blockIn, blockOut);
      blockIn = blockOut;
    }
    if (level !== 0) layer(out, `${d}.up.${level}.upsample.conv`, [blockIn, blockIn, 3, 3]);
  }
  norm(out, `${d}.norm_out`, blockIn);
  layer(out, `${d}.conv_out`, [VAE.outChannels, blockIn, 3, 3]);
  layer(out, 'first_stage_model.quant_conv', [2 * VAE.embed, 2 * VAE.z, 1, 1]);
  layer(out, 'first_stage_model.post_quant_conv', [VAE.z, VAE.embed, 1, 1]);
  return out;
}

export function textSpecs(vocabSize: number, TEXT: TinyArchitecture['text'] = DEMO_ARCHITECTURE.text): Spec[] {
  const out: Spec[] = [];
  const p = 'cond_stage_model.transformer.text_model';
  const { width: w, intermediate } = TEXT;
  out.push([`${p}.embeddings.token_embedding.weight`, [vocabSize, w], 'token']);
  out.push([`${p}.embeddings.position_embedding.weight`, [TEXT.positions, w], 'position']);
  for (let i = 0; i < TEXT.layers; i++) {
    const l = `${p}.encoder.layers.${i}`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) layer(out, `${l}.self_attn.${n}`, [w, w]);
    norm(out, `${l}.layer_norm1`, w);
    layer(out, `${l}.mlp.fc1`, [intermediate, w]);
    layer(out, `${l}.mlp.fc2`, [w, intermediate]);
    norm(out, `${l}.layer_norm2`, w);
  }
  norm(out, `${p}.final_layer_norm`, w);
  return out;
}

/**
 * A small PRNG with a normal approximation by arithmetic only (sum of 12 uniforms), so the weights, and with
 * them the checkpoint's sha256, are the same on every machine.
 */
class DemoRandom {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  uniform(): number {
    // mulberry32
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    let s = 0;
    for (let i = 0; i < 12; i++) s += this.uniform();
    return s - 6;
  }
}

function generate(specs: readonly Spec[], seed: number): Map<string, HostTensor> {
  const rng = new DemoRandom(seed);
  const out = new Map<string, HostTensor>();
  for (const [name, shape, init] of specs) {
    const n = numel(shape);
    const data = new Float32Array(n);
    const fanIn = shape.length > 1 ? numel(shape.slice(1)) : 1;
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      data[i] =
        init === 'weight' ? z / Math.sqrt(fanIn)
        : init === 'bias' ? z * 0.05
        : init === 'normWeight' ? 1 + z * 0.1
        : init === 'normBias' ? z * 0.1
        : init === 'token' ? z * 0.02
        : z * 0.01;
    }
    out.set(name, float32(shape, data));
  }
  return out;
}

/** ldm's DDPM buffer the loader reads: alphas_cumprod of the scaled-linear schedule, float64 product stored as float32. */
function alphasCumprod(): Float32Tensor {
  const n = 1000;
  const a = Math.sqrt(0.00085);
  const b = Math.sqrt(0.012);
  const out = new Float32Array(n);
  let acc = 1;
  for (let i = 0; i < n; i++) {
    const root = a + ((b - a) * i) / (n - 1);
    acc *= 1 - root * root;
    out[i] = acc;
  }
  return float32([n], out);
}

/** All tensors of the demo checkpoint, in a fixed order. */
export function demoCheckpointTensors(vocabSize: number): Map<string, HostTensor> {
  return initialCheckpointTensors(vocabSize, DEMO_ARCHITECTURE, SEEDS);
}

/**
 * A checkpoint of `arch` with small random weights from the seeds (the starting point of training from scratch):
 * every tensor a loaded checkpoint has, in the demo checkpoint's order.
 */
export function initialCheckpointTensors(
  vocabSize: number,
  arch: TinyArchitecture,
  seeds: { readonly unet: number; readonly vae: number; readonly text: number },
): Map<string, HostTensor> {
  const TEXT = arch.text;
  const tensors = new Map<string, HostTensor>([['alphas_cumprod', alphasCumprod()]]);
  for (const [k, v] of generate(textSpecs(vocabSize, arch.text), seeds.text)) tensors.set(k, v);
  const ids = new BigInt64Array(TEXT.positions);
  for (let i = 0; i < TEXT.positions; i++) ids[i] = BigInt(i);
  tensors.set('cond_stage_model.transformer.text_model.embeddings.position_ids', { dtype: 'int64', shape: [1, TEXT.positions], data: ids });
  for (const [k, v] of generate(unetSpecs(arch.unet), seeds.unet)) tensors.set(k, v);
  for (const [k, v] of generate(vaeSpecs(arch.vae), seeds.vae)) tensors.set(k, v);
  return tensors;
}

export function demoTokenizer(): ClipTokenizer {
  return new ClipTokenizer(buildDemoVocabulary());
}

export interface DemoModelFiles {
  readonly checkpoint: string;
  readonly config: object;
  readonly tokenizer: ClipTokenizer;
}

/**
 * The demo checkpoint under `<root>/.darkroom/models/`, written the first time (atomically, so concurrent
 * first runs never see a partial file), with its config (`<name>.json`) and vocabulary (`<name>.vocab/`) beside
 * it, so the files also load like any other checkpoint (`--model .darkroom/models/darkroom-tiny-sd1.safetensors`).
 */
export async function ensureDemoModel(root: string = process.cwd()): Promise<DemoModelFiles> {
  const vocab = buildDemoVocabulary();
  const tokenizer = new ClipTokenizer(vocab);
  const vocabSize = tokenizer.vocabSize;
  const dir = join(root, DEMO_MODEL_DIR);
  const checkpoint = join(dir, `${DEMO_MODEL_NAME}.safetensors`);
  const config = demoModelConfig(vocabSize);
  const companions = checkpointCompanions(checkpoint);
  const vocabDir = companions.vocabulary;
  const files: Array<[string, () => Uint8Array | string]> = [
    [companions.config, () => `${JSON.stringify(config, null, 1)}\n`],
    ...vocabularyToHuggingFace(vocab).map(([file, text]): [string, () => string] => [join(vocabDir, file), () => text]),
    [checkpoint, () => writeSafetensors(demoCheckpointTensors(vocabSize), { format: 'pt', darkroom: DEMO_MODEL_NAME })],
  ];
  for (const [path, contents] of files) {
    if (existsSync(path)) continue;
    await mkdir(vocabDir, { recursive: true });
    await writeFileAtomically(path, contents());
  }
  return { checkpoint, config, tokenizer };
}
