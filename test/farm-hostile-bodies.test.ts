import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { chunkBytes, encodePng } from '@darkroom/core/formats/png.js';
import { writeZip } from '@darkroom/core/formats/zip.js';
import { startFarm, waitFor, type Farm } from './support/farm.js';
import { deflatedZip } from './support/zips.js';

const KEY = 'carol-key-0123456789';

const b64png = (w: number, h: number): string => Buffer.from(encodePng({ width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3) })).toString('base64');

interface ErrorJson { error: { code: string; message: string; field?: string } }

/** `{"a":{"a":...}}` nested `depth` objects deep, as raw JSON text (JSON.stringify itself would overflow). */
function nested(depth: number): string {
  return '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);
}

/** A real PNG of `width`x`height` black pixels: the zeros deflate to a small file that inflates to gigabytes. */
function blackPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit gray
  const rows = Buffer.alloc((width + 1) * height);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunkBytes('IHDR', ihdr), chunkBytes('IDAT', deflateSync(rows, { level: 9 })), chunkBytes('IEND', Buffer.alloc(0)),
  ]);
}

/** A baseline JPEG's markers up to its frame header, declaring `width`x`height` (no scan data: never decoded). */
function jpegHeader(width: number, height: number): Buffer {
  const sof = Buffer.from([0xff, 0xc0, 0, 11, 8, height >> 8, height & 255, width >> 8, width & 255, 1, 1, 0x11, 0]);
  return Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]), sof, Buffer.from([0xff, 0xd9])]);
}

/** A WebP whose VP8X chunk declares a `width`x`height` canvas. */
function webpHeader(width: number, height: number): Buffer {
  const vp8x = Buffer.alloc(18);
  vp8x.write('VP8X', 0, 'latin1');
  vp8x.writeUInt32LE(10, 4);
  vp8x.writeUIntLE(width - 1, 12, 3);
  vp8x.writeUIntLE(height - 1, 15, 3);
  const riff = Buffer.alloc(12);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(4 + vp8x.length, 4);
  riff.write('WEBP', 8, 'latin1');
  return Buffer.concat([riff, vp8x]);
}

/**
 * Peak resident memory the corpus may cost. The API's bound is its idle size (about 170 MiB) plus room for one
 * request's buffers: a body is capped at its route's limit and nothing is inflated past its declared size. The
 * worker's bound is what it takes to render the small accepted jobs on the tiny model (about 600 MiB measured)
 * with room to spare; a bomb reaching the worker (a 8000x8000 init image decoded, a 512 MB zip inflated) would
 * cost gigabytes and fail it.
 */
const API_PEAK_BOUND_MIB = 450;
const WORKER_PEAK_BOUND_MIB = 1200;

function peakMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describe('hostile request corpus (API and one worker)', () => {
  let farm: Farm;

  before(async () => {
    farm = await startFarm({ workers: 1, env: { API_KEYS: `carol:${KEY}`, RATE_LIMIT_PER_MINUTE: '0' } });
  });

  after(async () => {
    await farm?.stop();
  });

  const post = (path: string, body: unknown) => farm.request('POST', path, { key: KEY, body });

  test('JSON nested 4500 deep is a 400 JSON_TOO_DEEP naming the field on /v1 and /sdapi/v1', async () => {
    const deep = nested(4500);
    for (const [path, field] of [
      ['/v1/txt2img', 'comments'], ['/sdapi/v1/txt2img', 'override_settings'], ['/sdapi/v1/txt2img', 'comments'],
      ['/sdapi/v1/options', 'samples_save'], ['/sdapi/v1/img2img', 'alwayson_scripts'],
    ] as const) {
      const r = await post(path, `{"prompt":"x","${field}":${deep}}`);
      assert.equal(r.status, 400, `${path} ${field}: ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
      assert.deepEqual([(r.json as ErrorJson).error.code, (r.json as ErrorJson).error.field], ['JSON_TOO_DEEP', field], path);
    }
    // A body nested within the limit is not refused for its depth.
    const shallow = await post('/v1/txt2img', `{"prompt":"x","comments":${nested(60)}}`);
    assert.notEqual((shallow.json as Partial<ErrorJson>).error?.code, 'JSON_TOO_DEEP', JSON.stringify(shallow.json));
  });

  test('png-info of a truncated PNG, a bad CRC, a JPEG or random bytes is a 400 naming image; a text bomb a 413', async () => {
    const png = Buffer.from(encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(12) }, [['parameters', 'a cat']]));
    const badCrc = Buffer.from(png);
    badCrc[png.length - 20] ^= 0xff;
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xff, 0xd9]);
    const random = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 97 + 13) & 255));
    for (const [what, bytes] of [['truncated', png.subarray(0, png.length - 30)], ['bad CRC', badCrc], ['JPEG', jpeg], ['random', random]] as const) {
      const r = await post('/sdapi/v1/png-info', { image: bytes.toString('base64') });
      assert.equal(r.status, 400, `${what}: ${r.status} ${JSON.stringify(r.json)}`);
      assert.equal((r.json as ErrorJson).error.field, 'image', what);
    }
    const zbomb = chunkBytes('zTXt', Buffer.concat([Buffer.from('parameters\0\0', 'latin1'), deflateSync(Buffer.alloc(64 * 1024 * 1024))]));
    const bomb = Buffer.concat([png.subarray(0, png.length - 12), zbomb, png.subarray(png.length - 12)]);
    const r = await post('/sdapi/v1/png-info', { image: bomb.toString('base64') });
    assert.equal(r.status, 413, JSON.stringify(r.json));
    assert.deepEqual([(r.json as ErrorJson).error.code, (r.json as ErrorJson).error.field], ['PNG_TEXT_TOO_LARGE', 'image']);
    const ok = await post('/sdapi/v1/png-info', { image: png.toString('base64') });
    assert.equal(ok.status, 200);
    assert.equal((ok.json as { info: string }).info, 'a cat');
  });

  test('/sdapi/v1/options refuses out-of-range values naming the option and stores unknown A1111 options', async () => {
    for (const [option, value] of [
      ['eta_noise_seed_delta', 1e308], ['CLIP_stop_at_last_layers', 1.5], ['CLIP_stop_at_last_layers', 0], ['comma_padding_backtrack', -1],
      ['show_progress_every_n_steps', -5], ['eta_ancestral', 1e9], ['s_noise', -1], ['randn_source', 'GPUX'], ['enable_pnginfo', 'yes'],
    ] as const) {
      const r = await post('/sdapi/v1/options', { [option]: value });
      assert.equal(r.status, 400, `${option}=${value}: ${r.status} ${JSON.stringify(r.json)}`);
      assert.deepEqual([(r.json as ErrorJson).error.code, (r.json as ErrorJson).error.field], ['INVALID_OPTION', option], `${option}=${value}`);
    }
    const stored = await post('/sdapi/v1/options', { samples_save: false, outdir_samples: '/tmp/x', eta_noise_seed_delta: 31337, CLIP_stop_at_last_layers: 2 });
    assert.equal(stored.status, 200, JSON.stringify(stored.json));
    const opts = (await farm.request('GET', '/sdapi/v1/options', { key: KEY })).json as Record<string, unknown>;
    assert.deepEqual(
      [opts.samples_save, opts.outdir_samples, opts.eta_noise_seed_delta, opts.CLIP_stop_at_last_layers, opts.comma_padding_backtrack],
      [false, '/tmp/x', 31337, 2, 20],
    );
  });

  test('init images and masks declaring more than MAX_INPUT_PIXELS are a 413 naming the field, before any decoding', async () => {
    const huge = blackPng(8000, 8000);
    assert.ok(huge.length < 256 * 1024, `${huge.length} bytes`);
    const small = b64png(8, 8);
    for (const [path, body, field] of [
      ['/v1/img2img', { prompt: 'x', init_images: [huge.toString('base64')] }, 'init_images.0'],
      ['/sdapi/v1/img2img', { prompt: 'x', init_images: [small, huge.toString('base64')] }, 'init_images.1'],
      ['/v1/img2img', { prompt: 'x', init_images: [small], mask: huge.toString('base64') }, 'mask'],
      ['/v1/img2img', { prompt: 'x', init_images: [jpegHeader(9000, 9000).toString('base64')] }, 'init_images.0'],
      ['/v1/img2img', { prompt: 'x', init_images: [`data:image/webp;base64,${webpHeader(5000, 5000).toString('base64')}`] }, 'init_images.0'],
    ] as const) {
      const r = await post(path, body);
      assert.equal(r.status, 413, `${path} ${field}: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
      assert.deepEqual([(r.json as ErrorJson).error.code, (r.json as ErrorJson).error.field], ['IMAGE_TOO_LARGE', field], `${path} ${field}`);
    }
  });

  test('damaged init images (truncated, bad IHDR CRC, JPEG without a frame header) are a 400 naming the field', async () => {
    const png = Buffer.from(encodePng({ width: 8, height: 8, channels: 3, data: new Uint8Array(192) }));
    const badIhdr = Buffer.from(png);
    badIhdr[20] ^= 0x01; // a height byte: IHDR's CRC no longer matches
    const noFrame = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xff, 0xd9]);
    for (const [what, bytes, field] of [
      ['truncated PNG', png.subarray(0, png.length - 20), 'init_images.0'], ['PNG cut inside IHDR', png.subarray(0, 20), 'init_images.0'],
      ['bad IHDR CRC', badIhdr, 'mask'], ['JPEG without SOF', noFrame, 'init_images.0'], ['truncated WebP', webpHeader(64, 64).subarray(0, 24), 'init_images.0'],
    ] as const) {
      const body = field === 'mask' ? { init_images: [png.toString('base64')], mask: bytes.toString('base64') } : { init_images: [bytes.toString('base64')] };
      const r = await post('/v1/img2img', { prompt: 'x', ...body });
      assert.equal(r.status, 400, `${what}: ${r.status} ${JSON.stringify(r.json)}`);
      assert.deepEqual([(r.json as ErrorJson).error.code, (r.json as ErrorJson).error.field], ['INVALID_IMAGE', field], what);
    }
  });

  test('values the engine would refuse are a 400 naming the field at submission, not a failed job', async () => {
    const init = b64png(8, 8);
    for (const [path, body, field] of [
      ['/v1/txt2img', { prompt: 'x', eta: 100 }, 'eta'],
      ['/sdapi/v1/txt2img', { prompt: 'x', eta: 100 }, 'eta'],
      ['/sdapi/v1/txt2img', { prompt: 'x', enable_hr: true, hr_scale: 20 }, 'hr_scale'],
      ['/sdapi/v1/txt2img', { prompt: 'x', cfg_scale: 500 }, 'cfg_scale'],
      ['/v1/txt2img', { prompt: 'x', subseed_strength: 3 }, 'subseed_strength'],
      ['/v1/img2img', { prompt: 'x', init_images: [init], denoising_strength: 1.5 }, 'denoising_strength'],
      ['/v1/img2img', { prompt: 'x', init_images: [init], mask: init, mask_blur: 1000 }, 'mask_blur'],
      ['/sdapi/v1/img2img', { prompt: 'x', init_images: [init], resize_mode: 7 }, 'resize_mode'],
    ] as const) {
      const r = await post(path, body);
      // /sdapi/v1's schema answers its own range checks as A1111's FastAPI does (422, detail.loc); the engine's are 400.
      assert.ok(r.status === 400 || (r.status === 422 && path.startsWith('/sdapi')), `${path} ${field}: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
      const json = r.json as Partial<ErrorJson> & { detail?: { loc: string[] }[] | string };
      const named = json.error?.field ?? (Array.isArray(json.detail) ? json.detail[0]?.loc.at(-1) : undefined);
      assert.equal(named, field, `${path}: ${JSON.stringify(json).slice(0, 300)}`);
    }
    // In range: accepted (queued for a worker).
    const ok = await post('/v1/txt2img', { prompt: 'x', eta: 0.5, width: 64, height: 64, steps: 2 });
    assert.ok(ok.status < 300, JSON.stringify(ok.json));
  });

  test('uploads that would cost the worker (zip bombs, code-running pickles) are refused at upload with their codes', async () => {
    const put = (path: string, body: Uint8Array) =>
      farm.request('PUT', path, { key: KEY, body, headers: { 'content-type': 'application/octet-stream' } });
    const bomb = deflatedZip([{ name: 'e/data.pkl', data: Buffer.from('\x80\x02}.', 'latin1') }, { name: 'e/data/0', data: new Uint8Array(64 * 1024 ** 2) }]);
    const evil = writeZip([{ name: 'e/data.pkl', data: Buffer.from('\x80\x02cposix\nsystem\nX\x02\x00\x00\x00ls\x85R.', 'latin1') }]);
    for (const [path, body, status, code] of [
      ['/v1/embeddings/bomb.pt', bomb, 413, 'ZIP_RATIO_TOO_HIGH'],
      ['/v1/hypernetworks/bomb.pt', bomb, 413, 'ZIP_RATIO_TOO_HIGH'],
      ['/v1/embeddings/evil.pt', evil, 422, 'TORCH_FORBIDDEN_GLOBAL'],
    ] as const) {
      const r = await put(path, body);
      assert.equal(r.status, status, `${path}: ${JSON.stringify(r.json)}`);
      assert.equal((r.json as ErrorJson).error.code, code, path);
    }
  });

  test('webhook URLs whose IPv6 address embeds a private IPv4 one are refused at submission naming webhook.url', async () => {
    for (const host of ['[::ffff:0:7f00:1]', '[64:ff9b:1::7f00:1]', '[2002:7f00:1::]', '[::ffff:10.0.0.1]', '127.0.0.1', 'localhost']) {
      const r = await post('/v1/txt2img', { prompt: 'x', webhook: { url: `http://${host}/hook` } });
      assert.equal(r.status, 400, `${host}: ${JSON.stringify(r.json)}`);
      assert.deepEqual([(r.json as ErrorJson).error.code, (r.json as ErrorJson).error.field], ['WEBHOOK_URL_REFUSED', 'webhook.url'], host);
    }
  });

  test('widths the UNet cannot halve evenly (8, 24, 40, 56, 72) render, as in A1111, instead of failing in the worker', async () => {
    const ids: string[] = [];
    for (const width of [8, 24, 40, 56, 72]) {
      const r = await post('/v1/txt2img', { prompt: 'odd size', width, height: 16, steps: 2, seed: width });
      assert.equal(r.status, 202, `width ${width}: ${JSON.stringify(r.json)}`);
      ids.push((r.json as { id: string }).id);
    }
    await waitFor('odd widths rendered', async () => {
      const states = await Promise.all(ids.map(async (id) => ((await farm.request('GET', `/v1/jobs/${id}`, { key: KEY })).json as { state: string }).state));
      assert.ok(!states.some((st) => st === 'failed' || st === 'cancelled'), states.join(','));
      return states.every((st) => st === 'completed');
    }, 120_000, 200);
  });

  test(`peak memory over the whole corpus: API under ${API_PEAK_BOUND_MIB} MiB, worker under ${WORKER_PEAK_BOUND_MIB} MiB, both alive`, async (t) => {
    const api = peakMiB(farm.api.child.pid!);
    const worker = peakMiB(farm.workers[0]!.child.pid!);
    t.diagnostic(`peak RSS: API ${api.toFixed(0)} MiB, worker ${worker.toFixed(0)} MiB`);
    assert.ok(api < API_PEAK_BOUND_MIB, `API peaked at ${api.toFixed(0)} MiB`);
    assert.ok(worker < WORKER_PEAK_BOUND_MIB, `worker peaked at ${worker.toFixed(0)} MiB`);
    assert.equal(farm.api.child.exitCode, null);
    assert.equal(farm.workers[0]!.child.exitCode, null);
  });
});
