/**
 * A1111's "NV" noise source (modules/rng_philox.py): Philox4x32-10 counters turned into normals by Box-Muller,
 * imitating torch.randn on an NVIDIA GPU. Element i of a draw at offset o uses counter [o, 0, i, 0] and key
 * [seed low 32, seed high 32]; every draw advances the offset by one, whatever its size.
 */
import { philoxWords } from './philox-wasm.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

// The multipliers split into 16-bit halves: a * half < 2^48 stays exact in a float64.
const M0_HI = M0 >>> 16;
const M0_LO = M0 & 0xffff;
const M1_HI = M1 >>> 16;
const M1_LO = M1 & 0xffff;
const TWO_POW16 = 65536;

/**
 * High 32 bits of a * M for a uint32 `a` and M = hi * 2^16 + lo: floor((a*hi + floor(a*lo / 2^16)) / 2^16),
 * every intermediate below 2^49, so the float64 arithmetic is exact.
 */
function mulHiConst(a: number, mHi: number, mLo: number): number {
  return Math.floor((a * mHi + Math.floor((a * mLo) / TWO_POW16)) / TWO_POW16);
}

/** Philox4x32 with 10 rounds; returns the first two output words (the only ones A1111 uses). */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number] {
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulHiConst(c0, M0_HI, M0_LO);
    const lo0 = Math.imul(c0, M0) >>> 0;
    const hi2 = mulHiConst(c2, M1_HI, M1_LO);
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

/** The key of each of the 10 rounds for key [k0, k1], interleaved, as int32 bit patterns. */
export function philoxRoundKeys(k0: number, k1: number): Int32Array {
  const keys = new Int32Array(20);
  for (let r = 0; r < 10; r++) {
    keys[2 * r] = (k0 + Math.imul(r, W0)) | 0;
    keys[2 * r + 1] = (k1 + Math.imul(r, W1)) | 0;
  }
  return keys;
}

/**
 * One draw at `offset` with Philox rounds in JavaScript (where WebAssembly is unavailable): the same words as
 * the WebAssembly kernel, so the same normals.
 */
export function philoxNormalsPortable(out: Float32Array, offset: number, keys: Int32Array): void {
  const n = out.length;
  const o = offset >>> 0;
  // Round 1 sees the same c0 = o, c1 = c3 = 0 for every element: its o-dependent half is shared.
  const firstHi0 = mulHiConst(o, M0_HI, M0_LO);
  const firstLo0 = Math.imul(o, M0) | 0;
  const k0r0 = keys[0]!;
  const k1r0 = keys[1]!;
  for (let i = 0; i < n; i++) {
    // round 1 with c = [o, 0, i, 0]; words kept as int32 bit patterns, unsigned only where multiplied
    let c0 = mulHiConst(i, M1_HI, M1_LO) ^ k0r0;
    let c1 = Math.imul(i, M1);
    let c2 = firstHi0 ^ k1r0;
    let c3 = firstLo0;
    for (let r = 1; r < 10; r++) {
      // mulHi(c0, M0) and mulHi(c2, M1) from 16-bit partial products (each below 2^32), inlined: this loop is
      // most of a draw's time
      const a0L = c0 & 0xffff;
      const a0H = c0 >>> 16;
      const p0 = a0L * M0_LO;
      const q0 = a0H * M0_LO;
      const s0 = a0L * M0_HI;
      const hi0 = a0H * M0_HI + (q0 >>> 16) + (s0 >>> 16) + (((p0 >>> 16) + (q0 & 0xffff) + (s0 & 0xffff)) >>> 16);
      const a2L = c2 & 0xffff;
      const a2H = c2 >>> 16;
      const p2 = a2L * M1_LO;
      const q2 = a2H * M1_LO;
      const s2 = a2L * M1_HI;
      const hi2 = a2H * M1_HI + (q2 >>> 16) + (s2 >>> 16) + (((p2 >>> 16) + (q2 & 0xffff) + (s2 & 0xffff)) >>> 16);
      const lo0 = Math.imul(c0, M0);
      const lo2 = Math.imul(c2, M1);
      c0 = hi2 ^ c1 ^ keys[2 * r]!;
      c2 = hi0 ^ c3 ^ keys[2 * r + 1]!;
      c1 = lo2;
      c3 = lo0;
    }
    const u = (c0 >>> 0) * TWO_POW32_INV + HALF_INV;
    const v = (c1 >>> 0) * TWO_POW32_INV_2PI + HALF_INV_2PI;
    out[i] = Math.sqrt(-2.0 * Math.log(u)) * Math.sin(v);
  }
}

/** The NV generator: a seed (up to 64 bits) and the offset of the next draw. */
export class PhiloxGenerator {
  private readonly k0: number;
  private readonly k1: number;
  /** The key of each of the 10 rounds (k0, k1 interleaved), computed once, for the JavaScript rounds. */
  private readonly roundKeys: Int32Array;
  offset = 0;

  constructor(seed: number | bigint) {
    const s = BigInt.asUintN(64, BigInt(seed));
    this.k0 = Number(s & 0xffffffffn);
    this.k1 = Number(s >> 32n);
    this.roundKeys = philoxRoundKeys(this.k0, this.k1);
  }

  /** One draw of n normals (float64 Box-Muller as numpy computes it, rounded to float32). */
  randn(n: number): Float32Array {
    const out = new Float32Array(n);
    this.fill(out);
    return out;
  }

  /** The next draw written into `out` (its length is the draw's size). */
  fill(out: Float32Array): void {
    const o = this.offset >>> 0;
    const words = philoxWords(o, this.k0, this.k1, out.length);
    if (words) {
      for (let i = 0, w = 0; i < out.length; i++, w += 2) {
        const u = words[w]! * TWO_POW32_INV + HALF_INV;
        const v = words[w + 1]! * TWO_POW32_INV_2PI + HALF_INV_2PI;
        out[i] = Math.sqrt(-2.0 * Math.log(u)) * Math.sin(v);
      }
    } else {
      philoxNormalsPortable(out, o, this.roundKeys);
    }
    this.offset++;
  }

  /** Advances past one draw of any size without computing it (draws are addressed by offset, so this is free). */
  skip(): void {
    this.offset++;
  }
}
