import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodePng, encodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import { affineTransform } from '@darkroom/core/pipeline/affine-transform.js';
import { ANIMATOR_DEFAULTS, animatorMove } from '@darkroom/core/scripts/index.js';
import { decodeAnimation } from '@darkroom/farm/animation.js';
import { startFarm, waitFor, type Farm } from './support/farm.js';
import { storedZip } from './support/zips.js';

/**
 * img2img video and the animator as flows, through real HTTP, Redis, a worker process and folder storage, on the
 * tiny demo model at 64x64: the video's frames fan out as independent img2img children, the animator's run as a
 * chain (each frame an img2img of the one before, moved). Each output is checked against a plain img2img of what it
 * should have been made from, pixel for pixel; the animations are read back by the decoder seed travel's test uses.
 */
const KEY = 'video-tenant-key-0123456789';
const BASE = { width: 64, height: 64, steps: 3, sampler_name: 'Euler', prompt: 'a harbour at dusk', seed: 10 };
/** MAX_INPUT_PIXELS for this farm: the 64x64 frames pass, a 300x300 one does not. */
const MAX_PIXELS = 256 * 256;

interface OutputJson { index: number; kind: string; content_type: string; child: number | null; url: string; seed: number }
interface FlowJson { id: string; state: string; children: unknown[]; outputs: OutputJson[]; error: unknown }
interface ErrorJson { error: { code: string; field?: string; file?: string; message: string } }

/** A 64x64 RGB frame: a diagonal gradient whose colour depends on k, so frames differ everywhere. */
function frameRaster(k: number, size = 64): RasterImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 3;
      data[o] = (x * 4 + k * 60) & 255;
      data[o + 1] = (y * 4) & 255;
      data[o + 2] = (k * 90 + x + y) & 255;
    }
  }
  return { width: size, height: size, channels: 3, data };
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** An animated GIF of the frames (1x1 frames are enough for limits), each shown `delays[i]` ms. */
async function gif(frames: readonly RasterImage[], delays: readonly number[]): Promise<Uint8Array> {
  const { width, height } = frames[0]!;
  const stacked = Buffer.concat(frames.map((f) => Buffer.from(f.data)));
  const out = await sharp(stacked, { raw: { width, height: height * frames.length, channels: 3, pageHeight: height } })
    .gif({ delay: [...delays], loop: 0 }).toBuffer();
  return new Uint8Array(out);
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(res.status, 200, url);
  return new Uint8Array(await res.arrayBuffer());
}

describe('img2img video and the animator as flows', () => {
  let farm: Farm;

  before(async () => {
    farm = await startFarm({ workers: 1, env: { API_KEYS: `video:${KEY}`, MAX_INPUT_PIXELS: String(MAX_PIXELS) } });
  });

  after(async () => {
    await farm?.stop();
  });

  const flow = async (body: object): Promise<FlowJson> => {
    const sub = await farm.request('POST', '/v1/flows', { key: KEY, body });
    assert.equal(sub.status, 202, JSON.stringify(sub.json).slice(0, 400));
    const { id } = sub.json as { id: string };
    const done = await waitFor('the flow to end', async () => {
      const v = (await farm.request('GET', `/v1/flows/${id}`, { key: KEY })).json as FlowJson;
      return ['completed', 'failed', 'cancelled'].includes(v.state) ? v : null;
    }, 240_000, 200);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    return done;
  };

  /** A plain /sdapi/v1/img2img of `init` with the base's parameters and `extra`. */
  const plainImg2Img = async (init: Uint8Array, extra: object): Promise<RasterImage> => {
    const r = await farm.request('POST', '/sdapi/v1/img2img', { key: KEY, body: { ...BASE, init_images: [b64(init)], ...extra } });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 300));
    return decodePng(new Uint8Array(Buffer.from((r.json as { images: string[] }).images[0]!, 'base64')));
  };

  const refused = async (body: object): Promise<{ status: number; error: ErrorJson['error'] }> => {
    const r = await farm.request('POST', '/v1/flows', { key: KEY, body });
    return { status: r.status, error: (r.json as ErrorJson).error };
  };

  test('a zip of frames: each frame an img2img child with a travelling seed; frame k is a plain img2img of input frame k', async () => {
    const inputs = [0, 1, 2].map((k) => encodePng(frameRaster(k)));
    // Out of name order in the archive: frames are taken in natural order (frame-2 before frame-10).
    const zip = storedZip([{ name: 'clip/frame-10.png', data: inputs[2]! }, { name: 'clip/frame-1.png', data: inputs[0]! }, { name: 'clip/frame-2.png', data: inputs[1]! }]);
    const done = await flow({
      script: { name: 'img2img video', options: { input: b64(zip), seed: 'travel', fps: 5 } },
      base: { ...BASE, denoising_strength: 0.5 }, animation: { formats: ['webp', 'gif'] },
    });
    assert.equal(done.children.length, 3);
    assert.deepEqual(done.outputs.map((o) => o.kind), ['image', 'image', 'image', 'animation', 'animation']);
    assert.deepEqual(done.outputs.slice(0, 3).map((o) => o.seed), [10, 11, 12]);
    const frames = await Promise.all(done.outputs.slice(0, 3).map(async (o) => decodePng(await fetchBytes(o.url))));
    for (const k of [0, 2]) {
      assert.deepEqual(frames[k]!.data, (await plainImg2Img(inputs[k]!, { seed: 10 + k, denoising_strength: 0.5 })).data, `frame ${k} is the plain img2img of input frame ${k}`);
    }
    const webp = await decodeAnimation(await fetchBytes(done.outputs[3]!.url));
    assert.equal(webp.frames.length, 3);
    assert.deepEqual(webp.delay, [200, 200, 200]);
    frames.forEach((f, p) => assert.deepEqual(webp.frames[p]!.data, f.data, `WebP page ${p} is frame ${p} (lossless)`));
    const gifOut = await decodeAnimation(await fetchBytes(done.outputs[4]!.url));
    assert.equal(gifOut.frames.length, 3);
  });

  test('an animated GIF: its frames with their own timing, the seed fixed', async () => {
    const input = await gif([0, 1, 2].map((k) => frameRaster(k)), [100, 300, 100]);
    const done = await flow({ script: { name: 'Img2Img Video', options: { input: b64(input) } }, base: { ...BASE, denoising_strength: 0.6 } });
    assert.deepEqual(done.outputs.map((o) => o.kind), ['image', 'image', 'image', 'animation']);
    assert.deepEqual(done.outputs.slice(0, 3).map((o) => o.seed), [10, 10, 10]);
    const webp = await decodeAnimation(await fetchBytes(done.outputs[3]!.url));
    assert.equal(webp.frames.length, 3);
    assert.deepEqual(webp.delay, [100, 300, 100], 'the input GIF\'s frame timing');
  });

  test('the animator: a chain of frames; frame 2 is a plain img2img of frame 1 moved by frame 2\'s keyed values', async () => {
    const options = { frames: 3, prompts: '0: a forest\n2: a desert', zoom: '0: 1, 2: 1.2', rotate: 5, translate_x: 2, seed: 'travel', denoising_strength: 0.6, fps: 4 };
    const done = await flow({ script: { name: 'animator', options }, base: BASE, animation: { formats: ['webp'] } });
    assert.equal(done.children.length, 3);
    assert.deepEqual(done.outputs.map((o) => o.kind), ['image', 'image', 'image', 'animation']);
    assert.deepEqual(done.outputs.slice(0, 3).map((o) => o.seed), [10, 11, 12]);
    const pngs = await Promise.all(done.outputs.slice(0, 3).map((o) => fetchBytes(o.url)));
    const move = animatorMove({ ...ANIMATOR_DEFAULTS, zoom: options.zoom, rotate: options.rotate, translateX: options.translate_x }, 2);
    assert.deepEqual(move, { zoom: 1.2, rotate: 5, translateX: 2, translateY: 0 });
    const moved = encodePng(affineTransform(decodePng(pngs[1]!), move));
    const plain = await plainImg2Img(moved, { prompt: 'a desert', seed: 12, denoising_strength: 0.6 });
    assert.deepEqual(decodePng(pngs[2]!).data, plain.data, 'frame 2 is the img2img of frame 1 moved');
    // Without the move it would be another image: the worker did apply it.
    const unmoved = await plainImg2Img(pngs[1]!, { prompt: 'a desert', seed: 12, denoising_strength: 0.6 });
    assert.notDeepEqual(decodePng(pngs[2]!).data, unmoved.data);
    const webp = await decodeAnimation(await fetchBytes(done.outputs[3]!.url));
    assert.equal(webp.frames.length, 3);
    assert.deepEqual(webp.delay, [250, 250, 250]);
    // Every frame reports flow progress, the nested ones too, counting the frames done by then.
    const progress = await waitFor('a progress event per frame', async () => {
      const log = await farm.redis.xrange(`${farm.prefix}:darkroom:events:${done.id}`, '-', '+');
      const events = log.filter(([, f]) => f[1] === 'progress').map(([, f]) => JSON.parse(f[f.indexOf('data') + 1]!) as { child: number; completed: number });
      return events.length === 3 ? events : null;
    }, 30_000);
    assert.deepEqual(progress.map((e) => [e.child, e.completed]).sort(), [[0, 1], [1, 2], [2, 3]]);
  });

  test('hostile or wrong inputs are refused with 4xx naming the field', async () => {
    const tiny = encodePng(frameRaster(0, 2));
    const script = (input: Uint8Array, extra: object = {}) => ({ script: { name: 'img2img video', options: { input: b64(input), ...extra } }, base: BASE });

    const manyZip = storedZip(Array.from({ length: 257 }, (_, i) => ({ name: `f${i}.png`, data: tiny })));
    const zipCount = await refused(script(manyZip));
    assert.deepEqual([zipCount.status, zipCount.error.code, zipCount.error.field], [413, 'VIDEO_TOO_MANY_FRAMES', 'script.options.input']);

    const manyGif = await gif(Array.from({ length: 257 }, (_, k) => frameRaster(k % 3, 2)), new Array<number>(257).fill(100));
    const gifCount = await refused(script(manyGif));
    assert.deepEqual([gifCount.status, gifCount.error.code, gifCount.error.field], [413, 'VIDEO_TOO_MANY_FRAMES', 'script.options.input']);

    const big = encodePng(frameRaster(0, 300));
    const bigZip = await refused(script(storedZip([{ name: 'a.png', data: tiny }, { name: 'b.png', data: big }])));
    assert.deepEqual([bigZip.status, bigZip.error.code, bigZip.error.field, bigZip.error.file], [413, 'IMAGE_TOO_LARGE', 'script.options.input', 'b.png']);

    // A GIF whose screen claims 30000x30000: refused from its header, before any decoder runs.
    const claims = await gif([frameRaster(0, 2)], [100]);
    const view = new DataView(claims.buffer, claims.byteOffset, claims.byteLength);
    view.setUint16(6, 30000, true);
    view.setUint16(8, 30000, true);
    const bigGif = await refused(script(claims));
    assert.deepEqual([bigGif.status, bigGif.error.code, bigGif.error.field], [413, 'IMAGE_TOO_LARGE', 'script.options.input']);

    const notVideo = await refused(script(tiny));
    assert.deepEqual([notVideo.status, notVideo.error.code, notVideo.error.field], [400, 'VIDEO_INVALID', 'script.options.input']);
    const textMember = await refused(script(storedZip([{ name: 'a.txt', data: new TextEncoder().encode('hello') }])));
    assert.deepEqual([textMember.status, textMember.error.code, textMember.error.file], [400, 'VIDEO_INVALID', 'a.txt']);
    const unknown = await refused(script(tiny, { speed: 2 }));
    assert.deepEqual([unknown.status, unknown.error.field], [400, 'script.options.speed']);
    const withInit = await refused({ ...script(tiny), base: { ...BASE, init_images: [b64(tiny)] } });
    assert.deepEqual([withInit.status, withInit.error.field], [400, 'base.init_images']);
    const args = await refused({ script: { name: 'img2img video', args: [1] }, base: BASE });
    assert.deepEqual([args.status, args.error.field], [400, 'script.args']);

    const animator = (options: object) => ({ script: { name: 'animator', options }, base: BASE });
    const badZoom = await refused(animator({ frames: 3, zoom: '0: 1, 0: 2' }));
    assert.deepEqual([badZoom.status, badZoom.error.code, badZoom.error.field], [400, 'SCRIPT_ARGS_INVALID', 'script.options.zoom']);
    const badPrompt = await refused(animator({ frames: 3, prompts: 'no frame number' }));
    assert.deepEqual([badPrompt.status, badPrompt.error.field], [400, 'script.options.prompts']);
    const tooMany = await refused(animator({ frames: 1000 }));
    assert.deepEqual([tooMany.status, tooMany.error.field], [400, 'script.options.frames']);
    const noOptions = await refused({ script: { name: 'animator' }, base: BASE });
    assert.deepEqual([noOptions.status, noOptions.error.field], [400, 'script.options']);
    const a1111 = await refused({ script: { name: 'prompt matrix', options: {} }, base: BASE });
    assert.deepEqual([a1111.status, a1111.error.field], [400, 'script.options']);
  });
});
