/**
 * Advanced seed blending and prompt blending: the parsers as the scripts read their text, and renders on the demo
 * model: a blend of one seed is that seed's render, two seeds at equal weight are A1111's variation seed at 0.5,
 * `{a:1|b:0}` is the prompt `a`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { blendSeedNoise, parseSeedBlend, randn, slerp } from '../../src/sampling/rng/index.js';
import { blendedPrompts, blendWeightSyntax, planScript, scriptArgsFromA1111 } from '../../src/index.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import { DEMO_BASE, demoRenderer } from './demo-engine.js';

const round = (list: readonly (readonly [string, number])[]) => list.map(([t, w]) => [t, Number(w.toFixed(6))]);

test('prompt blending: alternatives, weights, nesting, literal single groups, as the script reads them', () => {
  assert.deepEqual(round(blendedPrompts('fantasy landscape')), [['fantasy landscape', 1]]);
  assert.deepEqual(round(blendedPrompts('fantasy {landscape|city}, dark')), [['fantasy landscape, dark', 0.5], ['fantasy city, dark', 0.5]]);
  assert.deepEqual(round(blendedPrompts('{fire|ice}, {dark|light}')), [
    ['fire, dark', 0.25], ['fire, light', 0.25], ['ice, dark', 0.25], ['ice, light', 0.25],
  ]);
  assert.deepEqual(round(blendedPrompts('land, {{fire|lava}|ice}')), [['land, fire', 0.25], ['land, lava', 0.25], ['land, ice', 0.5]]);
  assert.deepEqual(round(blendedPrompts('land, {{fire@4|lava@1}|ice@2}')), [['land, fire', 0.266667], ['land, lava', 0.066667], ['land, ice', 0.666667]]);
  assert.deepEqual(round(blendedPrompts('{lava|ice|water@5}')), [['lava', 0.142857], ['ice', 0.142857], ['water', 0.714286]]);
  assert.deepEqual(round(blendedPrompts('{fire@4|lava@1}', 5)), [['fire', 4], ['lava', 1]]);
  // a weight that is no number stays in the text; a group of one is literal; an unclosed group ends a character early
  assert.deepEqual(round(blendedPrompts('{{fire@error|lava@1}|ice@2}')), [['fire@error', 0.166667], ['lava', 0.166667], ['ice', 0.666667]]);
  assert.deepEqual(round(blendedPrompts('land, {fire|lava} {cool} {ice,water}')), [['land, fire {cool} {ice,water}', 0.5], ['land, lava {cool} {ice,water}', 0.5]]);
  assert.deepEqual(round(blendedPrompts('land, {fire|lava')), [['land, fire', 0.5], ['land, lav', 0.5]]);
  assert.throws(() => blendedPrompts('{a@0|b@0}'), (e) => isDarkroomError(e, 'PROMPT_BLEND_INVALID'));
  // `:` inside braces is the weight mark; prompt editing, attention and extra networks keep theirs
  assert.equal(blendWeightSyntax('{fire:5|(ice:1.2)} [a:b:0.5] <lora:x:0.8>'), '{fire@5|(ice:1.2)} [a:b:0.5] <lora:x:0.8>');
  assert.equal(blendWeightSyntax('a) {b:2|c}'), 'a) {b@2|c}');
});

test('seed blending: the script\'s text, its successive slerps, refusals', () => {
  assert.deepEqual(parseSeedBlend('1:2, 2:1 ,3'), [{ seed: 1, weight: 2 }, { seed: 2, weight: 1 }, { seed: 3, weight: 1 }]);
  for (const bad of ['', '1:x', 'a:1', '1:-1', '1:0, 2:0', '1:inf']) {
    assert.throws(() => parseSeedBlend(bad), (e) => isDarkroomError(e, 'SEED_BLEND_INVALID'), bad);
  }
  const shape = [4, 8, 8] as const;
  const [a, b, c] = [1, 2, 3].map((s) => randn('nv', s, shape));
  assert.deepEqual(blendSeedNoise('nv', [{ seed: 1, weight: 1 }], shape).data, a!.data);
  assert.deepEqual(blendSeedNoise('nv', [{ seed: 1, weight: 1 }, { seed: 2, weight: 3 }], shape).data, slerp(0.75, a!, b!).data);
  // three seeds: 1 goes into 2 and 3 at w/(w+w1), then the results at the products of the weights
  const ab = slerp(1 / 3, a!, b!);
  const ac = slerp(1 / 3, a!, c!);
  assert.deepEqual(blendSeedNoise('nv', parseSeedBlend('1:2, 2:1, 3:1'), shape).data, slerp(2 / 4, ab, ac).data);
  const plan = planScript('advanced seed blending', scriptArgsFromA1111('advanced seed blending', ['5:1, 6:3']), { prompt: 'x', seed: -1, subseed_strength: 0.3 } as Txt2ImgParams);
  assert.equal(plan.cells.length, 1);
  assert.deepEqual(plan.cells[0]!.params.seed_blend, [{ seed: 5, weight: 1 }, { seed: 6, weight: 3 }]);
  assert.equal(plan.cells[0]!.params.seed, 5);
  assert.equal(plan.cells[0]!.params.subseed_strength, 0);
  assert.throws(
    () => planScript('advanced seed blending', { seeds: '5:1, six' }, { prompt: 'x' }),
    (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[0]',
  );
});

const demo = demoRenderer();
const base = DEMO_BASE;
const render = demo.render;

test('seed blending on the demo model: one seed is its own render; two at equal weight are the variation seed at 0.5', async () => {
  const plain = await render({ ...base, seed: 123 });
  assert.deepEqual((await render({ ...base, seed: 123, seed_blend: [{ seed: 123, weight: 1 }] })).data, plain.data);
  // an ancestral sampler's later noise comes from the image's own seed, as in a plain render
  const ancestral = { ...base, sampler_name: 'Euler a', seed: 123 };
  assert.deepEqual((await render({ ...ancestral, seed_blend: [{ seed: 123, weight: 2.5 }] })).data, (await render(ancestral)).data);
  const half = await render({ ...base, seed: 123, subseed: 456, subseed_strength: 0.5 });
  const blended = await render({ ...base, seed: 123, seed_blend: [{ seed: 123, weight: 1 }, { seed: 456, weight: 1 }] });
  assert.deepEqual(blended.data, half.data);
  assert.notDeepEqual(blended.data, plain.data);
  await assert.rejects(demo.engine().txt2img({ ...base, seed_blend: [{ seed: 1, weight: -1 }] }), (e) => isDarkroomError(e, 'SEED_BLEND_INVALID') && e.details.field === 'seed_blend');
});

test('prompt blending on the demo model: {a:1|b:0} is the prompt a, {a|b} neither; off, braces are text', async () => {
  const castle = await render(base);
  const blendOn = { ...base, prompt_blending: true };
  assert.deepEqual((await render({ ...blendOn, prompt: '{a red castle:1|a blue tower:0}' })).data, castle.data);
  assert.deepEqual((await render({ ...blendOn, prompt: '{a red castle@1|a blue tower@0}' })).data, castle.data);
  const tower = await render({ ...base, prompt: 'a blue tower' });
  const mix = await render({ ...blendOn, prompt: '{a red castle|a blue tower}' });
  assert.notDeepEqual(mix.data, castle.data);
  assert.notDeepEqual(mix.data, tower.data);
  // the negative prompt blends too, as the script's conditioning hook serves both
  assert.deepEqual((await render({ ...blendOn, negative_prompt: '{fog:1|rain:0}' })).data, castle.data);
  const literal = await render({ ...base, prompt: '{a red castle:1|a blue tower:0}' });
  assert.notDeepEqual(literal.data, castle.data);
});
