/**
 * Renders the held-out scene captions with a trained scene model and prints how often the detector finds the
 * caption's colour, background, position and shape in the image.
 *
 *   npx tsx scripts/evaluate-demo-model.ts [--model CHECKPOINT (default: the built-in model)]
 *     [--resolution 128] [--limit N] [--steps 20] [--sampler "DPM++ 2M"] [--cfg 5] [--threads 2] [--seeds 1,2,3]
 *     [--split held-out|seen] [--phrasing full|varied] [--autoencoder 1]
 *
 * Each seed draws its own held-out scenes, captions and image seeds; with several, each seed's rates are printed,
 * then the rates over all their captions (53 captions of one seed tell apart changes of about two captions in
 * a hundred at best, so a candidate model is judged on several). `--split seen` renders as many scenes whose
 * combinations training shows, with the same shapes: a fact wrong there too is one the model has not learnt.
 * `--phrasing varied` captions the scenes as the training data does (any template, size and position stated about
 * half the time, as a person might type them) and checks only the facts each caption states; position then counts
 * as right where the caption does not give one. `--autoencoder 1` renders nothing with the UNet: it passes the same
 * scenes through the checkpoint's autoencoder alone and prints what the detector reads from the round trip, by
 * shape, which is as often as a UNet on that autoencoder can draw each shape right.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listArg, numberArg, stringArg } from '../bench/support/args.js';
import { progressBar } from '../packages/cli/src/progress.js';
import { BUILTIN_CHECKPOINT, BUILTIN_MODEL_RESOLUTION } from '../packages/core/src/catalog/built-in-model.js';
import { Engine } from '../packages/core/src/pipeline/engine.js';
import { evaluateReconstruction, readAutoencoder } from '../packages/core/src/training/scenes/evaluate-vae.js';
import {
  CAPTION_PHRASINGS,
  evaluateHeldOut,
  evaluationScenes,
  matchRates,
  SCENE_SPLITS,
  type CaptionPhrasing,
  type HeldOutCase,
  type HeldOutReport,
  type SceneSplit,
} from '../packages/core/src/training/scenes/evaluate-model.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function main(argv: readonly string[]): Promise<void> {
  const checkpoint = resolve(ROOT, stringArg(argv, 'model', BUILTIN_CHECKPOINT));
  const limit = numberArg(argv, 'limit', 0);
  const threads = numberArg(argv, 'threads', 2);
  const seeds = listArg(argv, 'seeds', ['1']).map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`--seeds takes whole numbers from 1, got "${v}"`);
    return n;
  });
  const split = stringArg(argv, 'split', 'held-out');
  if (!isSplit(split)) throw new RangeError(`--split takes one of ${SCENE_SPLITS.join(', ')}, got "${split}"`);
  const phrasing = stringArg(argv, 'phrasing', 'full');
  if (!isPhrasing(phrasing)) throw new RangeError(`--phrasing takes one of ${CAPTION_PHRASINGS.join(', ')}, got "${phrasing}"`);
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const line = (n: number, r: HeldOutReport['rates']): string =>
    `${n} ${split}${phrasing === 'varied' ? ' varied' : ''} captions: colour ${pct(r.colour)}, background ${pct(r.background)}, position ${pct(r.position)}, shape ${pct(r.shape)}`;
  const options = {
    checkpoint,
    resolution: numberArg(argv, 'resolution', BUILTIN_MODEL_RESOLUTION),
    ...(limit > 0 ? { limit } : {}),
    steps: numberArg(argv, 'steps', 20),
    sampler: stringArg(argv, 'sampler', 'DPM++ 2M'),
    cfgScale: numberArg(argv, 'cfg', 5),
    split,
    phrasing,
  };
  if (numberArg(argv, 'autoencoder', 0) === 1) {
    const scenes = seeds.flatMap((seed) => evaluationScenes(split, seed, limit > 0 ? limit : undefined));
    const { vae, weights } = await readAutoencoder(checkpoint);
    const r = await evaluateReconstruction(weights, vae, scenes, { resolution: options.resolution, threads });
    console.log(`seeds ${seeds.join(',')}: ${line(r.scenes, r.rates).replace('captions', 'scenes through the autoencoder')}`);
    console.log(`the detector on the renders themselves: ${line(r.scenes, r.ceiling).replace(/^\d+ \S+ captions: /, '')}`);
    const kept = Object.entries(r.shapeByShape).map(([shape, k]) => `${shape} ${k.kept}/${k.scenes}`);
    console.log(`shape kept, by the scene's first shape: ${kept.join(', ')}`);
    return;
  }
  // Every option is read before the engine starts, so a bad one is refused without loading anything.
  const engine = new Engine({ root: ROOT, threads });
  const all: HeldOutCase[] = [];
  try {
    for (const seed of seeds) {
      const bar = progressBar();
      const report = await evaluateHeldOut(engine, { ...options, seed }, (_c, i, n) => bar.update(i + 1, n, `${split} captions, seed ${seed}`));
      bar.done();
      for (const c of report.cases) {
        const m = c.match;
        console.log(`${m.colour ? 'C' : '-'}${m.background ? 'B' : '-'}${m.position ? 'P' : '-'}${m.shape ? 'S' : '-'}  ${c.prompt}`);
      }
      console.log(`seed ${seed}: ${line(report.cases.length, report.rates)}`);
      all.push(...report.cases);
    }
    if (seeds.length > 1) console.log(`seeds ${seeds.join(',')}: ${line(all.length, matchRates(all))}`);
    console.log(`shape right, by the caption's first shape: ${shapeCounts(all)}`);
  } finally {
    await engine.close();
  }
}

function isSplit(v: string): v is SceneSplit {
  return (SCENE_SPLITS as readonly string[]).includes(v);
}

function isPhrasing(v: string): v is CaptionPhrasing {
  return (CAPTION_PHRASINGS as readonly string[]).includes(v);
}

/** "circle 11/12, square 3/10, ...": how often each stated shape was drawn as itself. */
function shapeCounts(cases: readonly HeldOutCase[]): string {
  const counts = new Map<string, [number, number]>();
  for (const c of cases) {
    const shape = c.scene.objects[0]!.shape;
    const [right, n] = counts.get(shape) ?? [0, 0];
    counts.set(shape, [right + (c.match.shape ? 1 : 0), n + 1]);
  }
  return [...counts].map(([shape, [right, n]]) => `${shape} ${right}/${n}`).join(', ');
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
