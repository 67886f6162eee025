import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RasterImage } from '../../src/formats/png.js';
import { alphaChannel, lossWeightMap, pixelsFromRgb, trainingImage, trainingPixels } from '../../src/training/dataset-image.js';

function image(width: number, height: number, channels: RasterImage['channels'], at: (x: number, y: number, c: number) => number): RasterImage {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < channels; c++) data[(y * width + x) * channels + c] = at(x, y, c);
  return { width, height, channels, data };
}

test('pixels are x / 127.5 - 1 in channel planes', () => {
  const rgb = image(2, 1, 3, (x, _y, c) => [0, 255, 128, 1, 2, 3][x * 3 + c]!);
  const p = pixelsFromRgb(rgb);
  assert.deepEqual(p.shape, [3, 1, 2]);
  const v = (x: number): number => Math.fround(x / 127.5 - 1);
  assert.deepEqual(Array.from(p.data), [-1, v(1), 1, v(2), v(128), v(3)]);
});

test('RGBA drops its alpha without compositing; the stretch ignores aspect', () => {
  const rgba = image(4, 2, 4, (_x, _y, c) => (c === 3 ? 0 : 200));
  const out = trainingImage(rgba, 2, 4);
  assert.deepEqual([out.width, out.height, out.channels], [2, 4, 3]);
  assert.ok(out.data.every((v) => v === 200));
  assert.deepEqual(trainingPixels(rgba, 2, 4).shape, [3, 4, 2]);
});

test('bicubic shrink follows Pillow: the filter widens, and negative lobes are clipped', () => {
  const step = image(8, 1, 1, (x) => (x < 4 ? 0 : 255));
  const out = trainingImage(step, 4, 1);
  // Output 1 (center 3, support 4) weighs inputs 0..6 by k((x - 2.5) / 2); inputs 4..6 are 255:
  // 255 * 0.1328125 / 2.0234375 = 16.74 -> 17. Output 0 sees only input 4, through a negative lobe -> 0.
  assert.deepEqual(Array.from(out.data), [0, 0, 0, 17, 17, 17, 238, 238, 238, 255, 255, 255]);
});

test('no alpha gives ones; the alpha map is reshaped, not transposed, for a non-square latent', () => {
  const rgb = image(4, 4, 3, () => 7);
  const ones = lossWeightMap(rgb, 2, 3);
  assert.deepEqual(ones.shape, [4, 2, 3]);
  assert.ok(ones.data.every((v) => v === 1));
  // A (2, 3) latent asks Pillow for 2 wide by 3 tall: a 2x3 source needs no resampling, and its six values
  // read row by row fill the 2x3 map in the same order.
  const src = image(2, 3, 4, (x, y, c) => (c === 3 ? [10, 20, 30, 40, 50, 70][y * 2 + x]! : 0));
  const w = lossWeightMap(src, 2, 3, 2);
  assert.deepEqual(w.shape, [2, 2, 3]);
  const shifted = [0, 10, 20, 30, 40, 60];
  const mean = Math.fround(160 / 6);
  const expected = shifted.map((v) => Math.fround(v / mean));
  assert.deepEqual(Array.from(w.data), [...expected, ...expected]);
  assert.equal(alphaChannel(rgb), undefined);
});

test('a constant alpha gives NaN weights as torch does', () => {
  const flat = image(2, 2, 2, (_x, _y, c) => (c === 1 ? 255 : 9));
  assert.ok(lossWeightMap(flat, 2, 2).data.every((v) => Number.isNaN(v)));
});
