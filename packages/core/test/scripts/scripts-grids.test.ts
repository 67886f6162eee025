import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RasterImage } from '../../src/formats/png.js';
import { composeScriptGrids, planScript, scriptArgsFromA1111, scriptGridInfotexts, withExtraParams } from '../../src/index.js';

function solid(width: number, height: number, rgb: readonly [number, number, number]): RasterImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i += 3) data.set(rgb, i);
  return { width, height, channels: 3, data };
}

const px = (img: RasterImage, x: number, y: number): number[] => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

/** Every pixel of the region equals the colour. */
function filled(img: RasterImage, x0: number, y0: number, w: number, h: number, rgb: readonly number[]): boolean {
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) if (px(img, x, y).some((v, i) => v !== rgb[i])) return false;
  return true;
}

/** Colours present in a region. */
function colours(img: RasterImage, x0: number, y0: number, w: number, h: number): Set<string> {
  const out = new Set<string>();
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) out.add(px(img, x, y).join(','));
  return out;
}

const COLOURS: [number, number, number][] = [[200, 0, 0], [0, 200, 0], [0, 0, 200], [200, 200, 0], [0, 200, 200], [200, 0, 200], [90, 90, 90], [10, 20, 30]];

test('prompt matrix grid: cells in combination order, column labels on top, row labels on the left, grey when left out', () => {
  const plan = planScript('prompt matrix', scriptArgsFromA1111('prompt matrix', []), { prompt: 'cat|hat|scarf', seed: 1, subseed: 1 });
  const cells = plan.cells.map((_, i) => solid(32, 32, COLOURS[i]!));
  const [grid] = composeScriptGrids(plan, cells).grids;
  // (32 + 32) // 25 = 2: font size 2, line spacing 1, one 8-pixel line per label; the left band is 3/4 of a cell.
  const padLeft = 24;
  const padTop = 8 + 2;
  assert.equal(grid!.width, 64 + padLeft);
  assert.equal(grid!.height, 64 + padTop);
  for (let k = 0; k < 4; k++) {
    assert.ok(filled(grid!, padLeft + (k % 2) * 32, padTop + Math.floor(k / 2) * 32, 32, 32, COLOURS[k]!), `cell ${k}`);
  }
  // "hat" labels the columns: left out (grey) over column 0, present (black) over column 1; "scarf" the rows.
  assert.deepEqual(colours(grid!, padLeft, 0, 32, padTop), new Set(['255,255,255', '153,153,153']));
  assert.deepEqual(colours(grid!, padLeft + 32, 0, 32, padTop), new Set(['255,255,255', '0,0,0']));
  assert.deepEqual(colours(grid!, 0, padTop, padLeft, 32), new Set(['255,255,255', '153,153,153']));
  assert.deepEqual(colours(grid!, 0, padTop + 32, padLeft, 32), new Set(['255,255,255', '0,0,0']));
  assert.ok(filled(grid!, 0, 0, padLeft, padTop, [255, 255, 255]));
});

test('grid margins put white gaps between cells', () => {
  const plan = planScript('prompt matrix', scriptArgsFromA1111('prompt matrix', [false, false, 'positive', 'comma', 6]), { prompt: 'cat|hat', seed: 1, subseed: 1 });
  const [grid] = composeScriptGrids(plan, [solid(40, 40, COLOURS[0]!), solid(40, 40, COLOURS[1]!)]).grids;
  // One variable part: one row, two columns, no row labels, so no left band.
  const padTop = 8 + 2 * 1;
  assert.equal(grid!.width, 80 + 6);
  assert.equal(grid!.height, 40 + padTop);
  assert.ok(filled(grid!, 0, padTop, 40, 40, COLOURS[0]!));
  assert.ok(filled(grid!, 40, padTop, 6, 40, [255, 255, 255]));
  assert.ok(filled(grid!, 46, padTop, 40, 40, COLOURS[1]!));
});

test('X/Y/Z grids: each Z value an X/Y grid, the main grid those side by side under the Z labels; smaller cells centred', () => {
  const o = scriptArgsFromA1111('x/y/z plot', [4, '1, 2', [], 6, '5, 6', [], 5, '1, 2', [], true, true, true]);
  const plan = planScript('x/y/z plot', o, { prompt: 'p', seed: 3, subseed: 4, width: 64, height: 64 });
  const cells = plan.cells.map((_, i) => solid(48, 48, COLOURS[i]!));
  cells[1] = solid(40, 40, COLOURS[1]!);
  const { grids } = composeScriptGrids(plan, cells);
  assert.equal(grids.length, 3);
  const [main, sub0, sub1] = grids;
  // Cells 48x48: font size 3 (scale 1), spacing 1; labels one 8-pixel line each; left band 36.
  assert.equal(sub0!.width, 36 + 96);
  assert.equal(sub0!.height, 10 + 96);
  // Sub-grid 0 holds cells with hr steps 1 in grid order: x = Steps, y = CFG.
  const order = plan.layout.grids[1]!.source.kind === 'cells' ? plan.layout.grids[1]!.source.cells : [];
  const at = (k: number) => [36 + (k % 2) * 48, 10 + Math.floor(k / 2) * 48] as const;
  for (const [k, cell] of order.entries()) {
    const [x, y] = at(k);
    if (cell === 1) {
      // A 40x40 image in a 48x48 cell sits 4 pixels in, on white.
      assert.ok(filled(sub0!, x + 4, y + 4, 40, 40, COLOURS[1]!));
      assert.ok(filled(sub0!, x, y, 48, 4, [255, 255, 255]));
    } else assert.ok(filled(sub0!, x, y, 48, 48, COLOURS[cell]!), `cell ${cell}`);
  }
  assert.equal(sub1!.width, sub0!.width);
  // Main grid: the two sub-grids in a row under the Z labels; no left band (its one row label is empty).
  const fontSize = Math.floor((sub0!.width + sub0!.height) / 25);
  assert.equal(main!.width, sub0!.width * 2);
  assert.ok(main!.height > sub0!.height);
  const top = main!.height - sub0!.height;
  assert.ok(top >= 8 * Math.floor(fontSize / 8));
  for (let y = 0; y < sub0!.height; y++) {
    const a = sub0!.data.subarray(y * sub0!.width * 3, (y + 1) * sub0!.width * 3);
    const b = main!.data.subarray(((top + y) * main!.width) * 3, ((top + y) * main!.width + sub0!.width) * 3);
    assert.deepEqual(b, a, `row ${y} of the first sub-grid`);
  }
  // Without the legend: plain image grids.
  const bare = planScript('x/y/z plot', { ...o, drawLegend: false }, { prompt: 'p', seed: 3, subseed: 4 });
  const plain = composeScriptGrids(bare, bare.cells.map((_, i) => solid(16, 16, COLOURS[i]!))).grids;
  assert.deepEqual([plain[1]!.width, plain[1]!.height, plain[0]!.width, plain[0]!.height], [32, 32, 64, 32]);
});

test('a cell with no image is black at the first image size', () => {
  const plan = planScript('x/y/z plot', scriptArgsFromA1111('x/y/z plot', [4, '1, 2', [], 0, '', [], 0, '', [], false]), { prompt: 'p', seed: 3, subseed: 4 });
  const [, sub] = composeScriptGrids(plan, [solid(16, 16, COLOURS[0]!), null]).grids;
  assert.ok(filled(sub!, 16, 0, 16, 16, [0, 0, 0]));
});

test('grid infotext: the cell infotext with the script keys before Version, quoted as create_infotext quotes', () => {
  const cell = 'a cat\nNegative prompt: dog\nSteps: 2, Sampler: Euler, Seed: 5, Size: 64x64, Version: v1.10.1';
  assert.equal(
    withExtraParams(cell, [['Script', 'X/Y/Z plot'], ['X Type', 'Seed'], ['X Values', '-1, 5'], ['Fixed X Values', '902, 5']]),
    'a cat\nNegative prompt: dog\nSteps: 2, Sampler: Euler, Seed: 5, Size: 64x64, Script: X/Y/Z plot, X Type: Seed, X Values: "-1, 5", Fixed X Values: "902, 5", Version: v1.10.1',
  );
  assert.equal(withExtraParams('p\nSteps: 2, Seed: 5', [['Script', 'X/Y/Z plot']]), 'p\nSteps: 2, Seed: 5, Script: X/Y/Z plot');
  const plan = planScript('x/y/z plot', scriptArgsFromA1111('x/y/z plot', [4, '1, 2']), { prompt: 'p', seed: 3, subseed: 4 });
  const texts = scriptGridInfotexts(plan, ['p\nSteps: 1, Seed: 3, Version: v1', 'p\nSteps: 2, Seed: 3, Version: v1']);
  assert.deepEqual(texts, ['p\nSteps: 1, Seed: 3, Script: X/Y/Z plot, X Type: Steps, X Values: "1, 2", Version: v1', 'p\nSteps: 1, Seed: 3, Script: X/Y/Z plot, X Type: Steps, X Values: "1, 2", Version: v1']);
});

test('image_grid fills its background colour everywhere no image lands and copies images row by row', async () => {
  const { imageGrid } = await import('../../src/pipeline/image-grid.js');
  const grid = imageGrid([solid(5, 3, [1, 2, 3]), solid(3, 1, [4, 5, 6]), solid(5, 3, [7, 8, 9])], 2, 2, [10, 20, 30]);
  assert.deepEqual([grid.width, grid.height], [10, 6]);
  assert.ok(filled(grid, 0, 0, 5, 3, [1, 2, 3]));
  // The 3x1 image is centred in its 5x3 cell: offset (1, 1).
  assert.ok(filled(grid, 6, 1, 3, 1, [4, 5, 6]));
  assert.ok(filled(grid, 5, 0, 5, 1, [10, 20, 30]) && filled(grid, 5, 2, 5, 1, [10, 20, 30]) && filled(grid, 5, 1, 1, 1, [10, 20, 30]) && filled(grid, 9, 1, 1, 1, [10, 20, 30]));
  assert.ok(filled(grid, 0, 3, 5, 3, [7, 8, 9]));
  assert.ok(filled(grid, 5, 3, 5, 3, [10, 20, 30]));
});
