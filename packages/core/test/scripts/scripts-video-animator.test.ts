/** img2img video's and the animator's plans: frames as independent cells, and frames as a chain of stages. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import type { Img2ImgParams, Txt2ImgParams } from '../../src/pipeline/params.js';
import {
  ANIMATOR_DEFAULTS, animatorMove, IMG2IMG_VIDEO_DEFAULTS, parsePromptKeyframes, parseSchedule, planAnimator, planImg2ImgVideo, promptAt, scheduleAt, type Img2ImgStage,
} from '../../src/index.js';

const frame = (v: number) => Uint8Array.of(v);
const img2img: Img2ImgParams = { prompt: 'a harbour', steps: 3, seed: 100, subseed: 7, subseed_strength: 0.2, width: 64, height: 64, init_images: [frame(0)], denoising_strength: 0.5 };
const txt2img: Txt2ImgParams = { prompt: 'a harbour', negative_prompt: 'fog', steps: 3, seed: -1, width: 64, height: 64, enable_hr: false, hr_scale: 2 };
const field = (name: string) => (e: unknown) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === name;

test('img2img video: one cell per frame with its frame as the init image, fixed or travelling seeds, the timing kept', () => {
  const frames = [frame(1), frame(2), frame(3)];
  const fixed = planImg2ImgVideo(frames, IMG2IMG_VIDEO_DEFAULTS, img2img);
  assert.equal(fixed.cells.length, 3);
  assert.deepEqual(fixed.cells.map((c) => c.params.init_images), [[frame(1)], [frame(2)], [frame(3)]]);
  assert.deepEqual(fixed.cells.map((c) => [c.params.seed, c.params.subseed, c.params.denoising_strength]), [[100, 7, 0.5], [100, 7, 0.5], [100, 7, 0.5]]);
  assert.deepEqual(fixed.outputs, [0, 1, 2].map((cell) => ({ kind: 'cell-first', cell })));
  assert.deepEqual(fixed.animations, [{ frames: [0, 1, 2], fps: 10, label: '3 frames' }]);
  const travel = planImg2ImgVideo(frames, { seed: 'travel', delaysMs: [40, 80, 40], fps: 10 }, { ...img2img, seed: 4294967295 });
  assert.deepEqual(travel.cells.map((c) => [c.params.seed, c.params.subseed]), [[4294967295, 7], [0, 8], [1, 9]]);
  assert.deepEqual(travel.animations![0]!.delaysMs, [40, 80, 40]);
  assert.throws(() => planImg2ImgVideo(frames, { ...IMG2IMG_VIDEO_DEFAULTS, delaysMs: [1] }, img2img), field('input'));
  assert.throws(() => planImg2ImgVideo(frames, IMG2IMG_VIDEO_DEFAULTS, img2img, { maxCells: 2 }), (e) => isDarkroomError(e, 'SCRIPT_TOO_MANY_CELLS'));
  assert.throws(() => planImg2ImgVideo([], IMG2IMG_VIDEO_DEFAULTS, img2img), field('input'));
});

test('schedules: `frame: value` keys, linear between them, held outside; prompts held until the next key', () => {
  const keys = parseSchedule('10: 2, 0:(1.0)\n20: 2', 'zoom');
  assert.deepEqual(keys, [{ frame: 0, value: 1 }, { frame: 10, value: 2 }, { frame: 20, value: 2 }]);
  assert.deepEqual([0, 5, 10, 15, 30].map((f) => scheduleAt(keys, f)), [1, 1.5, 2, 2, 2]);
  assert.deepEqual(parseSchedule(3, 'rotate'), [{ frame: 0, value: 3 }]);
  assert.equal(scheduleAt(parseSchedule('4: 8', 'rotate'), 0), 8);
  assert.throws(() => parseSchedule('0: 1, 0: 2', 'zoom'), field('zoom'));
  assert.throws(() => parseSchedule('a: 1', 'translate_x'), field('translate_x'));
  assert.throws(() => parseSchedule('0: x', 'translate_y'), field('translate_y'));
  assert.throws(() => parseSchedule('', 'zoom'), field('zoom'));
  const prompts = parsePromptKeyframes('\n5: a desert: at noon\n0: a forest\n', 'prompts');
  assert.deepEqual(prompts, [{ frame: 0, value: 'a forest' }, { frame: 5, value: 'a desert: at noon' }]);
  assert.deepEqual([0, 4, 5, 9].map((f) => promptAt(prompts, f, 'base')), ['a forest', 'a forest', 'a desert: at noon', 'a desert: at noon']);
  assert.equal(promptAt(parsePromptKeyframes('3: later', 'prompts'), 1, 'base'), 'base');
  assert.throws(() => parsePromptKeyframes('no key here', 'prompts'), field('prompts'));
});

test('animator: frame 0 is the request, each later frame an img2img of the one before, moved by its keyed values', () => {
  const o = { ...ANIMATOR_DEFAULTS, frames: 4, prompts: '0: a forest\n2: a desert', zoom: '0: 1, 3: 1.3', rotate: 0, translateX: '1: 2', seed: 'travel' as const, fps: 8 };
  const plan = planAnimator(o, txt2img, { randomSeed: () => 50 });
  assert.equal(plan.script, 'animator');
  assert.equal(plan.cells.length, 1);
  assert.deepEqual([plan.cells[0]!.params.prompt, plan.cells[0]!.params.seed, plan.cells[0]!.params.negative_prompt], ['a forest', 50, 'fog']);
  assert.equal(plan.stages.length, 4);
  const stages = plan.stages.slice(1) as Img2ImgStage[];
  assert.deepEqual(stages.map((s) => s.from), [0, 1, 2].map((stage) => ({ stage, cell: 0, image: 0 })));
  assert.deepEqual(stages.map((s) => [s.params.prompt, s.params.seed, s.params.denoising_strength]), [['a forest', 51, 0.75], ['a desert', 52, 0.75], ['a desert', 53, 0.75]]);
  assert.ok(stages.every((s) => !('enable_hr' in s.params) && !('hr_scale' in s.params)));
  assert.deepEqual(stages.map((s) => s.transform), [1, 2, 3].map((k) => animatorMove(o, k)));
  assert.deepEqual(stages[0]!.transform, { zoom: 1.1, rotate: 0, translateX: 2, translateY: 0 });
  assert.deepEqual(plan.imageStages, [0, 1, 2, 3]);
  assert.deepEqual(plan.animations, [{ frames: [0, 1, 2, 3], fps: 8, label: '4 frames' }]);
  // From an init image, frame 0 is its img2img; the chain keeps the request's strength; no move, no transform.
  const still = planAnimator({ ...ANIMATOR_DEFAULTS, frames: 2 }, img2img);
  assert.deepEqual(still.cells[0]!.params.init_images, [frame(0)]);
  const next = still.stages[1] as Img2ImgStage;
  assert.ok(!('init_images' in next.params) && next.transform === undefined);
  assert.deepEqual([next.params.seed, next.params.denoising_strength], [100, 0.5]);
  assert.throws(() => planAnimator({ ...ANIMATOR_DEFAULTS, frames: 3, zoom: '0: 1, 2: -1' }, img2img), field('zoom'));
  assert.throws(() => planAnimator({ ...ANIMATOR_DEFAULTS, frames: 0 }, img2img), field('frames'));
  assert.throws(() => planAnimator({ ...ANIMATOR_DEFAULTS, frames: 5 }, img2img, { maxCells: 4 }), (e) => isDarkroomError(e, 'SCRIPT_TOO_MANY_CELLS'));
});
