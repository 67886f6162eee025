/**
 * Init images in the formats A1111 reads (real HTTP, Redis, storage and a worker process): a JPEG and a WebP
 * init image render through /v1/img2img on the demo model to the same pixels as a PNG of what the same decoder
 * (libvips, the worker's) reads from them; a mask sent as a WebP with alpha works as its PNG does.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodePng, encodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import { startFarm, waitFor, type Farm } from './support/farm.js';

const KEY = 'formats-key-0123456789';
const W = 64;
const H = 64;

function pattern(): Buffer {
  const data = Buffer.alloc(W * H * 3);
  for (let i = 0; i < W * H; i++) {
    const x = i % W;
    const y = Math.floor(i / W);
    data.set([(x * 4) & 255, (y * 4) & 255, ((x ^ y) * 8) & 255], i * 3);
  }
  return data;
}

/** What libvips reads from `file`, as a PNG of the same pixels and channels. */
async function asPng(file: Buffer): Promise<Buffer> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  return Buffer.from(encodePng({ width: info.width, height: info.height, channels: info.channels as 3 | 4, data: new Uint8Array(data) }));
}

describe('JPEG and WebP init images through the farm', () => {
  let farm: Farm;

  before(async () => {
    farm = await startFarm({ workers: 1, env: { API_KEYS: `dana:${KEY}` } });
  });

  after(async () => {
    await farm?.stop();
  });

  async function render(init: Buffer, mask?: Buffer): Promise<RasterImage> {
    const body = {
      prompt: 'a red door', steps: 3, seed: 5, width: W, height: H, sampler_name: 'Euler', denoising_strength: 0.6,
      init_images: [init.toString('base64')], ...(mask ? { mask: mask.toString('base64'), mask_blur: 2 } : {}),
    };
    const sub = await farm.request('POST', '/v1/img2img', { key: KEY, body });
    assert.ok(sub.status < 300, JSON.stringify(sub.json));
    const id = (sub.json as { id: string }).id;
    const job = await waitFor('render', async () => {
      const v = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY })).json as { state: string; error: unknown; outputs: { url: string }[] };
      assert.notEqual(v.state, 'failed', JSON.stringify(v.error));
      return v.state === 'completed' ? v : null;
    }, 120_000, 200);
    const url = job.outputs[0]!.url;
    const res = await fetch(url.startsWith('http') ? url : `${farm.url}${url}`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(res.status, 200);
    return decodePng(new Uint8Array(await res.arrayBuffer()));
  }

  test('a JPEG and a WebP init image give the image their decoded pixels give as a PNG', async () => {
    const raw = sharp(pattern(), { raw: { width: W, height: H, channels: 3 } });
    const jpeg = await raw.clone().jpeg({ quality: 80 }).toBuffer();
    const webp = await raw.clone().webp({ quality: 70 }).toBuffer();
    for (const [what, file] of [['JPEG', jpeg], ['WebP', webp]] as const) {
      const png = await asPng(file);
      const [fromFile, fromPng] = [await render(file), await render(png)];
      assert.deepEqual([fromFile.width, fromFile.height], [W, H], what);
      assert.ok(Buffer.from(fromFile.data).equals(Buffer.from(fromPng.data)), `${what}: the render differs from its PNG's`);
    }
    // The lossy decode is what the render saw: the PNG of the original pattern renders differently.
    const original = Buffer.from(encodePng({ width: W, height: H, channels: 3, data: new Uint8Array(pattern()) }));
    assert.ok(!Buffer.from((await render(original)).data).equals(Buffer.from((await render(jpeg)).data)));
  });

  test('a WebP mask with alpha masks as the same RGBA PNG does', async () => {
    const init = Buffer.from(encodePng({ width: W, height: H, channels: 3, data: new Uint8Array(pattern()) }));
    const rgba = Buffer.alloc(W * H * 4);
    for (let i = 0; i < W * H; i++) rgba[i * 4 + 3] = (i % W) >= 16 && (i % W) < 48 && Math.floor(i / W) >= 16 && Math.floor(i / W) < 48 ? 255 : 0;
    const webpMask = await sharp(rgba, { raw: { width: W, height: H, channels: 4 } }).webp({ lossless: true }).toBuffer();
    const a = await render(init, webpMask);
    const b = await render(init, await asPng(webpMask));
    assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)));
    assert.ok(!Buffer.from(a.data).equals(Buffer.from((await render(init)).data)), 'the mask changed nothing');
  });
});
