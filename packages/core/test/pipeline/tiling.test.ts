/**
 * `tiling`: circular padding in the UNet and VAE convolutions. On the graphs, the circular UNet and VAE commute
 * with circular shifts (what makes the image a seamless tile) where the zero-padded ones do not; the variant is
 * compiled once and then cached. Through the engine, a tiled render's left and right (and top and bottom) edges
 * continue each other: the seam differs far less than a plain render's, and the infotext says `Tiling: True`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { loadModel } from '../../src/models/load.js';
import { decodePng, type RasterImage } from '../../src/formats/png.js';
import { parseGenerationParameters } from '../../src/formats/infotext.js';
import { Engine } from '../../src/pipeline/engine.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import type { Float32Tensor } from '../../src/tensor.js';

let engine: Engine;

before(() => {
  engine = new Engine({ root: repoRoot, threads: 1 });
});

after(async () => {
  await engine.close();
});

function noise(shape: number[], seed: number): Float32Tensor {
  let s = seed;
  const n = shape.reduce((a, d) => a * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 31 - 1) * 1.5;
  }
  return { dtype: 'float32', shape, data };
}

/** torch.roll along the last axis (W) by k. */
function rollW(t: Float32Tensor, k: number): Float32Tensor {
  const w = t.shape[t.shape.length - 1]!;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < t.data.length; i += w) for (let x = 0; x < w; x++) out[i + ((x + k) % w)] = t.data[i + x]!;
  return { dtype: 'float32', shape: t.shape, data: out };
}

function maxAbsDiff(a: Float32Tensor, b: Float32Tensor): number {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

test('circular UNet and VAE commute with circular shifts; the zero-padded ones do not; each variant compiles once', async () => {
  const root = await mkdtemp(join(tmpdir(), 'darkroom-tiling-'));
  try {
    const demo = await ensureDemoModel(repoRoot);
    const m = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir: join(root, 'cache'), threads: 1 });
    try {
      const x = noise([1, 4, 16, 16], 3);
      const t = Float32Array.of(500);
      const context = noise([1, 77, 32], 4);
      // the UNet downsamples once: shifts by an even number of latent pixels commute exactly
      const out = await m.circular.unet.run(x, t, context);
      const shifted = await m.circular.unet.run(rollW(x, 2), t, context);
      assert.ok(maxAbsDiff(shifted, rollW(out, 2)) < 1e-4, `circular UNet: ${maxAbsDiff(shifted, rollW(out, 2))}`);
      const plainOut = await m.unet.run(x, t, context);
      const plainShifted = await m.unet.run(rollW(x, 2), t, context);
      assert.ok(maxAbsDiff(plainShifted, rollW(plainOut, 2)) > 1e-2);

      const latent = noise([1, 4, 8, 8], 5);
      const image = await m.circular.vae.decode(latent);
      const imageShifted = await m.circular.vae.decode(rollW(latent, 1));
      assert.ok(maxAbsDiff(imageShifted, rollW(image, 8)) < 1e-4, `circular VAE: ${maxAbsDiff(imageShifted, rollW(image, 8))}`);
      const plainImage = await m.vae.decode(latent);
      assert.ok(maxAbsDiff(plainImage, image) > 1e-2);

      const built = m.buildCount;
      await m.circular.unet.run(x, t, context);
      await m.circular.vae.decode(latent);
      assert.equal(m.buildCount, built, 'the circular graphs are cached like any other');
    } finally {
      await m.release();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

/** Mean |column 0 - column W-1| (or row 0 - row H-1) over pixels and channels. */
function seam(img: RasterImage, axis: 'x' | 'y'): number {
  const { width: w, height: h, data } = img;
  let s = 0;
  const n = axis === 'x' ? h : w;
  for (let i = 0; i < n; i++) {
    const a = axis === 'x' ? i * w : i;
    const b = axis === 'x' ? i * w + w - 1 : (h - 1) * w + i;
    for (let c = 0; c < 3; c++) s += Math.abs(data[a * 3 + c]! - data[b * 3 + c]!);
  }
  return s / (n * 3);
}

test('tiling: true renders images whose opposite edges continue each other', async () => {
  const request = { prompt: 'brick wall', steps: 6, seed: 11, width: 64, height: 64, batch_size: 6 };
  const plain = await engine.txt2img(request);
  const tiled = await engine.txt2img({ ...request, tiling: true });
  const mean = (r: typeof plain, axis: 'x' | 'y'): number => r.images.reduce((s, png) => s + seam(decodePng(png), axis), 0) / r.images.length;
  const [px, tx, py, ty] = [mean(plain, 'x'), mean(tiled, 'x'), mean(plain, 'y'), mean(tiled, 'y')];
  // The demo model's images are noise-like, so even neighbouring columns differ (by about 30 of 255 here): a tiled
  // seam is such a neighbouring pair, a plain one two unrelated columns (about 40). Measured over 6 images x 64
  // rows x 3 channels the means are deterministic and some 10 standard errors apart (31.4 vs 40.5, 21.6 vs 38.3);
  // the exact property, shifts commuting with the circular graphs, is checked above.
  assert.ok(tx < 0.85 * px, `left/right seam: tiled ${tx.toFixed(1)} vs plain ${px.toFixed(1)}`);
  assert.ok(ty < 0.85 * py, `top/bottom seam: tiled ${ty.toFixed(1)} vs plain ${py.toFixed(1)}`);
  assert.equal(parseGenerationParameters(tiled.infotexts[0]!).get('Tiling'), 'True');
  assert.doesNotMatch(plain.infotexts[0]!, /Tiling/);
  // the `tiling` setting is the default when the request says nothing
  const bySetting = await engine.txt2img({ ...request, batch_size: 1, override_settings: { tiling: true } });
  assert.deepEqual(decodePng(bySetting.images[0]!).data, decodePng(tiled.images[0]!).data);
});

test('img2img with tiling renders through the circular VAE encoder and decoder', async () => {
  const init = await engine.txt2img({ prompt: 'stone', steps: 2, seed: 3, width: 64, height: 64 });
  const r = await engine.img2img({ init_images: [init.images[0]!], prompt: 'stone', steps: 4, seed: 3, width: 64, height: 64, tiling: true });
  assert.match(r.infotexts[0]!, /Tiling: True/);
  const plain = await engine.img2img({ init_images: [init.images[0]!], prompt: 'stone', steps: 4, seed: 3, width: 64, height: 64 });
  assert.notDeepEqual(decodePng(r.images[0]!).data, decodePng(plain.images[0]!).data);
});
