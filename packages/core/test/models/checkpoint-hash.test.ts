import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256File } from '../../src/model-files/checkpoint.js';

test('sha256File hashes the whole file across its 4 MiB reads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'darkroom-sha-'));
  try {
    const bytes = Buffer.from(Uint8Array.from({ length: (9 << 20) + 3 }, (_, i) => (i * 7919) & 0xff));
    const file = join(dir, 'model.safetensors');
    writeFileSync(file, bytes);
    assert.equal(await sha256File(file), createHash('sha256').update(bytes).digest('hex'));
    writeFileSync(file, '');
    assert.equal(await sha256File(file), createHash('sha256').digest('hex'));
    await assert.rejects(sha256File(join(dir, 'missing.safetensors')), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
