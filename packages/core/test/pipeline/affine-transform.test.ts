import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import type { RasterImage } from '../../src/formats/png.js';
import { affineTransform, IDENTITY_MOVE } from '../../src/pipeline/affine-transform.js';

/** A w x h gray image whose pixel (x, y) is 10*y + x: every pixel tells where it came from. */
const ramp = (w: number, h: number): RasterImage => {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = 10 * y + x;
  return { width: w, height: h, channels: 1, data };
};
const at = (img: RasterImage, x: number, y: number): number => img.data[(y * img.width + x) * img.channels]!;
const move = (m: Partial<typeof IDENTITY_MOVE>) => ({ ...IDENTITY_MOVE, ...m });

test('the identity copies the image, a new buffer', () => {
  const img = ramp(5, 4);
  const out = affineTransform(img, IDENTITY_MOVE);
  assert.deepEqual(out.data, img.data);
  assert.notEqual(out.data, img.data);
});

test('whole-pixel shifts move the content and replicate the edge into what they uncover', () => {
  const img = ramp(5, 4);
  const right = affineTransform(img, move({ translateX: 2 }));
  for (let y = 0; y < 4; y++) {
    assert.deepEqual([0, 1, 2, 3, 4].map((x) => at(right, x, y)), [0, 0, 0, 1, 2].map((x) => 10 * y + x), `row ${y}`);
  }
  const up = affineTransform(img, move({ translateY: -1 }));
  assert.deepEqual([0, 1, 2, 3].map((y) => at(up, 3, y)), [13, 23, 33, 33]);
});

test('a quarter turn counter-clockwise is an exact permutation: the right edge becomes the top', () => {
  const img = ramp(4, 4);
  const turned = affineTransform(img, move({ rotate: 90 }));
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 4; x++) assert.equal(at(turned, x, y), at(img, 3 - y, x), `(${x}, ${y})`);
  }
  // Four quarter turns are the identity; a half turn is the image upside down and mirrored.
  let back = img;
  for (let i = 0; i < 4; i++) back = affineTransform(back, move({ rotate: 90 }));
  assert.deepEqual(back.data, img.data);
  const half = affineTransform(img, move({ rotate: 180 }));
  assert.equal(at(half, 0, 0), at(img, 3, 3));
});

test('zoom 2 about the centre: the middle spreads over the image, bilinear between pixel centres', () => {
  const img = ramp(4, 4);
  const z = affineTransform(img, move({ zoom: 2 }));
  // Output pixel 1 maps back to source 1.25, pixel 2 to 1.75 (the centre, 1.5, stays put).
  assert.equal(at(z, 1, 1), Math.round(11 + 0.25 * 1 + 0.25 * 10));
  assert.equal(at(z, 2, 2), Math.round(11 + 0.75 * 1 + 0.75 * 10));
  const out = affineTransform(img, move({ zoom: 0.5 }));
  // A zoomed-out corner reads far outside: the edge pixel, replicated.
  assert.equal(at(out, 0, 0), 0);
  assert.equal(at(out, 3, 3), 33);
});

test('RGB channels are moved alike, and a bad move is refused naming its field', () => {
  const rgb: RasterImage = { width: 2, height: 1, channels: 3, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
  assert.deepEqual([...affineTransform(rgb, move({ translateX: 1 })).data], [1, 2, 3, 1, 2, 3]);
  assert.throws(() => affineTransform(rgb, move({ zoom: 0 })), (e) => isDarkroomError(e, 'TRANSFORM_INVALID') && e.details.field === 'zoom');
  assert.throws(() => affineTransform(rgb, move({ rotate: Number.NaN })), (e) => isDarkroomError(e, 'TRANSFORM_INVALID') && e.details.field === 'rotate');
});
