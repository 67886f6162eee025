import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDarkroomError } from '../../src/errors.js';
import type { RasterImage } from '../../src/formats/png.js';
import { PyDict, PyOrderedDict } from '../../src/formats/pickle/values.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { torchTensor, writeTorchFile } from '../../src/formats/torch.js';
import { inferRrdb } from '../../src/model-files/rrdbnet.js';
import { combineGrid, splitGrid } from '../../src/pipeline/image-grid.js';
import { loadModelUpscaler, readUpscalerStateDict, resizeWithUpscaler, rrdbWeightsFrom, upscaleWithModel, type ModelUpscaler } from '../../src/pipeline/upscalers.js';
import { float32, type HostTensor } from '../../src/tensor.js';
import { ARCH, esrganStateDict, randomImage, renamed, toRealEsrgan, writeModel } from '../support/rrdbnet.js';


test('the architecture is read off each key layout; anything else is refused naming what is wrong', () => {
  const sd = esrganStateDict(ARCH);
  const shapes = (m: Map<string, HostTensor>): Map<string, readonly number[]> => new Map([...m].map(([k, t]) => [k, t.shape] as const));
  const old = inferRrdb(shapes(sd)).config;
  assert.deepEqual(old, { layout: 'esrgan', channels: 3, features: 8, blocks: 1, growth: 4, scale: 4 });
  assert.equal(inferRrdb(shapes(esrganStateDict({ nf: 6, nb: 2, gc: 3, ups: 1 }))).config.scale, 2);
  assert.equal(inferRrdb(shapes(esrganStateDict({ nf: 6, nb: 2, gc: 3, ups: 1 }))).config.blocks, 2);
  const real = inferRrdb(shapes(renamed(sd, toRealEsrgan))).config;
  assert.deepEqual({ ...real, layout: 'esrgan' }, old);
  assert.equal(real.layout, 'real-esrgan');

  const refuse = (m: Map<string, HostTensor>, pattern: RegExp): void =>
    assert.throws(() => inferRrdb(shapes(m), 'x.pth'), (e: unknown) => isDarkroomError(e, 'UPSCALER_UNSUPPORTED') && pattern.test(e.message));
  const missing = new Map(sd);
  missing.delete('model.1.sub.0.RDB2.conv3.0.bias');
  refuse(missing, /missing tensor "model\.1\.sub\.0\.RDB2\.conv3\.0\.bias"/);
  const wrong = new Map(sd);
  wrong.set('model.3.weight', float32([32, 8, 3, 3]));
  refuse(wrong, /"model\.3\.weight" is \[32,8,3,3\], expected \[8, 8, 3, 3\]/);
  const unshuffle = new Map(sd);
  unshuffle.set('model.0.weight', float32([8, 12, 3, 3]));
  refuse(unshuffle, /12 input channels/);
  refuse(new Map([['first_stage_model.encoder.conv_in.weight', float32([1])]]), /none of the ESRGAN key layouts/);
  const extra = new Map(sd);
  extra.set('model.1.sub.0.RDB1.conv6.0.weight', float32([1]));
  refuse(extra, /unexpected tensor "model\.1\.sub\.0\.RDB1\.conv6\.0\.weight"/);
});

test('A1111 grid: split and recombined untouched gives the image back; the seam ramp is the 8-bit mask', () => {
  const img = randomImage(300, 210, 3);
  const grid = splitGrid(img, 192, 192, 8);
  assert.deepEqual(grid.rows.map((r) => r.y), [0, 18]);
  assert.deepEqual(grid.rows[0]!.tiles.map((t) => t.x), [0, 108]);
  assert.deepEqual(combineGrid(grid).data, img.data);
  // A black tile over a white one: across the overlap the value falls as 255 - trunc(i * 255 / 8) blends it.
  const white: RasterImage = { width: 16, height: 4, channels: 3, data: new Uint8Array(16 * 4 * 3).fill(255) };
  const black: RasterImage = { width: 16, height: 4, channels: 3, data: new Uint8Array(16 * 4 * 3) };
  const out = combineGrid({ rows: [{ y: 0, height: 4, tiles: [{ x: 0, width: 16, image: white }, { x: 8, width: 16, image: black }] }], tileWidth: 16, tileHeight: 4, imageWidth: 24, imageHeight: 4, overlap: 8 });
  const row = Array.from({ length: 24 }, (_, x) => out.data[x * 3]!);
  assert.deepEqual(row.slice(0, 8), new Array(8).fill(255));
  assert.deepEqual(row.slice(8, 16), [255, 224, 192, 160, 128, 96, 64, 32]);
  assert.deepEqual(row.slice(16), new Array(8).fill(0));
});

test('an RRDBNet in ESRGAN layout upscales 4x; tiled (192/8) and untiled agree away from seams and stay within the tiles at them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rrdb-'));
  try {
    const path = await writeModel(dir, 'TinyESRGAN.pth', esrganStateDict(ARCH));
    const model = await loadModelUpscaler(path);
    assert.equal(model.name, 'TinyESRGAN');
    assert.equal(model.config.scale, 4);
    assert.equal(await loadModelUpscaler(path), model, 'loaded once per file');
    const img = randomImage(200, 200, 7);
    const whole = await upscaleWithModel(model, img, { tile: 0, overlap: 0 });
    const tiled = await upscaleWithModel(model, img);
    assert.equal(whole.width, 800);
    assert.equal(whole.height, 800);
    assert.equal(tiled.width, 800);
    // The output is not constant: random weights still map the image to something varied.
    assert.ok(new Set(whole.data).size > 50);

    // Every tile upscaled alone, to know which values each output pixel could come from.
    const grid = splitGrid(img, 192, 192, 8);
    const outs: Array<{ x: number; y: number; image: RasterImage }> = [];
    for (const row of grid.rows) for (const t of row.tiles) outs.push({ x: t.x * 4, y: row.y * 4, image: await model.run(t.image) });
    const xs = [...new Set(outs.map((o) => o.x))];
    const ys = [...new Set(outs.map((o) => o.y))];
    // The net sees about 19 low-res pixels around each output pixel (17 3x3 convs at 1x, then the upsampling
    // convs); a pixel farther than 20 from every tile edge inside the image is computed from real pixels only.
    const margin = 20 * 4;
    const nearSeam = (v: number, starts: number[], size: number, length: number): boolean =>
      starts.some((s) => (s > 0 && Math.abs(v - s) < margin + 32) || (s + size < length && Math.abs(v - (s + size)) < margin));
    let far = 0;
    let farMax = 0;
    let seamMax = 0;
    let outside = 0;
    for (let y = 0; y < 800; y++) {
      for (let x = 0; x < 800; x++) {
        for (let c = 0; c < 3; c++) {
          const i = (y * 800 + x) * 3 + c;
          const d = Math.abs(tiled.data[i]! - whole.data[i]!);
          if (!nearSeam(x, xs, 768, 800) && !nearSeam(y, ys, 768, 800)) {
            far++;
            farMax = Math.max(farMax, d);
          } else seamMax = Math.max(seamMax, d);
          let lo = 255;
          let hi = 0;
          for (const o of outs) {
            if (x < o.x || y < o.y || x >= o.x + 768 || y >= o.y + 768) continue;
            const v = o.image.data[((y - o.y) * 768 + x - o.x) * 3 + c]!;
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
          }
          if (tiled.data[i]! < lo - 1 || tiled.data[i]! > hi + 1) outside++;
        }
      }
    }
    assert.ok(far > 100_000, `${far} values away from seams`);
    assert.ok(farMax <= 1, `away from seams tiled and untiled differ by ${farMax}`);
    assert.equal(outside, 0, 'every tiled value lies within the values of the tiles covering it');
    assert.ok(seamMax > 0, 'the seams do see the tile edges (the test looks where it should)');

    // The same weights under Real-ESRGAN's names in a params_ema wrapper, and as safetensors, give the same image.
    const realSd = renamed(esrganStateDict(ARCH), toRealEsrgan);
    const ema = new PyOrderedDict();
    for (const [k, t] of realSd) ema.set(k, torchTensor(t));
    const realPath = join(dir, 'RealTiny.pth');
    await writeFile(realPath, writeTorchFile(new PyDict([['params_ema', ema]]), { archiveName: 'RealTiny' }));
    const stPath = join(dir, 'StTiny.safetensors');
    await writeFile(stPath, writeSafetensors(esrganStateDict(ARCH)));
    const small = randomImage(40, 32, 9);
    const ref = (await upscaleWithModel(model, small, { tile: 0, overlap: 0 })).data;
    for (const p of [realPath, stPath]) {
      const m: ModelUpscaler = await loadModelUpscaler(p);
      assert.deepEqual((await upscaleWithModel(m, small, { tile: 0, overlap: 0 })).data, ref, p);
      await m.release();
    }

    // An upload's temporary file has no extension: the format is given.
    const bare = join(dir, 'upload-tmp');
    await writeFile(bare, writeSafetensors(esrganStateDict(ARCH)));
    assert.deepEqual(rrdbWeightsFrom(await readUpscalerStateDict(bare, '.safetensors'), bare).config, model.config);
    await assert.rejects(readUpscalerStateDict(bare), (e: unknown) => isDarkroomError(e, 'UPSCALER_UNSUPPORTED'));

    // Hires-fix sizing: 4x model output resized (Lanczos) to the requested size.
    const resized = await resizeWithUpscaler(model, small, 60, 48);
    assert.deepEqual([resized.width, resized.height], [60, 48]);
    await model.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
