/**
 * Trains a scene model from scratch on the CPU: the VAE as an autoencoder, then the UNet on its latents
 * conditioned on the text encoder, and writes an A1111-layout checkpoint with its config and vocabulary that the
 * Engine (and `--model`) loads.
 *
 *   npx tsx scripts/train-demo-model.ts [--vae-steps 400] [--unet-steps 1800] [--resolution 64] [--threads 2]
 *     [--seed 17] [--arch scene|micro] [--train-text 0|1] [--vae-batch 8] [--unet-batch 16]
 *     [--out .darkroom/models] [--name darkroom-scenes]
 *
 * Prints each phase's loss at the start and end, seconds per step, the latent scale factor and the files written.
 * Measured on two shared (busy) CPU cores with the scene architecture at 64x64: about 4.7 s per VAE step (batch 8)
 * and 0.93 s per UNet step (batch 16, text encoder trained), so the defaults take about an hour.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numberArg, stringArg } from '../bench/support/args.js';
import { progressBar } from '../packages/cli/src/progress.js';
import { trainSceneModel, type TrainingProgress } from '../packages/core/src/training/scene-training.js';
import { MICRO_ARCHITECTURE, SCENE_ARCHITECTURE, writeScratchCheckpoint } from '../packages/core/src/training/scratch-model.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function main(argv: readonly string[]): Promise<void> {
  const archName = stringArg(argv, 'arch', 'scene');
  if (archName !== 'scene' && archName !== 'micro') throw new RangeError(`--arch must be scene or micro, got "${archName}"`);
  const out = resolve(ROOT, stringArg(argv, 'out', join('.darkroom', 'models')));
  const name = stringArg(argv, 'name', 'darkroom-scenes');
  const opts = {
    arch: archName === 'scene' ? SCENE_ARCHITECTURE : MICRO_ARCHITECTURE,
    resolution: numberArg(argv, 'resolution', archName === 'scene' ? 64 : 16),
    seed: numberArg(argv, 'seed', 17),
    vaeSteps: numberArg(argv, 'vae-steps', 400),
    unetSteps: numberArg(argv, 'unet-steps', 1800),
    vaeBatch: numberArg(argv, 'vae-batch', 8),
    unetBatch: numberArg(argv, 'unet-batch', 16),
    poolSize: numberArg(argv, 'pool', 2048),
    trainText: numberArg(argv, 'train-text', 1) === 1,
    threads: numberArg(argv, 'threads', 2),
  };
  const bars = new Map<string, ReturnType<typeof progressBar>>();
  let current = '';
  const onProgress = (p: TrainingProgress): void => {
    if (p.phase !== current) {
      bars.get(current)?.done();
      current = p.phase;
      bars.set(current, progressBar());
    }
    bars.get(current)!.update(p.step, p.steps, p.loss !== undefined ? `${p.phase} loss ${p.loss.toFixed(4)}` : p.phase);
  };
  const r = await trainSceneModel(opts, onProgress);
  bars.get(current)?.done();
  const checkpoint = await writeScratchCheckpoint(out, name, r.tensors, r.configJson, r.model.vocabulary, {
    darkroom: name,
    training: JSON.stringify({ ...opts, arch: archName }),
  });
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
