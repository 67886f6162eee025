import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import { startFarm, waitFor, type Farm } from './support/farm.js';

/**
 * Seed travel as a flow: its frames fan out as generation jobs, and the parent assembles the travel's animation
 * (animated WebP, GIF when asked) from them. Real HTTP, Redis, a worker process and folder storage (so the
 * animation is served by the API's own route); the tiny demo model at 64x64. Also the scripts' listing and
 * selection per tab, which seed travel and txt2img2img are the examples of.
 */
const KEY = 'travel-tenant-key-0123456789';
const BASE = { width: 64, height: 64, steps: 3, sampler_name: 'Euler', prompt: 'a lighthouse', seed: 1 };
/** Seed 1 to 2 to 3, two frames per pair, 10 fps, one lead in/out frame (the rest the script's defaults). */
const TRAVEL_ARGS = [false, 4, '2, 3', 2, 'Linear', 3, false, 10, true, false, false, 0, 1];
const FRAMES = 5;
/** Frames the animation shows: the travel's with the first and last once more (lead in/out). */
const SHOWN = FRAMES + 2;

interface OutputJson { index: number; kind: string; content_type: string; child: number | null; url: string; seed: number }
interface FlowJson { id: string; state: string; children: unknown[]; outputs: OutputJson[]; error: unknown }
interface InfoJson { infotexts: string[]; animations?: { content_type: string; frames: number; fps: number; data: string | null; url: string | null }[] }

async function fetchBytes(url: string, key: string): Promise<{ bytes: Uint8Array; type: string | null }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200, url);
  return { bytes: new Uint8Array(await res.arrayBuffer()), type: res.headers.get('content-type') };
}

/** Every page of an animated image as sharp reads it: page count and each page's RGB. */
async function pages(bytes: Uint8Array): Promise<{ count: number; width: number; frames: Uint8Array[] }> {
  const img = sharp(bytes, { pages: -1 });
  const meta = await img.metadata();
  const count = meta.pages ?? 1;
  const { data, info } = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const per = info.width * (info.height / count) * 3;
  return { count, width: info.width, frames: Array.from({ length: count }, (_, i) => new Uint8Array(data.subarray(i * per, (i + 1) * per))) };
}

describe('seed travel as a flow: frames over the workers, the animation assembled by the parent', () => {
  let farm: Farm;

  before(async () => {
    farm = await startFarm({ workers: 1, env: { API_KEYS: `travel:${KEY}` } });
  });

  after(async () => {
    await farm?.stop();
  });

  const plain = async (seed: number): Promise<RasterImage> => {
    const r = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY, body: { ...BASE, seed } });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 300));
    return decodePng(new Uint8Array(Buffer.from((r.json as { images: string[] }).images[0]!, 'base64')));
  };

  test('/v1/flows: the frames, then a WebP and a GIF of them; the ends are the seeds\' own renders', async () => {
    const sub = await farm.request('POST', '/v1/flows', {
      key: KEY, body: { script: { name: 'Seed travel', args: TRAVEL_ARGS }, base: BASE, animation: { formats: ['webp', 'gif'] } },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id } = sub.json as { id: string };
    const done = await waitFor('the travel to end', async () => {
      const v = (await farm.request('GET', `/v1/flows/${id}`, { key: KEY })).json as FlowJson;
      return ['completed', 'failed', 'cancelled'].includes(v.state) ? v : null;
    }, 180_000, 200);
    assert.equal(done.state, 'completed', JSON.stringify(done.error));
    assert.equal(done.children.length, FRAMES);
    assert.deepEqual(done.outputs.map((o) => o.kind), [...Array<string>(FRAMES).fill('image'), 'animation', 'animation']);
    assert.deepEqual(done.outputs.map((o) => o.content_type), [...Array<string>(FRAMES).fill('image/png'), 'image/webp', 'image/gif']);
    assert.deepEqual(done.outputs.slice(0, FRAMES).map((o) => o.seed), [1, 1, 2, 2, 3]);

    const frames = await Promise.all(done.outputs.slice(0, FRAMES).map(async (o) => decodePng((await fetchBytes(o.url, KEY)).bytes)));
    assert.deepEqual(frames[0]!.data, (await plain(1)).data, 'the first frame is seed 1\'s plain render');
    assert.deepEqual(frames[FRAMES - 1]!.data, (await plain(3)).data, 'the last frame is seed 3\'s plain render');
    assert.notDeepEqual(frames[1]!.data, frames[0]!.data, 'the frame halfway to seed 2 is another image');

    const webp = await fetchBytes(done.outputs[FRAMES]!.url, KEY);
    assert.equal(webp.type, 'image/webp');
    // libwebp (and libvips' GIF writer) store a frame equal to the one before as a longer showing of it: the lead
    // in/out frames are the first and last pages shown twice as long. Lossless WebP: each page is its frame.
    const w = await pages(webp.bytes);
    assert.equal(w.count, FRAMES, 'one page per frame');
    assert.equal(w.width, 64);
    frames.forEach((f, p) => assert.deepEqual(w.frames[p], f.data, `page ${p} is frame ${p}`));
    const delays = (await sharp(webp.bytes, { pages: -1 }).metadata()).delay ?? [];
    assert.deepEqual(delays, [200, 100, 100, 100, 200], `${SHOWN} frames at 10 fps`);

    const gif = await fetchBytes(done.outputs[FRAMES + 1]!.url, KEY);
    assert.equal(gif.type, 'image/gif');
    assert.equal((await pages(gif.bytes)).count, FRAMES);
    assert.deepEqual((await sharp(gif.bytes, { pages: -1 }).metadata()).delay, [200, 100, 100, 100, 200]);
  });

  test('/sdapi/v1/txt2img answers the frames as A1111 does, the WebP in the info', async () => {
    const r = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY, body: { ...BASE, script_name: 'seed travel', script_args: TRAVEL_ARGS } });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 300));
    const body = r.json as { images: string[]; info: string };
    assert.equal(body.images.length, FRAMES);
    const info = JSON.parse(body.info) as InfoJson;
    assert.equal(info.infotexts.length, FRAMES);
    assert.equal(info.animations?.length, 1);
    const anim = info.animations![0]!;
    assert.deepEqual({ ...anim, data: null }, { ...anim, content_type: 'image/webp', frames: SHOWN, fps: 10, data: null, url: null });
    const w = await pages(new Uint8Array(Buffer.from(anim.data!, 'base64')));
    assert.equal(w.count, FRAMES);
    body.images.forEach((b64, i) => assert.deepEqual(w.frames[i], decodePng(new Uint8Array(Buffer.from(b64, 'base64'))).data, `page ${i} is image ${i}`));
  });

  test('scripts are listed and selected per tab, as A1111 lists them: txt2img2img on txt2img only', async () => {
    const listed = (await farm.request('GET', '/sdapi/v1/scripts', { key: KEY })).json as { txt2img: string[]; img2img: string[] };
    assert.ok(listed.txt2img.includes('txt2img2img') && listed.txt2img.includes('seed travel'));
    assert.ok(!listed.img2img.includes('txt2img2img') && listed.img2img.includes('seed travel'));
    const infos = (await farm.request('GET', '/sdapi/v1/script-info', { key: KEY })).json as { name: string; is_img2img: boolean }[];
    assert.deepEqual(infos.filter((i) => i.name === 'txt2img2img').map((i) => i.is_img2img), [false]);
    assert.deepEqual(infos.filter((i) => i.name === 'seed travel').map((i) => i.is_img2img), [false, true]);
    const init = Buffer.from(await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer()).toString('base64');
    const img2img = await farm.request('POST', '/sdapi/v1/img2img', { key: KEY, body: { ...BASE, init_images: [init], script_name: 'txt2img2img', script_args: [] } });
    assert.equal(img2img.status, 422);
    assert.equal((img2img.json as { error: { field: string } }).error.field, 'script_name');
    const flow = await farm.request('POST', '/v1/flows', { key: KEY, body: { script: { name: 'txt2img2img' }, base: { ...BASE, init_images: [init] } } });
    assert.equal(flow.status, 400);
    assert.equal((flow.json as { error: { field: string } }).error.field, 'script.name');
  });

  test('an animation asked of a flow that makes none is refused naming the field', async () => {
    const children = await farm.request('POST', '/v1/flows', { key: KEY, body: { children: [BASE], animation: { formats: ['gif'] } } });
    assert.equal(children.status, 400);
    assert.equal((children.json as { error: { field: string } }).error.field, 'animation');
    const noVideo = TRAVEL_ARGS.map((a, i) => (i === 7 ? 0 : a));
    const still = await farm.request('POST', '/v1/flows', { key: KEY, body: { script: { name: 'seed travel', args: noVideo }, base: BASE, animation: { formats: ['webp'] } } });
    assert.equal(still.status, 400);
    assert.equal((still.json as { error: { field: string } }).error.field, 'animation');
    const twice = await farm.request('POST', '/v1/flows', { key: KEY, body: { script: { name: 'seed travel', args: TRAVEL_ARGS }, base: BASE, animation: { formats: ['gif', 'gif'] } } });
    assert.equal(twice.status, 400);
    assert.match((twice.json as { error: { field: string } }).error.field, /^animation\.formats/);
  });
});
