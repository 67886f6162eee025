import { test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { decodePng } from '../../src/formats/png.js';
import { DEMO_MODEL_CONFIG } from '../../src/model-files/reference-configs.js';
import { Engine } from '../../src/pipeline/engine.js';
import { attentionMemory, estimateJobMemory } from '../../src/pipeline/memory-estimate.js';

test('batch_cond_uncond false: cond and uncond rows go through the UNet apart, the image the same within float rounding', async () => {
  const engine = new Engine({ root: repoRoot, threads: 1 });
  const request = { prompt: 'a red kite', negative_prompt: 'rain', steps: 3, seed: 5, width: 64, height: 64, batch_size: 2, sampler_name: 'Euler' };
  const calls = (rows: number[]) => ({ trace: { onUnetCall: (i: { x: { shape: readonly number[] } }) => void rows.push(i.x.shape[0]!) } });
  try {
    const batchedRows: number[] = [];
    const apartRows: number[] = [];
    const batched = await engine.txt2img(request, calls(batchedRows));
    const apart = await engine.txt2img({ ...request, override_settings: { batch_cond_uncond: false } }, calls(apartRows));
    assert.deepEqual([...new Set(batchedRows)], [4], 'two images: cond and uncond of both in one call');
    assert.deepEqual([...new Set(apartRows)], [2], 'cond rows, then uncond rows');
    assert.equal(apartRows.length, 2 * batchedRows.length);
    for (let i = 0; i < 2; i++) {
      const a = decodePng(batched.images[i]!).data;
      const b = decodePng(apart.images[i]!).data;
      let worst = 0;
      for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
      assert.ok(worst <= 1, `image ${i}: max difference ${worst} of 255`);
    }
    assert.equal(apart.infotexts[0], batched.infotexts[0], 'not written into the infotext, as in A1111');
  } finally {
    await engine.close();
  }
});

test('the estimate of a sequential cond/uncond job counts half the UNet rows', () => {
  const base = { config: DEMO_MODEL_CONFIG, width: 512, height: 512, batchSize: 2, attention: attentionMemory('plain', 'cpu') } as const;
  const batched = estimateJobMemory(base);
  const apart = estimateJobMemory({ ...base, sequentialCondUncond: true });
  assert.ok(apart.parts.unet[0]! < batched.parts.unet[0]!);
  assert.ok(apart.parts.unet[0]! > batched.parts.unet[0]! / 3);
});
