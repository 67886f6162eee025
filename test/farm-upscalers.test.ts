/**
 * Upscaler models on the farm: uploads checked by the engine's RRDBNet reader, listed per tenant on `/v1/upscalers`,
 * A1111's `/sdapi/v1/upscalers` and `/sdapi/v1/realesrgan-models` (with MODELS_DIR/ESRGAN and MODELS_DIR/RealESRGAN),
 * named by `hr_upscaler` in `/sdapi/v1/txt2img` renders that a worker process fetches by content hash and hands to
 * the engine (compared with the engine run here on the same file), and A1111's extras routes run on a worker.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePng, encodePng, readPngText } from '@darkroom/core/formats/png.js';
import { postprocessUpscale, type PostprocessUpscaleParams } from '@darkroom/core/pipeline/postprocess.js';
import { loadModelUpscaler } from '@darkroom/core/pipeline/upscalers.js';
import { writeSafetensors } from '@darkroom/core/formats/safetensors.js';
import { Engine } from '@darkroom/core/pipeline/engine.js';
import { ARCH, esrganStateDict, renamed, toRealEsrgan, writeModel } from '../packages/core/test/support/rrdbnet.js';
import { Queue } from 'bullmq';
import { startFarm, waitFor, type Farm } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';
const OCTETS = { 'content-type': 'application/octet-stream' };
const HIRES = {
  prompt: 'a castle', width: 64, height: 64, steps: 2, seed: 4242, sampler_name: 'Euler', cfg_scale: 7,
  enable_hr: true, hr_scale: 2, denoising_strength: 0.5,
};

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

interface UpscalerItem {
  name: string;
  model_name: string | null;
  model_path: string | null;
  model_url: string | null;
  scale: number;
}

describe('upscalers on the farm (real HTTP, Redis, s3rver, worker process)', () => {
  let s3: TestS3;
  let farm: Farm;
  let dir: string;
  /** The tiny ESRGAN file (old key layout, x4) as a .pth, and the same weights under Real-ESRGAN's names. */
  let esrganPath: string;
  let esrganBytes: Uint8Array;
  let realBytes: Uint8Array;

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({ storageUrl: s3.storageUrl, workers: 1, env: { ...s3.env, API_KEYS: `alice:${KEY_A},bob:${KEY_B}` } });
    dir = await mkdtemp(join(tmpdir(), 'darkroom-farm-upscalers-'));
    const sd = esrganStateDict(ARCH, 11);
    esrganPath = await writeModel(dir, '4x_Tiny.pth', sd);
    esrganBytes = new Uint8Array(await readFile(esrganPath));
    realBytes = writeSafetensors(renamed(sd, toRealEsrgan));
  });

  after(async () => {
    await farm?.stop();
    await s3?.close();
  });

  const put = (path: string, body: Uint8Array, key = KEY_A) => farm.request('PUT', path, { key, body, headers: OCTETS });
  const txt2img = async (body: Record<string, unknown>, key = KEY_A): Promise<{ pixels: Uint8Array; width: number; infotext: string }> => {
    const r = await farm.request('POST', '/sdapi/v1/txt2img', { key, body });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 400));
    const j = r.json as { images: string[]; info: string };
    const info = JSON.parse(j.info) as { infotexts: string[] };
    assert.equal(j.images.length, 1, JSON.stringify(r.json).slice(0, 600));
    const img = decodePng(new Uint8Array(Buffer.from(j.images[0]!, 'base64')));
    return { pixels: img.data, width: img.width, infotext: info.infotexts[0]! };
  };

  test('uploads are read as RRDBNets: a file the engine would refuse is refused with its code; listed per tenant in A1111\'s shapes', async () => {
    const up = await put('/v1/upscalers/4x_Tiny.pth', esrganBytes);
    assert.equal(up.status, 201, JSON.stringify(up.json));
    assert.equal((await put('/v1/upscalers/Real_Tiny.safetensors', realBytes)).status, 201);
    // A state dict missing one of its convs, and bytes that are no model at all.
    const sd = esrganStateDict(ARCH, 11);
    sd.delete('model.1.sub.0.RDB2.conv3.0.weight');
    const broken = await put('/v1/upscalers/broken.safetensors', writeSafetensors(sd));
    assert.equal(broken.status, 422, JSON.stringify(broken.json));
    const err = (broken.json as { error: { code: string; message: string } }).error;
    assert.equal(err.code, 'UPSCALER_UNSUPPORTED');
    assert.match(err.message, /broken\.safetensors/);
    assert.doesNotMatch(JSON.stringify(broken.json), /\/tmp\//, 'no server paths in the refusal');
    assert.equal((await put('/v1/upscalers/junk.pth', new Uint8Array([1, 2, 3, 4, 5]))).status, 422);
    assert.equal((await put('/v1/upscalers/4x_Tiny.bin', esrganBytes)).status, 400, 'only .pth, .pt and .safetensors');

    const list = (await farm.request('GET', '/v1/upscalers', { key: KEY_A })).json as { items: { name: string }[] };
    assert.deepEqual(list.items.map((i) => i.name), ['4x_Tiny', 'Real_Tiny']);
    const ups = (await farm.request('GET', '/sdapi/v1/upscalers', { key: KEY_A })).json as UpscalerItem[];
    assert.deepEqual(ups.map((u) => u.name), ['None', 'Lanczos', 'Nearest', '4x_Tiny', 'Real_Tiny']);
    assert.deepEqual(ups[3], { name: '4x_Tiny', model_name: 'ESRGAN_4x', model_path: '4x_Tiny.pth', model_url: null, scale: 4 });
    assert.deepEqual(ups[0], { name: 'None', model_name: null, model_path: null, model_url: null, scale: 4 });
    const real = (await farm.request('GET', '/sdapi/v1/realesrgan-models', { key: KEY_A })).json;
    assert.deepEqual(real, [{ name: 'Real_Tiny', path: 'Real_Tiny.safetensors', scale: 4 }]);
    const bob = (await farm.request('GET', '/sdapi/v1/upscalers', { key: KEY_B })).json as UpscalerItem[];
    assert.deepEqual(bob.map((u) => u.name), ['None', 'Lanczos', 'Nearest'], 'another tenant\'s uploads are not listed');
  });

  test('hr_upscaler naming an upload renders on a worker as the engine does with that file; unknown names are refused by name', async (t) => {
    assert.equal((await put('/v1/upscalers/4x_Tiny.pth', esrganBytes)).status, 201);
    const farmed = await txt2img({ ...HIRES, hr_upscaler: '4x_Tiny' });
    assert.equal(farmed.width, 128);
    assert.match(farmed.infotext, /Hires upscaler: 4x_Tiny/);
    const engine = new Engine({ cacheDir: join(farm.env.CACHE_DIR!, 'direct-graphs') });
    try {
      const direct = await engine.txt2img({ ...HIRES, hr_upscaler: '4x_Tiny' }, { upscalers: [esrganPath] });
      const pixels = decodePng(direct.images[0]!).data;
      const diff = maxPixelDiff(farmed.pixels, pixels);
      t.diagnostic(`hires fix with 4x_Tiny: farm vs engine max pixel difference ${diff}/255`);
      assert.ok(diff <= 1, `the worker's hires render and the engine's with the same file differ by ${diff}/255`);
      const lanczos = decodePng((await engine.txt2img({ ...HIRES, hr_upscaler: 'Lanczos' })).images[0]!).data;
      assert.ok(maxPixelDiff(lanczos, pixels) > 4, 'the model, not Lanczos, upscaled the first pass');
    } finally {
      await engine.close();
    }

    // A1111 fails a job whose hr_upscaler nothing has; the farm refuses it at submission, naming the field.
    const unknown = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_A, body: { ...HIRES, hr_upscaler: '4x_Nothing' } });
    assert.equal(unknown.status, 400, JSON.stringify(unknown.json));
    assert.equal((unknown.json as { error: { field: string } }).error.field, 'hr_upscaler');
    assert.match((unknown.json as { detail: string }).detail, /could not find upscaler named 4x_Nothing/);
    const bob = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_B, body: { ...HIRES, hr_upscaler: '4x_Tiny' } });
    assert.equal(bob.status, 400, 'another tenant cannot name alice\'s upload');
    // Hires fix off: A1111 never looks at the name.
    const off = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_B, body: { ...HIRES, enable_hr: false, hr_upscaler: '4x_Nothing' } });
    assert.equal(off.status, 200, JSON.stringify(off.json).slice(0, 300));

    // Deleted, the name is gone from the listing and refused again.
    assert.equal((await farm.request('DELETE', '/v1/upscalers/4x_Tiny', { key: KEY_A })).status, 204);
    const ups = (await farm.request('GET', '/sdapi/v1/upscalers', { key: KEY_A })).json as UpscalerItem[];
    assert.ok(!ups.some((u) => u.name === '4x_Tiny'));
    assert.equal((await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_A, body: { ...HIRES, hr_upscaler: '4x_Tiny' } })).status, 400);
    assert.equal((await put('/v1/upscalers/4x_Tiny.pth', esrganBytes)).status, 201);
  });

  test('MODELS_DIR/ESRGAN files and the RealESRGAN folder\'s known files are every tenant\'s, under A1111\'s names', async () => {
    const models = farm.env.MODELS_DIR!;
    await mkdir(join(models, 'ESRGAN'), { recursive: true });
    await mkdir(join(models, 'RealESRGAN'), { recursive: true });
    await writeFile(join(models, 'ESRGAN', 'Shared_4x.pth'), esrganBytes);
    await writeModel(join(models, 'RealESRGAN'), 'RealESRGAN_x4plus.pth', renamed(esrganStateDict(ARCH, 11), toRealEsrgan));
    // A1111 lists a RealESRGAN folder file only under a name it knows.
    await writeFile(join(models, 'RealESRGAN', 'something_else.pth'), esrganBytes);

    const ups = (await farm.request('GET', '/sdapi/v1/upscalers', { key: KEY_B })).json as UpscalerItem[];
    assert.deepEqual(ups.slice(3), [
      { name: 'Shared_4x', model_name: 'ESRGAN_4x', model_path: 'ESRGAN/Shared_4x.pth', model_url: null, scale: 4 },
      { name: 'R-ESRGAN 4x+', model_name: null, model_path: 'RealESRGAN/RealESRGAN_x4plus.pth', model_url: null, scale: 4 },
    ]);
    assert.deepEqual((await farm.request('GET', '/sdapi/v1/realesrgan-models', { key: KEY_B })).json, [
      { name: 'R-ESRGAN 4x+', path: 'RealESRGAN/RealESRGAN_x4plus.pth', scale: 4 },
    ]);
    // The same weights under three names and two layouts: the same image.
    const shared = await txt2img({ ...HIRES, hr_upscaler: 'Shared_4x' }, KEY_B);
    const real = await txt2img({ ...HIRES, hr_upscaler: 'R-ESRGAN 4x+' }, KEY_B);
    const upload = await txt2img({ ...HIRES, hr_upscaler: '4x_Tiny' });
    assert.equal(maxPixelDiff(shared.pixels, upload.pixels), 0);
    assert.equal(maxPixelDiff(real.pixels, upload.pixels), 0);
    assert.match(real.infotext, /Hires upscaler: R-ESRGAN 4x\+/);
  });
  const EXTRAS_DEFAULTS: PostprocessUpscaleParams = {
    resize_mode: 0, upscaling_resize: 2, upscaling_resize_w: 512, upscaling_resize_h: 512, upscaling_crop: true,
    upscaler_1: 'None', upscaler_2: 'None', extras_upscaler_2_visibility: 0,
  };
  /** What the engine makes of `png` with these fields, run here (4x_Tiny from its file). */
  const expected = async (png: Uint8Array, fields: Partial<PostprocessUpscaleParams>) => {
    const tiny = loadModelUpscaler(esrganPath);
    return (await postprocessUpscale(decodePng(png), { ...EXTRAS_DEFAULTS, ...fields }, (n) => (n === '4x_Tiny' ? tiny : undefined))).image;
  };

  test('extra-single-image and extra-batch-images upscale on a worker as the engine does, with A1111\'s html_info and postprocessing text', async (t) => {
    assert.equal((await put('/v1/upscalers/4x_Tiny.pth', esrganBytes)).status, 201);
    const gen = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_A, body: { prompt: 'a castle', width: 64, height: 48, steps: 2, seed: 9, sampler_name: 'Euler' } });
    assert.equal(gen.status, 200);
    const source = (gen.json as { images: string[] }).images[0]!;
    const sourcePng = new Uint8Array(Buffer.from(source, 'base64'));
    const sourceParameters = readPngText(sourcePng).parameters!;
    assert.ok(sourceParameters.startsWith('a castle'));

    const one = await farm.request('POST', '/sdapi/v1/extra-single-image', { key: KEY_A, body: { image: source, upscaler_1: '4x_Tiny', upscaling_resize: 2 } });
    assert.equal(one.status, 200, JSON.stringify(one.json).slice(0, 400));
    const j = one.json as { image: string; html_info: string };
    assert.deepEqual(Object.keys(j).sort(), ['html_info', 'image']);
    assert.equal(j.html_info, '<p>Postprocess upscale by: 2.0, Postprocess upscaler: 4x_Tiny</p>');
    const out = new Uint8Array(Buffer.from(j.image, 'base64'));
    const img = decodePng(out);
    assert.deepEqual([img.width, img.height], [128, 96]);
    const want = await expected(sourcePng, { upscaler_1: '4x_Tiny', upscaling_resize: 2 });
    const diff = maxPixelDiff(img.data, want.data);
    t.diagnostic(`extras with 4x_Tiny: farm vs engine max pixel difference ${diff}/255`);
    assert.ok(diff <= 1, `the worker's extras upscale and the engine's differ by ${diff}/255`);
    // The source's infotext is carried over; the upscale is recorded beside it, as png-info shows it.
    const text = readPngText(out);
    assert.equal(text.parameters, sourceParameters);
    assert.equal(text.postprocessing, 'Postprocess upscale by: 2.0, Postprocess upscaler: 4x_Tiny');
    const info = (await farm.request('POST', '/sdapi/v1/png-info', { key: KEY_A, body: { image: j.image } })).json as { info: string; items: Record<string, string> };
    assert.equal(info.info, sourceParameters);
    assert.equal(info.items.postprocessing, 'Postprocess upscale by: 2.0, Postprocess upscaler: 4x_Tiny');

    // To a size, cropped, with a second upscaler blended in.
    const fields = { resize_mode: 1 as const, upscaling_resize_w: 100, upscaling_resize_h: 60, upscaling_crop: true, upscaler_1: 'Lanczos', upscaler_2: '4x_Tiny', extras_upscaler_2_visibility: 0.3 };
    const batch = await farm.request('POST', '/sdapi/v1/extra-batch-images', {
      key: KEY_A, body: { ...fields, imageList: [{ data: source, name: 'a.png' }, { data: `data:image/png;base64,${source}`, name: 'b.png' }] },
    });
    assert.equal(batch.status, 200, JSON.stringify(batch.json).slice(0, 400));
    const b = batch.json as { images: string[]; html_info: string };
    assert.equal(b.images.length, 2);
    assert.equal(b.html_info, '<p>Postprocess upscale to: 100x60, Postprocess crop to: 100x60, Postprocess upscaler: Lanczos, Postprocess upscaler 2: 4x_Tiny</p>');
    const wantBlend = await expected(sourcePng, fields);
    for (const png of b.images) {
      const got = decodePng(new Uint8Array(Buffer.from(png, 'base64')));
      assert.deepEqual([got.width, got.height], [100, 60]);
      assert.ok(maxPixelDiff(got.data, wantBlend.data) <= 1);
    }

    // upscaler_1 None: the image as it was, nothing recorded.
    const none = await farm.request('POST', '/sdapi/v1/extra-single-image', { key: KEY_A, body: { image: source } });
    assert.equal(none.status, 200);
    assert.equal((none.json as { html_info: string }).html_info, '<p></p>');
    assert.equal(maxPixelDiff(decodePng(new Uint8Array(Buffer.from((none.json as { image: string }).image, 'base64'))).data, decodePng(sourcePng).data), 0);
  });

  test('extras refusals name the field: face restorers, latent modes, unknown upscalers, sizes past MAX_INPUT_PIXELS, A1111\'s validation', async () => {
    const img = Buffer.from(encodePng({ width: 16, height: 16, channels: 3, data: new Uint8Array(16 * 16 * 3).fill(100) })).toString('base64');
    const call = (body: Record<string, unknown>, key = KEY_A) => farm.request('POST', '/sdapi/v1/extra-single-image', { key, body: { image: img, ...body } });
    const field = (r: { json: unknown }) => (r.json as { error?: { field?: string } }).error?.field;
    const gfpgan = await call({ gfpgan_visibility: 0.5, upscaler_1: 'Lanczos' });
    assert.equal(gfpgan.status, 422);
    assert.equal(field(gfpgan), 'gfpgan_visibility');
    assert.equal(field(await call({ codeformer_visibility: 1 })), 'codeformer_visibility');
    const latent = await call({ upscaler_1: 'Latent' });
    assert.equal(latent.status, 400);
    assert.equal(field(latent), 'upscaler_1');
    assert.match((latent.json as { detail: string }).detail, /could not find upscaler named Latent/);
    assert.equal(field(await call({ upscaler_1: 'Lanczos', upscaler_2: 'nope' })), 'upscaler_2');
    assert.equal(field(await call({ upscaler_1: '4x_Tiny' }, KEY_B)), 'upscaler_1', 'another tenant\'s upload is not bob\'s');
    const huge = await call({ upscaler_1: 'Lanczos', upscaling_resize: 1000 });
    assert.equal(huge.status, 413);
    assert.equal(field(huge), 'upscaling_resize');
    const mode = await call({ resize_mode: 2 });
    assert.equal(mode.status, 422);
    assert.deepEqual((mode.json as { detail: Array<{ loc: unknown[] }> }).detail[0]!.loc, ['body', 'resize_mode']);
    assert.equal((await farm.request('POST', '/sdapi/v1/extra-batch-images', { key: KEY_A, body: {} })).status, 422, 'imageList is required');
    const empty = await farm.request('POST', '/sdapi/v1/extra-batch-images', { key: KEY_A, body: { imageList: [] } });
    assert.deepEqual(empty.json, { html_info: '<p></p>', images: [] });
  });
  test('an extras call that goes away before its job starts takes the job off the queue', async () => {
    const queue = new Queue('generate', { connection: farm.redis, prefix: farm.prefix });
    try {
      const extrasJobs = async () => (await queue.getJobs(['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'])).filter((j) => j?.name === 'extras');
      const before = new Set((await extrasJobs()).map((j) => j.id));
      // The one worker busy with a long render, so the extras job waits behind it.
      const busy = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { prompt: 'a long one', width: 64, height: 64, steps: 150, n_iter: 3, sampler_name: 'Euler' } });
      assert.equal(busy.status, 202, JSON.stringify(busy.json));
      const busyId = (busy.json as { id: string }).id;
      await waitFor('the render to start', async () => ((await farm.request('GET', `/v1/jobs/${busyId}`, { key: KEY_A })).json as { state: string }).state === 'running');
      const image = Buffer.from(encodePng({ width: 16, height: 16, channels: 3, data: new Uint8Array(16 * 16 * 3).fill(7) })).toString('base64');
      const ctrl = new AbortController();
      const call = fetch(`${farm.url}/sdapi/v1/extra-single-image`, {
        method: 'POST', headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' }, body: JSON.stringify({ image, upscaler_1: 'Lanczos' }), signal: ctrl.signal,
      }).catch(() => null);
      const queued = await waitFor('the extras job to be queued', async () => (await extrasJobs()).find((j) => !before.has(j.id)));
      assert.equal(await queued.getState(), 'prioritized');
      ctrl.abort();
      await call;
      await waitFor('the abandoned job to leave the queue', async () => !(await extrasJobs()).some((j) => j.id === queued.id), 15_000);
      assert.equal((await farm.request('DELETE', `/v1/jobs/${busyId}`, { key: KEY_A })).status < 300, true, 'the long render is cancelled');
    } finally {
      await queue.close();
    }
  });
});
