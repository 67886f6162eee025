/**
 * loadModel: reads an A1111 single-file checkpoint, infers its config, and hands back the three components
 * as async functions over host tensors. Graphs have static shapes, so each component is compiled per input
 * shape (and per UNet variant) on first use, through the compile cache; a second load of the same
 * checkpoint finds every graph on disk and builds nothing.
 */
import { basename, extname } from 'node:path';
import { DarkroomError } from '../errors.js';
import type { GraphBuilder } from '../graph/builder.js';
import type { BuiltModel } from '../graph/ir.js';
import { createSession, type EngineSession, type Provider } from '../runtime/session.js';
import type { Float32Tensor, HostTensor } from '../tensor.js';
import { attentionBuild, attentionKey, feedForwardChunkBytes, parseAttentionMode } from '../planning/attention.js';
import { CompileCache, DEFAULT_CACHE_DIR, cachedFact, cachedFileHash, type GraphKey } from './cache.js';
import { readConfigOverrides } from '../model-files/config-file.js';
import { readTokenEmbedding } from '../model-files/text-encoder.js';
import { openCheckpoint, readComponent, readFloat32, sha256File, withVae, type CheckpointSource } from '../model-files/checkpoint.js';
import { textOutputName } from './clip.js';
import {
  inferModelConfig,
  UNET_PREFIX,
  VAE_PREFIX,
  type ConfigOverrides,
  type ModelConfig,
  type ModelKind,
  type Parameterization,
} from '../model-files/config.js';
import { textEncoderBuilder, unetBuilder, vaeDecoderBuilder, vaeEncoderBuilder } from './graphs.js';
import { timePhase, timePhaseAsync, type LoadPhaseListener } from '../model-files/load-phases.js';
import { openCachedGraph } from './optimized-sessions.js';
import type { ComputeDType } from './layers.js';
import { oneComponentResident, sessionArena, unetParts, type MemoryMode } from './memory-mode.js';
import { computeAlphasCumprod, computeAlphasCumprod64 } from './schedule.js';
import type { AttentionContextHook } from './unet.js';
import { runTiled, tilesNeeded, vaeTiling, type VaeTilingOption } from '../planning/vae-tiles.js';

/**
 * A UNet compiled with an attention hook (e.g. one hypernetwork architecture). Graphs are cached by `key`, so
 * two variants with the same key must build the same graph; per-job data (MLP weights, multipliers) goes in
 * `feeds` as graph inputs the hook declared.
 */
export interface UNetVariant {
  readonly key: string;
  readonly attentionContext: AttentionContextHook;
  readonly feeds?: Readonly<Record<string, HostTensor>>;
}

export interface TextEncoder {
  readonly width: number;
  /** Token id -> embedding row, (vocab, D): the host does the lookup and splices TI vectors in. */
  readonly tokenEmbedding: Float32Tensor;
  /** The clip skip the model was trained with: 1 for SD1 (last layer), 2 for SD2 (penultimate). */
  readonly defaultClipSkip: number;
  /** Token A1111 pads rows with after EOS (49407 for SD1, 0 for SD2). */
  readonly padTokenId: number;
  /** final_layer_norm(hidden_states[-clipSkip]) of (N,77,D) embeddings before position embeddings. */
  encode(inputsEmbeds: Float32Tensor, clipSkip: number): Promise<Float32Tensor>;
}

export interface UNet {
  /** eps or v prediction (see `parameterization`) for latents x (B,4,H,W) at float timesteps t (B). */
  run(x: Float32Tensor, t: Float32Array, contextK: Float32Tensor, contextV?: Float32Tensor, variant?: UNetVariant): Promise<Float32Tensor>;
}

export interface Vae {
  /** Latent in the sampler's space (the graph divides by scaleFactor) -> image (B,3,8h,8w), not clamped. */
  decode(latent: Float32Tensor): Promise<Float32Tensor>;
  /** Image in [-1,1] NCHW -> the posterior; latent = scaleFactor * (mean + std * noise). */
  encode(image: Float32Tensor): Promise<{ mean: Float32Tensor; std: Float32Tensor }>;
}

export interface StableDiffusionModel {
  readonly kind: ModelKind;
  readonly config: ModelConfig;
  /** File name without extension, as A1111 shows it. */
  readonly name: string;
  /** sha256 of the checkpoint file (hex). */
  readonly sha256: string;
  /** sha256 of the separate VAE file in use (hex), if one was given. */
  readonly vaeSha256?: string;
  readonly parameterization: Parameterization;
  /** 1000 values, float32 as stored in the checkpoint (or computed as ldm does when absent). */
  readonly alphasCumprod: Float32Array;
  /**
   * ldm's `sqrt_alphas_cumprod` and `sqrt_one_minus_alphas_cumprod` buffers (what `q_sample` and the training
   * loss use): float32 roots of the float64 schedule, so they are read from the checkpoint, not re-derived
   * from the float32 `alphasCumprod`.
   */
  readonly sqrtAlphasCumprod: Float32Array;
  readonly sqrtOneMinusAlphasCumprod: Float32Array;
  /** The float32 weights of one component, for graphs built outside the model (training). */
  readWeights(component: 'text' | 'unet' | 'vae'): Promise<Map<string, Float32Tensor>>;
  readonly scaleFactor: number;
  readonly textEncoder: TextEncoder;
  readonly unet: UNet;
  readonly vae: Vae;
  /**
   * The UNet and VAE with circular padding in every padded convolution (A1111's `tiling`: seamless tiles). Their
   * graphs are built on first use and cached under their own keys, beside the zero-padded ones.
   */
  readonly circular: { readonly unet: UNet; readonly vae: Vae };
  /** Graphs built (cache misses) by this model so far. */
  readonly buildCount: number;
  /** Sessions open now, per component (text, unet, vae_decoder, vae_encoder). */
  openSessions(): Record<string, number>;
  release(): Promise<void>;
}

export interface LoadModelOptions {
  readonly checkpoint: string;
  /** A separate VAE file (`.vae.safetensors`, `.vae.pt`, `.ckpt`) that replaces the checkpoint's own VAE. */
  readonly vae?: string;
  /**
   * Path of a config (JSON, or an ldm yaml such as v2-inference-v.yaml), or the parsed object. Without it a
   * `<checkpoint>.yaml` beside the checkpoint is used when present, as A1111 does.
   */
  readonly config?: string | object;
  readonly cacheDir?: string;
  readonly provider?: Provider;
  readonly fallbackToCpu?: boolean;
  readonly threads?: number;
  /** Half-precision weights and compute (GPU); the float32 graph stays the reference. */
  readonly fp16?: boolean;
  /** com.microsoft MultiHeadAttention in the UNet and VAE (the same as `attention: 'fused'`). */
  readonly fusedAttention?: boolean;
  /**
   * How the UNet and VAE attentions are built: `auto` (default), `plain`, `split`, `subquad`, `fused`, or A1111's
   * flag names (`opt-split-attention`, `opt-sub-quad-attention`, `xformers`). Memory and speed change, the
   * image only by float rounding; see planning/attention.ts.
   */
  readonly attention?: string;
  /**
   * Memory target of one attention chunk, in bytes (default 256 MiB); decides the chunk sizes. Outside `plain`
   * it also bounds the UNet feed-forwards' hidden activations (token chunks, same values).
   */
  readonly attentionChunkBytes?: number;
  /**
   * A1111's memory modes: `normal` (default) keeps every component's sessions open; `medvram` keeps one of
   * text encoder, UNet and VAE resident at a time (see models/memory-mode.ts).
   */
  readonly memoryMode?: MemoryMode;
  /**
   * onnxruntime's CPU arena and memory pattern for every session (default: on in normal mode, off in medvram and
   * lowvram, whose point is the lower peak; see sessionArena in models/memory-mode.ts). Same values either way.
   */
  readonly cpuMemArena?: boolean;
  /**
   * VAE decode/encode in overlapping blended tiles: `auto` (default: images above 1024x1024 pixels), `always`,
   * `never`, or the tile size, overlap (latent pixels) and threshold; see planning/vae-tiles.ts.
   */
  readonly vaeTiling?: VaeTilingOption;
  /** Sessions kept open per component (each holds a copy of the weights); least recently used go first. */
  readonly maxSessionsPerComponent?: number;
  /**
   * For SD2 checkpoints with a 1024-wide text encoder and no parameterization in the config, decide eps vs v
   * by running the UNet once as A1111 does (default true; the answer is cached per checkpoint hash).
   */
  readonly detectParameterization?: boolean;
  /**
   * Keep onnxruntime's optimized form of each graph (prepacked weights included) in the cache and open later
   * sessions from it, which skips the optimizing and prepacking that are most of a session's opening (default true;
   * CPU provider only; costs about the weights again on disk). See models/optimized-sessions.ts.
   */
  readonly optimizedSessions?: boolean;
  /** Told how long each phase of the load took (and each later graph build, session opening and run). */
  readonly onPhase?: LoadPhaseListener;
}

/**
 * A1111's `is_using_v_parameterization_for_sd2`: with x = 0.5, t = 999 and a context of 0.5, a v model's
 * output lies far below x (mean(out - x) < -1); an eps model's does not.
 */
export async function detectVParameterization(unet: UNet, contextDim: number): Promise<boolean> {
  const x: Float32Tensor = { dtype: 'float32', shape: [1, 4, 8, 8], data: new Float32Array(256).fill(0.5) };
  const context: Float32Tensor = { dtype: 'float32', shape: [1, 2, contextDim], data: new Float32Array(2 * contextDim).fill(0.5) };
  const out = await unet.run(x, Float32Array.of(999), context);
  let sum = 0;
  for (let i = 0; i < out.data.length; i++) sum += out.data[i]! - 0.5;
  return sum / out.data.length < -1;
}

interface SessionEntry {
  readonly session: Promise<EngineSession>;
  lastUse: number;
  busy: number;
}

/**
 * Open sessions by graph path, at most `limit` per component, least recently used released first. With
 * `oneComponent` (medvram) a component's session is opened only after every idle session of the other
 * components has been released, so one component's weights and arena are resident at a time.
 */
class SessionPool {
  private readonly entries = new Map<string, { component: string; entry: SessionEntry }>();
  private clock = 0;

  constructor(
    private readonly limit: number,
    private readonly open: (path: string, component: string) => Promise<EngineSession>,
    private readonly oneComponent = false,
    private readonly onPhase?: LoadPhaseListener,
  ) {}

  async run(component: string, path: string, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    let found = this.entries.get(path);
    if (!found) {
      if (this.oneComponent) await this.releaseOthers(component);
      found = this.entries.get(path);
    }
    if (!found) {
      const session = this.open(path, component);
      // A session that fails to open is forgotten, so the next call tries again instead of failing forever.
      session.catch(() => {
        if (this.entries.get(path)?.entry.session === session) this.entries.delete(path);
      });
      found = { component, entry: { session, lastUse: 0, busy: 0 } };
      this.entries.set(path, found);
      void this.evict(component, path);
    }
    const e = found.entry;
    e.lastUse = ++this.clock;
    e.busy++;
    try {
      const session = await e.session;
      return await timePhaseAsync(this.onPhase, 'run', component, () => session.run(feeds));
    } finally {
      e.busy--;
    }
  }

  private async evict(component: string, keep: string): Promise<void> {
    const mine = [...this.entries].filter(([p, v]) => v.component === component && p !== keep && v.entry.busy === 0);
    const over = mine.length + 1 - this.limit;
    if (over <= 0) return;
    mine.sort((a, b) => a[1].entry.lastUse - b[1].entry.lastUse);
    for (const [p, v] of mine.slice(0, over)) {
      this.entries.delete(p);
      await (await v.entry.session.catch(() => undefined))?.release();
    }
  }

  private async releaseOthers(component: string): Promise<void> {
    const others = [...this.entries].filter(([, v]) => v.component !== component && v.entry.busy === 0);
    for (const [p] of others) this.entries.delete(p);
    for (const [, v] of others) await (await v.entry.session.catch(() => undefined))?.release();
  }

  /** How many sessions are open (or opening), per component. */
  openSessions(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const v of this.entries.values()) counts[v.component] = (counts[v.component] ?? 0) + 1;
    return counts;
  }

  async releaseAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const v of all) await (await v.entry.session.catch(() => undefined))?.release();
  }
}

function check4d(what: string, t: Float32Tensor, channels: number): [number, number, number] {
  if (t.dtype !== 'float32' || t.shape.length !== 4 || t.shape[1] !== channels) {
    throw new DarkroomError('MODEL_BAD_INPUT', `${what} must be float32 (B,${channels},H,W), got ${t.dtype} [${t.shape}]`);
  }
  return [t.shape[0]!, t.shape[2]!, t.shape[3]!];
}

function output(r: Record<string, HostTensor>, name: string): Float32Tensor {
  const t = r[name];
  if (t?.dtype !== 'float32') throw new DarkroomError('MODEL_BAD_OUTPUT', `graph gave no float32 output "${name}"`);
  return t as Float32Tensor;
}

export async function loadModel(opts: LoadModelOptions): Promise<StableDiffusionModel> {
  const overrides = await readConfigOverrides(opts.config, opts.checkpoint);
  let source: CheckpointSource = await timePhaseAsync(opts.onPhase, 'open', 'checkpoint', () => openCheckpoint(opts.checkpoint));
  try {
    if (opts.vae) {
      const vaePath = opts.vae;
      const vae = await timePhaseAsync(opts.onPhase, 'open', 'vae', () => openCheckpoint(vaePath));
      try {
        source = withVae(source, vae);
      } catch (e) {
        await vae.close();
        throw e;
      }
    }
    return await assemble(opts, overrides, source);
  } catch (e) {
    await source.close();
    throw e;
  }
}

async function assemble(opts: LoadModelOptions, overrides: ConfigOverrides, source: CheckpointSource): Promise<StableDiffusionModel> {
  const config = inferModelConfig(source.index, overrides);
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE_DIR;
  const cache = new CompileCache(cacheDir);
  const onPhase = opts.onPhase;
  const sha256 = await timePhaseAsync(onPhase, 'hash', 'checkpoint', () => cachedFileHash(cacheDir, opts.checkpoint, sha256File));
  const vaePath = opts.vae;
  const vaeSha256 = vaePath ? await timePhaseAsync(onPhase, 'hash', 'vae', () => cachedFileHash(cacheDir, vaePath, sha256File)) : undefined;
  const tokenEmbedding = await readTokenEmbedding(source, config.text, onPhase && { onPhase, component: 'text' });
  const alphasCumprod = source.index.has('alphas_cumprod')
    ? (await readFloat32(source, 'alphas_cumprod')).data
    : computeAlphasCumprod(config.schedule);
  const [sqrtAlphasCumprod, sqrtOneMinusAlphasCumprod] = await diffusionRoots(source, config);
  const dtype: ComputeDType = opts.fp16 ? 'float16' : 'float32';
  // Weights leave the .onnx so the cache can share them between the graphs of different input shapes.
  const externalDataAboveBytes = 64 * 1024;
  const attention = attentionBuild(
    opts.attention !== undefined ? parseAttentionMode(opts.attention) : opts.fusedAttention ? 'fused' : 'auto',
    opts.provider ?? 'cpu',
    opts.attentionChunkBytes,
  );
  const attentionFacts = attentionKey(attention);
  const ffChunkBytes = feedForwardChunkBytes(attention);
  const oneComponent = oneComponentResident(opts.memoryMode ?? 'normal');
  const parts = unetParts(opts.memoryMode ?? 'normal');
  const pool = new SessionPool(
    oneComponent ? 1 : (opts.maxSessionsPerComponent ?? 2),
    (path, component) =>
      timePhaseAsync(onPhase, 'session', component, () =>
        (opts.optimizedSessions === false ? createSession : openCachedGraph)(path, {
          ...(opts.provider ? { provider: opts.provider } : {}),
          ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
          ...(opts.fallbackToCpu !== undefined ? { fallbackToCpu: opts.fallbackToCpu } : {}),
          cpuMemArena: opts.cpuMemArena ?? sessionArena(opts.memoryMode ?? 'normal'),
        }),
      ),
    oneComponent,
    onPhase,
  );
  let released = false;

  /**
   * The graph for `component` with `options`, from the cache or built from freshly read weights (`build` makes the
   * graph, `serialize` the model the cache stores: the two are timed apart).
   */
  const graph = async (
    component: string,
    prefix: string,
    options: Record<string, unknown>,
    build: (weights: Map<string, Float32Tensor>) => GraphBuilder,
    serialize: (b: GraphBuilder) => BuiltModel = (b) => b.toModel({ externalDataAboveBytes }),
  ): Promise<string> => {
    if (released) throw new DarkroomError('MODEL_RELEASED', 'this model has been released');
    const weightsHash = vaeSha256 && component.startsWith('vae') ? `${sha256}+vae:${vaeSha256}` : sha256;
    const key: GraphKey = { weights: weightsHash, component, options: { ...options, dtype, config: configFacts(config, component) } };
    const entry = await cache.getOrBuild(key, async () => {
      const weights = await readComponent(source, prefix, onPhase && { onPhase, component });
      const b = timePhase(onPhase, 'build', component, () => build(weights));
      return timePhase(onPhase, 'serialize', component, () => serialize(b));
    });
    if (entry.storeMs !== undefined) onPhase?.({ phase: 'write', component, ms: entry.storeMs });
    return entry.path;
  };

  const textEncoder: TextEncoder = {
    width: config.text.width,
    tokenEmbedding,
    defaultClipSkip: config.text.defaultClipSkip,
    padTokenId: config.text.padTokenId,
    async encode(inputsEmbeds, clipSkip) {
      const n = config.text.maxPositions;
      if (inputsEmbeds.shape.length !== 3 || inputsEmbeds.shape[1] !== n || inputsEmbeds.shape[2] !== config.text.width) {
        throw new DarkroomError('MODEL_BAD_INPUT', `inputs_embeds must be (N,${n},${config.text.width}), got [${inputsEmbeds.shape}]`);
      }
      if (!Number.isInteger(clipSkip) || clipSkip < 1 || clipSkip > config.text.layers + 1) {
        throw new DarkroomError('MODEL_BAD_INPUT', `clip skip must be an integer in 1..${config.text.layers + 1}, got ${clipSkip}`);
      }
      const batch = inputsEmbeds.shape[0]!;
      const path = await graph('text', config.text.prefix, { batch }, (w) => textEncoderBuilder(w, config.text, { batch, dtype, externalDataAboveBytes }));
      return output(await pool.run('text', path, { inputs_embeds: inputsEmbeds }), textOutputName(clipSkip));
    },
  };

  // `circular`: A1111's tiling, circular padding in every padded convolution; its own graphs under its own keys
  const circularKey = (circular: boolean) => (circular ? { padding: 'circular' } : {});
  const makeUNet = (circular: boolean): UNet => ({
    async run(x, t, contextK, contextV, variant) {
      const [batch, height, width] = check4d('x', x, config.unet.inChannels);
      const ctxV = contextV ?? contextK;
      const l = contextK.shape[1]!;
      for (const [what, c] of [['contextK', contextK], ['contextV', ctxV]] as const) {
        if (c.shape.length !== 3 || c.shape[0] !== batch || c.shape[1] !== l || c.shape[2] !== config.unet.contextDim) {
          throw new DarkroomError('MODEL_BAD_INPUT', `${what} must be (${batch},L,${config.unet.contextDim}) like contextK, got [${c.shape}]`);
        }
      }
      if (t.length !== batch) throw new DarkroomError('MODEL_BAD_INPUT', `t has ${t.length} values for a batch of ${batch}`);
      const options = { batch, height, width, contextLength: l, attention: attentionFacts, variant: variant?.key ?? null, ...circularKey(circular) };
      const graphOptions = {
        batch,
        height,
        width,
        contextLength: l,
        dtype,
        attention,
        ...(ffChunkBytes !== undefined ? { feedForwardChunkBytes: ffChunkBytes } : {}),
        externalDataAboveBytes,
        ...(variant ? { attentionContext: variant.attentionContext } : {}),
        ...(circular ? { circularPadding: true } : {}),
      };
      const feeds: Record<string, HostTensor> = {
        ...(variant?.feeds ?? {}),
        x,
        t: { dtype: 'float32', shape: [batch], data: t },
        context_k: contextK,
        context_v: ctxV,
      };
      if (parts === 1) {
        const path = await graph('unet', UNET_PREFIX, options, (w) => unetBuilder(w, config.unet, graphOptions));
        return output(await pool.run('unet', path, feeds), 'out');
      }
      // lowvram: consecutive slices of the graph, each its own session (one resident at a time), each fed what
      // the graph's inputs and the earlier slices gave
      for (let part = 0; part < parts; part++) {
        const path = await graph('unet', UNET_PREFIX, { ...options, part, parts }, (w) => unetBuilder(w, config.unet, graphOptions), (b) =>
          b.toModelParts(parts, { externalDataAboveBytes })[part]!);
        Object.assign(feeds, await pool.run(`unet_part${part}`, path, feeds));
      }
      return output(feeds, 'out');
    },
  });
  const unet = makeUNet(false);

  const decodeWhole = async (latent: Float32Tensor, circular: boolean): Promise<Float32Tensor> => {
    const [batch, , height, width] = latent.shape as [number, number, number, number];
    const path = await graph('vae_decoder', VAE_PREFIX, { batch, height, width, attention: attentionFacts, ...circularKey(circular) }, (w) =>
      vaeDecoderBuilder(w, config.vae, {
        batch, height, width, scaleFactor: config.scaleFactor, dtype, attention, externalDataAboveBytes, ...(circular ? { circularPadding: true } : {}),
      }),
    );
    return output(await pool.run('vae_decoder', path, { latent }), 'image');
  };
  const encodeWhole = async (image: Float32Tensor, circular: boolean): Promise<{ mean: Float32Tensor; std: Float32Tensor }> => {
    const [batch, , height, width] = image.shape as [number, number, number, number];
    const path = await graph('vae_encoder', VAE_PREFIX, { batch, height, width, attention: attentionFacts, ...circularKey(circular) }, (w) =>
      vaeEncoderBuilder(w, config.vae, {
        batch, height, width, scaleFactor: config.scaleFactor, dtype, attention, externalDataAboveBytes, ...(circular ? { circularPadding: true } : {}),
      }),
    );
    const r = await pool.run('vae_encoder', path, { image });
    return { mean: output(r, 'mean'), std: output(r, 'std') };
  };
  const tiling = vaeTiling(opts.vaeTiling);
  const factor = 2 ** (config.vae.chMult.length - 1);

  // Circular padding wraps the whole image around: tiles would each wrap on themselves, so that form never tiles.
  const makeVae = (circular: boolean): Vae => ({
    async decode(latent) {
      const [, height, width] = check4d('latent', latent, config.vae.embedDim);
      if (circular || !tilesNeeded(tiling, height, width, factor)) return decodeWhole(latent, circular);
      const plan = { tile: tiling.tile, overlap: tiling.overlap, inUnit: 1, outUnit: factor };
      return (await runTiled(latent, plan, async (t) => ({ image: await decodeWhole(t, false) }))).image!;
    },
    async encode(image) {
      const [, height, width] = check4d('image', image, config.vae.inChannels);
      if (height % factor || width % factor) {
        throw new DarkroomError('MODEL_BAD_INPUT', `image size ${width}x${height} must be a multiple of ${factor}`);
      }
      if (circular || !tilesNeeded(tiling, height / factor, width / factor, factor)) return encodeWhole(image, circular);
      const plan = { tile: tiling.tile, overlap: tiling.overlap, inUnit: factor, outUnit: 1 };
      const r = await runTiled(image, plan, async (t) => encodeWhole(t, false));
      return { mean: r.mean!, std: r.std! };
    },
  });
  const vae = makeVae(false);
  const circular = { unet: makeUNet(true), vae: makeVae(true) };

  let finalConfig = config;
  const detect = opts.detectParameterization ?? true;
  if (detect && overrides.parameterization === undefined && config.kind === 'sd2' && config.text.width === 1024 && config.unet.inChannels === 4) {
    const parameterization = await cachedFact(cacheDir, `${sha256}.parameterization`, async () =>
      (await detectVParameterization(unet, config.unet.contextDim)) ? 'v' : 'eps',
    );
    finalConfig = { ...config, parameterization: parameterization === 'v' ? 'v' : 'eps' };
  }

  return {
    kind: config.kind,
    config: finalConfig,
    name: basename(opts.checkpoint, extname(opts.checkpoint)),
    sha256,
    ...(vaeSha256 !== undefined ? { vaeSha256 } : {}),
    parameterization: finalConfig.parameterization,
    alphasCumprod,
    sqrtAlphasCumprod,
    sqrtOneMinusAlphasCumprod,
    readWeights(component) {
      if (released) throw new DarkroomError('MODEL_RELEASED', 'this model has been released');
      return readComponent(source, component === 'text' ? config.text.prefix : component === 'unet' ? UNET_PREFIX : VAE_PREFIX);
    },
    scaleFactor: config.scaleFactor,
    textEncoder,
    unet,
    vae,
    circular,
    openSessions: () => pool.openSessions(),
    get buildCount() {
      return cache.builds;
    },
    async release() {
      if (released) return;
      released = true;
      await pool.releaseAll();
      await source.close();
    },
  };
}

/** The checkpoint's sqrt(acp) and sqrt(1-acp) buffers, or the same roots taken of the float64 schedule. */
async function diffusionRoots(source: CheckpointSource, config: ModelConfig): Promise<[Float32Array, Float32Array]> {
  if (source.index.has('sqrt_alphas_cumprod') && source.index.has('sqrt_one_minus_alphas_cumprod')) {
    return [(await readFloat32(source, 'sqrt_alphas_cumprod')).data, (await readFloat32(source, 'sqrt_one_minus_alphas_cumprod')).data];
  }
  const acp = computeAlphasCumprod64(config.schedule);
  return [Float32Array.from(acp, (a) => Math.sqrt(a)), Float32Array.from(acp, (a) => Math.sqrt(1 - a))];
}

/** The part of the config a component's graph depends on (so a config change gives a new cache key). */
function configFacts(config: ModelConfig, component: string): unknown {
  if (component === 'text') return config.text;
  if (component === 'unet') return config.unet;
  return { vae: config.vae, scaleFactor: config.scaleFactor };
}
