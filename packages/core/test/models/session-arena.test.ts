import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { sessionArena } from '../../src/models/memory-mode.js';
import { Engine } from '../../src/pipeline/engine.js';

test('the CPU arena is kept in normal mode and dropped in medvram and lowvram', () => {
  assert.equal(sessionArena('normal'), true);
  assert.equal(sessionArena('medvram'), false);
  assert.equal(sessionArena('lowvram'), false);
});

test('sessions without the CPU arena and memory pattern render the same image, byte for byte', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'darkroom-arena-'));
  // two steps: the memory pattern is planned on a shape's second run
  const request = { prompt: 'a lighthouse', negative_prompt: 'fog', steps: 2, seed: 11, width: 64, height: 64 };
  const withArena = new Engine({ root: repoRoot, cacheDir, threads: 1 });
  const without = new Engine({ root: repoRoot, cacheDir, threads: 1, cpuMemArena: false });
  try {
    const a = await withArena.txt2img(request);
    const b = await without.txt2img(request);
    assert.deepEqual(Buffer.from(b.images[0]!), Buffer.from(a.images[0]!));
  } finally {
    await withArena.close();
    await without.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
