/** txt2img2img: a plan of two dependent stages; run on the demo model, stage 2 is the img2img of stage 1's image. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import { decodePng } from '../../src/formats/png.js';
import { Engine } from '../../src/pipeline/engine.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import { img2imgStageParams, planScript, scriptArgsFromA1111, scriptInfos, type Img2ImgStage } from '../../src/index.js';

const base: Txt2ImgParams = {
  prompt: 'a red castle', negative_prompt: 'fog', steps: 3, sampler_name: 'Euler', cfg_scale: 6, seed: -1, width: 64, height: 64, batch_size: 2, enable_hr: false, hr_scale: 2,
};

test('txt2img2img plan: stage 1 is the txt2img cell, stage 2 an img2img of its first image with its own prompt and strength', () => {
  const plan = planScript('txt2img2img', scriptArgsFromA1111('txt2img2img', ['a red castle, oil painting', '', 0.4, 2]), base, { randomSeed: () => 4242 });
  assert.equal(plan.cells.length, 1);
  assert.deepEqual([plan.cells[0]!.params.seed, plan.cells[0]!.params.batch_size], [4242, 1]);
  assert.deepEqual(plan.outputs, [{ kind: 'cell-all', cell: 0 }]);
  assert.deepEqual(plan.stages[0], { kind: 'cells', cells: [0] });
  const second = plan.stages[1] as Img2ImgStage;
  assert.equal(second.kind, 'img2img');
  assert.deepEqual(second.from, { stage: 0, cell: 0, image: 0 });
  assert.equal(second.params.prompt, 'a red castle, oil painting');
  assert.equal(second.params.negative_prompt, 'fog');
  assert.deepEqual([second.params.denoising_strength, second.params.steps, second.params.cfg_scale, second.params.seed], [0.4, 2, 6, 4242]);
  assert.ok(!('enable_hr' in second.params) && !('hr_scale' in second.params));
  assert.equal(scriptInfos().find((i) => i.name === 'txt2img2img')!.args.length, 5);
  assert.throws(() => scriptArgsFromA1111('txt2img2img', ['', '', 1.5]), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[2]');
  assert.throws(
    () => planScript('txt2img2img', scriptArgsFromA1111('txt2img2img', []), { ...base, seed: 1, init_images: [new Uint8Array(1)] }),
    (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'init_images',
  );
});

let engine: Engine;
before(() => {
  engine = new Engine({ root: repoRoot, threads: 1 });
});
after(async () => {
  await engine.close();
});

test('txt2img2img on the demo model: stage 2 equals the img2img of the stage 1 image written out by hand', async () => {
  const plan = planScript('txt2img2img', { prompt: 'a blue castle', negativePrompt: '', denoisingStrength: 0.5, steps: 0, cfgScale: 0 }, { ...base, seed: 9 });
  const first = await engine.txt2img(plan.cells[0]!.params);
  const stage = plan.stages[1] as Img2ImgStage;
  const second = await engine.img2img(img2imgStageParams(stage, first.images[0]!));
  const byHand = await engine.img2img({
    prompt: 'a blue castle', negative_prompt: 'fog', steps: 3, sampler_name: 'Euler', cfg_scale: 6, seed: 9, width: 64, height: 64, denoising_strength: 0.5, init_images: [first.images[0]!],
  });
  assert.deepEqual(decodePng(second.images[0]!).data, decodePng(byHand.images[0]!).data);
  assert.notDeepEqual(decodePng(second.images[0]!).data, decodePng(first.images[0]!).data);
});
