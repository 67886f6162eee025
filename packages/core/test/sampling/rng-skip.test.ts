import test from 'node:test';
import assert from 'node:assert/strict';
import { createGenerator, ImageRNG, type NoiseSource } from '../../src/sampling/rng/image-rng.js';
import { philox4x32, philoxNormalsPortable, philoxRoundKeys, PhiloxGenerator } from '../../src/sampling/rng/philox.js';

const SOURCES: NoiseSource[] = ['nv', 'cpu', 'cpu-portable'];

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

test('generator skip(n) leaves the stream where randn(n) would', () => {
  for (const source of SOURCES) {
    // 20 and 7: the vectorized path's 16-element tail and the scalar (cached second normal) path
    for (const n of [16384, 20, 7, 1]) {
      const drawn = createGenerator(source, 4077357776);
      const skipped = createGenerator(source, 4077357776);
      drawn.randn(n);
      skipped.skip(n);
      for (const next of [n, 33, 5]) {
        assert.ok(sameBits(drawn.randn(next), skipped.randn(next)), `${source}: skip(${n}) then randn(${next})`);
      }
    }
  }
});

test('mt19937 skip crosses a twist boundary exactly', () => {
  const drawn = createGenerator('cpu', 7);
  const skipped = createGenerator('cpu', 7);
  for (let i = 0; i < 3; i++) {
    drawn.randn(1000);
    skipped.skip(1000);
  }
  assert.ok(sameBits(drawn.randn(640), skipped.randn(640)));
});

test('ImageRNG.skip advances every item generator as next() does, ENSD included', () => {
  for (const source of SOURCES) {
    const opts = { shape: [4, 8, 8] as const, seeds: [11, 4077357776], source, ensd: 31337 };
    const drawn = new ImageRNG(opts);
    const skipped = new ImageRNG(opts);
    // skip before the first draw is the initial noise (which re-seeds for ENSD)
    drawn.next();
    skipped.skip();
    assert.ok(sameBits(drawn.next().data, skipped.next().data), `${source}: after skipping the initial noise`);
    drawn.next();
    skipped.skip();
    drawn.next();
    skipped.skip();
    assert.ok(sameBits(drawn.next().data, skipped.next().data), `${source}: after two skipped step draws`);
  }
});

test('Philox randn agrees with the scalar philox4x32 round function at any offset', () => {
  const g = new PhiloxGenerator(0x1234_5678_9abcn);
  const k0 = 0x5678_9abc;
  const k1 = 0x1234;
  for (const offset of [0, 1, 0x7fffffff, 0xfffffffe]) {
    g.offset = offset;
    const draw = g.randn(300);
    for (const i of [0, 1, 2, 150, 299]) {
      const [x, y] = philox4x32(offset, 0, i, 0, k0, k1);
      const u = x * Math.fround(2.3283064e-10) + Math.fround(Math.fround(2.3283064e-10) / 2);
      const v = y * Math.fround(2.3283064e-10 * 6.2831855) + Math.fround(Math.fround(2.3283064e-10 * 6.2831855) / 2);
      assert.equal(draw[i], Math.fround(Math.sqrt(-2 * Math.log(u)) * Math.sin(v)), `offset ${offset} element ${i}`);
    }
  }
});

test('Philox: the WebAssembly rounds and the JavaScript rounds give the same normals', () => {
  for (const seed of [0, 4077357776, 0xffff_ffff_ffff_ffffn]) {
    const g = new PhiloxGenerator(seed);
    const s = BigInt.asUintN(64, BigInt(seed));
    const keys = philoxRoundKeys(Number(s & 0xffffffffn), Number(s >> 32n));
    for (const offset of [0, 5, 0xffffffff]) {
      g.offset = offset;
      const fast = g.randn(5000);
      const portable = new Float32Array(5000);
      philoxNormalsPortable(portable, offset, keys);
      assert.ok(sameBits(fast, portable), `seed ${seed} offset ${offset}`);
    }
  }
});
