import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { planScript, scriptArgsFromA1111, scriptByName, scriptInfos, SCRIPT_NAMES } from '../../src/index.js';

const base = { prompt: 'a house|red|at night|in snow', negative_prompt: 'blurry', seed: 100, subseed: 7, steps: 4, width: 64, height: 64, batch_size: 2, n_iter: 3 };

test('script_name is matched case-insensitively against the titles; the listing is the lower-cased titles', () => {
  assert.deepEqual(SCRIPT_NAMES, ['advanced seed blending', 'prompt matrix', 'prompts from file or textbox', 'x/y/z plot', 'seed travel', 'txt2img2img']);
  assert.equal(scriptByName('Prompt Matrix'), 'prompt matrix');
  assert.equal(scriptByName('X/Y/Z PLOT'), 'x/y/z plot');
  assert.equal(scriptByName('xyz plot'), undefined);
});

test('prompt matrix: every combination in A1111 order, bit n of k takes part n+1, one seed for all', () => {
  const plan = planScript('prompt matrix', scriptArgsFromA1111('prompt matrix', []), base);
  assert.deepEqual(
    plan.cells.map((c) => c.params.prompt),
    [
      'a house',
      'a house, red',
      'a house, at night',
      'a house, red, at night',
      'a house, in snow',
      'a house, red, in snow',
      'a house, at night, in snow',
      'a house, red, at night, in snow',
    ],
  );
  assert.ok(plan.cells.every((c) => c.params.seed === 100 && c.params.batch_size === 1 && c.params.n_iter === 1));
  // process_images gives image k subseed + k
  assert.deepEqual(plan.cells.map((c) => c.params.subseed), [7, 8, 9, 10, 11, 12, 13, 14]);
  assert.ok(plan.cells.every((c) => c.params.negative_prompt === 'blurry' && c.params.steps === 4));
});

test('prompt matrix: parts at the start, space joining, different seeds, negative prompt', () => {
  const o = scriptArgsFromA1111('prompt matrix', [true, true, 'negative', 'space', 10]);
  assert.deepEqual(o, { putAtStart: true, differentSeeds: true, promptType: 'negative', variationsDelimiter: 'space', marginSize: 10 });
  const plan = planScript('prompt matrix', o, { ...base, negative_prompt: 'ugly| grainy ,|dark' });
  // strip() then strip(','): ' grainy ,' keeps the space before its comma, as in A1111
  assert.deepEqual(plan.cells.map((c) => c.params.negative_prompt), ['ugly', 'grainy  ugly', 'dark ugly', 'grainy  dark ugly']);
  assert.deepEqual(plan.cells.map((c) => c.params.seed), [100, 101, 102, 103]);
  assert.ok(plan.cells.every((c) => c.params.prompt === base.prompt));
  assert.equal(plan.layout.grids[0]!.legend!.margin, 10);
});

test('prompt matrix grid: 2^floor(n/2) rows, first half of the parts on top, the rest on the left, active where present', () => {
  const plan = planScript('prompt matrix', scriptArgsFromA1111('prompt matrix', []), base);
  const grid = plan.layout.grids[0]!;
  assert.equal(grid.rows, 2); // 3 variable parts: 2 rows of 4 columns
  assert.deepEqual(grid.source, { kind: 'cells', cells: [0, 1, 2, 3, 4, 5, 6, 7] });
  const legend = grid.legend!;
  assert.equal(legend.columns.length, 4);
  assert.equal(legend.rows.length, 2);
  assert.deepEqual(legend.columns[1], [
    { text: 'red', active: true },
    { text: 'at night', active: false },
  ]);
  assert.deepEqual(legend.columns[3]!.map((a) => a.active), [true, true]);
  assert.deepEqual(legend.rows, [[{ text: 'in snow', active: false }], [{ text: 'in snow', active: true }]]);
  // The grid first, then the images; its infotext is the first image's.
  assert.deepEqual(plan.outputs[0], { kind: 'grid', grid: 0 });
  assert.equal(plan.outputs.length, 9);
  assert.deepEqual(grid.infotext, { cell: 0, extra: [] });
});

test('prompt matrix: a -1 seed is fixed once from the plan context, never drawn by the plan itself', () => {
  const o = scriptArgsFromA1111('prompt matrix', []);
  assert.throws(() => planScript('prompt matrix', o, { prompt: 'a|b' }), (e) => isDarkroomError(e, 'SCRIPT_SEED_UNRESOLVED'));
  let n = 0;
  const plan = planScript('prompt matrix', o, { prompt: 'a|b', seed: -1, subseed: -1 }, { randomSeed: () => 1000 + n++ });
  assert.deepEqual(plan.cells.map((c) => [c.params.seed, c.params.subseed]), [[1000, 1001], [1000, 1002]]);
});

test('prompt matrix script_args: wrong types are refused naming the index', () => {
  assert.throws(() => scriptArgsFromA1111('prompt matrix', [false, 'yes']), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[1]');
  assert.throws(() => scriptArgsFromA1111('prompt matrix', [false, false, 'both']), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[2]');
  assert.throws(() => scriptArgsFromA1111('prompt matrix', [false, false, 'positive', 'comma', 0, 1]), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[5]');
});

test('script-info: A1111 ScriptInfo shape with each control in run() order', () => {
  const infos = scriptInfos();
  assert.equal(infos.length, 11); // six scripts on txt2img, all but txt2img2img on img2img
  const pm = infos.find((i) => i.name === 'prompt matrix' && !i.is_img2img)!;
  assert.equal(pm.is_alwayson, false);
  assert.deepEqual(pm.args[4], { label: 'Grid margins (px)', value: 0, minimum: 0, maximum: 500, step: 2, choices: null });
  const xyz = infos.find((i) => i.name === 'x/y/z plot' && !i.is_img2img)!;
  assert.equal(xyz.args.length, 18);
  assert.equal(xyz.args[0]!.value, 'Seed');
  assert.equal(xyz.args[3]!.value, 'Nothing');
  assert.equal(xyz.args[0]!.choices![9], 'Sampler');
  const xyzI2i = infos.find((i) => i.name === 'x/y/z plot' && i.is_img2img)!;
  assert.equal(xyzI2i.args[0]!.choices![6], 'Image CFG Scale');
  assert.equal(infos.find((i) => i.name === 'prompts from file or textbox')!.args[3]!.label, 'List of prompt inputs');
});
