import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { decodePng, encodePng } from '@darkroom/core/formats/png.js';
import { datasetManifestKey, isDatasetId, openStorage, readDataset, type Storage } from '@darkroom/farm';
import { startFarm, type Farm } from './support/farm.js';
import { startS3, type TestS3 } from './support/s3.js';
import { asSymlink, deflatedZip, patchCentral, storedZip } from './support/zips.js';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-0123456789';
/** Small limits, so every one of them can be crossed by a test upload of a few kilobytes. */
const LIMITS = {
  DATASET_MAX_FILES: '6', DATASET_MAX_ENTRIES: '10', DATASET_MAX_BYTES: '200000', DATASET_MAX_FILE_BYTES: '60000',
  DATASET_MAX_IMAGE_SIDE: '1024', DATASET_MAX_IMAGE_PIXELS: '300000',
};

interface ErrorJson {
  error: { code: string; message: string; field?: string; file?: string };
}
interface DatasetJson {
  id: string;
  name: string;
  created_at: string;
  images: number;
  captions: number;
  bytes: number;
  files: { kind: string; name: string; bytes: number; width?: number; height?: number; caption?: string | null; image?: string }[];
}

const text = (s: string) => new TextEncoder().encode(s);

/** A small synthetic RGB image, different per seed, so bytes read back can be told apart. */
function png(width: number, height: number, seed: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 17) & 0xff;
  return encodePng({ width, height, channels: 3, data });
}

/** A real PNG whose header is rewritten to claim another size (CRC fixed up): what a decompression bomb looks like. */
function pngClaiming(width: number, height: number): Uint8Array {
  const bytes = png(1, 1, 0).slice();
  const v = new DataView(bytes.buffer);
  v.setUint32(16, width);
  v.setUint32(20, height);
  v.setUint32(29, crc32(bytes.subarray(12, 29)) >>> 0);
  return bytes;
}

describe('training datasets over HTTP (real Redis, s3rver)', () => {
  let s3: TestS3;
  let farm: Farm;
  let storage: Storage;

  before(async () => {
    s3 = await startS3();
    farm = await startFarm({ storageUrl: s3.storageUrl, workers: 0, env: { ...s3.env, API_KEYS: `alice:${KEY_A},bob:${KEY_B}`, RATE_LIMIT_PER_MINUTE: '0', ...LIMITS } });
    storage = openStorage(s3.storageUrl);
  });

  after(async () => {
    await farm?.stop();
    await s3?.close();
  });

  const uploadZip = (zip: Uint8Array, name: string | null = 'cats', key = KEY_A) =>
    farm.request('POST', `/v1/datasets${name === null ? '' : `?name=${encodeURIComponent(name)}`}`, {
      key, body: zip, headers: { 'content-type': 'application/zip' },
    });

  async function uploadForm(form: FormData, query = ''): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${farm.url}/v1/datasets${query}`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}` }, body: form });
    return { status: res.status, json: await res.json() as unknown };
  }

  const cat = png(8, 6, 1);
  const dog = png(5, 9, 2);

  test('a zip of PNGs with captions: created, listed, read back; folders flattened, metadata ignored', async () => {
    const zip = storedZip([
      { name: 'pets/', data: new Uint8Array() },
      { name: 'pets/cat.png', data: cat },
      { name: 'pets/cat.txt', data: text('a photo of a cat, sitting\n') },
      { name: 'pets/dog.png', data: dog },
      { name: '__MACOSX/pets/._cat.png', data: text('resource fork') },
      { name: 'pets/.DS_Store', data: text('finder') },
    ]);
    const r = await uploadZip(zip, 'My pets (2024)');
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const view = r.json as DatasetJson;
    assert.ok(isDatasetId(view.id));
    assert.equal(view.name, 'My pets (2024)');
    assert.equal(view.images, 2);
    assert.equal(view.captions, 1);
    assert.equal(view.bytes, cat.length + dog.length + 26);
    assert.deepEqual(view.files.map((f) => [f.name, f.kind]), [['cat.png', 'image'], ['cat.txt', 'caption'], ['dog.png', 'image']]);
    assert.deepEqual(view.files.find((f) => f.name === 'cat.png'), {
      kind: 'image', name: 'cat.png', bytes: cat.length, sha256: createHash('sha256').update(cat).digest('hex'), width: 8, height: 6, caption: 'cat.txt',
    });
    assert.equal(view.files.find((f) => f.name === 'dog.png')!.caption, null);
    assert.equal(view.files.find((f) => f.name === 'cat.txt')!.image, 'cat.png');

    const list = await farm.request('GET', '/v1/datasets', { key: KEY_A });
    assert.equal(list.status, 200);
    const items = (list.json as { items: (Omit<DatasetJson, 'files'> & { files?: unknown })[] }).items;
    assert.deepEqual(items.map((i) => [i.id, i.name, i.images, i.captions]), [[view.id, 'My pets (2024)', 2, 1]]);
    assert.equal(items[0]!.files, undefined, 'listings leave the file lists out');
    const got = await farm.request('GET', `/v1/datasets/${view.id}`, { key: KEY_A });
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, view);

    // Everything lives under datasets/<tenant>/<id>/, the manifest included.
    const keys = await storage.list('');
    const mine = keys.filter((k) => k.startsWith('datasets/'));
    assert.ok(mine.every((k) => k.startsWith(`datasets/alice/${view.id}/`)), mine.join(', '));
    assert.equal(mine.length, 4);
    assert.ok(mine.includes(datasetManifestKey('alice', view.id)));

    // What a training job sees.
    const ds = await readDataset(storage, 'alice', view.id);
    assert.ok(ds);
    assert.deepEqual(ds.images.map((i) => i.name), ['cat.png', 'dog.png']);
    assert.equal(await ds.caption('cat.png'), 'a photo of a cat, sitting');
    assert.equal(await ds.caption('dog.png'), null);
    assert.deepEqual(await ds.read('dog.png'), dog);
    assert.equal(decodePng(await ds.read('cat.png')).width, 8);
    assert.equal(await readDataset(storage, 'bob', view.id), null);
  });

  test('another tenant sees none of it: 404 on get and delete, an empty list', async () => {
    const r = await uploadZip(storedZip([{ name: 'cat.png', data: cat }]), 'private');
    assert.equal(r.status, 201);
    const id = (r.json as DatasetJson).id;
    assert.equal((await farm.request('GET', `/v1/datasets/${id}`, { key: KEY_B })).status, 404);
    assert.equal((await farm.request('DELETE', `/v1/datasets/${id}`, { key: KEY_B })).status, 404);
    assert.deepEqual((await farm.request('GET', '/v1/datasets', { key: KEY_B })).json, { items: [] });
    assert.equal((await farm.request('GET', `/v1/datasets/${id}`, { key: KEY_A })).status, 200);
    assert.equal((await farm.request('GET', '/v1/datasets/not-an-id', { key: KEY_A })).status, 404);
  });

  test('a multipart form of files with the name as a form field; deflated zips too', async () => {
    const form = new FormData();
    form.append('name', 'form upload');
    form.append('files', new Blob([cat], { type: 'image/png' }), 'cat.png');
    form.append('files', new Blob([text('a cat')], { type: 'text/plain' }), 'cat.txt');
    form.append('files', new Blob([dog], { type: 'image/png' }), 'dog.png');
    const r = await uploadForm(form);
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const view = r.json as DatasetJson;
    assert.equal(view.name, 'form upload');
    assert.deepEqual([view.images, view.captions], [2, 1]);
    const ds = await readDataset(storage, 'alice', view.id);
    assert.equal(await ds!.caption('cat.png'), 'a cat');

    const zipped = await uploadZip(deflatedZip([{ name: 'cat.png', data: cat }, { name: 'cat.txt', data: text('deflated') }]), 'deflated');
    assert.equal(zipped.status, 201, JSON.stringify(zipped.json));
    assert.deepEqual(await (await readDataset(storage, 'alice', (zipped.json as DatasetJson).id))!.read('cat.png'), cat);
  });

  test('every bad upload is a 4xx naming the field, the file and a stable code, and writes nothing', async () => {
    const before = await storage.list('');
    const zeros = (n: number) => new Uint8Array(n);
    const cases: { what: string; send: () => Promise<{ status: number; json: unknown }>; status: number; code: string; field?: string; file?: string }[] = [
      { what: 'no images', send: () => uploadZip(storedZip([{ name: 'cat.txt', data: text('alone') }])), status: 400, code: 'NO_IMAGES', field: 'body' },
      { what: 'only ignored entries', send: () => uploadZip(storedZip([{ name: '__MACOSX/x.png', data: cat }, { name: '.hidden.png', data: cat }])), status: 400, code: 'NO_IMAGES' },
      { what: 'text named .png', send: () => uploadZip(storedZip([{ name: 'set/cat.png', data: text('I am not a picture') }])), status: 400, code: 'INVALID_IMAGE', field: 'body', file: 'set/cat.png' },
      { what: 'truncated PNG', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat.subarray(0, cat.length - 20) }])), status: 400, code: 'INVALID_IMAGE', file: 'cat.png' },
      { what: '50000x50000 header', send: () => uploadZip(storedZip([{ name: 'huge.png', data: pngClaiming(50_000, 50_000) }])), status: 400, code: 'IMAGE_TOO_LARGE', file: 'huge.png' },
      { what: 'too many pixels', send: () => uploadZip(storedZip([{ name: 'wide.png', data: pngClaiming(1000, 1000) }])), status: 400, code: 'IMAGE_TOO_LARGE', file: 'wide.png' },
      { what: 'JPEG by name', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }, { name: 'dog.jpg', data: Uint8Array.of(0xff, 0xd8, 0xff) }])), status: 400, code: 'UNSUPPORTED_IMAGE_FORMAT', file: 'dog.jpg' },
      { what: 'JPEG named .png', send: () => uploadZip(storedZip([{ name: 'dog.png', data: Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 0x10) }])), status: 400, code: 'UNSUPPORTED_IMAGE_FORMAT', file: 'dog.png' },
      { what: 'unknown file', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }, { name: 'run.sh', data: text('rm -rf /') }])), status: 400, code: 'UNSUPPORTED_FILE', file: 'run.sh' },
      { what: 'caption without image', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }, { name: 'dgo.txt', data: text('typo') }])), status: 400, code: 'ORPHAN_CAPTION', file: 'dgo.txt' },
      { what: 'caption not UTF-8', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }, { name: 'cat.txt', data: Uint8Array.of(0x61, 0xff) }])), status: 400, code: 'INVALID_CAPTION', file: 'cat.txt' },
      { what: '../', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }, { name: '../evil.png', data: cat }])), status: 400, code: 'UNSAFE_PATH', field: 'body', file: '../evil.png' },
      { what: 'nested ../', send: () => uploadZip(storedZip([{ name: 'a/../../evil.png', data: cat }])), status: 400, code: 'UNSAFE_PATH', file: 'a/../../evil.png' },
      { what: 'absolute path', send: () => uploadZip(storedZip([{ name: '/tmp/evil.png', data: cat }])), status: 400, code: 'UNSAFE_PATH', file: '/tmp/evil.png' },
      { what: 'backslashes', send: () => uploadZip(storedZip([{ name: 'pets\\cat.png', data: cat }])), status: 400, code: 'UNSAFE_PATH', file: 'pets\\cat.png' },
      { what: 'drive letter', send: () => uploadZip(storedZip([{ name: 'C:/cat.png', data: cat }])), status: 400, code: 'UNSAFE_PATH', file: 'C:/cat.png' },
      { what: 'symlink', send: () => uploadZip(asSymlink(storedZip([{ name: 'cat.png', data: cat }, { name: 'link.png', data: text('/etc/passwd') }]), 1)), status: 400, code: 'SYMLINK_NOT_ALLOWED', file: 'link.png' },
      {
        what: 'bomb: declared total over DATASET_MAX_BYTES',
        send: () => uploadZip(deflatedZip(['a', 'b', 'c', 'd'].map((n) => ({ name: `${n}.png`, data: zeros(59_000) })))),
        status: 413, code: 'DATASET_TOO_LARGE', file: 'd.png',
      },
      { what: 'bomb: one member over DATASET_MAX_FILE_BYTES', send: () => uploadZip(deflatedZip([{ name: 'a.png', data: zeros(5_000_000) }])), status: 413, code: 'FILE_TOO_LARGE', file: 'a.png' },
      {
        what: 'bomb: a member inflating past its declared size',
        send: () => uploadZip(deflatedZip([{ name: 'cat.png', data: cat }, { name: 'dog.png', data: zeros(1_000_000) }], [undefined, 1000])),
        status: 400, code: 'INVALID_ZIP', file: 'dog.png',
      },
      {
        what: 'a member with far more compressed bytes than it inflates to',
        send: () => uploadZip(patchCentral(storedZip([{ name: 'cat.png', data: cat }, { name: 'dog.png', data: zeros(3000) }]), 1, (v, at) => v.setUint32(at + 24, 10, true))),
        status: 400, code: 'INVALID_ZIP', file: 'dog.png',
      },
      { what: 'too many entries', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }, ...Array.from({ length: 10 }, (_, i) => ({ name: `d${i}/`, data: zeros(0) }))])), status: 413, code: 'TOO_MANY_ENTRIES', field: 'body' },
      { what: 'too many files', send: () => uploadZip(storedZip(Array.from({ length: 7 }, (_, i) => ({ name: `${i}.png`, data: cat })))), status: 413, code: 'TOO_MANY_FILES', file: '6.png' },
      { what: 'empty file name', send: () => uploadZip(storedZip([{ name: '', data: cat }])), status: 400, code: 'NAME_EMPTY', file: '' },
      { what: 'over-long file name', send: () => uploadZip(storedZip([{ name: `${'x'.repeat(300)}.png`, data: cat }])), status: 400, code: 'NAME_TOO_LONG', file: `${'x'.repeat(300)}.png` },
      { what: 'duplicate after flattening', send: () => uploadZip(storedZip([{ name: 'a/cat.png', data: cat }, { name: 'b/cat.png', data: dog }])), status: 400, code: 'DUPLICATE_NAME', file: 'b/cat.png' },
      { what: 'duplicate entry', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }, { name: 'CAT.png', data: dog }])), status: 400, code: 'DUPLICATE_NAME', file: 'CAT.png' },
      { what: 'not a zip', send: () => uploadZip(text('PK? no, plain text that is long enough to not be a zip')), status: 400, code: 'INVALID_ZIP', field: 'body' },
      { what: 'empty body', send: () => uploadZip(new Uint8Array()), status: 400, code: 'EMPTY_UPLOAD' },
      { what: 'body over DATASET_MAX_BYTES', send: () => uploadZip(zeros(200_001)), status: 413, code: 'UPLOAD_TOO_LARGE', field: 'body' },
      { what: 'no name', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }]), null), status: 400, code: 'NAME_EMPTY', field: 'name' },
      { what: 'over-long name', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }]), 'n'.repeat(101)), status: 400, code: 'NAME_TOO_LONG', field: 'name' },
      { what: 'bad name', send: () => uploadZip(storedZip([{ name: 'cat.png', data: cat }]), '../cats'), status: 400, code: 'NAME_INVALID', field: 'name' },
      { what: 'other content type', send: () => farm.request('POST', '/v1/datasets?name=x', { key: KEY_A, body: cat, headers: { 'content-type': 'image/png' } }), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', field: 'Content-Type' },
      {
        what: 'multipart: unsafe file name',
        send: () => {
          const f = new FormData();
          f.append('files', new Blob([cat]), 'cat.png');
          f.append('files', new Blob([cat]), '../../evil.png');
          return uploadForm(f, '?name=x');
        },
        status: 400, code: 'UNSAFE_PATH', field: 'files', file: '../../evil.png',
      },
      {
        what: 'multipart: fake image',
        send: () => {
          const f = new FormData();
          f.append('images', new Blob([text('nope')]), 'cat.png');
          return uploadForm(f, '?name=x');
        },
        status: 400, code: 'INVALID_IMAGE', field: 'images', file: 'cat.png',
      },
      {
        what: 'multipart: file over DATASET_MAX_FILE_BYTES',
        send: () => {
          const f = new FormData();
          f.append('files', new Blob([zeros(60_001)]), 'big.png');
          return uploadForm(f, '?name=x');
        },
        status: 413, code: 'FILE_TOO_LARGE', field: 'files', file: 'big.png',
      },
      {
        what: 'multipart: too many files',
        send: () => {
          const f = new FormData();
          for (let i = 0; i < 11; i++) f.append('files', new Blob([cat]), `${i}.png`);
          return uploadForm(f, '?name=x');
        },
        status: 413, code: 'TOO_MANY_ENTRIES',
      },
      {
        what: 'multipart: duplicate names',
        send: () => {
          const f = new FormData();
          f.append('files', new Blob([cat]), 'cat.png');
          f.append('files', new Blob([dog]), 'cat.png');
          return uploadForm(f, '?name=x');
        },
        status: 400, code: 'DUPLICATE_NAME', file: 'cat.png',
      },
      {
        what: 'multipart: no files',
        send: () => {
          const f = new FormData();
          f.append('name', 'empty');
          return uploadForm(f);
        },
        status: 400, code: 'NO_IMAGES',
      },
      {
        what: 'multipart: unknown field',
        send: () => {
          const f = new FormData();
          f.append('files', new Blob([cat]), 'cat.png');
          f.append('colour', 'blue');
          return uploadForm(f, '?name=x');
        },
        status: 400, code: 'INVALID_REQUEST', field: 'colour',
      },
    ];
    for (const c of cases) {
      const r = await c.send();
      const body = r.json as ErrorJson;
      assert.equal(r.status, c.status, `${c.what}: ${JSON.stringify(r.json)}`);
      assert.equal(body.error?.code, c.code, `${c.what}: ${JSON.stringify(r.json)}`);
      if (c.field !== undefined) assert.equal(body.error.field, c.field, `${c.what}: ${JSON.stringify(r.json)}`);
      if (c.file !== undefined) assert.equal(body.error.file, c.file, `${c.what}: ${JSON.stringify(r.json)}`);
    }
    assert.deepEqual(await storage.list(''), before, 'refused uploads write nothing');
    // And the API is still answering on the same connections after refusing bodies midway.
    assert.equal((await farm.request('GET', '/v1/datasets', { key: KEY_A })).status, 200);
  });

  test('files without a manifest (an upload cut short) are no dataset; delete removes manifest and files', async () => {
    const half = '01J00000000000000000000000';
    await storage.put(`datasets/alice/${half}/files/000000.png`, cat);
    const ids = ((await farm.request('GET', '/v1/datasets', { key: KEY_A })).json as { items: { id: string }[] }).items.map((i) => i.id);
    assert.ok(!ids.includes(half));
    assert.equal((await farm.request('GET', `/v1/datasets/${half}`, { key: KEY_A })).status, 404);
    assert.equal((await farm.request('DELETE', `/v1/datasets/${half}`, { key: KEY_A })).status, 404);

    for (const id of ids) {
      assert.equal((await farm.request('DELETE', `/v1/datasets/${id}`, { key: KEY_A })).status, 204);
      assert.equal((await farm.request('GET', `/v1/datasets/${id}`, { key: KEY_A })).status, 404);
      assert.deepEqual(await storage.list(`datasets/alice/${id}/`), []);
    }
    assert.deepEqual((await farm.request('GET', '/v1/datasets', { key: KEY_A })).json, { items: [] });
  });

  test('the routes are in the OpenAPI document', async () => {
    const doc = (await farm.request('GET', '/openapi.json')).json as { paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } };
    assert.deepEqual(Object.keys(doc.paths['/v1/datasets']!).sort(), ['get', 'post']);
    assert.deepEqual(Object.keys(doc.paths['/v1/datasets/{id}']!).sort(), ['delete', 'get']);
    assert.ok(doc.components.schemas.DatasetView);
  });
});
