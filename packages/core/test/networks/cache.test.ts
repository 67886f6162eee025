import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { NetworkCache } from '../../src/networks/cache.js';
import type { Embedding } from '../../src/networks/embeddings/embedding.js';
import { saveEmbeddingPt } from '../../src/networks/embeddings/save.js';
import { float32 } from '../../src/tensor.js';

function embeddingBytes(seed: number, n = 2, width = 16): Uint8Array {
  const e: Embedding = {
    name: 'x',
    vec: float32([n, width], Float32Array.from({ length: n * width }, (_, i) => Math.sin(i + seed))),
    vectors: n,
    width,
    step: seed,
    sdCheckpoint: null,
    sdCheckpointName: null,
    filename: 'x.pt',
    hash: '',
    shorthash: '',
  };
  return saveEmbeddingPt(e);
}

test('the cache parses each (content, name) once and keeps names apart', async () => {
  const cache = new NetworkCache();
  const bytes = embeddingBytes(1);
  const a = await cache.embedding(bytes, 'jobs/1/style.pt');
  const b = await cache.embedding(Uint8Array.from(bytes), 'jobs/2/style.pt');
  assert.equal(a, b, 'same content and file name: the same parsed object');
  assert.equal(cache.misses, 1);
  assert.equal(cache.hits, 1);
  const c = await cache.embedding(bytes, 'other.pt');
  assert.equal(c.name, 'other');
  assert.equal(a.name, 'style');
  assert.equal(cache.size, 2);
});

test('the cache evicts the least recently used entries beyond its byte budget, and never caches failures', async () => {
  const perEntry = 2 * 16 * 4;
  const cache = new NetworkCache({ maxBytes: perEntry * 2 });
  const [x, y, z] = [embeddingBytes(1), embeddingBytes(2), embeddingBytes(3)];
  await cache.embedding(x, 'x.pt');
  await cache.embedding(y, 'y.pt');
  await cache.embedding(x, 'x.pt'); // x is now the most recent
  await cache.embedding(z, 'z.pt'); // evicts y
  assert.equal(cache.size, 2);
  assert.equal(cache.bytes, perEntry * 2);
  const misses = cache.misses;
  await cache.embedding(x, 'x.pt');
  assert.equal(cache.misses, misses, 'x stayed');
  await cache.embedding(y, 'y.pt');
  assert.equal(cache.misses, misses + 1, 'y was evicted');
  const bad = new TextEncoder().encode('not a torch file');
  const before = cache.misses;
  await assert.rejects(cache.embedding(bad, 'bad.pt'), (e: unknown) => isDarkroomError(e, 'TORCH_BAD_FORMAT'));
  await assert.rejects(cache.embedding(bad, 'bad.pt'), (e: unknown) => isDarkroomError(e, 'TORCH_BAD_FORMAT'));
  assert.equal(cache.misses, before + 2, 'a failed load is retried, not served from the cache');
  assert.ok(cache.size <= 2);
});
