import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodePng, encodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import { writeZip } from '@darkroom/core/formats/zip.js';
import { FarmError } from '../src/errors.js';
import { readVideoFrames, type VideoLimits } from '../src/video-input.js';

const FIELD = 'script.options.input';
const LIMITS: VideoLimits = { maxFrames: 8, maxPixels: 64 * 64, maxDecodedBytes: 1 << 20 };

function solid(v: number, size = 8): RasterImage {
  return { width: size, height: size, channels: 3, data: new Uint8Array(size * size * 3).fill(v) };
}

async function gif(frames: readonly RasterImage[], delays: readonly number[]): Promise<Uint8Array> {
  const { width, height } = frames[0]!;
  const stacked = Buffer.concat(frames.map((f) => Buffer.from(f.data)));
  return new Uint8Array(await sharp(stacked, { raw: { width, height: height * frames.length, channels: 3, pageHeight: height } }).gif({ delay: [...delays] }).toBuffer());
}

const refusal = (code: string, status: number, file?: string) => (e: unknown) =>
  e instanceof FarmError && e.code === code && e.status === status && e.field === FIELD && (file === undefined || e.file === file);

test('a zip: frames in natural name order, folders, metadata and dotfiles skipped, the bytes as sent', async () => {
  const png = (v: number) => encodePng(solid(v));
  const zip = writeZip([
    { name: 'clip/', data: new Uint8Array() },
    { name: 'clip/f10.png', data: png(30) },
    { name: '__MACOSX/clip/._f1.png', data: new Uint8Array([0]) },
    { name: 'clip/.DS_Store', data: new Uint8Array([0]) },
    { name: 'clip/f2.png', data: png(20) },
    { name: 'clip/f1.png', data: png(10) },
  ]);
  const video = await readVideoFrames(zip, LIMITS, FIELD);
  assert.equal(video.delaysMs, null);
  assert.deepEqual(video.frames.map((f) => decodePng(f).data[0]), [10, 20, 30]);
  assert.deepEqual(video.frames[0], png(10));
});

test('an animated GIF: each frame as a PNG of what a viewer shows, its delay kept (under 20 ms read as 100)', async () => {
  const video = await readVideoFrames(await gif([solid(0), solid(128), solid(255)], [50, 10, 300]), LIMITS, FIELD);
  assert.equal(video.frames.length, 3);
  assert.deepEqual(video.delaysMs, [50, 100, 300]);
  assert.deepEqual(video.frames.map((f) => decodePng(f).channels), [3, 3, 3]);
  assert.deepEqual(decodePng(video.frames[2]!).data, solid(255).data);
});

test('bounds: frame count, pixels per frame and decoded bytes, each refused before decoding', async () => {
  const many = writeZip(Array.from({ length: 9 }, (_, i) => ({ name: `f${i}.png`, data: encodePng(solid(i)) })));
  await assert.rejects(readVideoFrames(many, LIMITS, FIELD), refusal('VIDEO_TOO_MANY_FRAMES', 413));
  await assert.rejects(readVideoFrames(await gif(Array.from({ length: 9 }, (_, i) => solid(i * 20)), new Array<number>(9).fill(100)), LIMITS, FIELD), refusal('VIDEO_TOO_MANY_FRAMES', 413));
  const big = writeZip([{ name: 'a.png', data: encodePng(solid(1, 65)) }]);
  await assert.rejects(readVideoFrames(big, LIMITS, FIELD), refusal('IMAGE_TOO_LARGE', 413, 'a.png'));
  // Eight 64x64 frames decode to 128 KiB: over a 100 KiB budget, from the zip's headers and the GIF's metadata.
  const tight: VideoLimits = { ...LIMITS, maxDecodedBytes: 100 * 1024 };
  const full = Array.from({ length: 8 }, (_, i) => solid(i * 30, 64));
  await assert.rejects(readVideoFrames(writeZip(full.map((f, i) => ({ name: `f${i}.png`, data: encodePng(f) }))), tight, FIELD), refusal('VIDEO_TOO_LARGE', 413));
  await assert.rejects(readVideoFrames(await gif(full, new Array<number>(8).fill(100)), tight, FIELD), refusal('VIDEO_TOO_LARGE', 413));
  await assert.rejects(readVideoFrames(new Uint8Array([1, 2, 3, 4]), LIMITS, FIELD), refusal('VIDEO_INVALID', 400));
  await assert.rejects(readVideoFrames(writeZip([]), LIMITS, FIELD), refusal('VIDEO_INVALID', 400));
});
