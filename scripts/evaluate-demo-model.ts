/**
 * Renders the held-out scene captions with a trained scene model and prints how often the detector finds the
 * caption's colour, background, position and shape in the image.
 *
 *   npx tsx scripts/evaluate-demo-model.ts [--model CHECKPOINT (default: the built-in model)]
 *     [--resolution 128] [--limit N] [--steps 20] [--sampler "DPM++ 2M"] [--cfg 5] [--threads 2]
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numberArg, stringArg } from '../bench/support/args.js';
import { progressBar } from '../packages/cli/src/progress.js';
import { BUILTIN_CHECKPOINT, BUILTIN_MODEL_RESOLUTION } from '../packages/core/src/catalog/built-in-model.js';
import { Engine } from '../packages/core/src/pipeline/engine.js';
import { evaluateHeldOut } from '../packages/core/src/training/scenes/evaluate-model.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function main(argv: readonly string[]): Promise<void> {
  const checkpoint = resolve(ROOT, stringArg(argv, 'model', BUILTIN_CHECKPOINT));
  const limit = numberArg(argv, 'limit', 0);
  const engine = new Engine({ root: ROOT, threads: numberArg(argv, 'threads', 2) });
  const bar = progressBar();
  try {
    const report = await evaluateHeldOut(
      engine,
      {
        checkpoint,
        resolution: numberArg(argv, 'resolution', BUILTIN_MODEL_RESOLUTION),
        ...(limit > 0 ? { limit } : {}),
        steps: numberArg(argv, 'steps', 20),
        sampler: stringArg(argv, 'sampler', 'DPM++ 2M'),
        cfgScale: numberArg(argv, 'cfg', 5),
      },
      (_c, i, n) => bar.update(i + 1, n, 'held-out captions'),
    );
    bar.done();
    for (const c of report.cases) {
      const m = c.match;
      console.log(`${m.colour ? 'C' : '-'}${m.background ? 'B' : '-'}${m.position ? 'P' : '-'}${m.shape ? 'S' : '-'}  ${c.prompt}`);
    }
    const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
    const { rates } = report;
    console.log(`${report.cases.length} held-out captions: colour ${pct(rates.colour)}, background ${pct(rates.background)}, position ${pct(rates.position)}, shape ${pct(rates.shape)}`);
  } finally {
    await engine.close();
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
