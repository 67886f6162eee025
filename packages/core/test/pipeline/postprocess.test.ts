import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { encodePng, readPngText } from '../../src/formats/png.js';
import { resizeImage, resizeNearest } from '../../src/pipeline/image.js';
import { blendImages, postprocessedPng, postprocessingInfotext, postprocessUpscale, type PostprocessUpscaleParams } from '../../src/pipeline/postprocess.js';
import { randomImage } from '../support/rrdbnet.js';

const BASE: PostprocessUpscaleParams = {
  resize_mode: 0, upscaling_resize: 2, upscaling_resize_w: 512, upscaling_resize_h: 512, upscaling_crop: true,
  upscaler_1: 'None', upscaler_2: 'None', extras_upscaler_2_visibility: 0,
};

test('by a factor: the built-in resizes to int(side * scale), then Upscaler.upscale\'s Lanczos to the size // 8 * 8', async () => {
  const img = randomImage(50, 30, 3);
  const { image, info } = await postprocessUpscale(img, { ...BASE, upscaler_1: 'Lanczos', upscaling_resize: 2 });
  assert.deepEqual([image.width, image.height], [96, 56]);
  assert.deepEqual(image.data, resizeImage(resizeImage(img, 100, 60), 96, 56).data);
  assert.equal(postprocessingInfotext(info), 'Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos');
  const nearest = await postprocessUpscale(img, { ...BASE, upscaler_1: 'Nearest', upscaling_resize: 1.6 });
  assert.deepEqual(nearest.image.data, resizeImage(resizeNearest(img, 80, 48), 80, 48).data);
  assert.equal(postprocessingInfotext(nearest.info), 'Postprocess upscale by: 1.6, Postprocess upscaler: Nearest');
});

test('to a size: the larger ratio, a centred crop on black, and upscaler_2 blended as PIL\'s Image.blend', async () => {
  const img = randomImage(50, 30, 4);
  const p = { ...BASE, resize_mode: 1, upscaling_resize_w: 70, upscaling_resize_h: 30, upscaler_1: 'Lanczos' };
  // max(70/50, 30/30) = 1.4: 70x42 -> 64x40 (// 8 * 8), pasted at (35 - 32, 15 - 20) on a 70x30 black image
  const { image, info } = await postprocessUpscale(img, p);
  assert.deepEqual([image.width, image.height], [70, 30]);
  const up = resizeImage(resizeImage(img, 70, 42), 64, 40);
  for (let y = 0; y < 30; y++) {
    for (let x = 0; x < 70; x++) {
      const inside = x >= 3 && x < 67;
      for (let c = 0; c < 3; c++) {
        assert.equal(image.data[(y * 70 + x) * 3 + c], inside ? up.data[((y + 5) * 64 + x - 3) * 3 + c] : 0, `pixel ${x},${y}`);
      }
    }
  }
  assert.equal(postprocessingInfotext(info), 'Postprocess upscale to: 70x30, Postprocess crop to: 70x30, Postprocess upscaler: Lanczos');
  const uncropped = await postprocessUpscale(img, { ...p, upscaling_crop: false });
  assert.deepEqual([uncropped.image.width, uncropped.image.height], [64, 40]);

  const both = await postprocessUpscale(img, { ...p, upscaler_2: 'Nearest', extras_upscaler_2_visibility: 0.3 });
  const second = await postprocessUpscale(img, { ...p, upscaler_1: 'Nearest' });
  assert.deepEqual(both.image.data, blendImages(image, second.image, 0.3).data);
  assert.match(postprocessingInfotext(both.info), /, Postprocess upscaler 2: Nearest$/);
});

test('Image.blend truncates in1 + alpha * (in2 - in1) computed in float', () => {
  const a = { width: 2, height: 1, channels: 3 as const, data: Uint8Array.from([0, 10, 200, 255, 1, 100]) };
  const b = { width: 2, height: 1, channels: 3 as const, data: Uint8Array.from([255, 0, 100, 0, 2, 101]) };
  assert.deepEqual([...blendImages(a, b, 0.3).data], [76, 7, 170, 178, 1, 100]);
});

test('None leaves the image and records nothing; unknown names and latent modes are refused as A1111 asserts', async () => {
  const img = randomImage(20, 20, 5);
  const none = await postprocessUpscale(img, BASE);
  assert.equal(none.image, img);
  assert.equal(postprocessingInfotext(none.info), '');
  for (const bad of [{ upscaler_1: 'Latent' }, { upscaler_1: 'nope' }, { upscaler_1: 'Lanczos', upscaler_2: 'nope' }]) {
    await assert.rejects(postprocessUpscale(img, { ...BASE, ...bad }), (e: unknown) => isDarkroomError(e, 'UPSCALER_NOT_FOUND'));
  }
});

test('the PNG keeps the source\'s text chunks, parameters after the others, postprocessing last (or in its old place)', () => {
  const img = randomImage(8, 8, 6);
  const png = postprocessedPng(img, { parameters: 'a cat\nSteps: 3', Software: 'x' }, 'Postprocess upscaler: Lanczos');
  assert.deepEqual(Object.entries(readPngText(png)), [['Software', 'x'], ['parameters', 'a cat\nSteps: 3'], ['postprocessing', 'Postprocess upscaler: Lanczos']]);
  const again = postprocessedPng(img, readPngText(encodePng(img, [['postprocessing', 'old'], ['parameters', 'p']])), 'new');
  assert.deepEqual(Object.entries(readPngText(again)), [['postprocessing', 'new'], ['parameters', 'p']]);
});
