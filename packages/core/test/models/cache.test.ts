import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { BuiltModel } from '../../src/graph/ir.js';
import { CompileCache, cachedFact, cachedFileHash, graphKeyHash } from '../../src/models/cache.js';

function fakeModel(weights: Uint8Array, tag: string): BuiltModel {
  return {
    bytes: new TextEncoder().encode(`model ${tag}`),
    externalData: [
      { path: '00001_w.bin', data: weights },
      { path: '00002_small.bin', data: new Uint8Array([1, 2, 3]) },
    ],
    inputs: ['x'],
    outputs: [tag],
  };
}

test('entries are built once per key; big weight files are shared between entries', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-cache-'));
  try {
    const cache = new CompileCache(dir);
    const weights = new Uint8Array(200_000).map((_, i) => i % 251);
    const keyA = { weights: 'abc', component: 'unet', options: { height: 64 } };
    const keyB = { weights: 'abc', component: 'unet', options: { height: 96 } };
    assert.notEqual(graphKeyHash(keyA), graphKeyHash(keyB));
    assert.equal(graphKeyHash(keyA), graphKeyHash({ component: 'unet', options: { height: 64 }, weights: 'abc' }));

    let builds = 0;
    const a = await cache.getOrBuild(keyA, () => (builds++, fakeModel(weights, 'a')));
    const again = await cache.getOrBuild(keyA, () => (builds++, fakeModel(weights, 'a')));
    const b = await cache.getOrBuild(keyB, () => (builds++, fakeModel(weights, 'b')));
    assert.equal(builds, 2);
    assert.equal(cache.builds, 2);
    assert.deepEqual([a.built, again.built, b.built], [true, false, true]);
    assert.equal(again.path, a.path);
    assert.equal(readFileSync(a.path, 'utf8'), 'model a');

    const wa = statSync(join(dirname(a.path), '00001_w.bin'));
    const wb = statSync(join(dirname(b.path), '00001_w.bin'));
    assert.equal(wa.ino, wb.ino, 'the weight file is one file on disk');
    assert.equal(wa.size, 200_000);
    assert.deepEqual([...readFileSync(join(dirname(b.path), '00002_small.bin'))], [1, 2, 3]);
    assert.equal(readdirSync(join(dir, 'blobs')).length, 1);

    // A fresh cache object (another process) finds the entries on disk.
    const other = new CompileCache(dir);
    const found = await other.getOrBuild(keyB, () => {
      throw new Error('must not build');
    });
    assert.equal(found.built, false);
    assert.equal(other.builds, 0);
    assert.deepEqual((await other.meta(keyB))?.outputs, ['b']);
    // No temporary folders are left behind.
    assert.ok(readdirSync(join(dir, 'graphs')).every((n) => !n.includes('.tmp-')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a failed build leaves no entry, and concurrent requests for one key build once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-cache-'));
  try {
    const cache = new CompileCache(dir);
    const key = { weights: 'w', component: 'text', options: {} };
    await assert.rejects(cache.getOrBuild(key, () => Promise.reject(new Error('boom'))), /boom/);
    assert.ok(!existsSync(cache.pathFor(key)));
    let builds = 0;
    const model = fakeModel(new Uint8Array(10), 't');
    const [p, q] = await Promise.all([
      cache.getOrBuild(key, async () => (builds++, model)),
      cache.getOrBuild(key, async () => (builds++, model)),
    ]);
    assert.equal(builds, 1);
    assert.equal(p.path, q.path);
    assert.equal(await cachedFact(dir, 'x.parameterization', async () => 'v'), 'v');
    assert.equal(await cachedFact(dir, 'x.parameterization', async () => 'eps'), 'v');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a checkpoint is hashed once while it stays the same file, and again once it is written to, mtime set back or not', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-hash-cache-'));
  try {
    const file = join(dir, 'model.safetensors');
    writeFileSync(file, 'weights one');
    const mtime = 1_700_000_000; // whole seconds, so setting it back is exact
    utimesSync(file, mtime, mtime);
    let computed = 0;
    const hash = (p: string) => cachedFileHash(join(dir, 'cache'), p, async () => String(++computed).padStart(64, '0'));
    assert.equal(await hash(file), '1'.padStart(64, '0'));
    assert.equal(await hash(file), '1'.padStart(64, '0'));
    assert.equal(computed, 1, 'the second start reads the remembered hash');

    // same size, same mtime: only the change time tells
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(file, 'weights two');
    utimesSync(file, mtime, mtime);
    assert.equal(statSync(file).mtimeMs, mtime * 1000);
    assert.equal(await hash(file), '2'.padStart(64, '0'));
    assert.equal(computed, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
