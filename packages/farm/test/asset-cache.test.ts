import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AssetCache } from '../src/asset-cache.js';
import { assetStorageKey } from '../src/assets.js';
import { sha256Hex } from '../src/ids.js';
import { openStorage } from '../src/storage/index.js';

async function setup(budget: number) {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-cache-test-'));
  const storage = openStorage(pathToFileURL(join(dir, 'storage')).href);
  const results = new Map<string, number>();
  const counter = { inc: (labels: { cache: string; result: string }) => void results.set(labels.result, (results.get(labels.result) ?? 0) + 1) };
  const cache = new AssetCache(storage, join(dir, 'cache'), budget, counter);
  const put = async (text: string) => {
    const bytes = new TextEncoder().encode(text);
    const sha = sha256Hex(bytes);
    await storage.put(assetStorageKey('embeddings', sha), bytes);
    return sha;
  };
  const count = async (result: string) => results.get(result) ?? 0;
  return { dir, cache, put, count };
}

test('files are fetched by content hash once, then served from disk; least recently used go first past the budget', async () => {
  const { dir, cache, put, count } = await setup(25);
  try {
    const a = await put('a'.repeat(10));
    const b = await put('b'.repeat(10));
    const c = await put('c'.repeat(10));
    const pa = await cache.fetch('embeddings', a, 'a.pt');
    assert.equal(await readFile(pa, 'utf8'), 'a'.repeat(10));
    assert.ok(pa.endsWith('a.pt'), 'the original file name (and extension) is kept');
    assert.equal(await cache.fetch('embeddings', a, 'a.pt'), pa);
    assert.equal(await count('hit'), 1);
    await cache.fetch('embeddings', b, 'b.pt');
    await cache.fetch('embeddings', a, 'a.pt'); // a is now the most recently used
    await cache.fetch('embeddings', c, 'c.pt'); // 30 bytes > 25: b goes
    assert.equal(existsSync(pa), true);
    assert.equal(await count('miss'), 3);
    await cache.fetch('embeddings', b, 'b.pt');
    assert.equal(await count('miss'), 4, 'b was evicted and fetched again');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('concurrent requests for one file download it once; a pinned file is never evicted; a missing one is a typed error', async () => {
  const { dir, cache, put, count } = await setup(5);
  try {
    const a = await put('a'.repeat(10));
    const [p1, p2] = await Promise.all([cache.fetch('embeddings', a, 'a.pt'), cache.fetch('embeddings', a, 'a.pt')]);
    assert.equal(p1, p2);
    assert.equal(await count('miss'), 1);
    const job = new Set<string>();
    const held = await cache.fetch('embeddings', a, 'a.pt', job);
    const b = await put('b'.repeat(10));
    const pb = await cache.fetch('embeddings', b, 'b.pt');
    assert.equal(existsSync(held), true, 'held by the running job');
    assert.equal(existsSync(pb), true, 'the file just fetched stays even over budget');
    cache.release(job);
    const c = await put('c'.repeat(10));
    await cache.fetch('embeddings', c, 'c.pt');
    assert.equal(existsSync(held), false, 'released and least recently used: evicted');
    await assert.rejects(cache.fetch('embeddings', sha256Hex('nope'), 'x.pt'), (e: unknown) => (e as { code?: string }).code === 'ASSET_MISSING');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
