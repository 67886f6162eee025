import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import { loadModel } from '../../src/models/load.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import type { Float32Tensor } from '../../src/tensor.js';
import { checkWeightsDtype, parseWeightsDtype } from '../../src/models/weights-dtype.js';
import { Engine } from '../../src/pipeline/engine.js';

test('weights dtype: names, short names and A1111\'s --no-half', () => {
  assert.equal(parseWeightsDtype('float16'), 'float16');
  assert.equal(parseWeightsDtype('FP16'), 'float16');
  assert.equal(parseWeightsDtype('half'), 'float16');
  assert.equal(parseWeightsDtype('float32'), 'float32');
  assert.equal(parseWeightsDtype('--no-half'), 'float32');
  assert.throws(() => parseWeightsDtype('bf16'), (e: unknown) => isDarkroomError(e, 'WEIGHTS_DTYPE_UNKNOWN'));
});

test('float16 weights are refused on the CPU provider, at the engine\'s creation; GPU providers and float32 pass', () => {
  assert.throws(() => checkWeightsDtype('float16', 'cpu'), (e: unknown) =>
    isDarkroomError(e, 'WEIGHTS_DTYPE_UNSUPPORTED') && /GPU provider/.test((e as Error).message));
  assert.throws(() => new Engine({ weightsDtype: 'float16' }), (e: unknown) => isDarkroomError(e, 'WEIGHTS_DTYPE_UNSUPPORTED'));
  checkWeightsDtype('float16', 'cuda');
  checkWeightsDtype('float16', 'webgpu');
  checkWeightsDtype('float32', 'cpu');
  // made, not run: no session opens before the first job
  new Engine({ weightsDtype: 'float16', provider: 'cuda' });
});

test('the float16 graph (float32 in and out) runs on the CPU provider within half-precision tolerance of float32', async () => {
  const demo = await ensureDemoModel(repoRoot);
  const cacheDir = mkdtempSync(join(tmpdir(), 'darkroom-fp16-'));
  const x: Float32Tensor = { dtype: 'float32', shape: [2, 4, 16, 16], data: Float32Array.from({ length: 2 * 4 * 16 * 16 }, (_, i) => Math.sin(i)) };
  try {
    const outs: Float32Tensor[] = [];
    for (const fp16 of [false, true]) {
      const model = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir, fp16, threads: 1 });
      const width = model.config.unet.contextDim;
      const context: Float32Tensor = { dtype: 'float32', shape: [2, 77, width], data: Float32Array.from({ length: 2 * 77 * width }, (_, i) => 0.5 * Math.cos(i)) };
      outs.push(await model.unet.run(x, Float32Array.of(500, 500), context));
      await model.release();
    }
    const [full, half] = outs as [Float32Tensor, Float32Tensor];
    assert.equal(half.dtype, 'float32');
    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < full.data.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(half.data[i]! - full.data[i]!));
      maxRef = Math.max(maxRef, Math.abs(full.data[i]!));
    }
    assert.ok(maxDiff / maxRef < 1e-2, `max|fp16-fp32|/max|fp32| = ${maxDiff / maxRef}`);
    // and it really computed in half: a float32 graph would agree to about 1e-6
    assert.ok(maxDiff / maxRef > 1e-5, `suspiciously exact for float16 (${maxDiff / maxRef})`);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
