import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { encodePng } from '@darkroom/core/formats/png.js';
import { loadEmbedding } from '@darkroom/core/networks/embeddings/load.js';
import { UsageError } from '../src/args.js';
import { parseTrainArgs } from '../src/train-args.js';

const bin = resolve(import.meta.dirname, '../bin/darkroom.js');

function images(dir: string, n: number): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const data = new Uint8Array(64 * 64 * 3);
    for (let p = 0; p < 64 * 64; p++) data.set((p % 64) < 20 + i * 6 ? [200, 40, 40] : [30, 30, 180], p * 3);
    writeFileSync(join(dir, `img${i}.png`), encodePng({ width: 64, height: 64, channels: 3, data }));
  }
  writeFileSync(join(dir, 'img0.txt'), 'red and blue halves');
}

test('train flags: A1111 defaults, bad values named', () => {
  const r = parseTrainArgs(['--name', 'x', '--data', 'd']);
  assert.equal(r.kind, 'embedding');
  assert.equal(r.learnRate, '0.005');
  assert.equal(r.initText, '*');
  assert.equal(parseTrainArgs(['--kind', 'hypernetwork', '--name', 'h', '--data', 'd']).learnRate, '0.00001');
  const bad = (argv: string[], re: RegExp): void => assert.throws(() => parseTrainArgs(argv), (e: unknown) => e instanceof UsageError && re.test(e.message));
  bad(['--name', 'x'], /--data/);
  bad(['--name', 'x', '--data', 'd', '--batch-size', '0'], /--batch-size/);
  bad(['--name', 'x', '--data', 'd', '--latent-sampling', 'sometimes'], /--latent-sampling/);
  bad(['--name', 'x', '--data', 'd', '--clip-grad-mode', 'max'], /--clip-grad-mode/);
});

test('darkroom train: A1111 files, a resumable checkpoint, and the same vectors after stop and resume', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'darkroom-train-cli-'));
  try {
    images(join(dir, 'data'), 3);
    const args = ['train', '--name', 'halves', '--data', join(dir, 'data'), '--steps', '8', '--save-every', '4', '--seed', '3'];
    const whole = spawnSync(process.execPath, [bin, ...args, '--out', join(dir, 'a')], { encoding: 'utf8' });
    assert.equal(whole.status, 0, whole.stderr);
    assert.match(whole.stdout, /trained halves to step 8/);
    assert.deepEqual(readdirSync(join(dir, 'a')).sort(), [
      'checkpoint.safetensors', 'halves-4.pt', 'halves-4.pt.optim', 'halves-4.safetensors', 'halves-8.pt', 'halves-8.pt.optim',
      'halves-8.safetensors', 'halves.pt', 'halves.pt.optim', 'halves.safetensors', 'textual_inversion_loss.csv',
    ]);

    // The first half as its own run (max steps 4 stops there), then resumed from its checkpoint to 8.
    const half = spawnSync(process.execPath, [bin, ...args.slice(0, -4), '--steps', '4', '--save-every', '4', '--seed', '3', '--out', join(dir, 'b')], { encoding: 'utf8' });
    assert.equal(half.status, 0, half.stderr);
    const rest = spawnSync(process.execPath, [bin, ...args, '--out', join(dir, 'b'), '--resume', join(dir, 'b', 'checkpoint.safetensors')], { encoding: 'utf8' });
    assert.equal(rest.status, 0, rest.stderr);
    const x = await loadEmbedding(new Uint8Array(readFileSync(join(dir, 'a', 'halves.pt'))), 'halves.pt');
    const y = await loadEmbedding(new Uint8Array(readFileSync(join(dir, 'b', 'halves.pt'))), 'halves.pt');
    assert.equal(y.step, 8);
    assert.deepEqual(Array.from(y.vec.data), Array.from(x.vec.data));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('darkroom train: a bad schedule is an error naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'darkroom-train-cli-'));
  try {
    images(join(dir, 'data'), 2);
    const r = spawnSync(process.execPath, [bin, 'train', '--name', 'x', '--data', join(dir, 'data'), '--learn-rate', '0.1:abc', '--out', join(dir, 'o')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /TRAINING_SCHEDULE_INVALID.*learn_rate/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
