/**
 * LoRA on the farm: uploads checked by the engine's loader, listed per tenant on `/v1/loras` and A1111's
 * `/sdapi/v1/loras`, and named in prompts of `/sdapi/v1/txt2img` renders that a worker process resolves,
 * fetches by content hash and hands to the engine. The render is compared with one of a checkpoint whose weights
 * were merged by hand (core's merge, written as a MODELS_DIR checkpoint).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseGenerationParameters } from '@darkroom/core/formats/infotext.js';
import { decodePng } from '@darkroom/core/formats/png.js';
import { parseSafetensors, writeSafetensors } from '@darkroom/core/formats/safetensors.js';
import { activateLoras, LoraLibrary, loadLoraFile, loraModuleTable, mergeLoras, type LoraModuleTable } from '@darkroom/core/networks/lora/index.js';
import { DEMO_MODEL_NAME, ensureDemoModel, type DemoModelFiles } from '@darkroom/core/pipeline/demo-model.js';
import { loraUses, parseExtraNetworks } from '@darkroom/core/pipeline/extra-networks.js';
import { float32, type Float32Tensor, type HostTensor } from '@darkroom/core/tensor.js';
import { startFarm, type Farm } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';
const OCTETS = { 'content-type': 'application/octet-stream' };
/** The LoRA files are made for the random-weight tiny model's layers, so jobs run on it (a MODELS_DIR checkpoint). */
const FIXTURE = 'tiny-random';
const BASE = { width: 64, height: 64, steps: 3, seed: 4242, sampler_name: 'Euler', cfg_scale: 7, override_settings: { sd_model_checkpoint: FIXTURE } };

/** A small deterministic normal source (Box-Muller over an LCG), so the network is the same on every run. */
function normals(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 1) / 4294967297;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/**
 * A kohya-named LoRA file (rank 2, alpha 1) on three Linear layers of the UNet, three of the text encoder and one
 * convolution of the demo model, with `ss_output_name` as its alias.
 */
function kohyaLora(table: LoraModuleTable, alias: string, seed: number): Uint8Array {
  const rnd = normals(seed);
  const targets = [...table.targets.values()].filter((t) => t.patched && t.weightKey);
  const pick = (component: 'text' | 'unet', className: 'Linear' | 'Conv2d', n: number) =>
    targets.filter((t) => t.component === component && t.className === className).slice(0, n);
  const tensors = new Map<string, HostTensor>();
  for (const t of [...pick('unet', 'Linear', 3), ...pick('text', 'Linear', 3), ...pick('unet', 'Conv2d', 1)]) {
    const fileKey = t.component === 'unet' ? `lora_unet_${t.key.slice('diffusion_model_'.length)}` : `lora_te1_text_model_${t.key.slice('transformer_text_model_'.length)}`;
    const [out, inp, ...k] = t.shape!;
    const gen = (shape: number[]) => float32(shape, Float32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => rnd() * 0.4));
    tensors.set(`${fileKey}.lora_down.weight`, gen(k.length ? [2, inp!, ...k] : [2, inp!]));
    tensors.set(`${fileKey}.lora_up.weight`, gen(k.length ? [out!, 2, 1, 1] : [out!, 2]));
    tensors.set(`${fileKey}.alpha`, float32([], Float32Array.of(1)));
  }
  return writeSafetensors(tensors, { ss_output_name: alias, ss_network_dim: '2', ss_tag_frequency: '{"castles": {"castle": 3}}' });
}

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('LoRA on the farm (real HTTP, Redis, s3rver, worker process)', () => {
  let s3: TestS3;
  let farm: Farm;
  let demo: DemoModelFiles;
  let demoTensors: Map<string, HostTensor>;
  let demoMetadata: Readonly<Record<string, string>>;
  let table: LoraModuleTable;
  let lora: Uint8Array;

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({ storageUrl: s3.storageUrl, workers: 1, env: { ...s3.env, API_KEYS: `alice:${KEY_A},bob:${KEY_B}` } });
    demo = await ensureDemoModel();
    ({ tensors: demoTensors, metadata: demoMetadata } = parseSafetensors(new Uint8Array(await readFile(demo.checkpoint)), demo.checkpoint));
    table = loraModuleTable(new Map([...demoTensors].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }])), 'sd1');
    lora = kohyaLora(table, 'castle-style', 7);
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
  const txt2img = async (body: Record<string, unknown>): Promise<{ pixels: Uint8Array; infotext: string }> => {
    const r = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_A, body: { ...BASE, ...body } });
    assert.equal(r.status, 200, JSON.stringify(r.json).slice(0, 400));
    const j = r.json as { images: string[]; info: string };
    return { pixels: decodePng(new Uint8Array(Buffer.from(j.images[0]!, 'base64'))).data, infotext: (JSON.parse(j.info) as { infotexts: string[] }).infotexts[0]! };
  };

  test('uploads are loaded by the LoRA loader: a file that will not load is refused with its code; listings per tenant', async () => {
    const up = await put('/v1/loras/castle_v1.safetensors', lora);
    assert.equal(up.status, 201, JSON.stringify(up.json));
    assert.equal((up.json as { name: string }).name, 'castle_v1');

    const broken = await put('/v1/loras/broken.safetensors', new TextEncoder().encode('not a safetensors file at all'));
    assert.equal(broken.status, 422, JSON.stringify(broken.json));
    assert.match((broken.json as { error: { code: string } }).error.code, /^ST_/);
    const pickle = await put('/v1/loras/evil.pt', Uint8Array.of(0x80, 0x02, 0x63, 0x6f, 0x73, 0x0a, 0x73, 0x79, 0x73, 0x74, 0x65, 0x6d, 0x0a, 0x2e));
    assert.equal(pickle.status, 422, JSON.stringify(pickle.json));
    assert.match((pickle.json as { error: { code: string } }).error.code, /^(TORCH|PICKLE|LORA)_/);
    assert.equal((await put('/v1/loras/wrong.bin', lora)).status, 400, 'only A1111\'s Lora extensions');

    const list = (await farm.request('GET', '/v1/loras', { key: KEY_A })).json as { items: { name: string; filename: string }[] };
    assert.deepEqual(list.items.map((i) => i.name), ['castle_v1']);
    const sd = await farm.request('GET', '/sdapi/v1/loras', { key: KEY_A });
    assert.equal(sd.status, 200);
    assert.deepEqual(sd.json, [{
      name: 'castle_v1', alias: 'castle-style', path: 'castle_v1.safetensors',
      metadata: { ss_output_name: 'castle-style', ss_network_dim: '2', ss_tag_frequency: { castles: { castle: 3 } } },
    }]);
    assert.deepEqual((await farm.request('GET', '/sdapi/v1/loras', { key: KEY_B })).json, [], 'another tenant\'s uploads are not listed');
    const refresh = await farm.request('POST', '/sdapi/v1/refresh-loras', { key: KEY_A });
    assert.equal(refresh.status, 200);
    assert.equal(refresh.json, null);

    assert.equal((await put('/v1/loras/gone.safetensors', lora)).status, 201);
    assert.equal((await farm.request('DELETE', '/v1/loras/gone', { key: KEY_A })).status, 204);
    assert.equal((await farm.request('DELETE', '/v1/loras/gone', { key: KEY_A })).status, 404);
  });

  test('<lora:alias:0.7> through /sdapi/v1/txt2img changes the image, equals the hand-merged checkpoint within 1/255 and carries Lora hashes', async () => {
    assert.equal((await put('/v1/loras/castle_v1.safetensors', lora)).status, 201, 'uploaded (again: the same bytes under the same name)');
    const prompt = 'a castle <lora:castle-style:0.7>';
    const withLora = await txt2img({ prompt });
    // A LoRA the tenant does not have renders without it, as A1111 does; the tag leaves the same text to encode.
    const without = await txt2img({ prompt: 'a castle <lora:nobody:0.7>' });
    assert.ok(maxPixelDiff(withLora.pixels, without.pixels) > 8, 'the LoRA changes the image');
    const file = await loadLoraFile(lora, 'castle_v1.safetensors');
    assert.equal(parseGenerationParameters(withLora.infotext).get('Lora hashes'), `castle-style: ${file.shorthash}`);
    assert.equal(parseGenerationParameters(without.infotext).get('Lora hashes'), undefined);
    // Another tenant's prompt cannot reach alice's file.
    const bob = await farm.request('POST', '/sdapi/v1/txt2img', { key: KEY_B, body: { ...BASE, prompt } });
    const bobPixels = decodePng(new Uint8Array(Buffer.from((bob.json as { images: string[] }).images[0]!, 'base64'))).data;
    assert.equal(maxPixelDiff(bobPixels, without.pixels), 0);

    // The same network merged into the demo checkpoint's weights by hand (W + up·down·alpha/rank·0.7), written as
    // a checkpoint and rendered through the plain graphs.
    const weights = new Map<string, Float32Tensor>();
    for (const [k, t] of demoTensors) if (t.dtype === 'float32') weights.set(k, t as Float32Tensor);
    const act = activateLoras(loraUses(parseExtraNetworks(prompt).calls).uses, new LoraLibrary([file]), table);
    const merged = mergeLoras(weights, table, act.applications);
    assert.equal(merged.errors.size, 0);
    assert.ok(merged.weights.size >= 7, `${merged.weights.size} layers patched`);
    const tensors = new Map(demoTensors);
    for (const [k, t] of merged.weights) tensors.set(k, t);
    // The demo model's head layout needs its config beside it (an upload carries none), so the merged file goes
    // where an operator puts such a checkpoint: MODELS_DIR, with the demo's config and vocabulary beside it.
    const dir = farm.env.MODELS_DIR!;
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'castle-merged.safetensors'), writeSafetensors(tensors, demoMetadata));
    await writeFile(join(dir, 'castle-merged.json'), JSON.stringify(demo.config));
    await cp(join(dirname(demo.checkpoint), `${DEMO_MODEL_NAME}.vocab`), join(dir, 'castle-merged.vocab'), { recursive: true });
    const byHand = await txt2img({ prompt: 'a castle <lora:nobody:0.7>', override_settings: { sd_model_checkpoint: 'castle-merged' } });
    const diff = maxPixelDiff(withLora.pixels, byHand.pixels);
    assert.ok(diff <= 1, `the worker's LoRA render and the hand-merged checkpoint differ by ${diff}/255`);
  });
});
