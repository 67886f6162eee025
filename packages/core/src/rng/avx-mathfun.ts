// biome-ignore-all lint/correctness/noPrecisionLoss: the constants are written as in avx_mathfun.h, so each can be checked against it
/**
 * Float32 ports of avx_mathfun's `log256_ps` and `sincos256_ps` (cephes polynomials), the functions torch's AVX2
 * normal kernel uses. Every float32 operation is rounded with Math.fround so the results match the vector code
 * bit for bit. `fused` selects multiply-add contraction where the compiler fuses `mul` + `add` into FMA.
 */
const f = Math.fround;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number): number => {
  f32[0] = x;
  return u32[0]!;
};
const fromBits = (b: number): number => {
  u32[0] = b >>> 0;
  return f32[0]!;
};

const SQRTHF = f(0.707106781186547524);
const LOG_P = [
  7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
  2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
].map(f);
const LOG_Q1 = f(-2.12194440e-4);
const LOG_Q2 = f(0.693359375);
const MIN_NORM_POS = fromBits(0x00800000);

/** fma(a, b, c) rounded once to float32 (exact product in float64 for float32 inputs, then one rounding). */
function fma32(a: number, b: number, c: number): number {
  // a*b of two float32 values is exact in float64; the sum can round twice, so split it when needed.
  const p = a * b;
  const s = p + c;
  // twoSum error of p + c, then fold it back before the single float32 rounding
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  return roundSumToF32(s, err);
}

/** Rounds the exact value s + err (|err| <= ulp(s)/2) to float32 correctly. */
function roundSumToF32(s: number, err: number): number {
  const r = f(s);
  // s representable, or no rounding error to break a tie with: one rounding of s is already correct
  if (err === 0 || r === s) return r;
  // Only a tie at s (halfway between r and its neighbour) can be decided by err. Then the neighbour is
  // 2s - r (exact in float64) and a float32; otherwise 2s - r lies strictly between r and the neighbour.
  const other = 2 * s - r;
  if (f(other) !== other) return r;
  if (err > 0) return s > r ? other : r;
  return s > r ? r : other;
}

type MulAdd = (a: number, b: number, c: number) => number;
const mulAdd = (fused: boolean): MulAdd => (fused ? fma32 : (a, b, c) => f(f(a * b) + c));

/** log256_ps for one lane. */
export function log256(xIn: number, fused = false): number {
  const ma = mulAdd(fused);
  if (!(xIn > 0)) return NaN;
  let x = Math.max(xIn, MIN_NORM_POS);
  const bits = bitsOf(x);
  let e = f((bits >>> 23) - 0x7f);
  x = fromBits((bits & ~0x7f800000) | bitsOf(0.5));
  e = f(e + 1);
  const lt = x < SQRTHF;
  const tmp = lt ? x : 0;
  x = f(x - 1);
  if (lt) e = f(e - 1);
  x = f(x + tmp);
  const z = f(x * x);
  let y = LOG_P[0]!;
  for (let i = 1; i < 9; i++) y = ma(y, x, LOG_P[i]!);
  y = f(y * x);
  // the compiler fuses the last product with the following add: fma(y, z, e*q1)
  y = fused ? fma32(y, z, f(e * LOG_Q1)) : f(f(y * z) + f(e * LOG_Q1));
  y = ma(-z, 0.5, y);
  // x + y, then + e*q2 (a separate multiply, then add: contractible as well)
  x = f(x + y);
  x = ma(e, LOG_Q2, x);
  return x;
}

const FOPI = f(1.27323954473516);
const DP1 = f(-0.78515625);
const DP2 = f(-2.4187564849853515625e-4);
const DP3 = f(-3.77489497744594108e-8);
const SINCOF = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1].map(f);
const COSCOF = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2].map(f);

/** sincos256_ps for one lane: [sin, cos]. */
export function sincos256(xIn: number, fused = false): [number, number] {
  const ma = mulAdd(fused);
  let x = Math.abs(xIn);
  const signSin = xIn < 0 || Object.is(xIn, -0);
  const yScaled = f(x * FOPI);
  let j = Math.trunc(yScaled);
  j = (j + 1) & ~1;
  const y = f(j);
  const swapSin = (j & 4) !== 0;
  const polyMask = (j & 2) === 0;
  x = ma(y, DP1, x);
  x = ma(y, DP2, x);
  x = ma(y, DP3, x);
  const cosSignNeg = (~(j - 2) & 4) !== 0;
  const sinNeg = signSin !== swapSin;
  const z = f(x * x);
  let yc = COSCOF[0]!;
  yc = ma(yc, z, COSCOF[1]!);
  yc = ma(yc, z, COSCOF[2]!);
  yc = f(yc * z);
  yc = ma(yc, z, f(-z * 0.5));
  yc = f(yc + 1);
  let ys = SINCOF[0]!;
  ys = ma(ys, z, SINCOF[1]!);
  ys = ma(ys, z, SINCOF[2]!);
  ys = f(ys * z);
  ys = ma(ys, x, x);
  let s = polyMask ? ys : yc;
  let c = polyMask ? yc : ys;
  if (sinNeg) s = -s;
  if (cosSignNeg) c = -c;
  return [s, c];
}
