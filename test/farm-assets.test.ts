import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors } from '@darkroom/core/formats/safetensors.js';
import { PyDict, torchTensor, writeTorchFile } from '@darkroom/core/formats/torch.js';
import { writeZip } from '@darkroom/core/formats/zip.js';
import { ensureDemoModel } from '@darkroom/core/pipeline/demo-model.js';
import { float32 } from '@darkroom/core/tensor.js';
import { AssetRegistry, assetStorageKey, farmKeys, openStorage, sha256Hex, type Storage } from '@darkroom/farm';
import { startFarm, waitFor, type Farm } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';
import { deflatedZip } from './support/zips.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';
const KEY_Q = 'quota-key-0123456789';
/** Every tenant's quota: room for one large embedding (6.4 MB) or the demo checkpoint (11.5 MB), not two embeddings. */
const QUOTA = 12 * 1024 ** 2;
const OCTETS = { 'content-type': 'application/octet-stream' };

interface ErrorJson { error: { code: string; message: string; field?: string } }
interface AssetJson { name: string; sha256: string; size: number }

/** A textual-inversion embedding for the demo model's 32-wide text encoder, in A1111's .pt layout. */
function embeddingPt(seed: number, vectors = 2): Uint8Array {
  const data = Float32Array.from({ length: vectors * 32 }, (_, i) => Math.sin(i + seed) * 0.02);
  return writeTorchFile(new PyDict([
    ['string_to_param', new PyDict([['*', torchTensor(float32([vectors, 32], data))]])],
    ['name', 'x'],
  ]));
}

/** 50,000 vectors: a 6.4 MB file, larger than MAX_BODY_BYTES and than half the quota. */
function largeEmbedding(seed: number): Uint8Array {
  return writeSafetensors({ emb_params: float32([50_000, 32], Float32Array.from({ length: 50_000 * 32 }, (_, i) => Math.sin(i * seed) * 0.02)) });
}

function embeddingSafetensors(seed: number, width = 32): Uint8Array {
  return writeSafetensors({ emb_params: float32([2, width], Float32Array.from({ length: 2 * width }, (_, i) => Math.cos(i * seed) * 0.02)) });
}

describe('assets: checked at upload, deleted for real, counted against a quota (real HTTP, Redis, s3rver, worker)', () => {
  let s3: TestS3;
  let farm: Farm;
  let storage: Storage;

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({
      storageUrl: s3.storageUrl,
      workers: 1,
      env: { ...s3.env, API_KEYS: `alice:${KEY_A},bob:${KEY_B},quota:${KEY_Q}`, TENANT_QUOTA_BYTES: String(QUOTA), MAX_BODY_BYTES: '262144' },
    });
    storage = openStorage(s3.storageUrl);
  });

  after(async () => {
    await farm?.stop();
    await s3?.close();
  });

  const put = (path: string, body: Uint8Array | string, key = KEY_A, headers: Record<string, string> = OCTETS) =>
    farm.request('PUT', path, { key, body, headers });

  test('files that will not load are refused at upload with the loader\'s code and no server path', async () => {
    const lyingHeader = new Uint8Array(8 + 2);
    new DataView(lyingHeader.buffer).setBigUint64(0, 2n, true);
    lyingHeader.set([0x7b, 0x7d], 8);
    const shape = Buffer.from('{"w":{"dtype":"F32","shape":[10],"data_offsets":[0,8]}}');
    const wrongShape = Buffer.concat([Buffer.alloc(8), shape, Buffer.alloc(8)]);
    wrongShape.writeBigUInt64LE(BigInt(shape.length), 0);
    // GLOBAL posix.system, called with "ls": A1111's restricted unpickler refuses it, so does ours.
    const hostile = writeZip([{ name: 'e/data.pkl', data: Buffer.from('\x80\x02cposix\nsystem\nX\x02\x00\x00\x00ls\x85R.', 'latin1') }]);
    const notAHypernetwork = writeTorchFile(new PyDict([['layer_structure', 'not a list']]));
    const cases: Array<[string, Uint8Array | string, number, RegExp]> = [
      ['/v1/models/broken.safetensors', 'this is not a safetensors file', 422, /^ST_/],
      ['/v1/models/wrong-shape.safetensors', new Uint8Array(wrongShape), 422, /^ST_BAD_SHAPE$/],
      ['/v1/models/not-a-model.safetensors', writeSafetensors({ w: float32([2], new Float32Array(2)) }), 422, /^MODEL_/],
      ['/v1/models/empty-header.safetensors', lyingHeader, 422, /^MODEL_/],
      ['/v1/embeddings/evil.pt', hostile, 422, /^TORCH_FORBIDDEN_GLOBAL$/],
      ['/v1/embeddings/not-torch.pt', 'plain text', 422, /^TORCH_/],
      ['/v1/hypernetworks/not-a-hypernetwork.pt', notAHypernetwork, 422, /^HYPERNETWORK_/],
    ];
    for (const [path, body, status, code] of cases) {
      const r = await put(path, body);
      const err = (r.json as ErrorJson).error;
      assert.equal(r.status, status, `${path}: ${JSON.stringify(r.json)}`);
      assert.match(err.code, code, path);
      assert.equal(err.field, 'body');
      assert.ok(err.message.includes(path.split('/').at(-1)!), `${path}: the message names the upload: ${err.message}`);
      assert.doesNotMatch(err.message, /\/tmp\/|darkroom-uploads|[A-Za-z]:\\/, `${path}: no server path in ${err.message}`);
    }
    const listed = (await farm.request('GET', '/v1/embeddings', { key: KEY_A })).json as { items: unknown[] };
    assert.deepEqual(listed.items, [], 'nothing refused was recorded');
    assert.deepEqual(await storage.list('assets/'), [], 'nothing refused was stored');
  });

  test('a zip bomb in a .pt upload is refused from its declared sizes, before inflating', async () => {
    const zeros = new Uint8Array(64 * 1024 ** 2);
    const bomb = deflatedZip([{ name: 'e/data.pkl', data: Buffer.from('\x80\x02}.', 'latin1') }, { name: 'e/data/0', data: zeros }]);
    assert.ok(bomb.length < 200_000, `the bomb is small (${bomb.length} bytes)`);
    const r = await put('/v1/embeddings/bomb.pt', bomb);
    assert.equal(r.status, 413, JSON.stringify(r.json));
    assert.equal((r.json as ErrorJson).error.code, 'ZIP_RATIO_TOO_HIGH');
    assert.match((r.json as ErrorJson).error.message, /bomb\.pt/);
  });

  test('an upload sent as application/json is stored as the file it is, not parsed', async () => {
    const file = embeddingPt(1);
    const r = await put('/v1/embeddings/as-json.pt', file, KEY_A, { 'content-type': 'application/json' });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.equal((r.json as AssetJson).size, file.length);
    const stored = await storage.get(`assets/embeddings/${(r.json as AssetJson).sha256}`);
    assert.deepEqual(Buffer.from(stored!), Buffer.from(file));
    // Larger than MAX_BODY_BYTES (256 KiB) as JSON would be: the JSON limit does not apply to files.
    const large = largeEmbedding(2);
    const big = await put('/v1/embeddings/large.safetensors', large, KEY_A, { 'content-type': 'application/json' });
    assert.equal(big.status, 201, JSON.stringify(big.json));
    assert.equal((big.json as AssetJson).size, large.length);
    assert.equal((await farm.request('DELETE', '/v1/embeddings/large', { key: KEY_A })).status, 204);
    // A checkpoint A1111 could not load without a config (the demo model's head layout is not a standard one)
    // is refused too: an upload comes without the yaml that would say.
    const demo = await put('/v1/models/demo-copy.safetensors', new Uint8Array(await readFile((await ensureDemoModel()).checkpoint)), KEY_A);
    assert.equal(demo.status, 422);
    assert.equal((demo.json as ErrorJson).error.code, 'MODEL_CONFIG_REQUIRED');
    assert.equal((await farm.request('DELETE', '/v1/embeddings/as-json', { key: KEY_A })).status, 204);
  });

  test('DELETE removes the bytes once no name of any tenant refers to them, and the worker drops its cached copy', async () => {
    const file = embeddingSafetensors(3);
    const a = await put('/v1/embeddings/shared-style.safetensors', file, KEY_A);
    const b = await put('/v1/embeddings/their-style.safetensors', file, KEY_B);
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    const { sha256 } = a.json as AssetJson;
    assert.equal((b.json as AssetJson).sha256, sha256);
    const key = `assets/embeddings/${sha256}`;
    // A job puts the bytes in the worker's cache.
    const sub = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { prompt: 'a fox, shared-style', width: 64, height: 64, steps: 2, seed: 3 } });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const { id } = sub.json as { id: string };
    const job = await waitFor('job finished', async () => {
      const j = (await farm.request('GET', `/v1/jobs/${id}`, { key: KEY_A })).json as { state: string; error: unknown };
      return j.state === 'completed' || j.state === 'failed' ? j : null;
    }, 60_000);
    assert.equal(job.state, 'completed', JSON.stringify(job.error));
    const cached = join(farm.env.CACHE_DIR!, 'assets', 'embeddings', sha256);
    assert.ok((await stat(cached)).isDirectory(), 'the worker cached the embedding');

    assert.equal((await farm.request('DELETE', '/v1/embeddings/shared-style', { key: KEY_A })).status, 204);
    assert.ok(await storage.exists(key), 'bob still names the bytes');
    assert.equal((await farm.request('DELETE', '/v1/embeddings/their-style', { key: KEY_B })).status, 204);
    assert.equal(await storage.exists(key), false, 'the last name took the bytes with it');
    await waitFor('worker cache entry removed', async () => !(await stat(cached).then(() => true, () => false)), 10_000);
    assert.equal((await farm.request('DELETE', '/v1/embeddings/their-style', { key: KEY_B })).status, 404);

    // Replacing a name with other bytes releases the old ones.
    const v1 = (await put('/v1/embeddings/evolving.safetensors', embeddingSafetensors(4))).json as AssetJson;
    const v2 = (await put('/v1/embeddings/evolving.safetensors', embeddingSafetensors(5))).json as AssetJson;
    assert.notEqual(v1.sha256, v2.sha256);
    assert.equal(await storage.exists(`assets/embeddings/${v1.sha256}`), false);
    assert.ok(await storage.exists(`assets/embeddings/${v2.sha256}`));
    assert.equal((await farm.request('DELETE', '/v1/embeddings/evolving', { key: KEY_A })).status, 204);
    assert.deepEqual(await storage.list('assets/'), []);
  });

  test('TENANT_QUOTA_BYTES: an upload past the tenant\'s quota is refused (413 TENANT_QUOTA_EXCEEDED); deleting makes room', async () => {
    const demo = largeEmbedding(7);
    assert.ok(demo.length < QUOTA && demo.length * 2 > QUOTA);
    assert.equal((await put('/v1/embeddings/first.safetensors', demo, KEY_Q)).status, 201);
    // The same bytes under a second name count again: the quota is what the tenant's names account for.
    const second = await put('/v1/embeddings/second.safetensors', demo, KEY_Q);
    assert.equal(second.status, 413, JSON.stringify(second.json));
    assert.equal((second.json as ErrorJson).error.code, 'TENANT_QUOTA_EXCEEDED');
    // Streamed without a length: refused once the body passes the room left.
    const streamed = await fetch(`${farm.url}/v1/embeddings/third.safetensors`, {
      method: 'PUT', headers: { authorization: `Bearer ${KEY_Q}`, ...OCTETS },
      body: new ReadableStream({ start(c) { c.enqueue(demo); c.close(); } }), duplex: 'half',
    } as RequestInit);
    assert.equal(streamed.status, 413);
    assert.equal(((await streamed.json()) as ErrorJson).error.code, 'TENANT_QUOTA_EXCEEDED');
    // Replacing a name gives its own size back; another tenant has a quota of its own.
    assert.equal((await put('/v1/embeddings/first.safetensors', demo, KEY_Q)).status, 201);
    assert.equal((await put('/v1/embeddings/bobs.safetensors', demo, KEY_B)).status, 201);
    assert.equal((await farm.request('DELETE', '/v1/embeddings/first', { key: KEY_Q })).status, 204);
    assert.equal((await put('/v1/embeddings/second.safetensors', demo, KEY_Q)).status, 201);
    assert.equal((await farm.request('DELETE', '/v1/embeddings/second', { key: KEY_Q })).status, 204);
    assert.equal((await farm.request('DELETE', '/v1/embeddings/bobs', { key: KEY_B })).status, 204);
  });

  test('embeddings are matched in prompts by token; one that cannot be used is skipped and reported, the job renders', async () => {
    assert.equal((await put('/v1/embeddings/x.safetensors', embeddingSafetensors(8))).status, 201);
    // SD2's width: a valid file, unusable with the demo model's 32-wide text encoder.
    assert.equal((await put('/v1/embeddings/wide.safetensors', embeddingSafetensors(9, 64))).status, 201);
    // A file stored before uploads were checked, which does not load.
    const broken = new TextEncoder().encode('not a torch file');
    const rec = { name: 'broken', filename: 'broken.pt', sha256: sha256Hex(broken), size: broken.length, uploadedAt: new Date().toISOString() };
    await storage.put(assetStorageKey('embeddings', rec.sha256), broken);
    await new AssetRegistry(farm.redis, farmKeys(farm.prefix)).put('alice', 'embeddings', rec);
    const render = async (prompt: string) => {
      const sub = await farm.request('POST', '/v1/txt2img', { key: KEY_A, body: { prompt, width: 64, height: 64, steps: 1, seed: 9 } });
      assert.equal(sub.status, 202, JSON.stringify(sub.json));
      return waitFor('job finished', async () => {
        const j = (await farm.request('GET', `/v1/jobs/${(sub.json as { id: string }).id}`, { key: KEY_A })).json as {
          state: string; error: unknown; outputs: { infotext: string }[]; skipped_embeddings?: Record<string, string>;
        };
        return j.state === 'completed' || j.state === 'failed' ? j : null;
      }, 60_000);
    };
    // "x" inside "xylophone" and "boxes" is not the token x: nothing is used or skipped.
    const plain = await render('a xylophone');
    assert.equal(plain.state, 'completed', JSON.stringify(plain.error));
    assert.doesNotMatch(plain.outputs[0]!.infotext, /TI hashes/);
    assert.equal(plain.skipped_embeddings, undefined);
    const mixed = await render('a x-wing, wide, broken');
    assert.equal(mixed.state, 'completed', JSON.stringify(mixed.error));
    assert.match(mixed.outputs[0]!.infotext, /TI hashes: "x: [0-9a-f]{12}"/);
    assert.doesNotMatch(mixed.outputs[0]!.infotext, /wide:|broken:/);
    assert.match(mixed.skipped_embeddings?.wide ?? '', /^EMBEDDING_WIDTH_MISMATCH: /);
    assert.match(mixed.skipped_embeddings?.broken ?? '', /^TORCH_[A-Z_]+: broken/);
    for (const why of Object.values(mixed.skipped_embeddings ?? {})) assert.doesNotMatch(why, /\/tmp\/|\/assets\//, `no server path: ${why}`);
    for (const name of ['x', 'wide', 'broken']) assert.equal((await farm.request('DELETE', `/v1/embeddings/${name}`, { key: KEY_A })).status, 204);
  });
});
