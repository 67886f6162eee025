import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MT19937 } from '../../src/rng/mt19937.js';
import { TorchCpuGenerator } from '../../src/rng/torch-cpu.js';
import { PhiloxGenerator } from '../../src/sampling/rng/philox.js';
import { glibcCosf, glibcLogf, glibcSinf } from '../../src/rng/libm-f32.js';
import { log256, sincos256 } from '../../src/rng/avx-mathfun.js';
import {
  createGenerator,
  ImageRNG,
  noiseSourceFromA1111,
  randn,
  slerp,
} from '../../src/sampling/rng/image-rng.js';
import { float32 } from '../../src/tensor.js';
import { isDarkroomError } from '../../src/errors.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `#${i}: ${a[i]} vs ${b[i]}`);
};

test('mt19937 matches the reference sequence for the default seed 5489', () => {
  const mt = new MT19937(5489);
  assert.deepEqual([mt.nextU32(), mt.nextU32(), mt.nextU32()], [3499211612, 581869302, 3890346734]);
});

test('torch CPU randn: seed 0 gives torch.randn’s well-known first values, in both kernels', () => {
  const avx = new TorchCpuGenerator(0, 'avx2').randn(256);
  const portable = new TorchCpuGenerator(0, 'default').randn(256);
  close(avx.subarray(0, 4), [-1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.4338788092136383], 0);
  close(portable.subarray(0, 4), avx.subarray(0, 4), 3e-6);
  // the kernels differ only in the last bits
  close(portable, avx, 3e-6);
});

test('torch CPU randn uses only the low 32 bits of the seed', () => {
  assert.deepEqual(new TorchCpuGenerator(2 ** 32 + 7).randn(32), new TorchCpuGenerator(7).randn(32));
});

test('torch CPU randn recomputes the last block of 16 when numel is not a multiple of 16', () => {
  const g = new TorchCpuGenerator(42);
  const a = g.randn(20);
  const b = new TorchCpuGenerator(42).randn(16);
  // the first 4 values come from the first block, untouched by the tail recomputation
  close(a.subarray(0, 4), b.subarray(0, 4), 0);
  assert.notDeepEqual(a.subarray(4, 16), b.subarray(4, 16));
});

test('glibc float32 libm ports agree with the correctly rounded values to 1 ulp', () => {
  for (const x of [1e-7, 0.001, 0.3, 0.5, 0.9999999, 1]) {
    const ref = Math.fround(Math.log(Math.fround(x)));
    assert.ok(Math.abs(glibcLogf(Math.fround(x)) - ref) <= Math.abs(ref) * 2 ** -23 + 1e-45, `logf(${x})`);
  }
  for (const x of [0.001, 0.5, 1, 2, 3, 4.5, 6.2831855]) {
    const xf = Math.fround(x);
    assert.ok(Math.abs(glibcSinf(xf) - Math.sin(xf)) <= 1.2e-7, `sinf(${x})`);
    assert.ok(Math.abs(glibcCosf(xf) - Math.cos(xf)) <= 1.2e-7, `cosf(${x})`);
    const [s, c] = sincos256(xf, true);
    assert.ok(Math.abs(s - Math.sin(xf)) <= 3e-7 && Math.abs(c - Math.cos(xf)) <= 3e-7, `sincos256(${x})`);
  }
  assert.ok(Math.abs(log256(Math.fround(0.25), true) - Math.log(0.25)) <= 3e-7);
});

test('NV (Philox) source: the rng_philox docstring example (seed 0, 3x4) and one offset per draw', () => {
  const g = new PhiloxGenerator(0);
  close(
    g.randn(12),
    [
      -0.9246624112129211, -0.42534396052360535, -2.643845796585083, 0.14518387615680695, -0.12086650729179382,
      -0.5797256827354431, -0.6228513121604919, -0.32838714122772217, -1.0745420455932617, -0.3631440997123718,
      -1.6710504293441772, 2.265505075454712,
    ],
    0,
  );
  assert.equal(g.offset, 1);
  const second = g.randn(4);
  assert.notDeepEqual(Array.from(second), Array.from(new PhiloxGenerator(0).randn(4)));
});

test('NV keys use the full 64-bit seed (no 32-bit wrap), CPU wraps', () => {
  const big = 4294967295 + 31337;
  assert.notDeepEqual(new PhiloxGenerator(big).randn(8), new PhiloxGenerator(31336).randn(8));
  assert.deepEqual(createGenerator('cpu', big).randn(16), createGenerator('cpu', 31336).randn(16));
});

test('randn source names follow A1111 (GPU means what NV imitates)', () => {
  assert.equal(noiseSourceFromA1111('GPU'), 'nv');
  assert.equal(noiseSourceFromA1111('CPU'), 'cpu');
  assert.equal(noiseSourceFromA1111('CPU', { portableCpu: true }), 'cpu-portable');
  assert.throws(() => noiseSourceFromA1111('TPU'), (e) => isDarkroomError(e, 'RNG_UNKNOWN_SOURCE'));
});

test('ImageRNG: first() is draw 0 of each seed, next() the following draws, batch items independent', () => {
  const shape = [4, 8, 8] as const;
  const rng = new ImageRNG({ shape, seeds: [3, 9], source: 'cpu' });
  const first = rng.next();
  const second = rng.next();
  assert.deepEqual(first.shape, [2, 4, 8, 8]);
  const g3 = createGenerator('cpu', 3);
  const g9 = createGenerator('cpu', 9);
  assert.deepEqual(first.data.subarray(0, 256), g3.randn(256));
  assert.deepEqual(first.data.subarray(256), g9.randn(256));
  assert.deepEqual(second.data.subarray(0, 256), g3.randn(256));
  assert.deepEqual(second.data.subarray(256), g9.randn(256));
});

test('ImageRNG with ENSD: initial noise unchanged, step draws from seed + ENSD', () => {
  const shape = [4, 8, 8] as const;
  const rng = new ImageRNG({ shape, seeds: [42], source: 'nv', ensd: 31337 });
  assert.deepEqual(rng.next().data, randn('nv', 42, shape).data);
  const reseeded = createGenerator('nv', 42 + 31337);
  assert.deepEqual(rng.next().data, reseeded.randn(256));
  assert.deepEqual(rng.next().data, reseeded.randn(256));
});

test('ImageRNG variation seed: strength 0 ignores the subseed, the draw after first() is unaffected by it', () => {
  const shape = [4, 8, 8] as const;
  const plain = new ImageRNG({ shape, seeds: [5], source: 'cpu' });
  const zero = new ImageRNG({ shape, seeds: [5], subseeds: [6], subseedStrength: 0, source: 'cpu' });
  const some = new ImageRNG({ shape, seeds: [5], subseeds: [6], subseedStrength: 0.4, source: 'cpu' });
  const [p0, z0, s0] = [plain.next(), zero.next(), some.next()];
  assert.deepEqual(z0.data, p0.data);
  assert.notDeepEqual(s0.data, p0.data);
  assert.deepEqual(some.next().data, plain.next().data);
});

test('seed resize: a smaller source is pasted centred over the per-image draw, a larger one cropped', () => {
  // 64x64 px source (8x8 latent) into a 4x12x8 latent: rows 2..9 come from the source noise
  const rng = new ImageRNG({ shape: [4, 12, 8], seeds: [11], seedResizeFromH: 64, seedResizeFromW: 64, source: 'cpu' });
  const x = rng.next();
  const small = randn('cpu', 11, [4, 8, 8]);
  const full = randn('cpu', 11, [4, 12, 8]);
  for (let c = 0; c < 4; c++)
    for (let h = 0; h < 12; h++)
      for (let w = 0; w < 8; w++) {
        const got = x.data[(c * 12 + h) * 8 + w];
        const want = h >= 2 && h < 10 ? small.data[(c * 8 + h - 2) * 8 + w] : full.data[(c * 12 + h) * 8 + w];
        assert.equal(got, want, `c${c} h${h} w${w}`);
      }
  // 96x96 px source (12x12) into 8x8: the centre crop
  const crop = new ImageRNG({ shape: [4, 8, 8], seeds: [11], seedResizeFromH: 96, seedResizeFromW: 96, source: 'cpu' }).next();
  const big = randn('cpu', 11, [4, 12, 12]);
  assert.equal(crop.data[0], big.data[2 * 12 + 2]);
  assert.equal(crop.data[4 * 64 - 1], big.data[(3 * 12 + 9) * 12 + 9]);
});

test('slerp: val 0 is the low tensor, val 1 the high one, identical inputs take the swapped-weight lerp', () => {
  const low = randn('cpu', 1, [2, 8, 4]);
  const high = randn('cpu', 2, [2, 8, 4]);
  close(slerp(0, low, high).data, low.data, 1e-6);
  close(slerp(1, low, high).data, high.data, 1e-6);
  // low == high: dot = 1 > 0.9995, so A1111 returns low*val + high*(1 - val) = low
  const same = float32(low.shape, Float32Array.from(low.data));
  close(slerp(0.3, low, same).data, low.data, 1e-6);
});
