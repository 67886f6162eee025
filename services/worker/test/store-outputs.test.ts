import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, FolderStorage } from '@darkroom/farm';
import { OutputsAbandoned, storeOutputs } from '../src/store-outputs.js';

const log = createLogger('test', 'silent');
const png = (n: number) => new Uint8Array([0x89, 0x50, 0x4e, 0x47, n]);
const writes = [{ key: 'outputs/t/j/0.png', bytes: png(0) }, { key: 'outputs/t/j/1.png', bytes: png(1) }];

/**
 * Folder storage made unwritable for real: `outputs` is a file where a folder must go, so every write fails
 * (ENOTDIR/EEXIST) until the file is removed, as a volume that went away and came back.
 */
async function brokenFolder(): Promise<{ storage: FolderStorage; root: string; repair: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'darkroom-store-'));
  await writeFile(join(root, 'outputs'), 'not a folder');
  return { storage: new FolderStorage(root), root, repair: () => rm(join(root, 'outputs')) };
}

test('outputs wait while storage fails and are written once when it is back', async () => {
  const { storage, root, repair } = await brokenFolder();
  try {
    setTimeout(() => void repair(), 700);
    const t0 = Date.now();
    await storeOutputs({ storage, writes, windowMs: 10_000, log, cancelled: async () => false });
    assert.ok(Date.now() - t0 >= 600, 'it waited for storage');
    assert.deepEqual((await readdir(join(root, 'outputs', 't', 'j'))).sort(), ['0.png', '1.png'], 'one copy each, no temp files');
    assert.deepEqual(await storage.get('outputs/t/j/1.png'), png(1));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('past the window the attempt fails with STORAGE_UNAVAILABLE; a cancel drops the outputs', async () => {
  const { storage, root } = await brokenFolder();
  try {
    const t0 = Date.now();
    await assert.rejects(storeOutputs({ storage, writes, windowMs: 600, log, cancelled: async () => false }), /^Error: STORAGE_UNAVAILABLE: /);
    assert.ok(Date.now() - t0 < 2_000);
    let asked = 0;
    await assert.rejects(storeOutputs({ storage, writes, windowMs: 10_000, log, cancelled: async () => ++asked >= 2 }), OutputsAbandoned);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
