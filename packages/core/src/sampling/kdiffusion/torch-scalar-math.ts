// biome-ignore-all lint/correctness/noPrecisionLoss: the constants are written as in PyTorch's and SLEEF's sources, so each can be checked against them
/**
 * torch's float32 exp, log and expm1 on x86 CPUs: ATen's AVX2 kernels run them through SLEEF's _u10 functions
 * (even for a 0-dim tensor, as a partial vector), which are not correctly rounded. The samplers' scalar sigma
 * arithmetic (t = -log sigma, sigma = exp(-t)) must round the same way, or round-tripped sigmas land one ulp
 * off upstream's, and the Brownian tree, which rounds its query times to 6 decimals, answers a different
 * interval. The algorithms follow SLEEF's published ones (Cody-Waite reduction and a polynomial for exp;
 * double-float arithmetic with fused multiply-adds for log and expm1).
 */
const f = Math.fround;
// biome-ignore lint/suspicious/noApproximativeNumericConstant: SLEEF's literal, rounded to float32 like the rest
const R_LN2 = f(1.442695040888963407359924681001892137426645954152985934135449406931);
const L2U = f(0.693145751953125);
const L2L = f(1.428606765330187045e-6);
const C0 = f(0.000198527617612853646278381);
const C1 = f(0.00139304355252534151077271);
const C2 = f(0.00833336077630519866943359);
const C3 = f(0.0416664853692054748535156);
const C4 = f(0.166666671633720397949219);

/** float32 fused multiply-add: the product of two floats is exact in a double. */
const fma = (a: number, b: number, c: number): number => f(a * b + c);

/** Round half to even, as cvtps2dq does under the default rounding mode. */
function rintEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function torchExpf(x: number): number {
  const d = f(x);
  if (Number.isNaN(d)) return NaN;
  if (d < -104) return 0;
  if (d > 100) return Infinity;
  const q = rintEven(f(d * R_LN2));
  let s = fma(q, -L2U, d);
  s = fma(q, -L2L, s);
  let u = C0;
  u = fma(u, s, C1);
  u = fma(u, s, C2);
  u = fma(u, s, C3);
  u = fma(u, s, C4);
  u = fma(u, s, 0.5);
  u = f(1 + fma(f(s * s), u, s));
  // ldexp in two halves so 2^q never overflows on its own.
  const q1 = q >> 1;
  return f(f(u * 2 ** q1) * 2 ** (q - q1));
}

// --- log: SLEEF xlogf_u1 (AVX2 build: FMA available) over double-float pairs [hi, lo] ---
const F32 = new Float32Array(1);
const I32 = new Int32Array(F32.buffer);
const FLT_MIN = 1.1754943508222875e-38;
const LN2_HI = f(0.69314718246459960938);
const LN2_LO = f(-1.904654323148236017e-9);
const INV_075 = f(1 / 0.75);

function exponentOf(x: number): number {
  F32[0] = x;
  return ((I32[0]! >> 23) & 0xff) - 0x7f;
}

/** d * 2^q by adding to the exponent bits (SLEEF vldexp3), exact for the ranges used here. */
function ldexp3(d: number, q: number): number {
  F32[0] = d;
  I32[0] = I32[0]! + (q << 23);
  return F32[0]!;
}

/** s = x + y with its rounding error (dfadd2_vf2_vf_vf). */
function twoSum(x: number, y: number): [number, number] {
  const s = f(x + y);
  const v = f(s - x);
  return [s, f(f(x - f(s - v)) + f(y - v))];
}

export function torchLogf(x: number): number {
  let d = f(x);
  if (Number.isNaN(d) || d < 0) return NaN;
  if (d === 0) return -Infinity;
  if (d === Infinity) return Infinity;
  const tiny = d < FLT_MIN;
  if (tiny) d = f(d * 18446744073709551616);
  let e = exponentOf(f(d * INV_075));
  const m = ldexp3(d, -e);
  if (tiny) e -= 64;
  // s = (ln2_hi, ln2_lo) * e   (dfmul_vf2_vf2_vf with FMA)
  const fe = f(e);
  let sh = f(LN2_HI * fe);
  let sl = fma(LN2_LO, fe, f(LN2_HI * fe - sh));
  // x = (m - 1) / (m + 1) in double-float (dfdiv_vf2_vf2_vf2 with FMA)
  const [nh, nl] = twoSum(-1, m);
  const [dh, dl] = twoSum(1, m);
  const t0 = f(1 / dh);
  const q = f(nh * t0);
  const u0 = f(t0 * nh - q);
  // vfmanp(d.x, t, 1) = 1 - d.x*t fused; vfmanp(d.y, t, that) = that - d.y*t fused
  const r1 = f(1 - dh * t0);
  const v = f(r1 - dl * t0);
  const xh = q;
  const xl = fma(q, v, fma(nl, t0, u0));
  const x2 = f(xh * xh);
  let t = f(0.3027294874);
  t = fma(t, x2, f(0.3996108174));
  t = fma(t, x2, f(0.666669488));
  // s = s + 2x   (dfadd_vf2_vf2_vf2)
  {
    const ah = f(xh * 2);
    const al = f(xl * 2);
    const s = f(sh + ah);
    sl = f(f(f(sh - s) + ah) + f(sl + al));
    sh = s;
  }
  // s = s + x2 * x * t   (dfadd_vf2_vf2_vf)
  {
    const y = f(f(x2 * xh) * t);
    const s = f(sh + y);
    sl = f(f(f(sh - s) + y) + sl);
    sh = s;
  }
  return f(sh + sl);
}

// --- expm1: SLEEF xexpm1f = expk2f (double-float exp) minus 1 ---
type DF = [number, number];

/** dfadd2_vf2_vf2_vf: (x.hi, x.lo) + y, renormalized with the rounding error of the high parts. */
function dfAdd2(x: DF, y: number): DF {
  const s = f(x[0] + y);
  const v = f(s - x[0]);
  const t = f(f(x[0] - f(s - v)) + f(y - v));
  return [s, f(t + x[1])];
}

/** dfadd2_vf2_vf2_vf2 */
function dfAdd2DF(x: DF, y: DF): DF {
  const s = f(x[0] + y[0]);
  const v = f(s - x[0]);
  const t = f(f(x[0] - f(s - v)) + f(y[0] - v));
  return [s, f(t + f(x[1] + y[1]))];
}

/** dfmul_vf2_vf2_vf (FMA) */
function dfMul(x: DF, y: number): DF {
  const s = f(x[0] * y);
  return [s, fma(x[1], y, f(x[0] * y - s))];
}

/** dfmul_vf2_vf2_vf2 (FMA) */
function dfMulDF(x: DF, y: DF): DF {
  const s = f(x[0] * y[0]);
  return [s, fma(x[0], y[1], fma(x[1], y[0], f(x[0] * y[0] - s)))];
}

/** dfsqu_vf2_vf2 (FMA) */
function dfSqu(x: DF): DF {
  const s = f(x[0] * x[0]);
  return [s, fma(f(x[0] + x[0]), x[1], f(x[0] * x[0] - s))];
}

function expk2f(d: DF): DF {
  const q = rintEven(f(f(d[0] + d[1]) * R_LN2));
  let s = dfAdd2(d, f(q * -L2U));
  s = dfAdd2(s, f(q * -L2L));
  let u = f(0.1980960224e-3);
  u = fma(u, s[0], f(0.1394256484e-2));
  u = fma(u, s[0], f(0.8333456703e-2));
  u = fma(u, s[0], f(0.4166637361e-1));
  let t = dfAdd2(dfMul(s, u), f(0.166666659414234244790680580464));
  t = dfAdd2(dfMulDF(s, t), 0.5);
  t = dfAdd2DF(s, dfMulDF(dfSqu(s), t));
  // dfadd_vf2_vf_vf2(1, t)
  const hi = f(1 + t[0]);
  const lo = f(f(f(1 - hi) + t[0]) + t[1]);
  const q1 = q >> 1;
  const scale = (v: number) => f(f(v * 2 ** q1) * 2 ** (q - q1));
  if (d[0] < -104) return [0, 0];
  return [scale(hi), scale(lo)];
}

export function torchExpm1f(x: number): number {
  const a = f(x);
  if (Number.isNaN(a)) return NaN;
  if (a > 88.72283172607421875) return Infinity;
  if (a < -16.635532333438687) return -1;
  if (Object.is(a, -0)) return -0;
  const d = dfAdd2(expk2f([a, 0]), -1);
  return f(d[0] + d[1]);
}
