import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import { parseMemoryMode } from '../../src/models/memory-mode.js';
import { SD1_CONFIG } from '../../src/model-files/reference-configs.js';
import { attentionMemory, estimateJobMemory } from '../../src/pipeline/memory-estimate.js';
import { Engine } from '../../src/pipeline/engine.js';
import { decodePng } from '../../src/formats/png.js';

test('memory modes: names and A1111 flags', () => {
  assert.equal(parseMemoryMode('normal'), 'normal');
  assert.equal(parseMemoryMode('--medvram'), 'medvram');
  assert.equal(parseMemoryMode('MedVRAM'), 'medvram');
  assert.equal(parseMemoryMode('medvram-sdxl'), 'medvram');
  assert.equal(parseMemoryMode('--lowvram'), 'lowvram');
  assert.throws(() => parseMemoryMode('tiny'), (e: unknown) => isDarkroomError(e, 'MEMORY_MODE_UNKNOWN'));
});

test('lowvram runs the UNet in three slices, one session resident at a time, and renders the same image', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'darkroom-lowvram-'));
  const request = { prompt: 'a lighthouse', negative_prompt: 'fog', steps: 2, seed: 11, width: 64, height: 64, sampler_name: 'Euler a' };
  const normal = new Engine({ root: repoRoot, cacheDir, threads: 1 });
  const lowvram = new Engine({ root: repoRoot, cacheDir, threads: 1, memoryMode: 'lowvram' });
  try {
    const a = await normal.txt2img(request);
    const unetCalls: number[] = [];
    const b = await lowvram.txt2img(request, { trace: { onUnetCall: (c: { x: { shape: readonly number[] } }) => void unetCalls.push(c.x.shape[0]!) } });
    assert.ok(unetCalls.length >= 2);
    const pa = decodePng(a.images[0]!).data;
    const pb = decodePng(b.images[0]!).data;
    let worst = 0;
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i]! - pb[i]!));
    assert.ok(worst <= 1, `max difference ${worst} of 255`);
    assert.equal(b.infotexts[0], a.infotexts[0]);
    const { sd, release } = await lowvram.acquireForTraining();
    try {
      assert.deepEqual(sd.openSessions(), { vae_decoder: 1 }, 'the UNet slices were released as the decoder opened');
    } finally {
      release();
    }
  } finally {
    await normal.close();
    await lowvram.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('medvram keeps one component resident and renders the same pixels as normal', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'darkroom-medvram-'));
  const request = { prompt: 'a lighthouse', negative_prompt: 'fog', steps: 2, seed: 11, width: 64, height: 64, sampler_name: 'Euler a' };
  const normal = new Engine({ root: repoRoot, cacheDir, threads: 1 });
  const medvram = new Engine({ root: repoRoot, cacheDir, threads: 1, memoryMode: 'medvram' });
  try {
    const a = await normal.txt2img(request);
    const b = await medvram.txt2img(request);
    assert.deepEqual(Buffer.from(b.images[0]!), Buffer.from(a.images[0]!), 'same PNG bytes');
    assert.equal(b.infotexts[0], a.infotexts[0], 'the mode is not written into the infotext');

    const held = async (engine: Engine) => {
      const { sd, release } = await engine.acquireForTraining();
      try {
        return sd.openSessions();
      } finally {
        release();
      }
    };
    // after a render the normal engine keeps text encoder, UNet and decoder open; medvram only the last used
    assert.deepEqual(Object.keys(await held(normal)).sort(), ['text', 'unet', 'vae_decoder']);
    assert.deepEqual(await held(medvram), { vae_decoder: 1 });
    // a second render reopens what it needs and leaves one component again
    const c = await medvram.txt2img({ ...request, seed: 12 });
    assert.equal(c.images.length, 1);
    assert.deepEqual(await held(medvram), { vae_decoder: 1 });
  } finally {
    await normal.close();
    await medvram.close();
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('the memory estimate under medvram holds the largest session, not the sum', () => {
  const base = { config: SD1_CONFIG, width: 512, height: 512, batchSize: 1, attention: attentionMemory('auto', 'cpu') } as const;
  const normal = estimateJobMemory(base);
  const medvram = estimateJobMemory({ ...base, oneSessionResident: true });
  assert.ok(medvram.bytes < normal.bytes, `${medvram.bytes} < ${normal.bytes}`);
  // the UNet is the largest component: its weights and arena are all that is resident besides the fixed parts
  assert.equal(medvram.parts.unet.length, 1);
  assert.deepEqual(medvram.parts.vae, []);
  const saved = normal.bytes - medvram.bytes;
  // what medvram saves is at least the text encoder's and the decoder's weights (123M + 49M parameters, float32)
  assert.ok(saved > (123e6 + 49e6) * 4 * 0.9, `saved ${(saved / 2 ** 20).toFixed(0)} MiB`);
});
