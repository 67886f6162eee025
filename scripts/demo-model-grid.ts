/**
 * A labelled grid of what a scene model draws: one column per prompt (the prompt written above it), one row per
 * seed, each cell enlarged (nearest neighbour) so the grid reads at a glance in the docs.
 *
 *   npx tsx scripts/demo-model-grid.ts --model .darkroom/models/darkroom-scenes.safetensors --out docs/demo-model-grid.png
 *     [--resolution 128] [--seeds 2] [--scale 2] [--steps 20] [--sampler "DPM++ 2M"] [--cfg 5] [--prompts "p1;p2;..."]
 *
 * The default prompts mix held-out captions (combinations never trained on) with short phrasings a person would type.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numberArg, stringArg } from '../bench/support/args.js';
import { progressBar } from '../packages/cli/src/progress.js';
import { decodePng, encodePng, type RasterImage } from '../packages/core/src/formats/png.js';
import { Engine } from '../packages/core/src/pipeline/engine.js';
import { imageGrid } from '../packages/core/src/pipeline/image-grid.js';
import { drawGridAnnotations } from '../packages/core/src/scripts/grid-annotations.js';
import { captionScene } from '../packages/core/src/training/scenes/captions.js';
import { heldOutScenes } from '../packages/core/src/training/scenes/scene.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function defaultPrompts(): string[] {
  const heldOut = heldOutScenes(1)
    .slice(0, 3)
    .map((s, i) => captionScene(s, 1, i, true).text);
  return [...heldOut, 'a red circle on a blue background', 'yellow star, black background', 'a large green square on the left, white background'];
}

/** `img` (3 channels) enlarged `scale` times by repeating pixels. */
function enlarge(img: RasterImage, scale: number): RasterImage {
  const w = img.width * scale;
  const h = img.height * scale;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const from = (Math.floor(y / scale) * img.width + Math.floor(x / scale)) * img.channels;
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = img.data[from + c]!;
    }
  }
  return { width: w, height: h, channels: 3, data };
}

async function main(argv: readonly string[]): Promise<void> {
  const checkpoint = resolve(ROOT, stringArg(argv, 'model', '.darkroom/models/darkroom-scenes.safetensors'));
  const out = resolve(ROOT, stringArg(argv, 'out', 'docs/demo-model-grid.png'));
  const resolution = numberArg(argv, 'resolution', 128);
  const seeds = numberArg(argv, 'seeds', 2);
  const scale = numberArg(argv, 'scale', 2);
  const given = stringArg(argv, 'prompts', '');
  const prompts = given ? given.split(';').map((p) => p.trim()) : defaultPrompts();
  const engine = new Engine({ root: ROOT, threads: numberArg(argv, 'threads', 2) });
  const bar = progressBar();
  const cells: RasterImage[] = [];
  try {
    for (let s = 0; s < seeds; s++) {
      for (const [i, prompt] of prompts.entries()) {
        const r = await engine.txt2img(
          {
            prompt,
            negative_prompt: '',
            steps: numberArg(argv, 'steps', 20),
            sampler_name: stringArg(argv, 'sampler', 'DPM++ 2M'),
            cfg_scale: numberArg(argv, 'cfg', 5),
            seed: 1 + s,
            width: resolution,
            height: resolution,
          },
          { checkpoint },
        );
        cells.push(enlarge(decodePng(r.images[0]!), scale));
        bar.update(s * prompts.length + i + 1, seeds * prompts.length, 'renders');
      }
    }
  } finally {
    bar.done();
    await engine.close();
  }
  const side = resolution * scale;
  const grid = drawGridAnnotations(imageGrid(cells, seeds, prompts.length), side, side, {
    columns: prompts.map((text) => [{ text, active: true }]),
    rows: Array.from({ length: seeds }, (_, s) => [{ text: `seed ${1 + s}`, active: true }]),
    margin: 0,
  });
  await writeFile(out, encodePng(grid));
  console.log(out);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
