/**
 * glibc's float32 logf / sinf / cosf (the ARM optimized-routines algorithms glibc has used since 2.28): a table
 * or a range reduction, then a short polynomial evaluated in double and rounded once to float. They are not
 * correctly rounded (0.82 / 0.56 ulp), so torch's portable normal kernel can only be matched bit for bit by
 * evaluating the same polynomials the same way. On x86-64 glibc dispatches to builds compiled with FMA, where
 * every `a*b + c` is one fused operation; `fused` selects that.
 */
const f = Math.fround;

/** Exact double fma(a, b, c) up to a final rounding that can differ only on double-rounding ties. */
export function fma64(a: number, b: number, c: number): number {
  const p = a * b;
  // Veltkamp/Dekker: the exact error of the product
  const SPLIT = 134217729; // 2^27 + 1
  const ah = a * SPLIT - (a * SPLIT - a);
  const al = a - ah;
  const bh = b * SPLIT - (b * SPLIT - b);
  const bl = b - bh;
  const pe = al * bl - (p - ah * bh - al * bh - ah * bl);
  const s = p + c;
  const bb = s - p;
  const se = p - (s - bb) + (c - bb);
  return s + (se + pe);
}

type MulAdd = (a: number, b: number, c: number) => number;
const plain: MulAdd = (a, b, c) => a * b + c;

function hex(s: string): number {
  const m = /^(-?)0x1(?:\.([0-9a-f]*))?p([+-]?\d+)$/i.exec(s);
  if (!m) throw new Error(`bad hex float ${s}`);
  const frac = m[2] ?? '';
  const mant = frac.length ? parseInt(frac, 16) / 16 ** frac.length : 0;
  return (m[1] ? -1 : 1) * (1 + mant) * 2 ** Number(m[3]);
}

// logf: 16 subintervals of [0x3f330000, 2*0x3f330000), each with 1/c and log(c), and log1p's polynomial
const LOGF_TAB: ReadonlyArray<readonly [number, number]> = [
  ['0x1.661ec79f8f3bep+0', '-0x1.57bf7808caadep-2'],
  ['0x1.571ed4aaf883dp+0', '-0x1.2bef0a7c06ddbp-2'],
  ['0x1.49539f0f010bp+0', '-0x1.01eae7f513a67p-2'],
  ['0x1.3c995b0b80385p+0', '-0x1.b31d8a68224e9p-3'],
  ['0x1.30d190c8864a5p+0', '-0x1.6574f0ac07758p-3'],
  ['0x1.25e227b0b8eap+0', '-0x1.1aa2bc79c81p-3'],
  ['0x1.1bb4a4a1a343fp+0', '-0x1.a4e76ce8c0e5ep-4'],
  ['0x1.12358f08ae5bap+0', '-0x1.1973c5a611cccp-4'],
  ['0x1.0953f419900a7p+0', '-0x1.252f438e10c1ep-5'],
  ['0x1p+0', '0'],
  ['0x1.e608cfd9a47acp-1', '0x1.aa5aa5df25984p-5'],
  ['0x1.ca4b31f026aap-1', '0x1.c5e53aa362eb4p-4'],
  ['0x1.b2036576afce6p-1', '0x1.526e57720db08p-3'],
  ['0x1.9c2d163a1aa2dp-1', '0x1.bc2860d22477p-3'],
  ['0x1.886e6037841edp-1', '0x1.1058bc8a07ee1p-2'],
  ['0x1.767dcf5534862p-1', '0x1.4043057b6ee09p-2'],
].map(([a, b]) => [hex(a!), b === '0' ? 0 : hex(b!)] as const);
const LN2 = hex('0x1.62e42fefa39efp-1');
const LOGF_POLY = ['-0x1.00ea348b88334p-2', '0x1.5575b0be00b6ap-2', '-0x1.ffffef20a4123p-2'].map(hex);
const OFF = 0x3f330000;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** glibc logf for positive normal float32 inputs (all the Box-Muller path ever sees: (0, 1]). */
export function glibcLogf(x: number, fused = true): number {
  const ma = fused ? fma64 : plain;
  f32[0] = x;
  const ix = u32[0]!;
  if (ix === 0x3f800000) return 0;
  if (!(x > 0) || ix >= 0x7f800000 || ix < 0x00800000) return f(Math.log(x));
  const tmp = (ix - OFF) >>> 0;
  const i = (tmp >>> 19) % 16;
  const k = (tmp | 0) >> 23;
  u32[0] = (ix - (tmp & 0xff800000)) >>> 0;
  const z = f32[0]!;
  const [invc, logc] = LOGF_TAB[i]!;
  const r = ma(z, invc, -1);
  const y0 = ma(k, LN2, logc);
  const r2 = r * r;
  let y = ma(LOGF_POLY[1]!, r, LOGF_POLY[2]!);
  y = ma(LOGF_POLY[0]!, r2, y);
  y = ma(y, r2, y0 + r);
  return f(y);
}

// sinf/cosf: quadrant signs, 2/pi scaled by 2^24, pi/2, then cos (c0..c4) and sin (s1..s3) polynomials;
// the second table negates the cosine polynomial
const SIGN = [1, -1, -1, 1];
const HPI_INV = hex('0x1.45F306DC9C883p+23');
const HPI = hex('0x1.921FB54442D18p0');
const COS_C = ['0x1p0', '-0x1.ffffffd0c621cp-2', '0x1.55553e1068f19p-5', '-0x1.6c087e89a359dp-10', '0x1.99343027bf8c3p-16'].map(
  (s) => (s === '0x1p0' ? 1 : hex(s)),
);
const SIN_S = ['-0x1.555545995a603p-3', '0x1.1107605230bc4p-7', '-0x1.994eb3774cf24p-13'].map(hex);
const PIO4_F32 = f(Math.PI / 4);

function sinfPoly(x: number, x2: number, negCos: boolean, n: number, ma: MulAdd): number {
  if ((n & 1) === 0) {
    const x3 = x * x2;
    const s1 = ma(x2, SIN_S[2]!, SIN_S[1]!);
    const x7 = x3 * x2;
    const s = ma(x3, SIN_S[0]!, x);
    return f(ma(x7, s1, s));
  }
  const g = negCos ? -1 : 1;
  const x4 = x2 * x2;
  const c2 = ma(x2, g * COS_C[4]!, g * COS_C[3]!);
  const c1 = ma(x2, g * COS_C[1]!, g * COS_C[0]!);
  const x6 = x4 * x2;
  const c = ma(x4, g * COS_C[2]!, c1);
  return f(ma(x6, c2, c));
}

function absTop12(x: number): number {
  f32[0] = x;
  return (u32[0]! >>> 20) & 0x7ff;
}

function sinOrCos(y: number, cosine: boolean, fused: boolean): number {
  const ma = fused ? fma64 : plain;
  const top = absTop12(y);
  let x = f(y);
  if (top < absTop12(PIO4_F32)) {
    if (top < absTop12(2 ** -12)) return cosine ? 1 : x;
    return sinfPoly(x, x * x, false, cosine ? 1 : 0, ma);
  }
  if (top >= absTop12(120)) return cosine ? f(Math.cos(y)) : f(Math.sin(y));
  const r = x * HPI_INV;
  const n = (((r | 0) + 0x800000) | 0) >> 24;
  x = ma(-n, HPI, x);
  const s = SIGN[n & 3]!;
  return sinfPoly(x * s, x * x, (n & 2) !== 0, cosine ? n ^ 1 : n, ma);
}

/** glibc sinf (|x| < 120; larger arguments fall back to the correctly rounded value). */
export function glibcSinf(x: number, fused = true): number {
  return sinOrCos(x, false, fused);
}

/** glibc cosf (|x| < 120; larger arguments fall back to the correctly rounded value). */
export function glibcCosf(x: number, fused = true): number {
  return sinOrCos(x, true, fused);
}
