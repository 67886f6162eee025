import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyEmphasis, parseEmphasisMode } from '../../src/text/emphasis.js';

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
