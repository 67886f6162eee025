import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStorage, parseS3Url, type Storage } from '../src/index.js';
import { startS3 } from '../../../test/support/s3.js';

async function exercise(storage: Storage, expectPresigned: boolean): Promise<void> {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
  await storage.put('outputs/t1/J1/0.png', png, 'image/png');
  await storage.put('outputs/t1/J1/1.png', png, 'image/png');
  await storage.put('outputs/t1/J1/0.png', new Uint8Array([9]), 'image/png'); // overwrite, never duplicate
  assert.deepEqual(await storage.list('outputs/t1/J1/'), ['outputs/t1/J1/0.png', 'outputs/t1/J1/1.png']);
  assert.deepEqual(await storage.get('outputs/t1/J1/0.png'), new Uint8Array([9]));
  assert.equal(await storage.get('outputs/t1/missing.png'), null);
  assert.equal(await storage.exists('outputs/t1/J1/1.png'), true);
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-put-'));
  await writeFile(join(dir, 'f'), 'hello');
  await storage.putFile('assets/embeddings/abc', join(dir, 'f'));
  await rm(dir, { recursive: true });
  assert.equal(Buffer.from((await storage.get('assets/embeddings/abc'))!).toString(), 'hello');
  const url = await storage.presignedUrl('outputs/t1/J1/1.png', 60);
  if (expectPresigned) {
    const res = await fetch(url!);
    assert.equal(res.status, 200);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), png);
  } else assert.equal(url, null);
  await storage.delete('outputs/t1/J1/1.png');
  assert.equal(await storage.exists('outputs/t1/J1/1.png'), false);
  await assert.rejects(storage.put('../escape', png));
  await assert.rejects(storage.put('a/../../b', png));
}

test('folder storage', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-folder-'));
  try {
    await exercise(openStorage(pathToFileURL(dir).href), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('folder storage: temp files stay out of key folders; a killed writer\'s stale temp is removed by the next process', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-folder-'));
  try {
    // What a writer SIGKILLed mid-write leaves behind: one temp an hour and more old, one just started by another process.
    await mkdir(join(dir, '.tmp'));
    await writeFile(join(dir, '.tmp', 'stale.tmp'), 'half a png');
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(join(dir, '.tmp', 'stale.tmp'), old, old);
    await writeFile(join(dir, '.tmp', 'fresh.tmp'), 'in flight');
    const storage = openStorage(pathToFileURL(dir).href);
    await storage.put('outputs/t1/J1/0.png', new Uint8Array([1]), 'image/png');
    assert.deepEqual(await readdir(join(dir, 'outputs', 't1', 'J1')), ['0.png']);
    assert.deepEqual(await readdir(join(dir, '.tmp')), ['fresh.tmp']);
    assert.deepEqual(await storage.list(''), ['outputs/t1/J1/0.png']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('S3 storage against s3rver, with presigned URLs', async () => {
  const s3 = await startS3();
  try {
    await exercise(openStorage(s3.storageUrl), true);
  } finally {
    await s3.close();
  }
});

test('s3:// URLs: bucket, prefix, path style by default with a custom endpoint, presigned for the public endpoint', async () => {
  const loc = parseS3Url('s3://media/farm/?endpoint=http%3A%2F%2Fminio%3A9000&publicEndpoint=http%3A%2F%2Flocalhost%3A9000');
  assert.equal(loc.bucket, 'media');
  assert.equal(loc.prefix, 'farm/');
  assert.equal(loc.endpoint, 'http://minio:9000');
  assert.equal(loc.forcePathStyle, true);
  const url = await openStorage('s3://media/farm?endpoint=http://minio:9000&publicEndpoint=http://localhost:9000').presignedUrl('outputs/t/J/0.png', 60);
  assert.ok(url!.startsWith('http://localhost:9000/media/farm/outputs/t/J/0.png?'), url!);
  assert.throws(() => openStorage('ftp://x'), /STORAGE_URL/);
});

test('S3 storage gives up on a store that takes connections and never answers (silenceTimeoutMs), instead of waiting for good', async () => {
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const silent = createServer((s) => void sockets.add(s));
  silent.listen(0, '127.0.0.1');
  await new Promise((r) => silent.once('listening', r));
  const port = (silent.address() as { port: number }).port;
  // Credentials as the test S3 server's (the SDK looks for some before it sends anything).
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
  try {
    assert.equal(parseS3Url('s3://b?endpoint=http://x').silenceTimeoutMs, 120_000, 'two minutes of silence by default');
    assert.throws(() => parseS3Url('s3://b?silenceTimeoutMs=soon'), /silenceTimeoutMs/);
    const storage = openStorage(`s3://media?endpoint=http://127.0.0.1:${port}&silenceTimeoutMs=300`);
    const started = Date.now();
    await assert.rejects(storage.get('outputs/t/J/0.png'), (e: Error) => e.name === 'TimeoutError');
    // Three attempts of 300 ms with the SDK's backoff between them; far from forever.
    assert.ok(Date.now() - started < 15_000, `gave up after ${Date.now() - started} ms`);
    assert.ok(sockets.size >= 2, `the SDK retried a timed-out attempt (${sockets.size} connections)`);
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
  }
});

test('downloads left unread hold only the download pool: the other calls still get connections (maxSockets)', async () => {
  assert.equal(parseS3Url('s3://b?endpoint=http://x').maxSockets, 50, "the SDK's pool size by default");
  assert.throws(() => parseS3Url('s3://b?maxSockets=0'), /maxSockets/);
  const s3 = await startS3();
  const held: import('node:stream').Readable[] = [];
  try {
    const storage = openStorage(`${s3.storageUrl}&maxSockets=2&silenceTimeoutMs=60000`);
    // Large enough that the store cannot hand it all to the socket buffers: an unread stream keeps its connection.
    await storage.put('outputs/t/J/big.png', new Uint8Array(8 * 1024 ** 2), 'image/png');
    for (let i = 0; i < 2; i++) {
      const stream = (await storage.getStream('outputs/t/J/big.png'))!;
      stream.pause();
      held.push(stream);
    }
    // With one pool these would wait for one of the two held connections until the connect limit (10 s) failed them.
    const started = Date.now();
    await storage.put('outputs/t/J/0.png', new Uint8Array([1, 2, 3]), 'image/png');
    assert.deepEqual(await storage.get('outputs/t/J/0.png'), new Uint8Array([1, 2, 3]));
    assert.equal(await storage.exists('outputs/t/J/big.png'), true);
    assert.deepEqual(await storage.list('outputs/t/J/'), ['outputs/t/J/0.png', 'outputs/t/J/big.png']);
    assert.ok(Date.now() - started < 5_000, `the other calls took ${Date.now() - started} ms`);
    // The held downloads are still whole once read.
    let bytes = 0;
    for await (const chunk of held[0]!) bytes += (chunk as Buffer).length;
    assert.equal(bytes, 8 * 1024 ** 2);
  } finally {
    for (const s of held) s.destroy();
    await s3.close();
  }
});

test('S3 putFile sends a file over 64 MiB in parts streamed from the file, and getStream gives it back whole', async () => {
  const { createHash, randomBytes } = await import('node:crypto');
  const { createWriteStream } = await import('node:fs');
  const { partSize } = await import('../src/storage/s3.js');
  assert.equal(partSize(3 * 1024 ** 3), 64 * 1024 ** 2);
  assert.ok(partSize(1024 ** 4) * 10_000 >= 1024 ** 4, 'a 1 TiB file still fits 10,000 parts');
  const s3 = await startS3();
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-multipart-'));
  try {
    // 64 MiB + 64 MiB + 3 MiB: three parts, the last one short.
    const path = join(dir, 'big');
    const sent = createHash('sha256');
    const out = createWriteStream(path);
    for (let i = 0; i < 131; i++) {
      const chunk = randomBytes(1024 ** 2);
      sent.update(chunk);
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
    const storage = openStorage(s3.storageUrl);
    await storage.putFile('assets/models/big', path);
    const got = createHash('sha256');
    let bytes = 0;
    for await (const chunk of (await storage.getStream('assets/models/big'))!) {
      got.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    assert.equal(bytes, 131 * 1024 ** 2);
    assert.equal(got.digest('hex'), sent.digest('hex'));
  } finally {
    await rm(dir, { recursive: true, force: true });
    await s3.close();
  }
});
