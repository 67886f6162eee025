import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { parseSafetensors } from '../../src/formats/safetensors.js';
import { applyEmphasis, parseEmphasisMode } from '../../src/text/emphasis.js';
import { torchSumF32 } from '../../src/text/torch-sum.js';

test('Original restores the mean of the whole batch; No norm only scales; None/Ignore copy', () => {
  // two texts of 2 tokens x 2 channels
  const z = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const m = [1, 2, 1, 0.5];
  const noNorm = applyEmphasis('No norm', z, [2, 2, 2], m);
  assert.deepEqual(Array.from(noNorm), [1, 2, 6, 8, 5, 6, 3.5, 4]);
  const orig = applyEmphasis('Original', z, [2, 2, 2], m);
  const mean = (a: Float32Array): number => a.reduce((s, x) => s + x, 0) / a.length;
  assert.ok(Math.abs(mean(orig) - mean(z)) < 1e-6, 'mean over the batch is restored');
  const ratio = mean(z) / mean(noNorm);
  orig.forEach((v, i) => assert.ok(Math.abs(v - noNorm[i]! * ratio) < 1e-5));
  assert.deepEqual(Array.from(applyEmphasis('None', z, [2, 2, 2], m)), Array.from(z));
  assert.notEqual(applyEmphasis('Ignore', z, [2, 2, 2], m), z, 'a copy, not the input');
  assert.throws(() => applyEmphasis('Original', z, [2, 2, 2], [1, 1]), { code: 'EMPHASIS_SHAPE' });
  assert.equal(parseEmphasisMode('No norm'), 'No norm');
  assert.throws(() => parseEmphasisMode('no_norm'), { code: 'EMPHASIS_UNKNOWN' });
});

test('torch-order float32 sum: exact on integers, differs from naive float32 accumulation where torch does', () => {
  const ints = Float32Array.from({ length: 2464 }, (_, i) => (i % 7) - 3);
  assert.equal(torchSumF32(ints), ints.reduce((s, x) => s + x, 0));
  assert.equal(torchSumF32(new Float32Array(0)), 0);
  assert.equal(torchSumF32(Float32Array.from([1, 2, 3])), 6, 'shorter than one vector: scalar tail only');
  // 1 + many tiny values: sequential float32 accumulation loses them, torch's 8 lanes x 4 accumulators keep some
  const x = new Float32Array(4096).fill(2 ** -24);
  x[0] = 1;
  let naive = 0;
  for (const v of x) naive = Math.fround(naive + v);
  assert.equal(naive, 1);
  assert.ok(torchSumF32(x) > 1);
});

const pipelineDir = join(oracleRoot(), 'pipeline');
const havePipeline = existsSync(join(pipelineDir, 'cases.json'));

test('Original emphasis is bitwise what A1111 computed in every pipeline oracle text call', { skip: havePipeline ? false : 'pipeline oracle absent' }, () => {
  const data = JSON.parse(readFileSync(join(pipelineDir, 'cases.json'), 'utf-8')) as {
    cases: { id: string; text_encoder_calls: { chunks: { multipliers: number[][] }[] }[] }[];
  };
  let checked = 0;
  for (const c of data.cases) {
    const { tensors } = parseSafetensors(readFileSync(join(pipelineDir, `${c.id}.safetensors`)));
    c.text_encoder_calls.forEach((call, n) => {
      call.chunks.forEach((chunk, k) => {
        const raw = tensors.get(`text${n}.chunk${k}.z_raw`);
        const want = tensors.get(`text${n}.chunk${k}.z`);
        if (!raw || !want) return;
        const shape = raw.shape as [number, number, number];
        const out = applyEmphasis('Original', raw.data as Float32Array, shape, chunk.multipliers.flat());
        assert.deepEqual(out, want.data, `${c.id} text${n} chunk${k}`);
        checked++;
      });
    });
  }
  assert.ok(checked > 0);
});
