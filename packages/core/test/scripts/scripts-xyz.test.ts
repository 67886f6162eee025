import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import { planScript, scriptArgsFromA1111, type XyzPlotOptions } from '../../src/index.js';
import { XYZ_AXES, xyzAxesFor } from '../../src/scripts/xyz-axes.js';
import { axisLabel, iterationOrder } from '../../src/scripts/xyz-plot.js';
import { axisValues, csvLine, csvValues, npArange, round8 } from '../../src/scripts/xyz-values.js';

const base: Txt2ImgParams = { prompt: 'a cat in a hat', negative_prompt: 'cat food', seed: 1234, subseed: 55, steps: 10, cfg_scale: 7, width: 64, height: 64, sampler_name: 'Euler' };
const axis = (label: string) => XYZ_AXES.find((a) => a.label === label)!;
const values = (label: string, text: string) => axisValues(axis(label), csvValues(text), 'script_args[1]', 4096);

/** script_args as an A1111 client sends them for txt2img. */
function args(x: [number, string, string[]?], y: [number, string, string[]?] = [0, ''], z: [number, string, string[]?] = [0, ''], rest: unknown[] = []): XyzPlotOptions {
  return scriptArgsFromA1111('x/y/z plot', [x[0], x[1], x[2] ?? [], y[0], y[1], y[2] ?? [], z[0], z[1], z[2] ?? [], ...rest]);
}

test('axis values are read as A1111 reads them (expected lists from its regexes, csv and numpy)', () => {
  // Each expectation was produced by A1111's process_axis code run under Python with numpy.
  assert.deepEqual(values('Steps', '1-5'), [1, 2, 3, 4, 5]);
  assert.deepEqual(values('Steps', '1-10 (+2)'), [1, 3, 5, 7, 9]);
  assert.deepEqual(values('Steps', '1-10 [5]'), [1, 3, 5, 7, 10]);
  assert.deepEqual(values('Steps', '10-1 (-3)'), [10, 7, 4]);
  assert.deepEqual(values('Seed', '-5--1'), [-5, -4, -3, -2, -1]);
  assert.deepEqual(values('Seed', ' 3, 7 ,-1'), [3, 7, -1]);
  assert.deepEqual(values('Steps', '1-5, 8-6 [3]'), [1, 2, 3, 4, 5, 8, 7, 6]);
  assert.deepEqual(values('CFG Scale', '0.1-0.3 (+0.1)'), [0.1, 0.2, 0.30000000000000004, 0.4]);
  assert.deepEqual(values('CFG Scale', '7-8 (+0.25)'), [7, 7.25, 7.5, 7.75, 8]);
  assert.deepEqual(values('CFG Scale', '1-2 [3]'), [1, 1.5, 2]);
  assert.deepEqual(values('CFG Scale', '0.5, 1e1, 7'), [0.5, 10, 7]);
  assert.deepEqual(values('CFG Scale', '0.1-0.7 [4]'), [0.1, 0.3, 0.5, 0.7]);
  assert.deepEqual(values('CFG Scale', '1-2'), [1, 2]);
  assert.deepEqual(values('CFG Scale', '3.5-1 (-0.75)'), [3.5, 2.75, 2, 1.25, 0.5]);
  assert.deepEqual(values('Prompt S/R', 'a, "b, c" ,d'), ['a', 'b, c', 'd']);
  assert.deepEqual(values('Prompt S/R', '"x ""y"" z", w\nv'), ['x "y" z', 'w', 'v']);
  assert.deepEqual(values('Prompt order', 'a, b, c'), [
    ['a', 'b', 'c'], ['a', 'c', 'b'], ['b', 'a', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b'], ['c', 'b', 'a'],
  ]);
  assert.deepEqual(npArange(0.1, 0.4, 0.1), [0.1, 0.2, 0.30000000000000004, 0.4]);
  assert.equal(csvLine(['Euler a', 'DPM++ 2M, Karras', 'say "hi"']), 'Euler a,"DPM++ 2M, Karras","say ""hi"""');
});

test('legend labels: "Label: value" with floats as Python prints round(x, 8); Sampler and Prompt S/R bare', () => {
  assert.equal(axisLabel(axis('CFG Scale'), 7), 'CFG Scale: 7.0');
  assert.equal(axisLabel(axis('CFG Scale'), 0.1 + 0.2), 'CFG Scale: 0.3');
  assert.equal(axisLabel(axis('CFG Scale'), 1 / 3), 'CFG Scale: 0.33333333');
  assert.equal(axisLabel(axis('Steps'), 20), 'Steps: 20');
  assert.equal(axisLabel(axis('Prompt S/R'), 'dog'), 'dog');
  assert.equal(axisLabel(axis('Prompt order'), ['b', 'a']), 'b, a');
  assert.equal(axisLabel(axis('Checkpoint name'), 'sub/dir/model.safetensors'), 'model.safetensors');
  assert.equal(axisLabel(axis('Nothing'), 0), '');
  assert.equal(round8(0.001953125), 0.00195312);
  assert.equal(round8(-0.001953125), -0.00195312);
  assert.equal(round8(123456.123456789), 123456.12345679);
});

test('bad values are refused naming the script argument, the axis and the value', () => {
  const check = (o: XyzPlotOptions, field: string, axisName: string, value: string) =>
    assert.throws(() => planScript('x/y/z plot', o, base), (e) => {
      assert.ok(isDarkroomError(e, 'SCRIPT_AXIS_INVALID'), String(e));
      assert.equal(e.details.field, field);
      assert.equal(e.details.axis, axisName);
      assert.equal(e.details.value, value);
      return true;
    });
  check(args([4, '10, twenty']), 'script_args[1]', 'Steps', 'twenty');
  check(args([4, '1-10 (2)']), 'script_args[1]', 'Steps', '1-10 (2)');
  check(args([1, '1'], [6, '7, x']), 'script_args[4]', 'CFG Scale', 'x');
  check(args([7, 'dog, cat']), 'script_args[1]', 'Prompt S/R', 'dog'); // the search string is missing
  check(args([9, '', ['Euler', 'Nope']]), 'script_args[2]', 'Sampler', 'Euler,Nope');
  const faceRestore = xyzAxesFor('txt2img').findIndex((a) => a.label === 'Face restore');
  assert.throws(() => planScript('x/y/z plot', args([faceRestore, 'true']), base), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[0]' && /Face restore/.test(e.message));
  assert.throws(() => scriptArgsFromA1111('x/y/z plot', [99]), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[0]');
  assert.throws(() => scriptArgsFromA1111('x/y/z plot', [1, 5]), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[1]');
});

test('axis indices count the axes of the request tab, as A1111 dropdowns of type "index" do', () => {
  const t2i = xyzAxesFor('txt2img').map((a) => a.label);
  const i2i = xyzAxesFor('img2img').map((a) => a.label);
  assert.deepEqual(t2i.slice(0, 12), ['Nothing', 'Seed', 'Var. seed', 'Var. strength', 'Steps', 'Hires steps', 'CFG Scale', 'Prompt S/R', 'Prompt order', 'Sampler', 'Hires sampler', 'Checkpoint name']);
  assert.deepEqual(i2i.slice(0, 11), ['Nothing', 'Seed', 'Var. seed', 'Var. strength', 'Steps', 'CFG Scale', 'Image CFG Scale', 'Prompt S/R', 'Prompt order', 'Sampler', 'Checkpoint name']);
  assert.equal(t2i.length, 43);
  assert.equal(i2i.length, 42);
  assert.equal(t2i[t2i.length - 1], 'Size');
  assert.equal(scriptArgsFromA1111('x/y/z plot', [6], { mode: 'txt2img' }).x.type, 'CFG Scale');
  assert.equal(scriptArgsFromA1111('x/y/z plot', [6], { mode: 'img2img' }).x.type, 'Image CFG Scale');
  assert.equal(scriptArgsFromA1111('x/y/z plot', ['Denoising']).x.type, 'Denoising');
});

test('cells: axes applied in x, y, z order to copies of the request, cells run z-outer / x-inner by default', () => {
  const plan = planScript('x/y/z plot', args([4, '2, 3'], [7, 'cat, dog, bird'], [6, '5-6']), base);
  assert.equal(plan.cells.length, 12);
  const first = plan.cells.slice(0, 3).map((c) => [c.params.steps, c.params.prompt, c.params.negative_prompt, c.params.cfg_scale]);
  assert.deepEqual(first, [
    [2, 'a cat in a hat', 'cat food', 5],
    [3, 'a cat in a hat', 'cat food', 5],
    [2, 'a dog in a hat', 'dog food', 5],
  ]);
  assert.deepEqual(plan.cells[11]!.params, { ...base, steps: 3, prompt: 'a bird in a hat', negative_prompt: 'bird food', cfg_scale: 6, override_settings: {} });
  assert.equal(plan.cells[11]!.label, 'Steps: 3, bird, CFG Scale: 6.0');
  // The base request is not touched.
  assert.equal(base.prompt, 'a cat in a hat');
  // A costlier axis runs outermost: a checkpoint on X loads once per value.
  assert.deepEqual(iterationOrder({ x: 1, y: 0, z: 0 }), ['x', 'z', 'y']);
  assert.deepEqual(iterationOrder({ x: 0, y: 0.7, z: 0 }), ['y', 'z', 'x']);
  assert.deepEqual(iterationOrder({ x: 0.5, y: 0.7, z: 0 }), ['y', 'x', 'z']);
  assert.deepEqual(iterationOrder({ x: 0, y: 0, z: 0 }), ['z', 'y', 'x']);
  const byCheckpoint = planScript('x/y/z plot', args([11, '', ['m1', 'm2']], [4, '1, 2']), base);
  assert.deepEqual(byCheckpoint.cells.map((c) => [c.params.override_settings?.sd_model_checkpoint, c.params.steps]), [['m1', 1], ['m1', 2], ['m2', 1], ['m2', 2]]);
});

test('grids: one X/Y grid per Z value (X labels on top, Y on the left) and the main grid of them under the Z labels', () => {
  const plan = planScript('x/y/z plot', args([4, '2, 3'], [7, 'cat, dog, bird'], [6, '5-6'], [true, true, true, false, false, false, false, 8]), base);
  const [main, sub0, sub1] = plan.layout.grids;
  assert.equal(plan.layout.grids.length, 3);
  assert.deepEqual(main!.source, { kind: 'grids', grids: [1, 2] });
  assert.equal(main!.rows, 1);
  assert.deepEqual(main!.legend!.columns, [[{ text: 'CFG Scale: 5.0', active: true }], [{ text: 'CFG Scale: 6.0', active: true }]]);
  assert.equal(main!.legend!.margin, 0);
  assert.equal(sub0!.rows, 3);
  assert.equal(sub0!.legend!.margin, 8);
  assert.deepEqual(sub0!.legend!.columns.map((c) => c[0]!.text), ['Steps: 2', 'Steps: 3']);
  assert.deepEqual(sub0!.legend!.rows.map((c) => c[0]!.text), ['cat', 'dog', 'bird']);
  // Grid position k of sub-grid iz holds the cell at x = k % 2, y = floor(k / 2).
  const src = (g: typeof sub1) => (g!.source.kind === 'cells' ? g!.source.cells : []);
  assert.deepEqual(src(sub1).map((c) => [plan.cells[c]!.params.steps, plan.cells[c]!.params.prompt, plan.cells[c]!.params.cfg_scale]), [
    [2, 'a cat in a hat', 6], [3, 'a cat in a hat', 6], [2, 'a dog in a hat', 6], [3, 'a dog in a hat', 6], [2, 'a bird in a hat', 6], [3, 'a bird in a hat', 6],
  ]);
  // Main grid, sub-grids, then every cell in grid order.
  assert.deepEqual(plan.outputs.slice(0, 4), [{ kind: 'grid', grid: 0 }, { kind: 'grid', grid: 1 }, { kind: 'grid', grid: 2 }, { kind: 'cell-first', cell: 0 }]);
  assert.equal(plan.outputs.length, 15);
  // Defaults: the main grid only.
  assert.deepEqual(planScript('x/y/z plot', args([4, '2, 3']), base).outputs, [{ kind: 'grid', grid: 0 }]);
  // No legend.
  const bare = planScript('x/y/z plot', args([4, '2, 3'], [0, ''], [0, ''], [false]), base);
  assert.equal(bare.layout.grids.every((g) => g.legend === null), true);
});

test('grid infotexts: Script, axis types and values (fixed seeds listed) added to the first cell of each grid', () => {
  const plan = planScript('x/y/z plot', args([1, '-1, 5'], [4, '1-2'], [6, '5, 6']), { ...base, seed: -1, subseed: -1 }, { randomSeed: (() => { let n = 900; return () => n++; })() });
  // fix_seed takes seed then subseed, then the axis' -1 values.
  assert.deepEqual(plan.cells.map((c) => c.params.seed).slice(0, 2), [902, 5]);
  assert.ok(plan.cells.every((c) => c.params.subseed === 901));
  const [main, sub0, sub1] = plan.layout.grids;
  assert.deepEqual(sub0!.infotext.extra, [['Script', 'X/Y/Z plot'], ['X Type', 'Seed'], ['X Values', '-1, 5'], ['Fixed X Values', '902, 5'], ['Y Type', 'Steps'], ['Y Values', '1-2']]);
  assert.deepEqual(main!.infotext.extra.slice(-2), [['Z Type', 'CFG Scale'], ['Z Values', '5, 6']]);
  assert.equal(plan.cells[main!.infotext.cell]!.params.cfg_scale, 5);
  assert.equal(plan.cells[sub1!.infotext.cell]!.params.cfg_scale, 6);
  assert.equal(plan.cells[sub1!.infotext.cell]!.params.steps, 1);
});

test('Keep -1 for seeds leaves every -1 to the cell; Vary seeds adds the position along the chosen axes', () => {
  const kept = planScript('x/y/z plot', args([1, '-1, 3'], [0, ''], [0, ''], [true, false, false, true]), { ...base, seed: -1 });
  assert.deepEqual(kept.cells.map((c) => c.params.seed), [-1, 3]);
  assert.equal(kept.layout.grids[1]!.infotext.extra.some(([k]) => k === 'Fixed X Values'), false);
  const varied = planScript('x/y/z plot', args([4, '1, 2, 3'], [6, '5, 6'], [0, ''], [true, false, false, false, true, true]), base);
  assert.deepEqual(varied.cells.map((c) => c.params.seed), [1234, 1235, 1236, 1237, 1238, 1239]);
});

test('dropdown axes read the dropdown unless csv mode; VAE, Size, Clip skip and sigma axes land where the engine reads them', () => {
  const dropdown = planScript('x/y/z plot', args([9, 'ignored', ['Euler a', 'DPM++ 2M']]), base);
  assert.deepEqual(dropdown.cells.map((c) => c.params.sampler_name), ['Euler a', 'DPM++ 2M']);
  assert.deepEqual(dropdown.layout.grids[1]!.infotext.extra[2], ['X Values', 'Euler a,DPM++ 2M']);
  const csv = planScript('x/y/z plot', args([9, 'k_euler, DDIM', ['Euler a']], [0, ''], [0, ''], [true, false, false, false, false, false, false, 0, true]), base);
  // Aliases pass A1111's check; the cell gets the display name the engine knows.
  assert.deepEqual(csv.cells.map((c) => c.params.sampler_name), ['Euler', 'DDIM']);
  assert.equal(csv.cells[0]!.label, 'k_euler');
  const t2i = xyzAxesFor('txt2img').map((a) => a.label);
  const at = (label: string) => t2i.indexOf(label);
  const vae = planScript('x/y/z plot', args([at('VAE'), '', ['auto', 'none', 'My.VAE.pt', 'other']]), base, { vaes: ['my.vae.pt'] });
  assert.deepEqual(vae.cells.map((c) => c.params.override_settings?.sd_vae), ['Automatic', 'None', 'my.vae.pt', 'Automatic']);
  assert.deepEqual(vae.warnings, ['No VAE found for other; using Automatic']);
  const size = planScript('x/y/z plot', args([at('Size'), '64x96, 128 x 64, big']), base);
  assert.deepEqual(size.cells.map((c) => [c.params.width, c.params.height]), [[64, 96], [128, 64], [64, 64]]);
  assert.deepEqual(size.warnings, ['Invalid size in XYZ plot: big']);
  const clip = planScript('x/y/z plot', args([at('Clip skip'), '1-2'], [at('Sigma Churn'), '0.5']), base);
  assert.deepEqual(clip.cells.map((c) => [c.params.clip_skip, c.params.override_settings?.CLIP_stop_at_last_layers, c.params.override_settings?.s_churn]), [[1, 1, 0.5], [2, 2, 0.5]]);
  const ckpt = () => planScript('x/y/z plot', args([at('Checkpoint name'), '', ['v1-5', 'nope']]), base, { checkpoints: ['sd/v1-5-pruned.safetensors', 'sd/v1-5-pruned-emaonly.safetensors'] });
  assert.throws(ckpt, (e) => isDarkroomError(e, 'SCRIPT_AXIS_INVALID') && /Unknown checkpoint: nope/.test(e.message));
});

test('limits: cell count and A1111 grid megapixels', () => {
  assert.throws(() => planScript('x/y/z plot', args([1, '1-100'], [4, '1-100']), base), (e) => isDarkroomError(e, 'SCRIPT_TOO_MANY_CELLS'));
  assert.throws(() => planScript('x/y/z plot', args([1, '1-60'], [4, '1-60']), { ...base, width: 512, height: 512 }), (e) => isDarkroomError(e, 'SCRIPT_GRID_TOO_LARGE'));
  assert.throws(() => planScript('x/y/z plot', args([1, '1-100000000']), base), (e) => isDarkroomError(e, 'SCRIPT_AXIS_INVALID'));
});

test('img2img axes: the tab comes from the context or the request; img2img-only axes apply there only', () => {
  const i2i = xyzAxesFor('img2img').map((a) => a.label);
  const maskWeight = scriptArgsFromA1111('x/y/z plot', [i2i.indexOf('Cond. Image Mask Weight'), '0.5, 1'], { mode: 'img2img' });
  const img2imgBase = { ...base, init_images: [{ width: 8, height: 8, channels: 3 as const, data: new Uint8Array(192) }] };
  assert.deepEqual(planScript('x/y/z plot', maskWeight, img2imgBase).cells.map((c) => c.params.override_settings?.inpainting_mask_weight), [0.5, 1]);
  assert.equal(planScript('x/y/z plot', maskWeight, base, { mode: 'img2img' }).cells.length, 2);
  assert.throws(() => planScript('x/y/z plot', maskWeight, base), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[0]');
  const imageCfg = scriptArgsFromA1111('x/y/z plot', [i2i.indexOf('Image CFG Scale'), '1'], { mode: 'img2img' });
  assert.throws(() => planScript('x/y/z plot', imageCfg, img2imgBase), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && /not supported by Darkroom/.test(e.message));
});
