/**
 * A1111's interrupt and skip on the demo model: sampling ends early with the latest denoised estimate, which is
 * decoded into that iteration's images; skip goes on with the next iteration, interrupt runs none.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { Engine } from '../../src/pipeline/engine.js';
import { decodePng } from '../../src/formats/png.js';
import type { StopControl } from '../../src/pipeline/job.js';
import type { Img2ImgParams, Txt2ImgParams } from '../../src/pipeline/params.js';

let engine: Engine;

before(() => {
  engine = new Engine({ root: repoRoot, threads: 1 });
});

after(async () => {
  await engine.close();
});

const base: Txt2ImgParams = {
  prompt: 'a lighthouse on a cliff', steps: 8, sampler_name: 'Euler', cfg_scale: 6, seed: 77, width: 64, height: 64, n_iter: 2,
};

/** Asks for `what` once the given iteration has reached `step`; counts the skips used up. */
function stopAt(what: 'interrupt' | 'skip', iteration: number, step: number): { control: StopControl; onStep: (e: { iteration: number; step: number }) => void; skips: number } {
  let wanted: 'interrupt' | 'skip' | null = null;
  const s = {
    skips: 0,
    control: {
      requested: () => wanted,
      skipped: () => {
        s.skips++;
        wanted = null;
      },
    },
    // Steps count over the whole job: iteration i's first step is i * steps + 1.
    onStep: (e: { iteration: number; step: number }) => {
      if (e.iteration === iteration && e.step - iteration * base.steps! >= step && s.skips === 0) wanted = what;
    },
  };
  return s;
}

test('skip ends the current iteration early with its partial image and renders the next one in full', async () => {
  const full = await engine.txt2img(base);
  const s = stopAt('skip', 0, 3);
  const skipped = await engine.txt2img(base, { stop: s.control, onStep: s.onStep });
  assert.equal(skipped.images.length, 2);
  assert.equal(s.skips, 1);
  assert.notDeepEqual(skipped.images[0], full.images[0], 'the first image stopped at step 3 of 8');
  // A partial image is still an image (the denoised estimate decoded), not noise or a blank.
  assert.ok(new Set(decodePng(skipped.images[0]!).data).size > 50);
  assert.deepEqual(skipped.images[1], full.images[1], 'the next iteration renders exactly as without the skip');
  assert.equal(skipped.infotexts.length, 2);
});

test('interrupt keeps the image reached and runs no further iteration', async () => {
  const full = await engine.txt2img(base);
  const s = stopAt('interrupt', 0, 2);
  const cut = await engine.txt2img(base, { stop: s.control, onStep: s.onStep });
  assert.equal(cut.images.length, 1);
  assert.notDeepEqual(cut.images[0], full.images[0]);
  assert.equal(cut.seeds[0], full.seeds[0]);
  // Interrupted in the second iteration: the first image is the full one.
  const late = stopAt('interrupt', 1, 2);
  const second = await engine.txt2img(base, { stop: late.control, onStep: late.onStep });
  assert.equal(second.images.length, 2);
  assert.deepEqual(second.images[0], full.images[0]);
  assert.notDeepEqual(second.images[1], full.images[1]);
});

test('an interrupted first pass gets no hires pass; img2img stops the same way', async () => {
  const hires: Txt2ImgParams = { ...base, n_iter: 1, enable_hr: true, hr_scale: 2, hr_upscaler: 'Latent', denoising_strength: 0.6 };
  const s = stopAt('interrupt', 0, 2);
  const cut = await engine.txt2img(hires, { stop: s.control, onStep: s.onStep });
  assert.deepEqual([decodePng(cut.images[0]!).width, decodePng(cut.images[0]!).height], [64, 64], 'the first pass\'s size');

  const init = (await engine.txt2img({ ...base, n_iter: 1 })).images[0]!;
  const i2i: Img2ImgParams = { ...base, init_images: [init], denoising_strength: 0.9 };
  const fullI2i = await engine.img2img(i2i);
  const i = stopAt('interrupt', 0, 2);
  const cutI2i = await engine.img2img(i2i, { stop: i.control, onStep: i.onStep });
  assert.equal(cutI2i.images.length, 1);
  assert.notDeepEqual(cutI2i.images[0], fullI2i.images[0]);
});
