import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { toHalf } from '../../src/models/layers.js';
import { float32, type HostTensor, toFloat32 } from '../../src/tensor.js';
import { averageCheckpoints } from '../../src/training/checkpoint-average.js';

const ids = (values: number[]): HostTensor => ({ dtype: 'int64', shape: [values.length], data: BigInt64Array.from(values.map(BigInt)) });

test('every float weight becomes (1 - w) a + w b, float16 kept float16; integer tensors pass through', () => {
  const a = new Map<string, HostTensor>([
    ['unet.w', float32([2, 2], Float32Array.from([0, 1, -2, 4]))],
    ['text.w', toHalf(float32([3], Float32Array.from([1, 2, 3])))],
    ['text.position_ids', ids([0, 1, 2])],
  ]);
  const b = new Map<string, HostTensor>([
    ['unet.w', float32([2, 2], Float32Array.from([10, 1, 2, 0]))],
    ['text.w', toHalf(float32([3], Float32Array.from([3, 2, 1])))],
    ['text.position_ids', ids([0, 1, 2])],
  ]);
  const avg = averageCheckpoints(a, b, 0.25);
  assert.deepEqual([...avg.keys()], [...a.keys()], 'the first checkpoint\'s order');
  assert.deepEqual([...avg.get('unet.w')!.data], [2.5, 1, -1, 3]);
  const half = avg.get('text.w')!;
  assert.equal(half.dtype, 'float16');
  assert.deepEqual([...toFloat32(half).data], [1.5, 2, 2.5]);
  assert.equal(avg.get('text.position_ids'), a.get('text.position_ids'));
  // The ends are the checkpoints themselves.
  assert.deepEqual([...averageCheckpoints(a, b, 0).get('unet.w')!.data], [0, 1, -2, 4]);
  assert.deepEqual([...averageCheckpoints(a, b, 1).get('unet.w')!.data], [10, 1, 2, 0]);
});

test('two checkpoints that are not one model, or a weight outside [0, 1], are refused by code', () => {
  const a = new Map<string, HostTensor>([['w', float32([2], Float32Array.from([1, 2]))], ['ids', ids([0, 1])]]);
  const refused = (b: Map<string, HostTensor>, weight: number, code: string) => assert.throws(
    () => averageCheckpoints(a, b, weight),
    (e: unknown) => isDarkroomError(e, code),
  );
  refused(new Map([['w', float32([2], Float32Array.from([1, 2]))]]), 0.5, 'AVERAGE_MISMATCH');
  refused(new Map([['w', float32([1, 2], Float32Array.from([1, 2]))], ['ids', ids([0, 1])]]), 0.5, 'AVERAGE_MISMATCH');
  refused(new Map([['w', float32([2], Float32Array.from([1, 2]))], ['ids', ids([1, 0])]]), 0.5, 'AVERAGE_MISMATCH');
  refused(new Map(a), 1.5, 'AVERAGE_BAD_WEIGHT');
  refused(new Map(a), Number.NaN, 'AVERAGE_BAD_WEIGHT');
});
