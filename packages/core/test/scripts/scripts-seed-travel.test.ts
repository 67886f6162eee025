import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import {
  parseDestinationSeeds,
  planScript,
  scriptArgsFromA1111,
  scriptByName,
  scriptInfos,
  scriptNamesFor,
  seedTravelStrength,
  SEED_TRAVEL_DEFAULTS,
  travelKeys,
  type SeedTravelOptions,
} from '../../src/index.js';

const base: Txt2ImgParams = { prompt: 'a lighthouse', steps: 3, sampler_name: 'Euler', seed: 10, subseed: 3, width: 64, height: 64, batch_size: 2, n_iter: 2 };
const travel = (o: Partial<SeedTravelOptions>) => ({ ...SEED_TRAVEL_DEFAULTS, ...o });
const keys = (plan: ReturnType<typeof planScript<'seed travel', typeof base>>) =>
  plan.outputs.map((o) => {
    const p = plan.cells[(o as { cell: number }).cell]!.params;
    return [p.seed, p.subseed, p.subseed_strength];
  });

test('seed travel is listed on both tabs, txt2img2img only on txt2img; script-info has its 22 controls', () => {
  assert.equal(scriptByName('Seed Travel'), 'seed travel');
  assert.equal(scriptByName('TXT2IMG2IMG', 'img2img'), undefined);
  assert.deepEqual(scriptNamesFor('img2img'), ['advanced seed blending', 'prompt matrix', 'prompts from file or textbox', 'x/y/z plot', 'seed travel']);
  const info = scriptInfos().find((i) => i.name === 'seed travel' && i.is_img2img)!;
  assert.equal(info.args.length, 22);
  assert.deepEqual(info.args[4]!.choices, ['Linear', 'Hug-the-middle', 'Slow start', 'Quick start']);
  assert.equal(info.args[7]!.label, 'Frames per second (0 to disable video)');
  assert.deepEqual(scriptInfos().find((i) => i.name === 'advanced seed blending')!.args.map((a) => a.label), ['Seeds']);
});

test('frames: steps per pair at t = i/steps, then the last seed alone; loop-back runs the last pair to t = 1', () => {
  assert.deepEqual(
    travelKeys([1, 2, 3], { steps: 4, rate: 'Linear', rateStrength: 3, loopBack: false }).map((k) => [k.seed, k.subseed, k.strength]),
    [[1, 2, 0], [1, 2, 0.25], [1, 2, 0.5], [1, 2, 0.75], [2, 3, 0], [2, 3, 0.25], [2, 3, 0.5], [2, 3, 0.75], [3, 3, 0]],
  );
  assert.deepEqual(
    travelKeys([1, 2, 3], { steps: 2, rate: 'Linear', rateStrength: 3, loopBack: true }).map((k) => [k.seed, k.subseed, k.strength]),
    [[1, 2, 0], [1, 2, 0.5], [2, 3, 0], [2, 3, 0.5], [3, 1, 0], [3, 1, 0.5], [3, 1, 1]],
  );
});

test('rates: unsinify (Hug-the-middle) is t + 0.1 sin(2πt); slow and quick start are powers; every curve starts at 0', () => {
  const hug = [0, 1, 2, 3].map((i) => seedTravelStrength(i, 4, 'Hug-the-middle', 3));
  assert.deepEqual(hug.map((v) => Number(v.toFixed(12))), [0, 0.35, 0.5, 0.65]);
  assert.deepEqual([0, 1, 2].map((i) => seedTravelStrength(i, 2, 'Slow start', 3)), [0, 0.125, 1]);
  assert.deepEqual([0, 1, 2].map((i) => seedTravelStrength(i, 2, 'Quick start', 3)), [0, 0.875, 1]);
  // monotone and within [0, 1]: every frame is a valid subseed_strength
  for (const rate of ['Linear', 'Hug-the-middle', 'Slow start', 'Quick start'] as const) {
    const v = Array.from({ length: 21 }, (_, i) => seedTravelStrength(i, 20, rate, 2.5));
    assert.ok(v.every((x, i) => x >= 0 && x <= 1 && (i === 0 || x >= v[i - 1]!)), rate);
  }
});

test('plan: the request seed then the destinations (parentheses left out); each frame a plain request; a video per travel', () => {
  const args = scriptArgsFromA1111('seed travel', [false, 4, '20,(99), 30', 2, 'Linear', 3, false, 12, true, false, false, 0, 1]);
  const plan = planScript('seed travel', args, base);
  assert.deepEqual(keys(plan), [[10, 20, 0], [10, 20, 0.5], [20, 30, 0], [20, 30, 0.5], [30, 30, 0]]);
  assert.ok(plan.cells.every((c) => c.params.batch_size === 1 && c.params.n_iter === 1 && c.params.prompt === 'a lighthouse'));
  assert.deepEqual(plan.layout.grids, []);
  assert.deepEqual(plan.animations, [{ frames: [0, 0, 1, 2, 3, 4, 4], fps: 12, label: '10 → 20 → 30' }]);
  assert.deepEqual(parseDestinationSeeds(' 5,(skip, this),+7,1_000'), [5, 7, 1000]);
  // as in the script, a parenthesised seed between blanks leaves an empty item, which is no seed
  assert.throws(() => parseDestinationSeeds('20, (99), 30'), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID'));
});

test('the script cache: a frame with the same noise as an earlier one reuses its cell', () => {
  const looped = planScript('seed travel', travel({ destinationSeeds: '20', steps: 2, loopBack: true }), base);
  // 10→20 at 0, 0.5; 20→10 at 0 (= 20 alone), 0.5 (= 10→20 at 0.5), 1 (= 10 alone)
  assert.deepEqual(looped.cells.map((c) => [c.params.seed, c.params.subseed, c.params.subseed_strength]), [[10, 20, 0], [10, 20, 0.5], [20, 10, 0]]);
  assert.deepEqual(looped.outputs.map((o) => (o as { cell: number }).cell), [0, 1, 2, 1, 0]);
  assert.deepEqual(looped.animations![0]!.frames, [0, 1, 2, 1, 0]);
  const uncached = planScript('seed travel', travel({ destinationSeeds: '20', steps: 2, loopBack: true, useCache: false }), base);
  assert.equal(uncached.cells.length, 5);
});

test('compare paths, bump seed, random seeds, no video, hidden images', () => {
  const compare = planScript('seed travel', travel({ destinationSeeds: '20, 30', steps: 2, comparePaths: true, loopBack: true, fps: 0 }), base);
  // the first seed alone is one cell for both travels: its image is the (10, 20, 0) one
  assert.deepEqual(keys(compare), [[10, 20, 0], [10, 20, 0.5], [20, 20, 0], [10, 20, 0], [10, 30, 0.5], [30, 30, 0]]);
  assert.equal(compare.cells.length, 5);
  assert.deepEqual(compare.animations, []);
  const bump = planScript('seed travel', travel({ destinationSeeds: '20, 30', bumpSeed: 0.1 }), { ...base, sampler_name: 'Euler a' });
  assert.deepEqual(keys(bump), [[10, 20, 0.1], [10, 30, 0.1]]);
  assert.deepEqual(bump.animations, []);
  let n = 4000000000;
  const random = planScript('seed travel', travel({ randomSeeds: true, seedCount: 3, steps: 1 }), { ...base, seed: -1 }, { randomSeed: () => n++ });
  // the request seed is left out; random seeds in the script's range 0..2^31-1
  assert.deepEqual(keys(random), [[4000000000 % 2 ** 31, 4000000001 % 2 ** 31, 0], [4000000001 % 2 ** 31, 4000000002 % 2 ** 31, 0], [4000000002 % 2 ** 31, 4000000002 % 2 ** 31, 0]]);
  const hidden = planScript('seed travel', travel({ destinationSeeds: '20', steps: 3, showImages: false }), base);
  assert.deepEqual(hidden.outputs, []);
  assert.equal(hidden.animations![0]!.frames.length, 4);
});

test('refusals name the script argument', () => {
  const refused = (o: Partial<SeedTravelOptions>, field: string, b: object = base) =>
    assert.throws(() => planScript('seed travel', travel(o), b), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === field, field);
  refused({}, 'script_args[2]'); // no destination seeds
  refused({ destinationSeeds: '5, x' }, 'script_args[2]');
  refused({ destinationSeeds: '5,' }, 'script_args[2]');
  refused({ randomSeeds: true, seedCount: 1 }, 'script_args[1]');
  refused({ destinationSeeds: '5' }, 'script_args[10]', { ...base, sampler_name: 'Euler a' });
  refused({ destinationSeeds: '5', ssimThreshold: 0.5 }, 'script_args[16]');
  refused({ destinationSeeds: '5', upscaleRatio: 2 }, 'script_args[14]');
  refused({ destinationSeeds: '5', rifePasses: 1 }, 'script_args[20]');
  assert.throws(() => scriptArgsFromA1111('seed travel', [false, 4, '5', 0]), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[3]');
  assert.throws(() => scriptArgsFromA1111('seed travel', [false, 4, '5', 2, 'Bouncy']), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[4]');
  assert.throws(
    () => planScript('seed travel', travel({ destinationSeeds: '1,2,3', steps: 3000 }), base, { maxCells: 100 }),
    (e) => isDarkroomError(e, 'SCRIPT_TOO_MANY_CELLS'),
  );
});
