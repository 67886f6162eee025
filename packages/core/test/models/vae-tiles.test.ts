import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDarkroomError } from '../../src/errors.js';
import { loadModel } from '../../src/models/load.js';
import { rampWeights, runTiled, tileSpans, tilesNeeded, vaeTiling } from '../../src/planning/vae-tiles.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import type { Float32Tensor } from '../../src/tensor.js';

test('tile spans cover the axis with the overlap, the last one aligned to the end', () => {
  assert.deepEqual(tileSpans(40, 64, 16), [{ start: 0, size: 40 }]);
  assert.deepEqual(tileSpans(128, 64, 16), [
    { start: 0, size: 64 },
    { start: 48, size: 64 },
    { start: 64, size: 64 },
  ]);
  assert.deepEqual(tileSpans(256, 64, 16).map((s) => s.start), [0, 48, 96, 144, 192]);
});

test('blend weights of neighbouring tiles sum to one across every overlap and are 1 elsewhere', () => {
  for (const [length, tile, overlap] of [[128, 64, 16], [100, 32, 8], [70, 20, 6]] as const) {
    const unit = 8;
    const sum = new Float64Array(length * unit);
    for (const span of tileSpans(length, tile, overlap)) {
      const w = rampWeights(span, length, overlap, unit);
      w.forEach((v, i) => (sum[span.start * unit + i]! += v));
    }
    // Where two tiles meet by exactly the overlap the ramps add up to one; the end tile may overlap by more.
    assert.ok(sum.every((v) => v >= 1 - 1e-6 && v <= 2), `${length}/${tile}/${overlap}`);
  }
  const w = rampWeights({ start: 48, size: 64 }, 256, 16, 1);
  assert.deepEqual([w[0], w[3], w[4], w[11], w[12], w[63]], [0, 0, 0.0625, 0.9375, 1, 0]);
});

test('a pointwise function run in tiles equals the whole; a factor-8 map lands where it belongs', async () => {
  const n = 4 * 3 * 20 * 36;
  const input: Float32Tensor = { dtype: 'float32', shape: [4, 3, 20, 36], data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37)) };
  const square = async (t: Float32Tensor): Promise<Record<string, Float32Tensor>> => ({ y: { ...t, data: t.data.map((v) => v * v) } });
  const r = await runTiled(input, { tile: 12, overlap: 4, inUnit: 1, outUnit: 1 }, square);
  r.y!.data.forEach((v, i) => assert.ok(Math.abs(v - input.data[i]! ** 2) < 1e-6));
  // Nearest x8 upsampling as the "decoder": every output pixel is its latent pixel.
  const up = async (t: Float32Tensor): Promise<Record<string, Float32Tensor>> => {
    const [b, c, h, w] = t.shape as [number, number, number, number];
    const out = new Float32Array(b * c * h * 8 * w * 8);
    for (let p = 0; p < b * c; p++) for (let y = 0; y < h * 8; y++) for (let x = 0; x < w * 8; x++) out[(p * h * 8 + y) * w * 8 + x] = t.data[(p * h + (y >> 3)) * w + (x >> 3)]!;
    return { image: { dtype: 'float32', shape: [b, c, h * 8, w * 8], data: out } };
  };
  const img = (await runTiled(input, { tile: 12, overlap: 4, inUnit: 1, outUnit: 8 }, up)).image!;
  assert.deepEqual(img.shape, [4, 3, 160, 288]);
  const whole = (await up(input)).image!;
  img.data.forEach((v, i) => assert.ok(Math.abs(v - whole.data[i]!) < 1e-6));
});

test('tiling options: auto by image size, always past one tile, never; bad settings refused', () => {
  const auto = vaeTiling(undefined);
  assert.equal(tilesNeeded(auto, 128, 128, 8), false); // 1024x1024
  assert.equal(tilesNeeded(auto, 192, 128, 8), true); // 1536x1024
  assert.equal(tilesNeeded(vaeTiling('always'), 65, 8, 8), true);
  assert.equal(tilesNeeded(vaeTiling('always'), 64, 64, 8), false);
  assert.equal(tilesNeeded(vaeTiling('never'), 512, 512, 8), false);
  assert.equal(tilesNeeded(vaeTiling({ abovePixels: 512 * 512 }), 96, 64, 8), true);
  const bad = (e: unknown): boolean => isDarkroomError(e, 'VAE_TILING_INVALID');
  assert.throws(() => vaeTiling({ tile: 16, overlap: 8 }), bad);
  assert.throws(() => vaeTiling({ tile: 15.5 }), bad);
  assert.throws(() => vaeTiling('sometimes' as 'auto'), bad);
});

test('demo VAE: tiled decode and encode stay near the untiled pass, with the same shapes', async () => {
  const root = await mkdtemp(join(tmpdir(), 'darkroom-vae-tiles-'));
  try {
    const demo = await ensureDemoModel(root);
    const base = { checkpoint: demo.checkpoint, config: demo.config, cacheDir: join(root, 'cache'), threads: 1 };
    const whole = await loadModel({ ...base, vaeTiling: 'never' });
    const tiled = await loadModel({ ...base, vaeTiling: { mode: 'always', tile: 16, overlap: 4 } });
    try {
      const n = 1 * 4 * 24 * 40;
      const latent: Float32Tensor = { dtype: 'float32', shape: [1, 4, 24, 40], data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.05) + 0.5 * Math.cos(i * 0.71)) };
      const meanAbs = (t: Float32Tensor): number => t.data.reduce((s, v) => s + Math.abs(v), 0) / t.data.length;
      const meanDiff = (a: Float32Tensor, b: Float32Tensor): number => a.data.reduce((s, v, i) => s + Math.abs(v - b.data[i]!), 0) / a.data.length;
      const a = await whole.vae.decode(latent);
      const b = await tiled.vae.decode(latent);
      assert.deepEqual(b.shape, [1, 3, 192, 320]);
      // Tiles this small (128 pixels) normalize with their own GroupNorm statistics, so the result is near the
      // whole image, not equal to it; a misplaced or unweighted tile would be off by the image's own size.
      assert.ok(meanDiff(a, b) < 0.15 * meanAbs(a), `decode: mean difference ${meanDiff(a, b)} of ${meanAbs(a)}`);
      const enc = await tiled.vae.encode(a);
      const ref = await whole.vae.encode(a);
      assert.deepEqual(enc.mean.shape, [1, 4, 24, 40]);
      assert.deepEqual(enc.std.shape, [1, 4, 24, 40]);
      assert.ok(meanDiff(enc.mean, ref.mean) < 0.25 * meanAbs(ref.mean), `encode: mean difference ${meanDiff(enc.mean, ref.mean)} of ${meanAbs(ref.mean)}`);
    } finally {
      await whole.release();
      await tiled.release();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
