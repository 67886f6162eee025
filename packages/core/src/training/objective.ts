/**
 * The training objective as one graph: ldm's `p_losses` on a batch, and its gradient with respect to what is
 * trained. Textual inversion: token embeddings -> CLIP -> emphasis -> UNet -> loss, differentiated with respect
 * to the token embeddings (the host sums the rows where the trained vectors sit). Hypernetworks: a fixed
 * conditioning -> UNet with the hypernetwork MLPs in every attention -> loss, differentiated with respect to the
 * MLP weights. Frozen weights are initializers and get no gradient.
 *
 * q_sample (x_t) and the target are computed on the host in float32 exactly as torch does; the graph takes them.
 */
import { DarkroomError } from '../errors.js';
import { grad } from '../graph/autodiff.js';
import { GraphBuilder, type Value } from '../graph/builder.js';
import { buildTextEncoder } from '../models/clip.js';
import type { ModelConfig, Parameterization } from '../model-files/config.js';
import { buildUNet } from '../models/unet.js';
import { declaredHypernetworkInputs, hypernetworkHook, hypernetworkInputs, type HypernetworkInput } from '../networks/hypernetworks/graph.js';
import type { HypernetworkArchitecture } from '../networks/hypernetworks/hypernetwork.js';
import { createSession, type EngineSession, type Provider } from '../runtime/session.js';
import { float32, type Float32Tensor, type HostTensor } from '../tensor.js';
import type { EmphasisMode } from '../text/chunking.js';

/** What training needs of a loaded model (StableDiffusionModel provides it). */
export interface TrainableModel {
  readonly config: ModelConfig;
  readonly parameterization: Parameterization;
  readonly sqrtAlphasCumprod: Float32Array;
  readonly sqrtOneMinusAlphasCumprod: Float32Array;
  readWeights(component: 'text' | 'unet'): Promise<Map<string, Float32Tensor>>;
}

/** One micro-batch's diffusion inputs: clean latents, timesteps, noise and the optional loss weight map. */
export interface DiffusionBatch {
  readonly latents: Float32Tensor;
  readonly t: readonly number[];
  readonly noise: Float32Tensor;
  readonly weight?: Float32Tensor;
  /**
   * Batch x batch mixing of the residuals (target minus prediction) before they are squared: the loss is then
   * over `mix` times the residuals. Only objectives built with `mixed` take it (see groupFocusMix).
   */
  readonly mix?: Float32Tensor;
}

/** The fixed shape a graph is built for. */
export interface ObjectiveShape {
  readonly batch: number;
  readonly latentHeight: number;
  readonly latentWidth: number;
  /** 77-token chunks of conditioning per sample. */
  readonly chunks: number;
  readonly weighted: boolean;
}

export interface RuntimeOptions {
  readonly provider?: Provider;
  readonly threads?: number;
}

/** x_t = sqrt(acp[t]) x0 + sqrt(1-acp[t]) noise and the eps or v target, rounded per operation as torch does. */
export function diffusionTargets(model: TrainableModel, batch: DiffusionBatch): { xt: Float32Tensor; target: Float32Tensor } {
  const { latents, noise, t } = batch;
  const n = latents.shape[0]!;
  if (t.length !== n) throw new DarkroomError('TRAINING_BAD_BATCH', `${t.length} timesteps for a batch of ${n}`);
  if (noise.data.length !== latents.data.length) throw new DarkroomError('TRAINING_BAD_BATCH', 'noise and latents differ in size');
  const per = latents.data.length / n;
  const xt = new Float32Array(latents.data.length);
  const target = new Float32Array(latents.data.length);
  const f = Math.fround;
  const v = model.parameterization === 'v';
  for (let s = 0; s < n; s++) {
    const step = t[s]!;
    if (!Number.isInteger(step) || step < 0 || step >= model.sqrtAlphasCumprod.length) {
      throw new DarkroomError('TRAINING_BAD_BATCH', `timestep ${step} is outside 0..${model.sqrtAlphasCumprod.length - 1}`);
    }
    const a = model.sqrtAlphasCumprod[step]!;
    const b = model.sqrtOneMinusAlphasCumprod[step]!;
    for (let i = s * per; i < (s + 1) * per; i++) {
      const x0 = latents.data[i]!;
      const e = noise.data[i]!;
      xt[i] = f(f(a * x0) + f(b * e));
      target[i] = v ? f(f(a * e) - f(b * x0)) : e;
    }
  }
  return { xt: float32(latents.shape, xt), target: float32(latents.shape, target) };
}

/** ldm p_losses with A1111's optional weight map: mean over (C,H,W) per sample, then over the batch. */
export function lossFrom(b: GraphBuilder, out: Value, target: Value, weight: Value | undefined, mix?: Value): Value {
  let d = b.sub(target, out);
  if (mix) {
    const dims = d.shape as readonly number[];
    d = b.reshape(b.matmul(mix, b.reshape(d, [dims[0]!, dims.slice(1).reduce((x, y) => x * y, 1)])), [...dims]);
  }
  let sq = b.mul(d, d);
  if (weight) sq = b.mul(sq, weight);
  return b.reduceMean(b.reduceMean(sq, [1, 2, 3], false), [0], false);
}

/** The loss inputs besides the UNet's own `x` (x_t) and `t`. */
export function lossInputs(b: GraphBuilder, shape: Omit<ObjectiveShape, 'chunks'> & { readonly mixed?: boolean }, channels: number): { target: Value; weight?: Value; mix?: Value } {
  const dims = [shape.batch, channels, shape.latentHeight, shape.latentWidth];
  const target = b.input('target', 'float32', dims);
  return {
    target,
    ...(shape.weighted ? { weight: b.input('loss_weight', 'float32', dims) } : {}),
    ...(shape.mixed ? { mix: b.input('loss_mix', 'float32', [shape.batch, shape.batch]) } : {}),
  };
}

/**
 * A1111's emphasis over each chunk batch of z (C*B rows of 77 tokens, chunk-major), then the chunks joined along
 * the tokens: (B, C*77, D).
 */
function emphasisAndJoin(b: GraphBuilder, z: Value, multipliers: Value, mode: EmphasisMode, chunks: number, batch: number): Value {
  const [, tokens, width] = z.shape as [number, number, number];
  let zc = b.reshape(z, [chunks, batch * tokens, width]);
  if (mode === 'Original' || mode === 'No norm') {
    const scaled = b.mul(zc, multipliers);
    zc = mode === 'No norm' ? scaled : b.mul(scaled, b.div(b.reduceMean(zc, [1, 2]), b.reduceMean(scaled, [1, 2])));
  }
  const perChunk = b.reshape(zc, [chunks, batch, tokens, width]);
  return b.reshape(b.transpose(perChunk, [1, 0, 2, 3]), [batch, chunks * tokens, width]);
}

function feedsOf(xt: Float32Tensor, t: readonly number[], target: Float32Tensor, weight: Float32Tensor | undefined): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = { x: xt, t: float32([t.length], Float32Array.from(t)), target };
  if (weight) feeds.loss_weight = weight;
  return feeds;
}

function scalar(t: HostTensor | undefined): number {
  if (t?.dtype !== 'float32') throw new DarkroomError('MODEL_BAD_OUTPUT', 'the training graph returned no loss');
  return (t.data as Float32Array)[0]!;
}

function tensorOut(r: Record<string, HostTensor>, name: string): Float32Tensor {
  const t = r[name];
  if (t?.dtype !== 'float32') throw new DarkroomError('MODEL_BAD_OUTPUT', `the training graph returned no ${name}`);
  return t as Float32Tensor;
}

/** Sessions per shape, built on first use and kept for the run. */
class SessionCache {
  private readonly sessions = new Map<string, Promise<EngineSession>>();
  constructor(private readonly runtime: RuntimeOptions) {}

  get(key: string, build: () => GraphBuilder): Promise<EngineSession> {
    let s = this.sessions.get(key);
    if (!s) {
      s = createSession(build().toModel(), {
        ...(this.runtime.provider ? { provider: this.runtime.provider } : {}),
        ...(this.runtime.threads !== undefined ? { threads: this.runtime.threads } : {}),
      });
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release().catch(() => undefined);
  }
}

const shapeKey = (s: ObjectiveShape): string => `${s.batch}x${s.chunks}x${s.latentHeight}x${s.latentWidth}${s.weighted ? 'w' : ''}`;

export interface EmbeddingObjectiveResult {
  readonly loss: number;
  /** d loss / d inputs_embeds, (C*B, 77, D), chunk-major like the input. */
  readonly gradInputsEmbeds: Float32Tensor;
  /** The conditioning the UNet saw, (B, C*77, D). */
  readonly cond: Float32Tensor;
}

/** Textual inversion: the loss and d loss / d token embeddings for prepared token embeddings and multipliers. */
export class EmbeddingObjective {
  private readonly sessions: SessionCache;

  private constructor(
    private readonly model: TrainableModel,
    private readonly text: Map<string, Float32Tensor>,
    private readonly unet: Map<string, Float32Tensor>,
    private readonly opts: { clipSkip: number; emphasis: EmphasisMode } & RuntimeOptions,
  ) {
    this.sessions = new SessionCache(opts);
  }

  static async create(model: TrainableModel, opts: { clipSkip: number; emphasis: EmphasisMode } & RuntimeOptions): Promise<EmbeddingObjective> {
    const layers = model.config.text.layers;
    if (!Number.isInteger(opts.clipSkip) || opts.clipSkip < 1 || opts.clipSkip > layers + 1) {
      throw new DarkroomError('TRAINING_BAD_PARAMETER', `clip skip must be in 1..${layers + 1}, got ${opts.clipSkip}`, { field: 'clip_skip' });
    }
    return new EmbeddingObjective(model, await model.readWeights('text'), await model.readWeights('unet'), opts);
  }

  private build(shape: ObjectiveShape): GraphBuilder {
    const { config } = this.model;
    const b = new GraphBuilder('train_embedding');
    const rows = shape.chunks * shape.batch;
    const text = buildTextEncoder(b, this.text, config.text, { batch: rows });
    const tokens = config.text.maxPositions;
    const multipliers = b.input('multipliers', 'float32', [shape.chunks, shape.batch * tokens, 1]);
    const z = text.skips[this.opts.clipSkip - 1]!;
    const cond = emphasisAndJoin(b, z, multipliers, this.opts.emphasis, shape.chunks, shape.batch);
    const g = buildUNet(b, this.unet, config.unet, {
      batch: shape.batch,
      height: shape.latentHeight,
      width: shape.latentWidth,
      contextLength: shape.chunks * tokens,
      context: { k: cond, v: cond },
    });
    const io = lossInputs(b, shape, config.unet.inChannels);
    const loss = lossFrom(b, g.out, io.target, io.weight);
    const [gEmbeds] = grad(b, loss, [text.inputsEmbeds]);
    b.output(loss, 'loss');
    b.output(cond, 'cond');
    b.output(gEmbeds!, 'grad_inputs_embeds');
    return b;
  }

  /**
   * `inputsEmbeds` (C*B, 77, D) chunk-major (all texts' chunk 0, then chunk 1, ...), `multipliers` the emphasis
   * weight of each of those tokens in the same order.
   */
  async evaluate(inputsEmbeds: Float32Tensor, multipliers: Float32Array, chunks: number, batch: DiffusionBatch): Promise<EmbeddingObjectiveResult> {
    const [n, , h, w] = batch.latents.shape as [number, number, number, number];
    const shape: ObjectiveShape = { batch: n, latentHeight: h, latentWidth: w, chunks, weighted: batch.weight !== undefined };
    const tokens = this.model.config.text.maxPositions;
    if (inputsEmbeds.shape[0] !== chunks * n || multipliers.length !== chunks * n * tokens) {
      throw new DarkroomError('TRAINING_BAD_BATCH', `token embeddings for ${inputsEmbeds.shape[0]} rows, expected ${chunks * n}`);
    }
    const session = await this.sessions.get(shapeKey(shape), () => this.build(shape));
    const { xt, target } = diffusionTargets(this.model, batch);
    const r = await session.run({
      ...feedsOf(xt, batch.t, target, batch.weight),
      inputs_embeds: inputsEmbeds,
      multipliers: float32([chunks, n * tokens, 1], multipliers),
    });
    return { loss: scalar(r.loss), gradInputsEmbeds: tensorOut(r, 'grad_inputs_embeds'), cond: tensorOut(r, 'cond') };
  }

  release(): Promise<void> {
    return this.sessions.release();
  }
}

export interface HypernetworkObjectiveResult {
  readonly loss: number;
  /** d loss / d each MLP input of the graph, by input name (Linear weights transposed, as the graph takes them). */
  readonly grads: ReadonlyMap<string, Float32Tensor>;
}

/** Hypernetwork training: the loss and its gradient with respect to every MLP weight, at multiplier 1. */
export class HypernetworkObjective {
  private readonly sessions: SessionCache;
  readonly inputs: readonly HypernetworkInput[];

  private constructor(
    private readonly model: TrainableModel,
    private readonly unet: Map<string, Float32Tensor>,
    private readonly arch: HypernetworkArchitecture,
    runtime: RuntimeOptions,
  ) {
    this.sessions = new SessionCache(runtime);
    this.inputs = hypernetworkInputs([arch]).filter((i) => i.param !== 'multiplier');
  }

  static async create(model: TrainableModel, arch: HypernetworkArchitecture, runtime: RuntimeOptions = {}): Promise<HypernetworkObjective> {
    return new HypernetworkObjective(model, await model.readWeights('unet'), arch, runtime);
  }

  private build(shape: ObjectiveShape): GraphBuilder {
    const { config } = this.model;
    const b = new GraphBuilder('train_hypernetwork');
    const tokens = config.text.maxPositions;
    const g = buildUNet(b, this.unet, config.unet, {
      batch: shape.batch,
      height: shape.latentHeight,
      width: shape.latentWidth,
      contextLength: shape.chunks * tokens,
      attentionContext: hypernetworkHook([this.arch]),
    });
    const io = lossInputs(b, shape, config.unet.inChannels);
    const loss = lossFrom(b, g.out, io.target, io.weight);
    const declared = declaredHypernetworkInputs(b);
    const wrt = this.inputs.map((i) => declared.get(i.name)!);
    const grads = grad(b, loss, wrt);
    b.output(loss, 'loss');
    this.inputs.forEach((input, k) => b.output(grads[k]!, `grad_${input.name}`));
    return b;
  }

  /** `cond` (B, C*77, D) is the conditioning computed once per dataset entry; `params` feeds every MLP input by name. */
  async evaluate(cond: Float32Tensor, params: Readonly<Record<string, HostTensor>>, batch: DiffusionBatch): Promise<HypernetworkObjectiveResult> {
    const [n, , h, w] = batch.latents.shape as [number, number, number, number];
    const tokens = this.model.config.text.maxPositions;
    const length = cond.shape[1]!;
    if (cond.shape[0] !== n || length % tokens !== 0) {
      throw new DarkroomError('TRAINING_BAD_BATCH', `conditioning of shape [${cond.shape}] for a batch of ${n}`);
    }
    const shape: ObjectiveShape = { batch: n, latentHeight: h, latentWidth: w, chunks: length / tokens, weighted: batch.weight !== undefined };
    const session = await this.sessions.get(shapeKey(shape), () => this.build(shape));
    const { xt, target } = diffusionTargets(this.model, batch);
    const r = await session.run({
      ...feedsOf(xt, batch.t, target, batch.weight),
      ...params,
      hn0_multiplier: float32([1], Float32Array.of(1)),
      context_k: cond,
      context_v: cond,
    });
    const grads = new Map<string, Float32Tensor>();
    for (const input of this.inputs) grads.set(input.name, tensorOut(r, `grad_${input.name}`));
    return { loss: scalar(r.loss), grads };
  }

  release(): Promise<void> {
    return this.sessions.release();
  }
}
