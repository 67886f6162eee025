/**
 * Trains a scene model from scratch on the CPU: the VAE as an autoencoder, then the UNet on its latents
 * conditioned on the text encoder, and writes an A1111-layout checkpoint with its config and vocabulary that the
 * Engine (and `--model`) loads.
 *
 *   npx tsx scripts/train-demo-model.ts [--vae-steps 400] [--unet-steps 1800] [--resolution 64] [--threads 2]
 *     [--seed 17] [--arch scene|micro] [--train-text 0|1] [--vae-batch 8] [--vae-crop SIDE] [--unet-batch 16] [--vae-lr 2e-3] [--unet-lr 1e-3]
 *     [--out .darkroom/models] [--name darkroom-scenes] [--vae-from CHECKPOINT] [--from CHECKPOINT] [--half 0|1] [--vae-check N] [--vae-check-min 0.9]
 *     [--lf-noise 1,0.5] [--loss-weighting uniform|truncated-snr] [--unet-mult 1,2] [--unet-attention 1,2] [--unet-depth 1]
 *     [--position-groups 0|1] [--shape-groups 0|1] [--group-contrast 0] [--group-focus 1] [--stated-positions all|position-groups] [--high-noise FROM,SHARE] [--shape-loss SHAPE=FACTOR,...] [--outline-loss 0] [--parameterization eps|v] [--save-every N]
 *     [--caption-facts-steps N] [--caption-facts-batch 32] [--caption-facts-lr 1e-3]
 *
 * After the autoencoder phase the detector reads the held-out scenes' round trips through it (`vaeCheck`: colour,
 * background, position and shape rates, with the detector's own rates on the renders as the ceiling); below
 * `--vae-check-min` on colour or background the run stops before the UNet, which could not draw better than its
 * autoencoder. `--vae-from` starts from the autoencoder of an earlier checkpoint (with `--vae-steps 0`, the UNet is
 * trained on it as it is); `--from` starts every component from an earlier checkpoint, to train it further; `--half 1` saves the
 * weights as float16. `--lf-noise` gives the strengths of the coarse noise levels added to the UNet's training
 * noise (1x1, 2x2, ...; see lowFrequencyNoise): without it the UNet reads colour and layout off the noise, not the
 * caption. `--unet-mult` and `--unet-attention` change the UNet's levels (channel multipliers) and the
 * downsampling factors with attention (ldm's channel_mult and attention_resolutions); `--unet-depth N` puts N
 * transformer blocks at each attention site (transformer_depth): with `--from` a shallower checkpoint, the blocks it
 * lacks start as the identity (zero output projections), so the grown model begins where the checkpoint was. `--loss-weighting truncated-snr` weights each sample's loss by max(1, 1/SNR(t)), so a layout the
 * caption states but the UNet ignores costs its x0 error at the noisiest steps (see lossWeighting). `--vae-crop SIDE` trains the autoencoder on random SIDE x SIDE windows of the scenes, so a
 * 128x128 model's VAE costs per step what a 64x64 one does. `--position-groups 1` trains the UNet on groups of scenes
 * that differ only in the object's position, sharing timestep and noise, every caption stating it (positionGroups);
 * `--shape-groups 1` likewise on groups that differ only in the first object's shape (shapeGroups; with both, the
 * kinds alternate); `--group-contrast K` weights each group's loss by 1 + K times how much its members' latents
 * differ at each place, relative to their mean difference (groupContrastWeights); `--group-focus F` multiplies by F
 * the part of a group's loss that only the varied words explain, its members' deviations from their mean residual
 * (groupFocusMix). With position groups every caption states the position; `--stated-positions position-groups`
 * keeps that for position groups only, so the others teach captions without a place. `--high-noise 0.5,0.75` draws
 * three timesteps in four from the noisier half of the schedule, where an object's shape is decided (highNoise).
 * `--outline-loss K` weights each latent cell's loss by 1 + K times the share of its pixels on an object's outline
 * (outlineCellWeights), where a square and a blob drawn for it differ.
 * `--parameterization v` trains the UNet to predict v instead of eps (with `--from` an eps checkpoint is fine-tuned
 * to v) and writes `parameterization: v` into the config, which the pipeline samples as A1111 samples a v model.
 * `--caption-facts-steps N` first trains the text encoder alone for N steps to name each caption's shape, colour,
 * position and background from its end-of-text tokens (CaptionFactsObjective), so the UNet's conditioning carries
 * all four; `--train-text 0` then keeps that encoder as it is while the UNet learns.
 * `--save-every N` writes the checkpoint as it stands every N UNet steps, as `<name>-step<N>` beside the final one
 * (each written atomically): a long run can be evaluated on the way, and continued with `--from` if it stops.
 *
 * Prints each phase's loss at the start and end, seconds per step, the latent scale factor and the files written.
 * Measured on two shared (busy) CPU cores with the scene architecture at 64x64: about 4.7 s per VAE step (batch 8)
 * and 0.93 s per UNet step (batch 16, text encoder trained), so the defaults take about an hour.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numberArg, stringArg } from '../bench/support/args.js';
import { progressBar } from '../packages/cli/src/progress.js';
import { readTensors } from '../packages/core/src/model-files/checkpoint.js';
import type { Parameterization } from '../packages/core/src/model-files/config.js';
import { LOSS_WEIGHTINGS, trainSceneModel, type HighNoise, type LossWeighting, type SceneModelSnapshot, type TrainingProgress } from '../packages/core/src/training/scene-training.js';
import type { ReconstructionReport } from '../packages/core/src/training/scenes/evaluate-vae.js';
import type { Shape } from '../packages/core/src/training/scenes/scene.js';
import { halfPrecisionWeights, MICRO_ARCHITECTURE, SCENE_ARCHITECTURE, sceneVocabulary, writeScratchCheckpoint } from '../packages/core/src/training/scratch-model.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function lossWeighting(name: string): LossWeighting {
  const known: readonly string[] = LOSS_WEIGHTINGS;
  if (!known.includes(name)) throw new RangeError(`--loss-weighting must be one of ${LOSS_WEIGHTINGS.join(', ')}, got "${name}"`);
  return name as LossWeighting;
}

function parameterizationArg(name: string): Parameterization {
  if (name !== 'eps' && name !== 'v') throw new RangeError(`--parameterization must be eps or v, got "${name}"`);
  return name;
}

function statedPositionsArg(value: string): 'all' | 'position-groups' {
  if (value !== 'all' && value !== 'position-groups') throw new RangeError(`--stated-positions takes all or position-groups, got "${value}"`);
  return value;
}

/** `--shape-loss square=2,ring=1.5`; nothing when not given (shapes and factors are checked by the trainer). */
function shapeLossArg(value: string): { shapeLossWeights?: Partial<Record<Shape, number>> } {
  if (value === '') return {};
  const out: Partial<Record<Shape, number>> = {};
  for (const part of value.split(',')) {
    const [shape, factor] = part.split('=');
    if (shape === undefined || factor === undefined || !Number.isFinite(Number(factor))) throw new RangeError(`--shape-loss takes SHAPE=FACTOR,..., got "${value}"`);
    out[shape.trim() as Shape] = Number(factor);
  }
  return { shapeLossWeights: out };
}

/** `--high-noise FROM,SHARE`; nothing when not given (the range is checked by the trainer). */
function highNoiseArg(value: string): { highNoise?: HighNoise } {
  if (value === '') return {};
  const parts = value.split(',').map(Number);
  if (parts.length !== 2 || parts.some((x) => !Number.isFinite(x))) throw new RangeError(`--high-noise takes FROM,SHARE (two numbers), got "${value}"`);
  return { highNoise: { from: parts[0]!, share: parts[1]! } };
}

async function main(argv: readonly string[]): Promise<void> {
  const archName = stringArg(argv, 'arch', 'scene');
  if (archName !== 'scene' && archName !== 'micro') throw new RangeError(`--arch must be scene or micro, got "${archName}"`);
  const out = resolve(ROOT, stringArg(argv, 'out', join('.darkroom', 'models')));
  const name = stringArg(argv, 'name', 'darkroom-scenes');
  const vaeFromPath = stringArg(argv, 'vae-from', '');
  const fromPath = stringArg(argv, 'from', '');
  const half = numberArg(argv, 'half', 0) === 1;
  const vaeCheck = numberArg(argv, 'vae-check', -1);
  const base = archName === 'scene' ? SCENE_ARCHITECTURE : MICRO_ARCHITECTURE;
  const list = (flag: string, fallback: readonly number[]): number[] =>
    stringArg(argv, flag, fallback.join(','))
      .split(',')
      .map(Number);
  const opts = {
    arch: { ...base, unet: { ...base.unet, mult: list('unet-mult', base.unet.mult), attention: list('unet-attention', base.unet.attention), depth: numberArg(argv, 'unet-depth', base.unet.depth ?? 1) } },
    resolution: numberArg(argv, 'resolution', archName === 'scene' ? 64 : 16),
    seed: numberArg(argv, 'seed', 17),
    vaeSteps: numberArg(argv, 'vae-steps', 400),
    unetSteps: numberArg(argv, 'unet-steps', 1800),
    vaeBatch: numberArg(argv, 'vae-batch', 8),
    ...(numberArg(argv, 'vae-crop', 0) > 0 ? { vaeCrop: numberArg(argv, 'vae-crop', 0) } : {}),
    unetBatch: numberArg(argv, 'unet-batch', 16),
    vaeLr: numberArg(argv, 'vae-lr', 2e-3),
    unetLr: numberArg(argv, 'unet-lr', 1e-3),
    poolSize: numberArg(argv, 'pool', 2048),
    trainText: numberArg(argv, 'train-text', 1) === 1,
    positionGroups: numberArg(argv, 'position-groups', 0) === 1,
    shapeGroups: numberArg(argv, 'shape-groups', 0) === 1,
    groupContrast: numberArg(argv, 'group-contrast', 0),
    groupFocus: numberArg(argv, 'group-focus', 1),
    statedPositions: statedPositionsArg(stringArg(argv, 'stated-positions', 'all')),
    ...highNoiseArg(stringArg(argv, 'high-noise', '')),
    ...shapeLossArg(stringArg(argv, 'shape-loss', '')),
    outlineLoss: numberArg(argv, 'outline-loss', 0),
    lowFrequencyNoise: stringArg(argv, 'lf-noise', '1,0.5')
      .split(',')
      .filter((x) => x.trim() !== '')
      .map(Number),
    lossWeighting: lossWeighting(stringArg(argv, 'loss-weighting', 'uniform')),
    parameterization: parameterizationArg(stringArg(argv, 'parameterization', 'eps')),
    captionFactsSteps: numberArg(argv, 'caption-facts-steps', 0),
    captionFactsBatch: numberArg(argv, 'caption-facts-batch', 32),
    captionFactsLr: numberArg(argv, 'caption-facts-lr', 1e-3),
    threads: numberArg(argv, 'threads', 2),
    // -1: every held-out scene.
    ...(vaeCheck >= 0 ? { vaeCheckScenes: vaeCheck } : {}),
    ...(vaeFromPath ? { vaeFrom: await readTensors(resolve(ROOT, vaeFromPath), 'first_stage_model.') } : {}),
    ...(fromPath ? { startFrom: await readTensors(resolve(ROOT, fromPath)) } : {}),
  };
  const vaeCheckMin = numberArg(argv, 'vae-check-min', 0);
  const bars = new Map<string, ReturnType<typeof progressBar>>();
  let current = '';
  const onProgress = (p: TrainingProgress): void => {
    if (p.phase !== current) {
      bars.get(current)?.done();
      current = p.phase;
      bars.set(current, progressBar());
    }
    const accuracy = p.accuracy !== undefined ? ` facts right ${(100 * p.accuracy).toFixed(1)}%` : '';
    bars.get(current)!.update(p.step, p.steps, p.loss !== undefined ? `${p.phase} loss ${p.loss.toFixed(4)}${accuracy}` : p.phase);
  };
  const onVaeCheck = (c: ReconstructionReport): void => {
    bars.get(current)?.done();
    current = '';
    console.log(JSON.stringify({ vaeCheck: c }));
    if (Math.min(c.rates.colour, c.rates.background) < vaeCheckMin) {
      throw new RangeError(`the autoencoder's round trip keeps colour ${c.rates.colour.toFixed(2)} and background ${c.rates.background.toFixed(2)} of the held-out scenes, under --vae-check-min ${vaeCheckMin}: train it longer before the UNet`);
    }
  };
  const saveEvery = numberArg(argv, 'save-every', 0);
  // The run's vocabulary: built from the caption words alone, the same every run.
  const vocabulary = sceneVocabulary();
  const metadata = { darkroom: name, training: JSON.stringify({ ...opts, arch: archName, unet: opts.arch.unet }) };
  const onSnapshot = async (step: number, snap: SceneModelSnapshot): Promise<void> => {
    const path = await writeScratchCheckpoint(out, `${name}-step${step}`, half ? halfPrecisionWeights(snap.tensors) : snap.tensors, snap.configJson, vocabulary, metadata);
    bars.get(current)?.done();
    current = '';
    console.log(JSON.stringify({ snapshot: path, step }));
  };
  const r = await trainSceneModel({ ...opts, onVaeCheck, snapshotEvery: saveEvery, onSnapshot }, onProgress);
  bars.get(current)?.done();
  const checkpoint = await writeScratchCheckpoint(out, name, half ? halfPrecisionWeights(r.tensors) : r.tensors, r.configJson, r.model.vocabulary, metadata);
  console.log(
    JSON.stringify(
      {
        checkpoint,
        scaleFactor: r.scaleFactor,
        vaeLoss: { first: r.losses.vae[0], last: r.losses.vae[1] },
        unetLoss: { first: r.losses.unet[0], last: r.losses.unet[1] },
        secondsPerStep: r.secondsPerStep,
        estimatedSeconds: r.secondsPerStep.vae * opts.vaeSteps + r.secondsPerStep.unet * opts.unetSteps,
      },
      null,
      1,
    ),
  );
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
