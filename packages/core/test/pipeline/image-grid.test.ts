import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import type { RasterImage } from '../../src/formats/png.js';
import { defaultGridRows, imageGrid } from '../../src/pipeline/image-grid.js';

const solid = (w: number, h: number, rgb: [number, number, number]): RasterImage => {
  const data = new Uint8Array(w * h * 3);
  for (let p = 0; p < w * h; p++) data.set(rgb, p * 3);
  return { width: w, height: h, channels: 3, data };
};
const at = (img: RasterImage, x: number, y: number): number[] => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

test('A1111\'s default rows: the rounded square root, at most the image count', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 9, 12, 16].map(defaultGridRows), [1, 1, 2, 2, 2, 2, 3, 3, 3, 4]);
});

test('image_grid pastes in reading order on white, centring smaller images in their cell', () => {
  const imgs = [solid(4, 2, [10, 0, 0]), solid(4, 2, [20, 0, 0]), solid(2, 2, [30, 0, 0])];
  const grid = imageGrid(imgs, 2);
  assert.equal(grid.width, 8);
  assert.equal(grid.height, 4);
  assert.deepEqual(at(grid, 0, 0), [10, 0, 0]);
  assert.deepEqual(at(grid, 4, 1), [20, 0, 0]);
  // the 2x2 image sits one pixel in from its 4x2 cell's left edge
  assert.deepEqual(at(grid, 0, 2), [255, 255, 255]);
  assert.deepEqual(at(grid, 1, 2), [30, 0, 0]);
  assert.deepEqual(at(grid, 3, 3), [255, 255, 255]);
  // the fourth cell is empty
  assert.deepEqual(at(grid, 6, 3), [255, 255, 255]);
  assert.equal(imageGrid(imgs, 1, 4).width, 16);
  assert.throws(() => imageGrid(imgs, 1, 2), (e: unknown) => isDarkroomError(e, 'IMAGE_GRID_INVALID'));
});
