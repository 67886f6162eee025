/**
 * Declared sizes read from headers (packages/farm/src/image-size.ts) against what libvips reads from the same
 * files, and the worker's decoder refusing an oversized or damaged file before decoding it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { readImageSize } from '@darkroom/farm/image-size.js';
import { decodeInputImage } from '@darkroom/worker/input-images.js';
import { isDarkroomError } from '@darkroom/core/errors.js';

const noise = (w: number, h: number, c: 3 | 4): Buffer => Buffer.from(Array.from({ length: w * h * c }, (_, i) => (i * 2654435761) >>> 24));

test('PNG, JPEG (baseline and progressive), WebP (lossy, lossless, with alpha), GIF and BMP sizes from the header', async () => {
  const make = (w: number, h: number, c: 3 | 4) => sharp(noise(w, h, c), { raw: { width: w, height: h, channels: c } });
  const files: [string, Buffer, number, number][] = [
    ['png', await make(37, 21, 3).png().toBuffer(), 37, 21],
    ['jpeg', await make(50, 9, 3).jpeg().toBuffer(), 50, 9],
    ['jpeg', await make(33, 70, 3).jpeg({ progressive: true }).toBuffer(), 33, 70],
    ['webp', await make(41, 17, 3).webp({ quality: 50 }).toBuffer(), 41, 17],
    ['webp', await make(41, 17, 3).webp({ lossless: true }).toBuffer(), 41, 17],
    ['webp', await make(13, 29, 4).webp({ quality: 50 }).toBuffer(), 13, 29],
    ['gif', await make(12, 34, 3).gif().toBuffer(), 12, 34],
  ];
  for (const [format, file, w, h] of files) {
    assert.deepEqual(readImageSize(file), { ok: true, format, width: w, height: h }, `${format} ${w}x${h}`);
    const meta = await sharp(file).metadata();
    assert.deepEqual([meta.width, meta.height], [w, h]);
  }
  const bmp = Buffer.alloc(54);
  bmp.write('BM', 0, 'latin1');
  bmp.writeInt32LE(40, 14);
  bmp.writeInt32LE(300, 18);
  bmp.writeInt32LE(-200, 22); // top-down
  assert.deepEqual(readImageSize(bmp), { ok: true, format: 'bmp', width: 300, height: 200 });
});

test('the worker decodes a JPEG to RGB and a WebP with alpha to RGBA, unrotated, and refuses before decoding', async () => {
  const rgb = noise(16, 8, 3);
  const jpeg = await sharp(rgb, { raw: { width: 16, height: 8, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  const img = await decodeInputImage(jpeg, 'init_images.0', 1000);
  assert.ok(!(img instanceof Uint8Array));
  // EXIF orientation 6 (rotate 90) is left alone, as PIL's Image.open leaves it.
  assert.deepEqual([img.width, img.height, img.channels], [16, 8, 3]);
  const webp = await sharp(noise(8, 8, 4), { raw: { width: 8, height: 8, channels: 4 } }).webp({ lossless: true }).toBuffer();
  const rgba = await decodeInputImage(webp, 'mask', 1000);
  assert.ok(!(rgba instanceof Uint8Array));
  assert.deepEqual([rgba.channels, Buffer.from(rgba.data).equals(noise(8, 8, 4))], [4, true]);
  await assert.rejects(decodeInputImage(jpeg, 'init_images.0', 16 * 8 - 1), (e) => isDarkroomError(e, 'IMAGE_TOO_LARGE') && e.details.field === 'init_images.0');
  await assert.rejects(decodeInputImage(jpeg.subarray(0, 100), 'mask', 1000), (e) => isDarkroomError(e, 'INVALID_IMAGE') && /mask/.test(e.message));
  // A PNG the engine decodes itself goes through as bytes.
  const png = await sharp(rgb, { raw: { width: 16, height: 8, channels: 3 } }).png().toBuffer();
  assert.ok((await decodeInputImage(png, 'init_images.0', 1000)) === png);
  // An interlaced PNG, which the engine's decoder does not read, is decoded here to the same pixels.
  const interlaced = await sharp(rgb, { raw: { width: 16, height: 8, channels: 3 } }).png({ progressive: true }).toBuffer();
  const px = await decodeInputImage(interlaced, 'init_images.0', 1000);
  assert.ok(!(px instanceof Uint8Array) && px.channels === 3 && Buffer.from(px.data).equals(rgb));
});
