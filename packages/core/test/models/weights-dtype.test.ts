import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
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
