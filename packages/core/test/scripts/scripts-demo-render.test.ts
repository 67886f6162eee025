/**
 * Script plans rendered on the demo model: every planned cell is a valid engine request whose image equals a
 * render of the request written out by hand, and the composed grid holds those images where A1111 puts them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { decodePng, readPngText, type RasterImage } from '../../src/formats/png.js';
import { parseGenerationParameters } from '../../src/formats/infotext.js';
import { Engine } from '../../src/pipeline/engine.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import { composeScriptGrids, planScript, scriptArgsFromA1111, scriptGridInfotexts } from '../../src/index.js';

let engine: Engine;
before(() => {
  engine = new Engine({ root: repoRoot, threads: 1 });
});
after(async () => {
  await engine.close();
});

const base: Txt2ImgParams = { prompt: 'a red castle', negative_prompt: 'fog', steps: 2, sampler_name: 'Euler', cfg_scale: 6, seed: 77, subseed: 5, width: 64, height: 64 };

async function render(p: Txt2ImgParams): Promise<{ image: RasterImage; infotext: string }> {
  const result = await engine.txt2img(p);
  return { image: decodePng(result.images[0]!), infotext: readPngText(result.images[0]!).parameters! };
}

function region(img: RasterImage, x0: number, y0: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) out.set(img.data.subarray(((y0 + y) * img.width + x0) * 3, ((y0 + y) * img.width + x0 + w) * 3), y * w * 3);
  return out;
}

test('X/Y plot on the demo model: cells equal hand-written renders, sit under their labels, and the grid infotext names the axes', async () => {
  const options = scriptArgsFromA1111('x/y/z plot', [4, '2, 3', [], 7, 'castle, tower', [], 0, '', [], true, true]);
  const plan = planScript('x/y/z plot', options, base);
  const rendered = [];
  for (const cell of plan.cells) rendered.push(await render(cell.params as Txt2ImgParams));
  // Cell x=1 (3 steps), y=1 (tower), rendered from a request written out by hand.
  const byHand = await render({ ...base, steps: 3, prompt: 'a red tower' });
  const at = plan.cells.findIndex((c) => c.params.steps === 3 && c.params.prompt === 'a red tower');
  assert.deepEqual(rendered[at]!.image.data, byHand.image.data);

  const { grids } = composeScriptGrids(plan, rendered.map((r) => r.image));
  const [main, sub] = grids;
  // 64x64 cells: font size 5, one 8-pixel line per label: top band 8 + 2 * 2, left band 48.
  assert.deepEqual([sub!.width, sub!.height], [48 + 128, 12 + 128]);
  assert.deepEqual(region(sub!, 48 + 64, 12 + 64, 64, 64), byHand.image.data);
  assert.deepEqual(main!.data, sub!.data); // Z is Nothing: the main grid is the sub-grid with an empty title
  const infotexts = scriptGridInfotexts(plan, rendered.map((r) => r.infotext));
  const parsed = parseGenerationParameters(infotexts[0]!);
  assert.equal(parsed.get('Script'), 'X/Y/Z plot');
  assert.equal(parsed.get('X Type'), 'Steps');
  assert.equal(parsed.get('X Values'), '2, 3');
  assert.equal(parsed.get('Y Type'), 'Prompt S/R');
  assert.equal(parsed.get('Steps'), '2');
  assert.ok(infotexts[0]!.startsWith('a red castle\nNegative prompt: fog\n'));
  assert.deepEqual(plan.outputs.map((o) => o.kind), ['grid', 'cell-first', 'cell-first', 'cell-first', 'cell-first']);
});

test('prompt matrix on the demo model: each combination equals its own render with seed and subseed + k', async () => {
  const plan = planScript('prompt matrix', scriptArgsFromA1111('prompt matrix', [false, true]), { ...base, prompt: 'a castle|at dusk' });
  assert.equal(plan.cells.length, 2);
  const second = await render(plan.cells[1]!.params as Txt2ImgParams);
  const byHand = await render({ ...base, prompt: 'a castle, at dusk', seed: 78, subseed: 6 });
  assert.deepEqual(second.image.data, byHand.image.data);
  assert.equal(second.infotext, byHand.infotext);
});
