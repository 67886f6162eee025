import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodeAnimation, encodeAnimation, frameDelayMs, type RgbFrame } from '../src/animation.js';
import { FarmError } from '../src/errors.js';

/** A smooth gradient that moves with k, so codecs keep it close and frames differ. */
function frame(k: number, width = 48, height = 32): RgbFrame {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 5 + k * 20) % 256;
      data[i + 1] = (y * 7) % 256;
      data[i + 2] = (k * 40) % 256;
    }
  }
  return { width, height, channels: 3, data };
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

test('animated WebP: decoded back with every frame, the frame delay and loop, lossless frames exact', async () => {
  const frames = [0, 1, 2, 3, 4].map((k) => frame(k));
  const webp = await encodeAnimation(frames, { format: 'webp', fps: 10 });
  const meta = await sharp(webp, { pages: -1 }).metadata();
  assert.equal(meta.format, 'webp');
  assert.equal(meta.pages, 5);
  const back = await decodeAnimation(webp);
  assert.equal(back.frames.length, 5);
  assert.deepEqual(back.delay, [100, 100, 100, 100, 100]);
  assert.equal(back.loop, 0);
  assert.deepEqual([back.frames[0]!.width, back.frames[0]!.height], [48, 32]);
  assert.deepEqual(back.frames[0]!.data, frames[0]!.data);
  assert.deepEqual(back.frames[4]!.data, frames[4]!.data);
  // lossy frames stay within codec tolerance
  const lossy = await decodeAnimation(await encodeAnimation(frames, { format: 'webp', fps: 10, lossless: false, quality: 90 }));
  assert.equal(lossy.frames.length, 5);
  assert.ok(meanAbsDiff(lossy.frames[0]!.data, frames[0]!.data) < 6, `lossy frame 0 differs by ${meanAbsDiff(lossy.frames[0]!.data, frames[0]!.data)}`);
});

test('animated GIF: frame count, delay in hundredths, frame 0 within palette tolerance', async () => {
  const frames = [0, 1, 2].map((k) => frame(k));
  const gif = await encodeAnimation(frames, { format: 'gif', fps: 30, loop: 2 });
  const back = await decodeAnimation(gif);
  assert.equal((await sharp(gif).metadata()).format, 'gif');
  assert.equal(back.frames.length, 3);
  assert.equal(back.loop, 2);
  // 1000/30 = 33 ms; GIF keeps hundredths of a second
  assert.equal(frameDelayMs(30), 33);
  assert.ok(back.delay.every((d) => d === 30 || d === 33 || d === 40), `delays ${back.delay.join(',')}`);
  const diff = meanAbsDiff(back.frames[0]!.data, frames[0]!.data);
  assert.ok(diff < 8, `frame 0 differs by ${diff} on average`);
});

test('bad frames are refused naming the frame', async () => {
  await assert.rejects(encodeAnimation([], { format: 'webp', fps: 10 }), (e) => e instanceof FarmError && e.field === 'frames');
  await assert.rejects(encodeAnimation([frame(0), frame(1, 32, 32)], { format: 'gif', fps: 10 }), (e) => e instanceof FarmError && e.field === 'frames[1]');
  await assert.rejects(encodeAnimation([frame(0)], { format: 'gif', fps: 0 }), (e) => e instanceof FarmError && e.field === 'fps');
});

test('per-frame delays (a video\'s own timing) replace 1000 / fps, and must be one per frame', async () => {
  const frames = [frame(0), frame(1), frame(2)];
  const webp = await decodeAnimation(await encodeAnimation(frames, { format: 'webp', fps: 10, delays: [40, 120, 40] }));
  assert.deepEqual(webp.delay, [40, 120, 40]);
  const gif = await decodeAnimation(await encodeAnimation(frames, { format: 'gif', fps: 10, delays: [40, 120, 40] }));
  assert.deepEqual(gif.delay, [40, 120, 40]);
  await assert.rejects(encodeAnimation(frames, { format: 'webp', fps: 10, delays: [40, 120] }), (e) => e instanceof FarmError && e.field === 'delays');
  await assert.rejects(encodeAnimation(frames, { format: 'webp', fps: 10, delays: [40, 0, 40] }), (e) => e instanceof FarmError && e.field === 'delays');
});
