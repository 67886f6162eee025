import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floatToHalf, halfToFloat, bfloat16ToFloat, toFloat32, float32 } from '../src/tensor.js';

test('half conversion round-trips every finite half value exactly', () => {
  for (let h = 0; h < 0x10000; h++) {
    const exp = (h >> 10) & 0x1f;
    if (exp === 0x1f) continue;
    const v = halfToFloat(h);
    const back = floatToHalf(v);
    // +0 and -0 keep their sign bit
    assert.equal(back, h, `half 0x${h.toString(16)} -> ${v} -> 0x${back.toString(16)}`);
  }
});

test('floatToHalf rounds to nearest even and saturates to infinity', () => {
  assert.equal(halfToFloat(floatToHalf(1 + 2 ** -11)), 1); // tie, rounds to even (1.0)
  assert.equal(halfToFloat(floatToHalf(1 + 3 * 2 ** -11)), 1 + 2 ** -9);
  assert.equal(halfToFloat(floatToHalf(70000)), Infinity);
  assert.equal(halfToFloat(floatToHalf(2 ** -25)), 0);
});

test('bfloat16 is the top half of a float32', () => {
  assert.equal(bfloat16ToFloat(0x3f80), 1);
  assert.equal(bfloat16ToFloat(0xc000), -2);
  const t = toFloat32({ dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0x4040]) });
  assert.deepEqual([...t.data], [1, 3]);
});

test('toFloat32 gives halfToFloat and bfloat16ToFloat of every bit pattern (the fast paths change no value)', () => {
  const all = Uint16Array.from({ length: 0x10000 }, (_, i) => i);
  const half = toFloat32({ dtype: 'float16', shape: [0x10000], data: all }).data;
  const bf16 = toFloat32({ dtype: 'bfloat16', shape: [0x10000], data: all }).data;
  const one = new Float32Array(1);
  for (let h = 0; h < 0x10000; h++) {
    one[0] = halfToFloat(h);
    assert.ok(Object.is(half[h], one[0]), `half 0x${h.toString(16)}: ${half[h]} vs ${one[0]}`);
    one[0] = bfloat16ToFloat(h);
    assert.ok(Object.is(bf16[h], one[0]), `bfloat16 0x${h.toString(16)}: ${bf16[h]} vs ${one[0]}`);
  }
});

test('float32 refuses data of the wrong length', () => {
  assert.throws(() => float32([2, 3], new Float32Array(5)), /needs 6 values/);
});
