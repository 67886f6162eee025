/**
 * Objectives for training a whole model from scratch, every weight a graph input with a gradient (textual
 * inversion and hypernetworks, in objective.ts, train a few tensors beside a frozen model):
 *
 * - `VaeObjective`: the AutoencoderKL as an autoencoder. Encoder -> sampled latent (mean + std * noise) ->
 *   decoder, in one graph; loss = mean |x - x̂| + mse weight * mean (x - x̂)^2 + kl weight * KL(q(z|x) || N(0, I))
 *   (KL as a mean over latent elements).
 * - `DiffusionObjective`: ldm's p_losses for the UNet on latents, conditioned on the text encoder's output for
 *   token ids; the text encoder is trained with it or kept frozen. The token embedding lookup happens on the host
 *   (as at inference), so its gradient is the graph's gradient of `inputs_embeds` added back onto the rows read.
 *
 * Both return the loss and the gradient as one flat buffer laid out like `FlatParameters` (zero outside what is
 * trained), which `WholeModelOptimizer` steps.
 */
import { DarkroomError } from '../errors.js';
import { grad } from '../graph/autodiff.js';
import { GraphBuilder, type Value } from '../graph/builder.js';
import { buildTextEncoder } from '../models/clip.js';
import { tokenEmbeddingKey, type ModelConfig } from '../model-files/config.js';
import { computeAlphasCumprod } from '../models/schedule.js';
import { buildUNet } from '../models/unet.js';
import { buildVaeDecoder, buildVaeEncoder } from '../models/vae.js';
import { createSession, type EngineSession } from '../runtime/session.js';
import { float32, type Float32Tensor, type HostTensor } from '../tensor.js';
import { adamwStep, newAdamWState, type AdamWState } from './adamw.js';
import { type FlatParameters, gatherWeights, graphLayout, scatterGradient, type GraphWeightLayout } from './flat-parameters.js';
import { diffusionTargets, lossFrom, lossInputs, type DiffusionBatch, type RuntimeOptions, type TrainableModel } from './objective.js';

/** Where each component's weights sit in the checkpoint and which graph-name prefix the builders give them. */
export const COMPONENTS = {
  unet: { checkpoint: 'model.diffusion_model.', graph: 'unet.' },
  vae: { checkpoint: 'first_stage_model.', graph: 'vae.' },
} as const;

export interface ObjectiveResult {
  readonly loss: number;
  /** Named parts of the loss (e.g. rec, kl). */
  readonly parts: Readonly<Record<string, number>>;
  /** d loss / d every flat weight (zero for frozen ones). */
  readonly grad: Float32Array;
}

export function scalarOut(r: Record<string, HostTensor>, name: string): number {
  const t = r[name];
  if (t?.dtype !== 'float32') throw new DarkroomError('MODEL_BAD_OUTPUT', `the training graph returned no ${name}`);
  return (t.data as Float32Array)[0]!;
}

export function tensorOut(r: Record<string, HostTensor>, name: string): Float32Tensor {
  const t = r[name];
  if (t?.dtype !== 'float32') throw new DarkroomError('MODEL_BAD_OUTPUT', `the training graph returned no ${name}`);
  return t as Float32Tensor;
}

async function session(b: GraphBuilder, runtime: RuntimeOptions): Promise<EngineSession> {
  return createSession(b.toModel(), {
    ...(runtime.provider ? { provider: runtime.provider } : {}),
    ...(runtime.threads !== undefined ? { threads: runtime.threads } : {}),
  });
}

/** Builds the graph for real, promotes its trained weights, adds their gradient outputs, and opens it. */
export async function trainingSession(
  build: () => { b: GraphBuilder; loss: Value; extraWrt?: ReadonlyArray<{ value: Value; name: string }> },
  trained: (name: string) => boolean,
  runtime: RuntimeOptions,
): Promise<EngineSession> {
  const { b, loss, extraWrt = [] } = build();
  const promoted = b.promoteWeights(trained);
  const wrt = [...promoted.map((p) => p.value), ...extraWrt.map((e) => e.value)];
  const grads = grad(b, loss, wrt);
  b.output(loss, 'loss');
  promoted.forEach((p, i) => b.output(grads[i]!, `grad:${p.value.name}`));
  extraWrt.forEach((e, i) => b.output(grads[promoted.length + i]!, `grad:${e.name}`));
  return session(b, runtime);
}

export interface VaeObjectiveOptions extends RuntimeOptions {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  /** Weight of the KL term (default 1e-4). */
  readonly klWeight?: number;
  /** Weight of a squared-error term beside the L1 reconstruction (default 1). */
  readonly mseWeight?: number;
}

/** What the VAE's objectives hold: the flat weights, the graph's layout of them, its session and a batch's latent shape. */
abstract class VaeSessionObjective {
  protected constructor(
    protected readonly params: FlatParameters,
    protected readonly layout: readonly GraphWeightLayout[],
    protected readonly session: EngineSession,
    protected readonly latentShape: readonly number[],
  ) {}

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * mean |image - target| + mseWeight * mean (image - target)^2, with its two parts output as `l1` and `mse` and the
 * image as `reconstruction`: the decoder's loss in both VAE objectives.
 */
function reconstructionLoss(b: GraphBuilder, image: Value, target: Value, mseWeight: number): Value {
  const d = b.sub(image, target);
  const l1 = b.reduceMean(b.abs(d), [0, 1, 2, 3], false);
  const mse = b.reduceMean(b.mul(d, d), [0, 1, 2, 3], false);
  b.output(l1, 'l1');
  b.output(mse, 'mse');
  b.output(image, 'reconstruction');
  return b.add(l1, b.mul(mse, mseWeight));
}

/** The VAE as an autoencoder: loss and gradient for every VAE weight. */
export class VaeObjective extends VaeSessionObjective {

  static async create(params: FlatParameters, config: ModelConfig, opts: VaeObjectiveOptions): Promise<VaeObjective> {
    const down = 2 ** (config.vae.chMult.length - 1);
    if (opts.height % down || opts.width % down) {
      throw new DarkroomError('TRAINING_BAD_PARAMETER', `image size ${opts.width}x${opts.height} is not a multiple of ${down}`);
    }
    const latent = [opts.batch, config.vae.embedDim, opts.height / down, opts.width / down];
    const klWeight = opts.klWeight ?? 1e-4;
    const mseWeight = opts.mseWeight ?? 1;
    const build = (weights: Map<string, Float32Tensor>): { b: GraphBuilder; loss: Value } => {
      const b = new GraphBuilder('train_vae');
      const common = { batch: opts.batch, scaleFactor: config.scaleFactor };
      const enc = buildVaeEncoder(b, weights, config.vae, { ...common, height: opts.height, width: opts.width });
      const noise = b.input('noise', 'float32', latent);
      const z = b.add(enc.mean, b.mul(enc.std, noise));
      b.bindInput('latent', b.mul(z, config.scaleFactor));
      const dec = buildVaeDecoder(b, weights, config.vae, { ...common, height: latent[2]!, width: latent[3]! });
      const kl = b.mul(b.reduceMean(b.sub(b.add(b.mul(enc.mean, enc.mean), b.exp(enc.logvar)), b.add(enc.logvar, 1)), [0, 1, 2, 3], false), 0.5);
      b.output(kl, 'kl');
      return { b, loss: b.add(reconstructionLoss(b, dec.image, enc.image, mseWeight), b.mul(kl, klWeight)) };
    };
    const trained = (name: string): boolean => name.startsWith(COMPONENTS.vae.graph);
    const prefix = COMPONENTS.vae.checkpoint;
    const layout = graphLayout(() => build(params.probeComponent(prefix)).b, trained);
    const s = await trainingSession(() => build(params.component(prefix)), trained, opts);
    return new VaeObjective(params, layout, s, latent);
  }

  /** `images` (B, 3, H, W) in [-1, 1]; `noise` the standard normal draw of the latent sample. */
  async evaluate(images: Float32Tensor, noise: Float32Tensor): Promise<ObjectiveResult & { reconstruction: Float32Tensor }> {
    if (noise.data.length !== this.latentShape.reduce((a, d) => a * d, 1)) {
      throw new DarkroomError('TRAINING_BAD_BATCH', `latent noise of shape [${noise.shape}], expected [${this.latentShape}]`);
    }
    const r = await this.session.run({ image: images, noise, ...gatherWeights(this.layout, this.params.data) });
    return {
      loss: scalarOut(r, 'loss'),
      parts: { l1: scalarOut(r, 'l1'), mse: scalarOut(r, 'mse'), kl: scalarOut(r, 'kl') },
      grad: layoutGradient(this.layout, r, this.params.size),
      reconstruction: tensorOut(r, 'reconstruction'),
    };
  }
}

export interface DecoderObjectiveOptions extends RuntimeOptions {
  readonly batch: number;
  readonly latentHeight: number;
  readonly latentWidth: number;
  /** Weight of a squared-error term beside the L1 reconstruction (default 1, as VaeObjective). */
  readonly mseWeight?: number;
}

/** Whether a VAE graph weight belongs to the decoder side (post_quant_conv and decoder.*). */
function isDecoderWeight(name: string): boolean {
  return name.startsWith(`${COMPONENTS.vae.graph}decoder.`) || name.startsWith(`${COMPONENTS.vae.graph}post_quant_conv.`);
}

/**
 * The VAE's decoder alone, from given latents to given images: loss and gradient for the decoder's weights (the
 * encoder's get none). The latents are in the UNet's scaled units, as the pipeline hands them to the decoder, so a
 * decoder can be fine-tuned on what a trained UNet draws towards what should have been drawn, which an
 * autoencoder's own round trip never shows it.
 */
export class DecoderObjective extends VaeSessionObjective {

  static async create(params: FlatParameters, config: Pick<ModelConfig, 'vae' | 'scaleFactor'>, opts: DecoderObjectiveOptions): Promise<DecoderObjective> {
    const down = 2 ** (config.vae.chMult.length - 1);
    const latent = [opts.batch, config.vae.embedDim, opts.latentHeight, opts.latentWidth];
    const mseWeight = opts.mseWeight ?? 1;
    const build = (weights: Map<string, Float32Tensor>): { b: GraphBuilder; loss: Value } => {
      const b = new GraphBuilder('train_vae_decoder');
      const dec = buildVaeDecoder(b, weights, config.vae, { batch: opts.batch, scaleFactor: config.scaleFactor, height: opts.latentHeight, width: opts.latentWidth });
      const target = b.input('target', 'float32', [opts.batch, 3, opts.latentHeight * down, opts.latentWidth * down]);
      return { b, loss: reconstructionLoss(b, dec.image, target, mseWeight) };
    };
    const prefix = COMPONENTS.vae.checkpoint;
    const layout = graphLayout(() => build(params.probeComponent(prefix)).b, isDecoderWeight);
    const s = await trainingSession(() => build(params.component(prefix)), isDecoderWeight, opts);
    return new DecoderObjective(params, layout, s, latent);
  }

  /** `latents` (B, C, h, w) in the UNet's scaled units; `targets` (B, 3, H, W) in [-1, 1]. */
  async evaluate(latents: Float32Tensor, targets: Float32Tensor): Promise<ObjectiveResult & { reconstruction: Float32Tensor }> {
    if (latents.shape.join(',') !== this.latentShape.join(',')) {
      throw new DarkroomError('TRAINING_BAD_BATCH', `latents of shape [${latents.shape}], expected [${this.latentShape}]`);
    }
    const r = await this.session.run({ latent: latents, target: targets, ...gatherWeights(this.layout, this.params.data) });
    return {
      loss: scalarOut(r, 'loss'),
      parts: { l1: scalarOut(r, 'l1'), mse: scalarOut(r, 'mse') },
      grad: layoutGradient(this.layout, r, this.params.size),
      reconstruction: tensorOut(r, 'reconstruction'),
    };
  }
}

/** The flat gradient (zero outside the graph's trained weights) from a training session's `grad:` outputs. */
function layoutGradient(layout: readonly GraphWeightLayout[], r: Record<string, HostTensor>, size: number): Float32Array {
  const g = new Float32Array(size);
  for (const l of layout) scatterGradient(l, tensorOut(r, `grad:${l.name}`).data, g);
  return g;
}

export interface DiffusionObjectiveOptions extends RuntimeOptions {
  readonly batch: number;
  readonly latentHeight: number;
  readonly latentWidth: number;
  /** Train the text encoder with the UNet (default false: frozen). */
  readonly trainText?: boolean;
  /** A1111's CLIP skip the model is trained (and will be used) with (default 1). */
  readonly clipSkip?: number;
  /** Each batch carries a loss weight per latent element (`DiffusionBatch.weight`), as A1111's weight map does. */
  readonly weighted?: boolean;
  /** Each batch carries a batch x batch mixing of the residuals (`DiffusionBatch.mix`, see groupFocusMix). */
  readonly mixed?: boolean;
}

/** The schedule arrays `diffusionTargets` takes, from the config alone. */
export function scheduleOf(config: ModelConfig): TrainableModel {
  const acp = computeAlphasCumprod(config.schedule);
  return {
    config,
    parameterization: config.parameterization,
    sqrtAlphasCumprod: acp.map((a) => Math.sqrt(a)),
    sqrtOneMinusAlphasCumprod: acp.map((a) => Math.sqrt(1 - a)),
    readWeights: () => Promise.reject(new DarkroomError('TRAINING_BAD_PARAMETER', 'weights live in FlatParameters')),
  };
}

/** The UNet's eps (or v) loss for latents and token ids; gradient for the UNet and, optionally, the text encoder. */
export class DiffusionObjective {
  private constructor(
    private readonly params: FlatParameters,
    private readonly config: ModelConfig,
    private readonly layout: readonly GraphWeightLayout[],
    private readonly session: EngineSession,
    private readonly trainText: boolean,
    private readonly schedule: TrainableModel,
    private readonly weighted: boolean,
    private readonly mixed: boolean,
  ) {}

  static async create(params: FlatParameters, config: ModelConfig, opts: DiffusionObjectiveOptions): Promise<DiffusionObjective> {
    const clipSkip = opts.clipSkip ?? 1;
    const trainText = opts.trainText ?? false;
    const textPrefix = config.text.prefix;
    const build = (text: Map<string, Float32Tensor>, unet: Map<string, Float32Tensor>): { b: GraphBuilder; loss: Value; extraWrt: Array<{ value: Value; name: string }> } => {
      const b = new GraphBuilder('train_unet');
      const enc = buildTextEncoder(b, text, config.text, { batch: opts.batch });
      const cond = enc.skips[clipSkip - 1];
      if (!cond) throw new DarkroomError('TRAINING_BAD_PARAMETER', `clip skip ${clipSkip} is outside 1..${config.text.layers + 1}`, { field: 'clip_skip' });
      const g = buildUNet(b, unet, config.unet, {
        batch: opts.batch,
        height: opts.latentHeight,
        width: opts.latentWidth,
        contextLength: config.text.maxPositions,
        context: { k: cond, v: cond },
      });
      const io = lossInputs(b, { ...opts, weighted: opts.weighted ?? false, mixed: opts.mixed ?? false }, config.unet.outChannels);
      const loss = lossFrom(b, g.out, io.target, io.weight, io.mix);
      return { b, loss, extraWrt: trainText ? [{ value: enc.inputsEmbeds, name: 'inputs_embeds' }] : [] };
    };
    const trained = (name: string): boolean => name.startsWith(COMPONENTS.unet.graph) || (trainText && name.startsWith('text.'));
    const unetPrefix = COMPONENTS.unet.checkpoint;
    const layout = graphLayout(() => build(params.probeComponent(textPrefix), params.probeComponent(unetPrefix)).b, trained);
    const s = await trainingSession(() => build(params.component(textPrefix), params.component(unetPrefix)), trained, opts);
    return new DiffusionObjective(params, config, layout, s, trainText, scheduleOf(config), opts.weighted ?? false, opts.mixed ?? false);
  }

  /** `ids`: each sample's 77 token ids (bos, caption, eos, eos padding); `batch`: clean latents, timesteps, noise. */
  async evaluate(ids: readonly (readonly number[])[], batch: DiffusionBatch): Promise<ObjectiveResult> {
    const { xt, target } = diffusionTargets(this.schedule, batch);
    if (this.weighted !== (batch.weight !== undefined)) {
      throw new DarkroomError('TRAINING_BAD_BATCH', this.weighted ? 'this objective takes a loss weight with every batch' : 'this objective was built without a loss weight');
    }
    if (batch.weight && batch.weight.data.length !== target.data.length) throw new DarkroomError('TRAINING_BAD_BATCH', 'loss weight and latents differ in size');
    if (this.mixed !== (batch.mix !== undefined)) {
      throw new DarkroomError('TRAINING_BAD_BATCH', this.mixed ? 'this objective takes a residual mixing with every batch' : 'this objective was built without a residual mixing');
    }
    if (batch.mix && batch.mix.data.length !== batch.t.length ** 2) throw new DarkroomError('TRAINING_BAD_BATCH', 'the residual mixing is not batch x batch');
    const r = await this.session.run({
      x: xt,
      t: float32([batch.t.length], Float32Array.from(batch.t)),
      target,
      ...(batch.weight ? { loss_weight: batch.weight } : {}),
      ...(batch.mix ? { loss_mix: batch.mix } : {}),
      inputs_embeds: tokenEmbeddings(this.params, this.config, ids),
      ...gatherWeights(this.layout, this.params.data),
    });
    const g = layoutGradient(this.layout, r, this.params.size);
    if (this.trainText) addTokenEmbeddingGradient(this.params, this.config, ids, tensorOut(r, 'grad:inputs_embeds').data, g);
    return { loss: scalarOut(r, 'loss'), parts: {}, grad: g };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** The rows of the token embedding for `ids` (B x 77), as the pipeline looks them up: (B, 77, D). */
export function tokenEmbeddings(params: FlatParameters, config: ModelConfig, ids: readonly (readonly number[])[]): Float32Tensor {
  const o = params.offsets.get(tokenEmbeddingKey(config.text))!;
  const d = config.text.width;
  const n = config.text.maxPositions;
  const out = new Float32Array(ids.length * n * d);
  ids.forEach((row, s) => {
    if (row.length !== n) throw new DarkroomError('TRAINING_BAD_BATCH', `${row.length} token ids, expected ${n}`);
    row.forEach((id, j) => out.set(params.data.subarray(o + id * d, o + (id + 1) * d), (s * n + j) * d));
  });
  return float32([ids.length, n, d], out);
}

/** Adds the gradient of the looked-up rows (`gradEmbeds`, (B, 77, D)) onto the token embedding's rows in `g`. */
export function addTokenEmbeddingGradient(params: FlatParameters, config: ModelConfig, ids: readonly (readonly number[])[], gradEmbeds: Float32Array, g: Float32Array): void {
  const o = params.offsets.get(tokenEmbeddingKey(config.text))!;
  const d = config.text.width;
  const n = config.text.maxPositions;
  ids.forEach((row, s) =>
    row.forEach((id, j) => {
      for (let k = 0; k < d; k++) g[o + id * d + k] = g[o + id * d + k]! + gradEmbeds[(s * n + j) * d + k]!;
    }),
  );
}

/** 77 token ids of a caption as the pipeline builds them for SD1: bos, tokens (at most 75), eos, eos padding. */
export function captionTokenIds(tokenizer: { encode(text: string): number[]; bosId: number; eosId: number }, text: string, length = 77): number[] {
  const tokens = tokenizer.encode(text).slice(0, length - 2);
  const ids = [tokenizer.bosId, ...tokens, tokenizer.eosId];
  while (ids.length < length) ids.push(tokenizer.eosId);
  return ids;
}

export interface WholeModelOptimizerOptions {
  readonly lr: number;
  readonly weightDecay?: number;
  /** EMA decay per step (default 0.999); 0 turns EMA off. */
  readonly emaDecay?: number;
}

/**
 * AdamW over the flat ranges being trained (the rest of the model is left exactly as it is), and an exponential
 * moving average of those weights, the copy that is saved.
 */
export class WholeModelOptimizer {
  private readonly state: AdamWState;
  /** EMA of the flat weights (frozen ranges equal the weights). */
  readonly ema: Float32Array;
  private readonly emaDecay: number;
  steps = 0;

  constructor(
    private readonly params: FlatParameters,
    private readonly ranges: ReadonlyArray<readonly [number, number]>,
    opts: WholeModelOptimizerOptions,
  ) {
    this.state = newAdamWState(
      ranges.map(([a, b]) => b - a),
      opts.lr,
      opts.weightDecay ?? 0,
    );
    this.ema = params.data.slice();
    this.emaDecay = opts.emaDecay ?? 0.999;
  }

  set lr(lr: number) {
    this.state.lr = lr;
  }

  step(grad: Float32Array): void {
    adamwStep(
      this.ranges.map(([a, b]) => this.params.data.subarray(a, b)),
      this.ranges.map(([a, b]) => grad.subarray(a, b)),
      this.state,
    );
    this.steps++;
    // Warm-up of the decay (as in diffusers' EMAModel): early averages do not drag the random initialisation along.
    const decay = Math.min(this.emaDecay, (1 + this.steps) / (10 + this.steps));
    for (const [a, b] of this.ranges) {
      for (let i = a; i < b; i++) this.ema[i] = decay * this.ema[i]! + (1 - decay) * this.params.data[i]!;
    }
  }
}
