/**
 * Training a scene model from scratch: the VAE as an autoencoder on rendered scenes, then the UNet (and
 * optionally the text encoder) on the latents of a pool of scenes with varied captions, classifier-free-guidance
 * caption dropout, AdamW and EMA weights. Every random draw is keyed by (seed, purpose, step), so a run is
 * reproducible. The result is a checkpoint's tensors (EMA weights), its config JSON with the measured latent
 * scale factor, and the vocabulary.
 */
import { DarkroomError } from '../errors.js';
import { vaeEncoderModel } from '../models/graphs.js';
import { isTransformerBlockOutput, type TinyArchitecture } from '../pipeline/demo-model.js';
import { createSession } from '../runtime/session.js';
import type { ModelConfig, Parameterization } from '../model-files/config.js';
import { float32, toFloat32, type Float32Tensor, type HostTensor } from '../tensor.js';
import { adamwStep, newAdamWState } from './adamw.js';
import { CaptionFactsObjective, captionFacts } from './caption-facts.js';
import { FlatParameters } from './flat-parameters.js';
import { KeyedStream } from './keyed-random.js';
import { captionScene } from './scenes/captions.js';
import { imageToChw, objectLabels, renderScene } from './scenes/render.js';
import { evaluateReconstruction, type ReconstructionReport } from './scenes/evaluate-vae.js';
import { atPositionVariant, atShapeVariant, heldOutScenes, POSITIONS, SHAPES, shapeGroupScene, trainingScene, type Scene, type Shape } from './scenes/scene.js';
import { newScratchModel, scratchConfig, type ScratchModel } from './scratch-model.js';
import { captionTokenIds, COMPONENTS, DiffusionObjective, scheduleOf, VaeObjective, WholeModelOptimizer } from './whole-model.js';

export interface SceneTrainingOptions {
  readonly arch: TinyArchitecture;
  readonly resolution: number;
  readonly seed: number;
  readonly vaeSteps: number;
  readonly unetSteps: number;
  readonly vaeBatch?: number;
  /**
   * Side of the square the autoencoder trains on, cut at a random place from each rendered scene (default: the
   * whole image). The VAE is convolutional, so it learns the full resolution's objects at a fraction of the cost
   * per step: a 64x64 crop of a 128x128 scene costs what a 64x64 scene does.
   */
  readonly vaeCrop?: number;
  readonly unetBatch?: number;
  readonly vaeLr?: number;
  readonly unetLr?: number;
  /** Scenes whose latents the UNet trains on (default 2048). */
  readonly poolSize?: number;
  /** Chance that a caption is replaced by the empty prompt (default 0.1). */
  readonly captionDropout?: number;
  readonly trainText?: boolean;
  /**
   * Strengths of the coarse noise added to the UNet's training noise, level k being a 2^k x 2^k grid of standard
   * normals stretched over the latent per sample and channel (k = 0: one constant, the "offset noise"; k = 1: the
   * quadrants; ...). Default none. Under SD's schedule even the last timestep keeps a small latent's mean colour
   * and coarse layout readable through the noise (an 8x8 latent's channel mean through noise of std 1 has std
   * 1/8, below a tenth of the signal at t = 999), so the UNet learns to read them off x_t and never from the
   * caption; at sampling time it then reads them off the starting noise, and draws random colours. Noise at those
   * scales hides them, and the caption is the only place left to learn them from.
   */
  readonly lowFrequencyNoise?: readonly number[];
  /**
   * How each sample's loss is weighted by its timestep (default 'uniform', ldm's plain eps loss). 'truncated-snr'
   * weights it by max(1, 1/SNR(t)), so it is the larger of the eps and the x0 error (Salimans and Ho's truncated
   * SNR weighting). Under the eps loss an x0 wrong in its layout costs SNR(t) times its error: at the timesteps
   * where only the caption tells where the object is (SNR below 0.05) a UNet that ignores the caption's position
   * and shape words loses almost nothing, and it learns them slowly if at all; weighted, it loses the x0 error.
   */
  readonly lossWeighting?: LossWeighting;
  /**
   * What the UNet learns to predict (default 'eps', the noise; 'v': sqrt(acp) eps - sqrt(1 - acp) x0, SD 2's
   * parameterization, written into the config so that the pipeline samples it as A1111 does a v model). Near the
   * last timestep v is almost -x0, so the loss there is the x0 error at full weight, and an output that ignores
   * where the caption puts the object is what it costs; under eps the same error costs acp times as much, and an
   * eps model that already draws learns it by changing a small part of a large output. Starting from an eps
   * checkpoint (startFrom) fine-tunes it to v, as SD 2's 768-v model was made from its eps base.
   */
  readonly parameterization?: Parameterization;
  /**
   * Steps of training the text encoder alone, before the UNet, to name each caption's facts (the object's shape,
   * colour and position, the background colour) from every end-of-text token (CaptionFactsObjective; default 0:
   * none). With `trainText` false the UNet then learns on that encoder as it is.
   */
  readonly captionFactsSteps?: number;
  /** Captions per caption-facts step (default 32). */
  readonly captionFactsBatch?: number;
  /** Learning rate of the caption-facts phase (default 1e-3). */
  readonly captionFactsLr?: number;
  /**
   * Builds the UNet's latent pool in groups of POSITIONS.length scenes that differ only in where the object is
   * (atPositionVariant), and fills each batch with whole groups sharing one timestep and one noise draw, every
   * caption stating the position (default false). Within a group the loss can only be lowered by reading the
   * position words: a UNet that places objects by the noise alone makes every member but one wrong.
   */
  readonly positionGroups?: boolean;
  /**
   * Builds the pool (also) of groups of SHAPES.length scenes that differ only in the first object's shape
   * (atShapeVariant), shared timestep and noise as with positionGroups: within a group only the shape word lowers
   * the loss. With both, groups alternate between the two kinds and every group has SHAPES.length members (a
   * position group's last member repeats its first position).
   */
  readonly shapeGroups?: boolean;
  /**
   * With groups, weights each latent element's loss by 1 + groupContrast * (how much the group's latents differ
   * there, relative to the group's mean spread) (default 0: no weighting). A shape's corners and points are a few
   * latent cells of a square's area: the loss a UNet saves by drawing the group's average blob instead of the
   * caption's shape is too small a part of the whole to be learned in a CPU's budget, and this weight puts it where
   * the members differ.
   */
  readonly groupContrast?: number;
  /**
   * With groups, weights the part of the loss only the varied words can explain by this factor (default 1: the
   * plain loss). A group's squared residuals split exactly into the part every member shares (n times the squared
   * mean residual: colour, background, the blob where the object is) and the members' deviations from that mean
   * (the shape or the place, which only the caption tells apart); this multiplies the second part alone
   * (groupFocusMix), so the shape word's share of the gradient grows without changing what the rest is trained
   * towards, where groupContrast also weights the shared part and makes the background relatively cheaper. On the
   * built-in model the deviations were a third of the residual and mostly detail no word explains, so focus 9
   * lowered every fact (docs/demo-model.md).
   */
  readonly groupFocus?: number;
  /**
   * Which captions of a grouped pool always state the position: `all` (the default, as position groups have
   * trained since they were added) or `position-groups`, where the other groups' captions state it about as often
   * as ungrouped ones. A UNet that never sees a caption without a place draws noise for "a red square, white
   * background", one of the phrasings the captions exist to teach.
   */
  readonly statedPositions?: 'all' | 'position-groups';
  /**
   * Multiplies the loss of every training scene whose first object has this shape (default: none, every shape 1).
   * The autoencoder keeps every square and the built-in UNet drew under half of them (docs/demo-model.md): a
   * square's loss weighted up gives its edges more of the gradient than the other shapes' share of a blob.
   */
  readonly shapeLossWeights?: Readonly<Partial<Record<Shape, number>>>;
  /**
   * Weights each latent cell's loss by 1 + this factor times the share of its pixels on an object's outline
   * (outlineCellWeights; default 0: off). A square drawn as a lumpy blob of the right colour and place differs from
   * the square only along its edges and corners; weighting the whole scene (shapeLossWeights) put the added
   * gradient on colour and background, which the model already drew, where this puts it on the outline.
   */
  readonly outlineLoss?: number;
  /**
   * Draws a share of the UNet's timesteps from the noisier end of the schedule: with probability `share`, from
   * [from * T, T), otherwise from all of [0, T) (default share 0: uniform, as ldm trains). The shape of an object is
   * decided in the noisier half of sampling (img2img of held-out renders through a model that draws colours and
   * positions kept the shape in 22 of 24 at denoising strength 0.3 and 9 of 24 at 0.7): this spends more of a
   * CPU's budget of steps where that decision is learned, and keeps some of every timestep.
   */
  readonly highNoise?: HighNoise;
  readonly emaDecay?: number;
  readonly threads?: number;
  /**
   * Autoencoder weights to start from (checkpoint keys under `first_stage_model.`), e.g. a VAE trained by an earlier
   * run: with `vaeSteps` 0 the UNet is trained on them as they are.
   */
  readonly vaeFrom?: ReadonlyMap<string, HostTensor>;
  /**
   * Weights of any component to start from (checkpoint keys), e.g. an earlier run's whole checkpoint to train its
   * UNet further; tensors the architecture lacks are ignored, a shape that differs is refused.
   */
  readonly startFrom?: ReadonlyMap<string, HostTensor>;
  /**
   * Every this many UNet steps (default 0: never), `onSnapshot` is given the EMA weights and config as they
   * would be saved if the run ended there: a run of hours can be evaluated on the way and, stopped, continued
   * with `startFrom` from its last snapshot.
   */
  readonly snapshotEvery?: number;
  readonly onSnapshot?: (step: number, snapshot: SceneModelSnapshot) => Promise<void>;
  /** Held-out scenes the autoencoder's round trip is checked on before the UNet is trained (default all; 0: none). */
  readonly vaeCheckScenes?: number;
  /** Told the round trip's report before the UNet is trained; throwing stops the run there. */
  readonly onVaeCheck?: (report: ReconstructionReport) => void;
}

/** See SceneTrainingOptions.highNoise. */
export interface HighNoise {
  /** Start of the noisy range, as a fraction of the schedule's timesteps (0 to below 1). */
  readonly from: number;
  /** Fraction of timesteps drawn from that range (0 to 1). */
  readonly share: number;
}

/** A UNet training timestep: uniform over [0, steps), or from the high-noise range with probability `share`. */
export function drawTimestep(r: KeyedStream, steps: number, highNoise: HighNoise | undefined): number {
  // No extra draw when off, so runs without the option keep their random streams.
  if (!highNoise || highNoise.share === 0) return r.below(steps);
  if (r.random() >= highNoise.share) return r.below(steps);
  const first = Math.floor(highNoise.from * steps);
  return first + r.below(steps - first);
}

export const LOSS_WEIGHTINGS = ['uniform', 'truncated-snr'] as const;
export type LossWeighting = (typeof LOSS_WEIGHTINGS)[number];

/** The loss weight of a sample at timestep `t`, from the schedule's sqrt(acp) and sqrt(1 - acp). */
export function timestepWeight(weighting: LossWeighting, sqrtAcp: number, sqrtOneMinusAcp: number): number {
  if (weighting === 'uniform') return 1;
  const inverseSnr = (sqrtOneMinusAcp * sqrtOneMinusAcp) / (sqrtAcp * sqrtAcp);
  return Math.max(1, inverseSnr);
}

/**
 * Loss weights for a batch of grouped latents (batch x per elements, consecutive runs of `group` members, the last
 * run possibly shorter): 1 + contrast * spread / mean spread, where spread is the variance across the run's
 * members at each location (summed over channels) and the mean is over the run's locations. Runs of one member,
 * and runs whose members are all alike, are weighted 1; with contrast 0 every element is.
 */
export function groupContrastWeights(latents: Float32Array, batch: number, channels: number, cells: number, group: number, contrast: number): Float32Array {
  const per = channels * cells;
  const w = new Float32Array(batch * per).fill(1);
  if (contrast === 0) return w;
  for (let lead = 0; lead < batch; lead += group) {
    const n = Math.min(group, batch - lead);
    if (n < 2) continue;
    const spread = new Float64Array(cells);
    for (let c = 0; c < channels; c++) {
      for (let p = 0; p < cells; p++) {
        let sum = 0;
        let sq = 0;
        for (let m = 0; m < n; m++) {
          const v = latents[(lead + m) * per + c * cells + p]!;
          sum += v;
          sq += v * v;
        }
        spread[p]! += Math.max(0, sq / n - (sum / n) ** 2);
      }
    }
    const mean = spread.reduce((a, b) => a + b, 0) / cells;
    if (!(mean > 0)) continue;
    for (let m = 0; m < n; m++) {
      for (let c = 0; c < channels; c++) {
        for (let p = 0; p < cells; p++) w[(lead + m) * per + c * cells + p] = 1 + (contrast * spread[p]!) / mean;
      }
    }
  }
  return w;
}

/**
 * The batch x batch mixing (row-major) whose product with a batch's residuals r gives r'_i = sqrt(focus) * r_i +
 * (1 - sqrt(focus)) * mean(r over i's group), so that the sum of squares over a group is n |mean r|^2 + focus *
 * sum |r_i - mean r|^2. Groups are consecutive runs of `group` members (the last possibly shorter) among those with
 * a caption: a member whose caption was dropped for guidance has nothing that tells it apart, so its row is the
 * identity and it is left out of its group's mean, as are runs of one member.
 */
export function groupFocusMix(batch: number, group: number, focus: number, captioned: readonly boolean[]): Float32Array {
  if (!(focus > 0) || !Number.isFinite(focus)) throw new DarkroomError('TRAINING_BAD_PARAMETER', `groupFocus: finite and above 0, got ${focus}`);
  if (captioned.length !== batch) throw new DarkroomError('TRAINING_BAD_BATCH', `${captioned.length} caption flags for a batch of ${batch}`);
  const mix = new Float32Array(batch * batch);
  for (let i = 0; i < batch; i++) mix[i * batch + i] = 1;
  const root = Math.sqrt(focus);
  for (let lead = 0; lead < batch; lead += group) {
    const members: number[] = [];
    for (let i = lead; i < Math.min(lead + group, batch); i++) if (captioned[i]) members.push(i);
    if (members.length < 2) continue;
    for (const i of members) {
      mix[i * batch + i] = root;
      for (const j of members) mix[i * batch + j] = mix[i * batch + j]! + (1 - root) / members.length;
    }
  }
  return mix;
}

export interface TrainingProgress {
  readonly phase: 'vae' | 'vae-check' | 'caption-facts' | 'latents' | 'unet';
  readonly step: number;
  readonly steps: number;
  readonly loss?: number;
  /** The caption-facts phase: the fraction of facts its heads name right in this step's batch. */
  readonly accuracy?: number;
  readonly seconds: number;
}

export interface SceneModelSnapshot {
  readonly tensors: Map<string, HostTensor>;
  readonly configJson: object;
}

export interface SceneTrainingResult extends SceneModelSnapshot {
  readonly model: ScratchModel;
  readonly scaleFactor: number;
  /** Mean loss of the first and last tenth of each phase's steps. */
  readonly losses: { readonly vae: readonly [number, number]; readonly unet: readonly [number, number] };
  /** Seconds per step of each phase (after the graph is built). */
  readonly secondsPerStep: { readonly vae: number; readonly unet: number };
  /** The autoencoder's round trip on held-out scenes, read by the detector (null when not checked). */
  readonly vaeCheck: ReconstructionReport | null;
}

/** A linear warm-up over the first 5% of the steps, then a cosine decay to a tenth. */
export function learningRate(base: number, step: number, steps: number): number {
  const warm = Math.max(1, Math.floor(steps * 0.05));
  if (step < warm) return (base * (step + 1)) / warm;
  const f = (step - warm) / Math.max(1, steps - warm);
  return base * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * f)));
}

/** What the members of a pool's groups differ in. */
export type VariantKind = 'position' | 'shape';

/** How a pool is grouped: consecutive runs of `size` scenes, group g varying `kinds[g % kinds.length]`. */
export interface PoolGrouping {
  readonly kinds: readonly VariantKind[];
  readonly size: number;
}

export const UNGROUPED: PoolGrouping = { kinds: [], size: 1 };

const VARIANT_KINDS: readonly VariantKind[] = ['position', 'shape'];
const VARIANTS: Record<VariantKind, number> = { position: POSITIONS.length, shape: SHAPES.length };

export function poolGrouping(position: boolean, shape: boolean): PoolGrouping {
  const kinds = VARIANT_KINDS.filter((k) => (k === 'position' ? position : shape));
  return kinds.length === 0 ? UNGROUPED : { kinds, size: Math.max(...kinds.map((k) => VARIANTS[k])) };
}

/** What the group of pool scene `k` varies (nothing for an ungrouped pool). */
export function poolVariantKind(k: number, grouping: PoolGrouping): VariantKind | undefined {
  const { kinds, size } = grouping;
  return kinds.length === 0 ? undefined : kinds[Math.floor(k / size) % kinds.length];
}

/** Whether the caption of pool scene `k` always states the position (see statedPositions). */
export function alwaysStatesPosition(k: number, grouping: PoolGrouping, stated: 'all' | 'position-groups'): boolean {
  return grouping.kinds.includes('position') && (stated === 'all' || poolVariantKind(k, grouping) === 'position');
}

/**
 * Multiplies each sample's run of `per` elements in `weight` (batch x per) by its first shape's factor in
 * `factors` (shapes not named keep 1).
 */
export function weightByShape(weight: Float32Array, shapes: readonly Shape[], per: number, factors: Readonly<Partial<Record<Shape, number>>>): void {
  for (const [i, shape] of shapes.entries()) {
    const f = factors[shape] ?? 1;
    if (f === 1) continue;
    for (let j = i * per; j < (i + 1) * per; j++) weight[j]! *= f;
  }
}

/**
 * Loss weights over a scene's latent cells (`res / down` a side, rows top to bottom): 1 + factor times the share
 * of the cell's `down` x `down` pixels whose (2 band + 1)-pixel square neighbourhood holds a pixel painted by
 * something else, i.e. that lie on an object's outline. The split background's own edge is no outline.
 */
export function outlineCellWeights(scene: Scene, res: number, down: number, band: number, factor: number): Float32Array {
  const labels = objectLabels(scene, res, res);
  const cells = res / down;
  const onOutline = new Uint8Array(res * res);
  for (let y = 0; y < res; y++) {
    for (let x = 0; x < res; x++) {
      const own = labels[y * res + x]!;
      search: for (let dy = -band; dy <= band; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= res) continue;
        for (let dx = -band; dx <= band; dx++) {
          const xx = x + dx;
          if (xx >= 0 && xx < res && labels[yy * res + xx] !== own) {
            onOutline[y * res + x] = 1;
            break search;
          }
        }
      }
    }
  }
  const w = new Float32Array(cells * cells);
  for (let cy = 0; cy < cells; cy++) {
    for (let cx = 0; cx < cells; cx++) {
      let count = 0;
      for (let y = cy * down; y < (cy + 1) * down; y++) for (let x = cx * down; x < (cx + 1) * down; x++) count += onOutline[y * res + x]!;
      w[cy * cells + cx] = 1 + (factor * count) / (down * down);
    }
  }
  return w;
}

/** Multiplies sample `i`'s elements of `weight` (channels x cells each) by `cellWeights` at every channel. */
function weightCells(weight: Float32Array, i: number, channels: number, cellWeights: Float32Array): void {
  const cells = cellWeights.length;
  for (let c = 0; c < channels; c++) for (let j = 0; j < cells; j++) weight[(i * channels + c) * cells + j]! *= cellWeights[j]!;
}

/** Training scene `k` of a pool grouped by `grouping` (see positionGroups and shapeGroups). */
export function poolScene(seed: number, k: number, grouping: PoolGrouping = UNGROUPED): Scene {
  const { kinds, size } = grouping;
  if (kinds.length === 0) return trainingScene(seed, k);
  const g = Math.floor(k / size);
  // The position-only pool keeps the scene indices it had before shape groups existed.
  return kinds[g % kinds.length] === 'position' ? atPositionVariant(trainingScene(seed, g), k % size) : atShapeVariant(shapeGroupScene(seed, g), k % size);
}

function sceneImages(seed: number, first: number, count: number, res: number, grouping: PoolGrouping = UNGROUPED): Float32Tensor {
  const data = new Float32Array(count * 3 * res * res);
  for (let i = 0; i < count; i++) data.set(imageToChw(renderScene(poolScene(seed, first + i, grouping), res, res)), i * 3 * res * res);
  return float32([count, 3, res, res], data);
}

/** A `side`x`side` window of each CHW image in `images`, at an offset drawn from `r` per image. */
export function randomCrops(images: Float32Tensor, side: number, r: KeyedStream): Float32Tensor {
  const [n, c, h, w] = images.shape as [number, number, number, number];
  if (side === h && side === w) return images;
  const src = images.data;
  const out = new Float32Array(n * c * side * side);
  for (let i = 0; i < n; i++) {
    const y0 = r.below(h - side + 1);
    const x0 = r.below(w - side + 1);
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < side; y++) {
        const from = ((i * c + ch) * h + y0 + y) * w + x0;
        out.set(src.subarray(from, from + side), ((i * c + ch) * side + y) * side);
      }
    }
  }
  return float32([n, c, side, side], out);
}

function normals(r: KeyedStream, shape: readonly number[]): Float32Tensor {
  const n = shape.reduce((a, d) => a * d, 1);
  return float32(shape, Float32Array.from({ length: n }, () => r.normal()));
}

/**
 * Standard normal noise of `shape` (N, C, H, W) plus, for each level k with a strength, `strengths[k]` times a
 * 2^k x 2^k grid of standard normals per sample and channel, each cell covering its share of the rows and columns
 * (level 0: one value per channel). Levels finer than the latent are ignored.
 */
export function lowFrequencyNoise(r: KeyedStream, shape: readonly number[], strengths: readonly number[]): Float32Tensor {
  const out = normals(r, shape);
  const [n, c, h, w] = shape as [number, number, number, number];
  const data = out.data;
  strengths.forEach((strength, k) => {
    const cells = 2 ** k;
    if (strength === 0 || cells > Math.min(h, w)) return;
    for (let plane = 0; plane < n * c; plane++) {
      const grid = Float32Array.from({ length: cells * cells }, () => strength * r.normal());
      for (let y = 0; y < h; y++) {
        const gy = Math.floor((y * cells) / h);
        for (let x = 0; x < w; x++) data[(plane * h + y) * w + x] += grid[gy * cells + Math.floor((x * cells) / w)]!;
      }
    }
  });
  return out;
}

/** The caption-facts phase (see captionFactsSteps): the text encoder's weights end as their EMA. */
async function trainCaptionFacts(
  params: FlatParameters,
  model: ScratchModel,
  config: ModelConfig,
  opts: SceneTrainingOptions,
  threads: number,
  onProgress: (p: TrainingProgress) => void,
): Promise<void> {
  const steps = opts.captionFactsSteps ?? 0;
  if (steps === 0) return;
  const batch = opts.captionFactsBatch ?? 32;
  const lr = opts.captionFactsLr ?? 1e-3;
  const objective = await CaptionFactsObjective.create(params, config, { batch, threads });
  const range = params.range(config.text.prefix);
  const opt = new WholeModelOptimizer(params, [range], { lr, emaDecay: opts.emaDecay ?? 0.995 });
  const headState = newAdamWState([objective.heads.length], lr, 0);
  let drawn = 0;
  try {
    for (let s = 0; s < steps; s++) {
      const ids: number[][] = [];
      const facts: number[][] = [];
      while (ids.length < batch) {
        // One-object training scenes (the held-out combinations never appear), each caption stating the position.
        const scene = trainingScene(opts.seed + 2, drawn);
        const row = captionFacts(scene);
        if (row) {
          ids.push(captionTokenIds(model.tokenizer, captionScene(scene, opts.seed + 2, drawn, false, true).text, config.text.maxPositions));
          facts.push(row);
        }
        drawn++;
      }
      const r = await objective.evaluate(ids, facts);
      const stepLr = learningRate(lr, s, steps);
      opt.lr = stepLr;
      headState.lr = stepLr;
      opt.step(r.grad);
      adamwStep([objective.heads], [r.headGrad], headState);
      onProgress({ phase: 'caption-facts', step: s + 1, steps, loss: r.loss, accuracy: r.accuracy, seconds: 0 });
    }
  } finally {
    await objective.release();
  }
  params.data.set(opt.ema.subarray(...range), range[0]);
}

function ends(losses: readonly number[]): [number, number] {
  const k = Math.max(1, Math.floor(losses.length / 10));
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return [mean(losses.slice(0, k)), mean(losses.slice(-k))];
}

/**
 * A deeper UNet grown from a shallower checkpoint (arch.unet.depth above the start's transformer_depth): each
 * transformer block the start lacks, beside a block 0 it has, begins with zero output projections, so it adds
 * nothing and the grown model computes exactly what the start did. Training then spends the new blocks' capacity
 * (more attention to the caption at every site) without first undoing a random function.
 */
function growTransformerBlocks(tensors: Map<string, HostTensor>, start: ReadonlyMap<string, HostTensor>): void {
  for (const [k, t] of tensors) {
    if (start.has(k) || !isTransformerBlockOutput(k)) continue;
    if (!start.has(k.replace(/\.transformer_blocks\.\d+\./, '.transformer_blocks.0.'))) continue;
    tensors.set(k, float32(t.shape));
  }
}

export async function trainSceneModel(opts: SceneTrainingOptions, onProgress: (p: TrainingProgress) => void = () => {}): Promise<SceneTrainingResult> {
  const res = opts.resolution;
  const threads = opts.threads ?? 2;
  const depth = opts.arch.unet.depth ?? 1;
  if (!Number.isInteger(depth) || depth < 1) throw new DarkroomError('TRAINING_BAD_PARAMETER', `arch.unet.depth: a whole number of transformer blocks, at least 1, got ${depth}`);
  const model = newScratchModel(opts.arch, opts.seed);
  const starts: ReadonlyArray<readonly [string, ReadonlyMap<string, HostTensor> | undefined, (key: string) => boolean]> = [
    ['startFrom', opts.startFrom, () => true],
    ['vaeFrom', opts.vaeFrom, (k) => k.startsWith(COMPONENTS.vae.checkpoint)],
  ];
  for (const [option, from, wanted] of starts) {
    for (const [k, t] of from ?? []) {
      const own = model.tensors.get(k);
      if (!wanted(k) || !own) continue;
      if (own.shape.join('x') !== t.shape.join('x')) {
        throw new DarkroomError('TRAINING_BAD_PARAMETER', `${option}: ${k} is ${t.shape.join('x')}, the architecture's is ${own.shape.join('x')}`);
      }
      // Float weights are trained in float32 whatever they were saved as; integer buffers (position ids) stay.
      model.tensors.set(k, own.dtype === 'float32' ? toFloat32(t) : t);
    }
  }
  if (opts.startFrom) growTransformerBlocks(model.tensors, opts.startFrom);
  const params = new FlatParameters(model.tensors);
  const config = { ...model.config, parameterization: opts.parameterization ?? model.config.parameterization };
  const snapshotEvery = opts.snapshotEvery ?? 0;
  const down = 2 ** (model.config.vae.chMult.length - 1);
  const lat = res / down;
  const vaeBatch = opts.vaeBatch ?? 8;
  const unetBatch = opts.unetBatch ?? 16;
  const crop = opts.vaeCrop ?? res;
  if (!Number.isInteger(crop) || crop < down || crop > res || crop % down !== 0) {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `vaeCrop: must be a multiple of ${down} from ${down} to the resolution ${res}, got ${crop}`);
  }

  const coarse = opts.lowFrequencyNoise ?? [];
  if (coarse.some((x) => !Number.isFinite(x) || x < 0)) {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `lowFrequencyNoise: strengths must be finite and at least 0, got ${coarse.join(', ')}`);
  }

  /** Scenes whose latents the UNet trains on. */
  const pool = opts.poolSize ?? 2048;
  const grouping = poolGrouping(opts.positionGroups ?? false, opts.shapeGroups ?? false);
  const grouped = grouping.kinds.length > 0;
  const group = grouping.size;
  if (pool < group) throw new DarkroomError('TRAINING_BAD_PARAMETER', `poolSize: at least ${group} with ${grouping.kinds.map((k) => `${k}Groups`).join(' and ')}, got ${pool}`);

  const contrast = opts.groupContrast ?? 0;
  if (!Number.isFinite(contrast) || contrast < 0) throw new DarkroomError('TRAINING_BAD_PARAMETER', `groupContrast: finite and at least 0, got ${contrast}`);
  if (contrast > 0 && !grouped) throw new DarkroomError('TRAINING_BAD_PARAMETER', 'groupContrast: weights groups, so it needs positionGroups or shapeGroups');
  const focus = opts.groupFocus ?? 1;
  if (!Number.isFinite(focus) || !(focus > 0)) throw new DarkroomError('TRAINING_BAD_PARAMETER', `groupFocus: finite and above 0, got ${focus}`);
  if (focus !== 1 && !grouped) throw new DarkroomError('TRAINING_BAD_PARAMETER', 'groupFocus: weights groups, so it needs positionGroups or shapeGroups');
  const mixed = focus !== 1;
  const statedPositions = opts.statedPositions ?? 'all';
  if (statedPositions !== 'all' && statedPositions !== 'position-groups') {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `statedPositions: all or position-groups, got ${String(statedPositions)}`);
  }
  const highNoise = opts.highNoise;
  if (highNoise && !(highNoise.from >= 0 && highNoise.from < 1 && highNoise.share >= 0 && highNoise.share <= 1)) {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `highNoise: from in [0, 1) and share in [0, 1], got from ${highNoise.from}, share ${highNoise.share}`);
  }
  const shapeFactors = opts.shapeLossWeights ?? {};
  for (const [shape, f] of Object.entries(shapeFactors)) {
    if (!(SHAPES as readonly string[]).includes(shape)) throw new DarkroomError('TRAINING_BAD_PARAMETER', `shapeLossWeights: no shape "${shape}" (${SHAPES.join(', ')})`);
    if (!Number.isFinite(f) || !(f > 0)) throw new DarkroomError('TRAINING_BAD_PARAMETER', `shapeLossWeights.${shape}: finite and above 0, got ${f}`);
  }
  const byShape = Object.values(shapeFactors).some((f) => f !== 1);
  const outline = opts.outlineLoss ?? 0;
  if (!Number.isFinite(outline) || outline < 0) throw new DarkroomError('TRAINING_BAD_PARAMETER', `outlineLoss: finite and at least 0, got ${outline}`);
  // Two pixels at 128x128: about a quarter of an 8-pixel latent cell on each side of the edge.
  const outlineBand = Math.max(1, Math.round(res / 64));
  const weighting = opts.lossWeighting ?? 'uniform';
  /** Whether each batch carries a per-element loss weight (by timestep, group contrast, shape, outline, or all). */
  const weighted = weighting !== 'uniform' || contrast > 0 || byShape || outline > 0;
  if (!LOSS_WEIGHTINGS.includes(weighting)) {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `lossWeighting: one of ${LOSS_WEIGHTINGS.join(', ')}, got ${String(weighting)}`);
  }
  if (weighting !== 'uniform' && config.parameterization !== 'eps') {
    throw new DarkroomError('TRAINING_BAD_PARAMETER', `lossWeighting: ${weighting} is defined for the eps objective, the model's is ${config.parameterization}`);
  }

  // Checked before any phase runs: a bad count would otherwise be found after the autoencoder has trained.
  for (const [option, value] of [['captionFactsSteps', opts.captionFactsSteps ?? 0], ['snapshotEvery', snapshotEvery]] as const) {
    if (!Number.isInteger(value) || value < 0) throw new DarkroomError('TRAINING_BAD_PARAMETER', `${option}: a whole number of steps, at least 0, got ${value}`);
  }

  // Phase 1: the autoencoder.
  const vaeRange = params.range(COMPONENTS.vae.checkpoint);
  const vae = await VaeObjective.create(params, model.config, { batch: vaeBatch, height: crop, width: crop, threads });
  const vaeOpt = new WholeModelOptimizer(params, [vaeRange], { lr: opts.vaeLr ?? 2e-3, emaDecay: opts.emaDecay ?? 0.995 });
  const vaeLosses: number[] = [];
  let started = Date.now();
  try {
    for (let s = 0; s < opts.vaeSteps; s++) {
      const images = randomCrops(sceneImages(opts.seed, s * vaeBatch, vaeBatch, res), crop, new KeyedStream(opts.seed, 'vae-crop', s));
      const r = await vae.evaluate(images, normals(new KeyedStream(opts.seed, 'vae-noise', s), [vaeBatch, model.config.vae.embedDim, crop / down, crop / down]));
      vaeOpt.lr = learningRate(opts.vaeLr ?? 2e-3, s, opts.vaeSteps);
      vaeOpt.step(r.grad);
      vaeLosses.push(r.loss);
      onProgress({ phase: 'vae', step: s + 1, steps: opts.vaeSteps, loss: r.loss, seconds: (Date.now() - started) / 1000 });
    }
  } finally {
    await vae.release();
  }
  const vaeSeconds = (Date.now() - started) / 1000 / Math.max(1, opts.vaeSteps);
  // The UNet learns the EMA autoencoder's latents, the one that is saved.
  params.data.set(vaeOpt.ema.subarray(...vaeRange), vaeRange[0]);

  const checkCount = opts.vaeCheckScenes ?? Number.POSITIVE_INFINITY;
  let vaeCheck: ReconstructionReport | null = null;
  if (checkCount > 0) {
    const scenes = heldOutScenes(opts.seed).slice(0, checkCount);
    onProgress({ phase: 'vae-check', step: 0, steps: scenes.length, seconds: 0 });
    vaeCheck = await evaluateReconstruction(params.component(COMPONENTS.vae.checkpoint), model.config.vae, scenes, { resolution: res, threads });
    onProgress({ phase: 'vae-check', step: scenes.length, steps: scenes.length, seconds: 0 });
    opts.onVaeCheck?.(vaeCheck);
  }

  await trainCaptionFacts(params, model, config, opts, threads, onProgress);

  // The latent pool: mean and std of each scene's posterior; the scale factor makes the latents unit variance.
  const encBatch = 16;
  const encoder = await createSession(
    vaeEncoderModel(params.component(COMPONENTS.vae.checkpoint), model.config.vae, { batch: encBatch, height: res, width: res, scaleFactor: 1 }),
    { threads },
  );
  const per = model.config.vae.embedDim * lat * lat;
  const means = new Float32Array(pool * per);
  const stds = new Float32Array(pool * per);
  try {
    for (let first = 0; first < pool; first += encBatch) {
      const r = await encoder.run({ image: sceneImages(opts.seed + 1, first, encBatch, res, grouping) });
      const count = Math.min(encBatch, pool - first);
      means.set((r.mean!.data as Float32Array).subarray(0, count * per), first * per);
      stds.set((r.std!.data as Float32Array).subarray(0, count * per), first * per);
      onProgress({ phase: 'latents', step: Math.min(pool, first + encBatch), steps: pool, seconds: 0 });
    }
  } finally {
    await encoder.release();
  }
  let sq = 0;
  let sum = 0;
  for (const v of means) {
    sum += v;
    sq += v * v;
  }
  const variance = sq / means.length - (sum / means.length) ** 2;
  const scaleFactor = Math.fround(1 / Math.sqrt(Math.max(variance, 1e-8)));

  // Phase 2: the UNet (and the text encoder when trained) on scaled latent samples.
  const unetObjective = await DiffusionObjective.create(params, config, {
    batch: unetBatch,
    latentHeight: lat,
    latentWidth: lat,
    threads,
    trainText: opts.trainText ?? false,
    weighted,
    mixed,
  });
  const schedule = scheduleOf(config);
  const ranges = [params.range(COMPONENTS.unet.checkpoint), ...(opts.trainText ? [params.range(model.config.text.prefix)] : [])];
  const unetOpt = new WholeModelOptimizer(params, ranges, { lr: opts.unetLr ?? 1e-3, emaDecay: opts.emaDecay ?? 0.995 });
  const dropout = opts.captionDropout ?? 0.1;
  /** The checkpoint as saved from `flat` (the trained ranges' EMA; the rest equals the weights). */
  const snapshot = (flat: Float32Array): SceneModelSnapshot => {
    const tensors = new Map<string, HostTensor>(model.tensors);
    for (const [k, t] of params.tensors(flat)) tensors.set(k, t);
    return { tensors, configJson: scratchConfig(tensors, opts.arch, model.tokenizer.vocabSize, scaleFactor, config.parameterization).json };
  };
  const unetLosses: number[] = [];
  started = Date.now();
  try {
    for (let s = 0; s < opts.unetSteps; s++) {
      const r = new KeyedStream(opts.seed, 'unet-batch', s);
      const latents = new Float32Array(unetBatch * per);
      const ids: number[][] = [];
      const captioned: boolean[] = [];
      const shapes: Shape[] = [];
      const scenes: Scene[] = [];
      let base = 0;
      for (let i = 0; i < unetBatch; i++) {
        // Consecutive members of one group, a new group every `group` samples; ungrouped (group 1) that is one draw
        // of r.below(pool) per sample, the stream runs made before positionGroups drew.
        if (i % group === 0) base = r.below(Math.floor(pool / group)) * group;
        const k = base + (i % group);
        for (let j = 0; j < per; j++) latents[i * per + j] = scaleFactor * (means[k * per + j]! + stds[k * per + j]! * r.normal());
        const always = alwaysStatesPosition(k, grouping, statedPositions);
        const scene = poolScene(opts.seed + 1, k, grouping);
        shapes.push(scene.objects[0]!.shape);
        scenes.push(scene);
        const caption = r.random() < dropout ? '' : captionScene(scene, opts.seed, s * unetBatch + i, false, always).text;
        ids.push(captionTokenIds(model.tokenizer, caption, model.config.text.maxPositions));
        captioned.push(caption !== '');
      }
      const t = Array.from({ length: unetBatch }, () => drawTimestep(r, model.config.schedule.timesteps, highNoise));
      const shape = [unetBatch, model.config.unet.inChannels, lat, lat];
      const noise = lowFrequencyNoise(r, shape, coarse);
      if (grouped) {
        // A group shares its first member's timestep and noise, so its members differ only in the varied fact.
        for (let i = 0; i < unetBatch; i++) {
          const lead = i - (i % group);
          t[i] = t[lead]!;
          noise.data.copyWithin(i * per, lead * per, (lead + 1) * per);
        }
      }
      let weight: Float32Tensor | undefined;
      if (weighted) {
        weight = float32(shape, groupContrastWeights(latents, unetBatch, model.config.unet.inChannels, lat * lat, group, contrast));
        if (weighting !== 'uniform') {
          t.forEach((step, i) => {
            const byStep = timestepWeight(weighting, schedule.sqrtAlphasCumprod[step]!, schedule.sqrtOneMinusAlphasCumprod[step]!);
            for (let j = i * per; j < (i + 1) * per; j++) weight!.data[j]! *= byStep;
          });
        }
        if (byShape) weightByShape(weight.data, shapes, per, shapeFactors);
        if (outline > 0) scenes.forEach((scene, i) => weightCells(weight!.data, i, model.config.unet.inChannels, outlineCellWeights(scene, res, down, outlineBand, outline)));
      }
      const mix = mixed ? float32([unetBatch, unetBatch], groupFocusMix(unetBatch, group, focus, captioned)) : undefined;
      const out = await unetObjective.evaluate(ids, { latents: float32(shape, latents), t, noise, ...(weight ? { weight } : {}), ...(mix ? { mix } : {}) });
      unetOpt.lr = learningRate(opts.unetLr ?? 1e-3, s, opts.unetSteps);
      unetOpt.step(out.grad);
      unetLosses.push(out.loss);
      onProgress({ phase: 'unet', step: s + 1, steps: opts.unetSteps, loss: out.loss, seconds: (Date.now() - started) / 1000 });
      if (opts.onSnapshot && snapshotEvery > 0 && (s + 1) % snapshotEvery === 0 && s + 1 < opts.unetSteps) await opts.onSnapshot(s + 1, snapshot(unetOpt.ema));
    }
  } finally {
    await unetObjective.release();
  }
  const unetSeconds = (Date.now() - started) / 1000 / Math.max(1, opts.unetSteps);
  for (const [a, b] of ranges) params.data.set(unetOpt.ema.subarray(a, b), a);

  const { tensors, configJson } = snapshot(params.data);
  return {
    tensors,
    configJson,
    model,
    scaleFactor,
    losses: { vae: ends(vaeLosses), unet: ends(unetLosses) },
    secondsPerStep: { vae: vaeSeconds, unet: unetSeconds },
    vaeCheck,
  };
}
