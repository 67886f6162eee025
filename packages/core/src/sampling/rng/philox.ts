/**
 * A1111's "NV" noise source (modules/rng_philox.py): Philox4x32-10 counters turned into normals by Box-Muller,
 * imitating torch.randn on an NVIDIA GPU. Element i of a draw at offset o uses counter [o, 0, i, 0] and key
 * [seed low 32, seed high 32]; every draw advances the offset by one, whatever its size.
 */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32 values. */
function mulHi(a: number, b: number): number {
  const aH = a >>> 16;
  const aL = a & 0xffff;
  const bH = b >>> 16;
  const bL = b & 0xffff;
  const lo = aL * bL;
  const mid1 = aH * bL;
  const mid2 = aL * bH;
  const carry = ((lo >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  return (aH * bH + (mid1 >>> 16) + (mid2 >>> 16) + carry) >>> 0;
}

/** Philox4x32 with 10 rounds; returns the first two output words (the only ones A1111 uses). */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number] {
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulHi(c0, M0);
    const lo0 = Math.imul(c0, M0) >>> 0;
    const hi2 = mulHi(c2, M1);
    const lo2 = Math.imul(c2, M1) >>> 0;
    const n0 = (hi2 ^ c1 ^ k0) >>> 0;
    const n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0;
    c1 = lo2;
    c2 = n2;
    c3 = lo0;
  }
  return [c0, c1];
}

const f = Math.fround;
const TWO_POW32_INV = f(2.3283064e-10);
const TWO_POW32_INV_2PI = f(2.3283064e-10 * 6.2831855);
const HALF_INV = f(TWO_POW32_INV / 2);
const HALF_INV_2PI = f(TWO_POW32_INV_2PI / 2);

/** The NV generator: a seed (up to 64 bits) and the offset of the next draw. */
export class PhiloxGenerator {
  private readonly k0: number;
  private readonly k1: number;
  offset = 0;

  constructor(seed: number | bigint) {
    const s = BigInt.asUintN(64, BigInt(seed));
    this.k0 = Number(s & 0xffffffffn);
    this.k1 = Number(s >> 32n);
  }

  /** One draw of n normals (float64 Box-Muller as numpy computes it, rounded to float32). */
  randn(n: number): Float32Array {
    const out = new Float32Array(n);
    const o = this.offset >>> 0;
    for (let i = 0; i < n; i++) {
      const [x, y] = philox4x32(o, 0, i >>> 0, 0, this.k0, this.k1);
      const u = x * TWO_POW32_INV + HALF_INV;
      const v = y * TWO_POW32_INV_2PI + HALF_INV_2PI;
      out[i] = Math.sqrt(-2.0 * Math.log(u)) * Math.sin(v);
    }
    this.offset++;
    return out;
  }
}
