/**
 * VAEs on the farm: uploads checked by the engine's VAE reader, listed per tenant on `/v1/vaes` and A1111's
 * `/sdapi/v1/sd-vae`, and chosen by `sd_vae` (override_settings or /sdapi/v1/options) for `/sdapi/v1/txt2img`
 * renders that a worker process fetches by content hash and hands to the engine. The render is compared with one
 * of a checkpoint whose VAE weights were put in by hand (written as a MODELS_DIR checkpoint).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseGenerationParameters } from '@darkroom/core/formats/infotext.js';
import { decodePng } from '@darkroom/core/formats/png.js';
import { parseSafetensors, writeSafetensors } from '@darkroom/core/formats/safetensors.js';
import { DEMO_MODEL_NAME, ensureDemoModel, type DemoModelFiles } from '@darkroom/core/pipeline/demo-model.js';
import type { HostTensor } from '@darkroom/core/tensor.js';
import { startFarm, type Farm } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';
const OCTETS = { 'content-type': 'application/octet-stream' };
const BASE = { prompt: 'a castle', width: 64, height: 64, steps: 3, seed: 4242, sampler_name: 'Euler', cfg_scale: 7 };
/** The VAE files are the random-weight tiny model's autoencoder, so renders run on it (a MODELS_DIR checkpoint). */
const FIXTURE = 'tiny-random';
const PREFIX = 'first_stage_model.';

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('VAEs on the farm (real HTTP, Redis, s3rver, worker process)', () => {
  let s3: TestS3;
  let farm: Farm;
  let demo: DemoModelFiles;
  let demoTensors: Map<string, HostTensor>;
  let demoMetadata: Readonly<Record<string, string>>;
  /** The demo VAE with a changed last convolution, without the prefix (A1111's VAE file layout). */
  let vae: Map<string, HostTensor>;
  let vaeBytes: Uint8Array;

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({ storageUrl: s3.storageUrl, workers: 1, env: { ...s3.env, API_KEYS: `alice:${KEY_A},bob:${KEY_B}` } });
    demo = await ensureDemoModel();
    ({ tensors: demoTensors, metadata: demoMetadata } = parseSafetensors(new Uint8Array(await readFile(demo.checkpoint)), demo.checkpoint));
    vae = new Map();
    for (const [k, t] of demoTensors) {
      if (!k.startsWith(PREFIX)) continue;
      const data = Float32Array.from(t.data as Float32Array);
      if (k.endsWith('decoder.conv_out.weight')) for (let i = 0; i < data.length; i++) data[i] = data[i]! * 1.3;
      if (k.endsWith('decoder.conv_out.bias')) for (let i = 0; i < data.length; i++) data[i] = data[i]! + (i === 1 ? 0.4 : -0.2);
      vae.set(k.slice(PREFIX.length), { dtype: 'float32', shape: t.shape, data });
    }
    vaeBytes = writeSafetensors(new Map([...vae, ['loss.logvar', { dtype: 'float32', shape: [], data: new Float32Array(1) }]]));
    const dir = farm.env.MODELS_DIR!;
    await mkdir(dir, { recursive: true });
    await cp(demo.checkpoint, join(dir, `${FIXTURE}.safetensors`));
    await writeFile(join(dir, `${FIXTURE}.json`), JSON.stringify(demo.config));
    await cp(join(dirname(demo.checkpoint), `${DEMO_MODEL_NAME}.vocab`), join(dir, `${FIXTURE}.vocab`), { recursive: true });
  });

  after(async () => {
    await farm?.stop();
    await s3?.close();
  });

  const put = (path: string, body: Uint8Array, key = KEY_A) => farm.request('PUT', path, { key, body, headers: OCTETS });
  const txt2img = async (body: Record<string, unknown>): Promise<{ pixels: Uint8Array; infotext: string; info: Record<string, unknown> }> => {
    const overrides = { sd_model_checkpoint: FIXTURE, ...(body.override_settings as Record<string, unknown> | undefined) };
    const r = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_A, body: { ...BASE, ...body, override_settings: overrides } });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 400));
    const j = r.json as { images: string[]; info: string };
    const info = JSON.parse(j.info) as Record<string, unknown> & { infotexts: string[] };
    return { pixels: decodePng(new Uint8Array(Buffer.from(j.images[0]!, 'base64'))).data, infotext: info.infotexts[0]!, info };
  };

  test('uploads are read as VAEs: a file that is not one is refused with the loader\'s code; /sdapi/v1/sd-vae lists them per tenant', async () => {
    const up = await put('/v1/vaes/castle.vae.safetensors', vaeBytes);
    assert.equal(up.status, 201, JSON.stringify(up.json));
    // A safetensors file without an autoencoder's tensors (here: the UNet's) is not a VAE.
    const unet = new Map([...demoTensors].filter(([k]) => k.startsWith('model.diffusion_model.')));
    const notVae = await put('/v1/vaes/unet.safetensors', writeSafetensors(unet));
    assert.equal(notVae.status, 422, JSON.stringify(notVae.json));
    assert.equal((notVae.json as { error: { code: string } }).error.code, 'MODEL_UNSUPPORTED');
    const halfVae = await put('/v1/vaes/half.safetensors', writeSafetensors(new Map([...vae].filter(([k]) => k.startsWith('decoder.')))));
    assert.equal(halfVae.status, 422, JSON.stringify(halfVae.json));
    assert.doesNotMatch(JSON.stringify(halfVae.json), /\/tmp\//, 'no server paths in the refusal');
    assert.equal((await put('/v1/vaes/castle.bin', vaeBytes)).status, 400, 'only A1111\'s VAE extensions');

    const sd = await farm.request('GET', '/sdapi/v1/sd-vae', { key: KEY_A });
    assert.equal(sd.status, 200);
    assert.deepEqual(sd.json, [{ model_name: 'castle.vae.safetensors', filename: 'castle.vae.safetensors' }]);
    assert.deepEqual((await farm.request('GET', '/sdapi/v1/sd-vae', { key: KEY_B })).json, [], 'another tenant\'s uploads are not listed');
    const list = (await farm.request('GET', '/v1/vaes', { key: KEY_A })).json as { items: { name: string }[] };
    assert.deepEqual(list.items.map((i) => i.name), ['castle.vae']);
  });

  test('override_settings.sd_vae renders with the uploaded VAE: equal to the checkpoint with those weights put in by hand, VAE hash and name in the infotext', async () => {
    assert.equal((await put('/v1/vaes/castle.vae.safetensors', vaeBytes)).status, 201);
    const plain = await txt2img({});
    const withVae = await txt2img({ override_settings: { sd_vae: 'castle.vae.safetensors' } });
    assert.ok(maxPixelDiff(withVae.pixels, plain.pixels) > 8, 'the VAE changes the image');
    const hash = createHash('sha256').update(vaeBytes).digest('hex').slice(0, 10);
    const params = parseGenerationParameters(withVae.infotext);
    assert.equal(params.get('VAE hash'), hash);
    assert.equal(params.get('VAE'), 'castle.vae.safetensors');
    assert.match(withVae.infotext, new RegExp(`Model: ${FIXTURE}, VAE hash: ${hash}, VAE: castle\\.vae\\.safetensors,`));
    assert.equal(withVae.info.sd_vae_name, 'castle.vae.safetensors');
    assert.equal(withVae.info.sd_vae_hash, hash);
    assert.equal(parseGenerationParameters(plain.infotext).get('VAE'), undefined);

    // "None" and "Automatic" keep the checkpoint's own (an upload has no VAE file beside it).
    assert.equal(maxPixelDiff((await txt2img({ override_settings: { sd_vae: 'None' } })).pixels, plain.pixels), 0);
    assert.equal(maxPixelDiff((await txt2img({ override_settings: { sd_vae: 'Automatic' } })).pixels, plain.pixels), 0);
    assert.equal(maxPixelDiff((await txt2img({ override_settings: { sd_vae: 'auto' } })).pixels, plain.pixels), 0);

    // An unknown name is refused at submission, naming the setting.
    const unknown = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_A, body: { ...BASE, override_settings: { sd_vae: 'nope.safetensors' } } });
    assert.ok(unknown.status >= 400 && unknown.status < 500, `${unknown.status}`);
    assert.match(JSON.stringify(unknown.json), /override_settings\.sd_vae/);
    // Another tenant cannot name alice's VAE.
    const bob = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_B, body: { ...BASE, override_settings: { sd_vae: 'castle.vae.safetensors' } } });
    assert.ok(bob.status >= 400 && bob.status < 500, `${bob.status}`);

    // The tenant's option applies to later jobs; an unknown name is refused before it is stored.
    const bad = await farm.request('POST', '/sdapi/v1/options', { key: KEY_A, body: { sd_vae: 'nope.safetensors' } });
    assert.ok(bad.status >= 400 && bad.status < 500, `${bad.status}`);
    assert.match(JSON.stringify(bad.json), /sd_vae/);
    assert.equal((await farm.request('POST', '/sdapi/v1/options', { key: KEY_A, body: { sd_vae: 'castle.vae.safetensors' } })).status, 200);
    assert.equal(((await farm.request('GET', '/sdapi/v1/options', { key: KEY_A })).json as { sd_vae: string }).sd_vae, 'castle.vae.safetensors');
    const byOption = await txt2img({});
    assert.equal(maxPixelDiff(byOption.pixels, withVae.pixels), 0);
    assert.equal(parseGenerationParameters(byOption.infotext).get('VAE hash'), hash);
    assert.equal((await farm.request('POST', '/sdapi/v1/options', { key: KEY_A, body: { sd_vae: 'Automatic' } })).status, 200);

    // The same VAE weights put into the demo checkpoint by hand, rendered as a MODELS_DIR checkpoint (with the demo's
    // config and vocabulary beside it, as an operator places such a file).
    const tensors = new Map(demoTensors);
    for (const [k, t] of vae) tensors.set(PREFIX + k, t);
    const dir = farm.env.MODELS_DIR!;
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'castle-vae-merged.safetensors'), writeSafetensors(tensors, demoMetadata));
    await writeFile(join(dir, 'castle-vae-merged.json'), JSON.stringify(demo.config));
    await cp(join(dirname(demo.checkpoint), `${DEMO_MODEL_NAME}.vocab`), join(dir, 'castle-vae-merged.vocab'), { recursive: true });
    const byHand = await txt2img({ override_settings: { sd_model_checkpoint: 'castle-vae-merged' } });
    const diff = maxPixelDiff(withVae.pixels, byHand.pixels);
    assert.ok(diff <= 1, `the worker's render with the VAE upload and the hand-merged checkpoint differ by ${diff}/255`);
  });

  test('MODELS_DIR/VAE files are listed and chosen by name; "Automatic" takes a <stem>.vae.* beside a MODELS_DIR checkpoint', async () => {
    const dir = farm.env.MODELS_DIR!;
    await mkdir(join(dir, 'VAE'), { recursive: true });
    await writeFile(join(dir, 'VAE', 'shared.safetensors'), vaeBytes);
    // A checkpoint with a VAE file named after it, as A1111 finds one ("Automatic").
    await writeFile(join(dir, 'auto.safetensors'), await readFile(demo.checkpoint));
    await writeFile(join(dir, 'auto.json'), JSON.stringify(demo.config));
    await cp(join(dirname(demo.checkpoint), `${DEMO_MODEL_NAME}.vocab`), join(dir, 'auto.vocab'), { recursive: true });
    await writeFile(join(dir, 'auto.vae.safetensors'), vaeBytes);

    const listed = (await farm.request('GET', '/sdapi/v1/sd-vae', { key: KEY_B })).json as { model_name: string; filename: string }[];
    assert.deepEqual(listed, [{ model_name: 'shared.safetensors', filename: 'VAE/shared.safetensors' }]);
    const models = (await farm.request('GET', '/sdapi/v1/sd-models', { key: KEY_B })).json as { model_name: string }[];
    assert.ok(!models.some((m) => m.model_name.endsWith('.vae') || m.model_name.startsWith('VAE_')), `VAE files are not checkpoints: ${models.map((m) => m.model_name)}`);

    const plain = await txt2img({});
    const withUpload = await txt2img({ override_settings: { sd_vae: 'castle.vae.safetensors' } });
    const shared = await txt2img({ override_settings: { sd_vae: 'shared.safetensors' } });
    assert.equal(maxPixelDiff(shared.pixels, withUpload.pixels), 0);
    assert.equal(parseGenerationParameters(shared.infotext).get('VAE'), 'shared.safetensors');

    const automatic = await txt2img({ override_settings: { sd_model_checkpoint: 'auto' } });
    assert.equal(maxPixelDiff(automatic.pixels, withUpload.pixels), 0);
    assert.equal(parseGenerationParameters(automatic.infotext).get('VAE'), 'auto.vae.safetensors');
    const none = await txt2img({ override_settings: { sd_model_checkpoint: 'auto', sd_vae: 'None' } });
    assert.equal(maxPixelDiff(none.pixels, plain.pixels), 0);
    assert.equal(parseGenerationParameters(none.infotext).get('VAE'), undefined);
  });
});
