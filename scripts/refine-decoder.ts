/**
 * Fine-tunes a scene checkpoint's decoder on what its own UNet draws: renders training captions (one object, never a
 * held-out combination) as a user would (DPM++ 2M, 20 steps, CFG 5), keeps the sampler's final latents of the
 * renders whose colour, background and place the detector reads right, and trains the decoder alone (encoder
 * frozen; DecoderObjective) from those latents to a clean render of the caption: its shape fitted to the box the
 * detector found the object in (fittedShape), in its colour, on its background. The aim is a decoder that
 * finishes the edges the UNet leaves lumpy. Writes a checkpoint with the other weights unchanged.
 *
 *   npx tsx scripts/refine-decoder.ts --model CHECKPOINT --out DIR --name NAME [--pairs 400] [--steps 300]
 *     [--lr 3e-4] [--batch 8] [--crop 8] [--threads 2] [--pairs-file FILE]
 *
 * `--crop` is the side of the latent windows trained on (8: 64x64 pixels of a 128x128 model), which the decoder,
 * being convolutional, learns at a quarter of a full image's cost. `--pairs-file` keeps the rendered pairs, so
 * another run (other steps or rate) skips rendering them. docs/demo-model.md has what it gave.
 */
import { cp, readFile } from 'node:fs/promises';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { numberArg, stringArg } from '../bench/support/args.js';
import { progressBar } from '../packages/cli/src/progress.js';
import { writeFileAtomically } from '../packages/core/src/atomic-write.js';
import { readSafetensorsFile, writeSafetensors } from '../packages/core/src/formats/safetensors.js';
import { toHalf } from '../packages/core/src/models/layers.js';
import { checkpointCompanions } from '../packages/core/src/pipeline/checkpoint-files.js';
import { Engine } from '../packages/core/src/pipeline/engine.js';
import { float32, type HostTensor } from '../packages/core/src/tensor.js';
import { FlatParameters } from '../packages/core/src/training/flat-parameters.js';
import { KeyedStream } from '../packages/core/src/training/keyed-random.js';
import { learningRate } from '../packages/core/src/training/scene-training.js';
import { captionScene } from '../packages/core/src/training/scenes/captions.js';
import { detectScene, evaluateScene, fittedShape, type PixelBox } from '../packages/core/src/training/scenes/detect.js';
import { pngToRgb } from '../packages/core/src/training/scenes/evaluate-model.js';
import { readAutoencoder } from '../packages/core/src/training/scenes/evaluate-vae.js';
import { imageToChw, paintOver, type RgbImage } from '../packages/core/src/training/scenes/render.js';
import { trainingScene, type Scene } from '../packages/core/src/training/scenes/scene.js';
import { DecoderObjective, WholeModelOptimizer } from '../packages/core/src/training/whole-model.js';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
/** The dataset seed the captions are drawn with (any; the scenes are training ones whatever it is). */
const PAIR_SEED = 23;
const DECODER_PREFIXES = ['first_stage_model.decoder.', 'first_stage_model.post_quant_conv.'];

/** `scene` (one object) with its object stretched to fill `box`, anti-aliased as renderScene is. */
function fittedRender(scene: Scene, box: PixelBox, res: number): RgbImage {
  const object = scene.objects[0]!;
  const inside = fittedShape(object.shape, box);
  return paintOver(scene.background, res, res, (x, y) => (inside(x, y) ? object.colour : undefined));
}

interface Pairs {
  readonly count: number;
  /** count x (channels x lat x lat), the sampler's final latents in the UNet's scaled units. */
  readonly latents: Float32Array;
  /** count x (3 x res x res) in [-1, 1]. */
  readonly targets: Float32Array;
}

async function renderPairs(checkpoint: string, count: number, res: number, latentSize: number, threads: number): Promise<Pairs> {
  const engine = new Engine({ root: ROOT, threads });
  const latents = new Float32Array(count * latentSize);
  const targets = new Float32Array(count * 3 * res * res);
  const bar = progressBar();
  let kept = 0;
  let tried = 0;
  for (let k = 0; kept < count; k++) {
    const scene = trainingScene(PAIR_SEED, k, { twoObjects: 0 });
    let latent: Float32Array | undefined;
    const r = await engine.txt2img(
      { prompt: captionScene(scene, PAIR_SEED, k, true).text, negative_prompt: '', steps: 20, sampler_name: 'DPM++ 2M', cfg_scale: 5, seed: 77000 + k, width: res, height: res },
      {
        checkpoint,
        // DPM++ 2M's last step returns its denoised estimate: the latents the decoder is given.
        onStep: (e) => {
          if (e.step === e.steps && e.denoised) latent = Float32Array.from(e.denoised.data);
        },
      },
    );
    tried++;
    const image = pngToRgb(r.images[0]!);
    const match = evaluateScene(image, scene);
    const drawn = detectScene(image).objects[0];
    if (!latent || !drawn || !match.colour || !match.background || !match.position) continue;
    latents.set(latent, kept * latentSize);
    targets.set(imageToChw(fittedRender(scene, drawn.box, res)), kept * 3 * res * res);
    kept++;
    bar.update(kept, count, `pairs (${tried} rendered)`);
  }
  bar.done();
  return { count, latents, targets };
}

function savePairs(file: string, pairs: Pairs): void {
  const all = new Float32Array(pairs.latents.length + pairs.targets.length);
  all.set(pairs.latents);
  all.set(pairs.targets, pairs.latents.length);
  writeFileSync(file, Buffer.from(all.buffer));
}

function loadPairs(file: string, count: number, res: number, latentSize: number): Pairs {
  const bytes = readFileSync(file);
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  if (all.length !== count * (latentSize + 3 * res * res)) throw new RangeError(`${file} does not hold ${count} pairs at ${res}x${res}`);
  return { count, latents: all.subarray(0, count * latentSize), targets: all.subarray(count * latentSize) };
}

async function main(argv: readonly string[]): Promise<void> {
  const checkpoint = resolve(stringArg(argv, 'model', ''));
  const out = resolve(stringArg(argv, 'out', join('.darkroom', 'models')));
  const name = stringArg(argv, 'name', '');
  const count = numberArg(argv, 'pairs', 400);
  const steps = numberArg(argv, 'steps', 300);
  const lr = numberArg(argv, 'lr', 3e-4);
  const batch = numberArg(argv, 'batch', 8);
  const crop = numberArg(argv, 'crop', 8);
  const threads = numberArg(argv, 'threads', 2);
  const pairsFile = stringArg(argv, 'pairs-file', '');
  if (!checkpoint.endsWith('.safetensors')) throw new RangeError('--model names a .safetensors scene checkpoint');
  if (name === '') throw new RangeError('--name names the checkpoint written');

  const { vae, weights } = await readAutoencoder(checkpoint);
  const companions = checkpointCompanions(checkpoint);
  const config = JSON.parse(await readFile(companions.config, 'utf8')) as { model: { params: { scale_factor: number } } };
  const down = 2 ** (vae.chMult.length - 1);
  const res = numberArg(argv, 'resolution', 128);
  const lat = res / down;
  if (!Number.isInteger(crop) || crop < 1 || crop > lat) throw new RangeError(`--crop takes 1 to ${lat} latent cells, got ${crop}`);
  const latentSize = vae.embedDim * lat * lat;
  const pairs = pairsFile !== '' && existsSync(pairsFile) ? loadPairs(pairsFile, count, res, latentSize) : await renderPairs(checkpoint, count, res, latentSize, threads);
  if (pairsFile !== '' && !existsSync(pairsFile)) savePairs(pairsFile, pairs);

  // The VAE's weights alone, in key order, so that the decoder's lie in contiguous ranges.
  const keys = [...weights.keys()].sort();
  const params = new FlatParameters(new Map(keys.map((k) => [`first_stage_model.${k}`, weights.get(k)!])));
  const objective = await DecoderObjective.create(params, { vae, scaleFactor: config.model.params.scale_factor }, { batch, latentHeight: crop, latentWidth: crop, threads });
  const optimizer = new WholeModelOptimizer(params, DECODER_PREFIXES.map((p) => params.range(p)), { lr, emaDecay: 0.99 });
  const side = crop * down;
  const bar = progressBar();
  let first = 0;
  let last = 0;
  try {
    for (let s = 0; s < steps; s++) {
      const r = new KeyedStream(PAIR_SEED, 'decoder-batch', s);
      const latents = new Float32Array(batch * vae.embedDim * crop * crop);
      const targets = new Float32Array(batch * 3 * side * side);
      for (let i = 0; i < batch; i++) {
        const k = r.below(pairs.count);
        const ox = r.below(lat - crop + 1);
        const oy = r.below(lat - crop + 1);
        for (let c = 0; c < vae.embedDim; c++) {
          for (let y = 0; y < crop; y++) {
            const from = k * latentSize + (c * lat + oy + y) * lat + ox;
            latents.set(pairs.latents.subarray(from, from + crop), ((i * vae.embedDim + c) * crop + y) * crop);
          }
        }
        for (let c = 0; c < 3; c++) {
          for (let y = 0; y < side; y++) {
            const from = k * 3 * res * res + (c * res + oy * down + y) * res + ox * down;
            targets.set(pairs.targets.subarray(from, from + side), ((i * 3 + c) * side + y) * side);
          }
        }
      }
      const result = await objective.evaluate(float32([batch, vae.embedDim, crop, crop], latents), float32([batch, 3, side, side], targets));
      optimizer.lr = learningRate(lr, s, steps);
      optimizer.step(result.grad);
      if (s === 0) first = result.loss;
      last = result.loss;
      bar.update(s + 1, steps, `decoder loss ${result.loss.toFixed(4)}`);
    }
  } finally {
    await objective.release();
  }
  bar.done();

  const source = await readSafetensorsFile(checkpoint);
  const tensors = new Map<string, HostTensor>(source.tensors);
  for (const key of keys) {
    const full = `first_stage_model.${key}`;
    if (!DECODER_PREFIXES.some((p) => full.startsWith(p))) continue;
    const trained = params.tensor(full, optimizer.ema);
    tensors.set(full, source.tensors.get(full)!.dtype === 'float16' ? toHalf(trained) : trained);
  }
  const written = join(out, `${name}.safetensors`);
  await writeFileAtomically(written, writeSafetensors(tensors, { format: 'pt', darkroom: name, refinedDecoder: JSON.stringify({ from: checkpoint, pairs: count, steps, lr }) }));
  await writeFileAtomically(checkpointCompanions(written).config, await readFile(companions.config));
  await cp(companions.vocabulary, checkpointCompanions(written).vocabulary, { recursive: true });
  console.log(JSON.stringify({ checkpoint: written, pairs: count, steps, loss: { first, last } }));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
