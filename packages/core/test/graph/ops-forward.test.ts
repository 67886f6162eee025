import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, hostTensor } from '../../src/graph/builder.js';
import { float32, type HostTensor } from '../../src/tensor.js';
import { isDarkroomError } from '../../src/errors.js';
import { maxAbsDiff, rand, runGraph, values } from './helpers.js';

function close(actual: readonly number[], expected: readonly number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length, 'length');
  const d = maxAbsDiff(actual, expected);
  assert.ok(d <= tol, `max abs diff ${d} > ${tol}\nactual   ${actual.slice(0, 8)}\nexpected ${expected.slice(0, 8)}`);
}

async function unaryCase(build: (g: GraphBuilder, x: ReturnType<GraphBuilder['input']>) => ReturnType<GraphBuilder['input']>, f: (x: number) => number, xs: number[]): Promise<void> {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [xs.length]);
  g.output(build(g, x), 'y');
  const r = await runGraph(g, { x: float32([xs.length], Float32Array.from(xs)) });
  close(values(r.y), xs.map(f), 1e-5);
}

const xs = [-2.5, -1, -0.25, 0, 0.3, 1, 2.2];
const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is only 1e-7 accurate; use a series for |x| < 3 instead.
  let sum = 0;
  let term = x;
  for (let n = 0; n < 80; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
};

test('unary elementwise ops match their definitions', async () => {
  await unaryCase((g, x) => g.neg(x), (v) => -v, xs);
  await unaryCase((g, x) => g.exp(x), Math.exp, xs);
  await unaryCase((g, x) => g.log(g.abs(x)), (v) => Math.log(Math.abs(v)), xs.filter((v) => v !== 0));
  await unaryCase((g, x) => g.sqrt(g.abs(x)), (v) => Math.sqrt(Math.abs(v)), xs);
  await unaryCase((g, x) => g.erf(x), erf, xs);
  await unaryCase((g, x) => g.tanh(x), Math.tanh, xs);
  await unaryCase((g, x) => g.sigmoid(x), (v) => 1 / (1 + Math.exp(-v)), xs);
  await unaryCase((g, x) => g.relu(x), (v) => Math.max(0, v), xs);
  await unaryCase((g, x) => g.pow(g.abs(x), 1.5), (v) => Math.abs(v) ** 1.5, xs);
  await unaryCase((g, x) => g.silu(x), (v) => v / (1 + Math.exp(-v)), xs);
  await unaryCase((g, x) => g.gelu(x), (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)), xs);
  await unaryCase((g, x) => g.quickGelu(x), (v) => v / (1 + Math.exp(-1.702 * v)), xs);
  await unaryCase((g, x) => g.fusedGelu(x), (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)), xs);
  await unaryCase((g, x) => g.fusedQuickGelu(x), (v) => v / (1 + Math.exp(-1.702 * v)), xs);
  const relu6 = (v: number): number => Math.min(Math.max(v, 0), 6);
  const softplus = (v: number): number => Math.log1p(Math.exp(v));
  const wide = [-4, -3.5, -1, -0.2, 0.4, 1, 2.5, 3.5];
  await unaryCase((g, x) => g.leakyRelu(x, 0.2), (v) => (v > 0 ? v : 0.2 * v), wide);
  await unaryCase((g, x) => g.elu(x, 0.7), (v) => (v > 0 ? v : 0.7 * Math.expm1(v)), wide);
  await unaryCase((g, x) => g.celu(x, 1.5), (v) => Math.max(0, v) + Math.min(0, 1.5 * Math.expm1(v / 1.5)), wide);
  await unaryCase((g, x) => g.selu(x), (v) => 1.0507009873554805 * (v > 0 ? v : 1.6732632423543772 * Math.expm1(v)), wide);
  await unaryCase((g, x) => g.hardSwish(x), (v) => (v * relu6(v + 3)) / 6, wide);
  await unaryCase((g, x) => g.hardSigmoid(x), (v) => relu6(v + 3) / 6, wide);
  await unaryCase((g, x) => g.softplus(x), softplus, wide);
  await unaryCase((g, x) => g.softsign(x), (v) => v / (1 + Math.abs(v)), wide);
  await unaryCase((g, x) => g.clip(x, 0, 6), relu6, [-1, 0.5, 7]);
  await unaryCase((g, x) => g.mish(x), (v) => v * Math.tanh(softplus(v)), wide);
  await unaryCase((g, x) => g.sin(x), Math.sin, wide);
  await unaryCase((g, x) => g.cos(x), Math.cos, wide);
});

test('binary ops broadcast like numpy', async () => {
  const g = new GraphBuilder();
  const a = g.input('a', 'float32', [2, 3]);
  const b = g.input('b', 'float32', [3]);
  g.output(g.add(a, b), 'add');
  g.output(g.sub(a, b), 'sub');
  g.output(g.mul(a, b), 'mul');
  g.output(g.div(a, b), 'div');
  g.output(g.add(a, 10), 'addScalar');
  const av = [1, 2, 3, 4, 5, 6];
  const bv = [0.5, -1, 2];
  const r = await runGraph(g, { a: float32([2, 3], Float32Array.from(av)), b: float32([3], Float32Array.from(bv)) });
  close(values(r.add), av.map((v, i) => v + bv[i % 3]!));
  close(values(r.sub), av.map((v, i) => v - bv[i % 3]!));
  close(values(r.mul), av.map((v, i) => v * bv[i % 3]!));
  close(values(r.div), av.map((v, i) => v / bv[i % 3]!));
  close(values(r.addScalar), av.map((v) => v + 10));
  assert.deepEqual(r.add!.shape, [2, 3]);
});

test('matmul with a broadcast batch', async () => {
  const g = new GraphBuilder();
  const a = g.input('a', 'float32', [2, 2, 3]);
  const b = g.input('b', 'float32', [3, 2]);
  const y = g.matmul(a, b);
  assert.deepEqual(y.shape, [2, 2, 2]);
  g.output(y, 'y');
  const av = [1, 2, 3, 4, 5, 6, -1, 0, 1, 2, 2, 2];
  const bv = [1, 0, 0, 1, 1, 1];
  const r = await runGraph(g, { a: float32([2, 2, 3], Float32Array.from(av)), b: float32([3, 2], Float32Array.from(bv)) });
  close(values(r.y), [4, 5, 10, 11, 0, 1, 4, 4]);

  // Gemm reads either operand transposed in place: A stored as its (3x2) transpose, B as its (2x3) transpose.
  const h = new GraphBuilder();
  const at = h.input('at', 'float32', [3, 2]);
  const bt = h.input('bt', 'float32', [2, 3]);
  h.output(h.gemm(at, bt, { transA: true, transB: true }), 'y');
  const r2 = await runGraph(h, { at: float32([3, 2], Float32Array.from([1, 4, 2, 5, 3, 6])), bt: float32([2, 3], Float32Array.from([1, 0, 1, 0, 1, 1])) });
  // A = [[1,2,3],[4,5,6]], B = [[1,0],[0,1],[1,1]] -> A B = [[4,5],[10,11]]
  close(values(r2.y), [4, 5, 10, 11]);
});

test('shape ops: reshape, transpose, concat, split, slice, gather, (un)squeeze, cast', async () => {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [2, 3]);
  const t = g.transpose(x, [1, 0]);
  assert.deepEqual(t.shape, [3, 2]);
  g.output(t, 't');
  g.output(g.reshape(x, [3, -1]), 'r');
  g.output(g.concat([x, x], 0), 'c');
  const [s0, s1] = g.split(x, [1, 2], 1);
  g.output(s0!, 's0');
  g.output(s1!, 's1');
  g.output(g.slice(x, [0, 2], [2, 0], [0, 1], [1, -1]), 'sl');
  const idx = g.constant(hostTensor('int64', [2], [2, 0]));
  g.output(g.gather(x, idx, 1), 'ga');
  const u = g.unsqueeze(x, [0, 3]);
  assert.deepEqual(u.shape, [1, 2, 3, 1]);
  g.output(g.squeeze(u, [0, 3]), 'sq');
  g.output(g.cast(x, 'int64'), 'ci');
  const xv = [1, 2, 3, 4, 5, 6];
  const r = await runGraph(g, { x: float32([2, 3], Float32Array.from(xv)) });
  assert.deepEqual(values(r.t), [1, 4, 2, 5, 3, 6]);
  assert.deepEqual(r.r!.shape, [3, 2]);
  assert.deepEqual(values(r.c), [...xv, ...xv]);
  assert.deepEqual(values(r.s0), [1, 4]);
  assert.deepEqual(values(r.s1), [2, 3, 5, 6]);
  assert.deepEqual(values(r.sl), [3, 2, 6, 5]);
  assert.deepEqual(values(r.ga), [3, 1, 6, 4]);
  assert.deepEqual(values(r.sq), xv);
  assert.equal(r.ci!.dtype, 'int64');
  assert.deepEqual(values(r.ci), xv);
});

test('reductions, softmax, pad', async () => {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [2, 3]);
  g.output(g.reduceMean(x, [1]), 'mean');
  g.output(g.reduceSum(x, [0], false), 'sum');
  g.output(g.softmax(x, -1), 'sm');
  g.output(g.pad(x, [0, 1, 1, 0], -1), 'pad');
  const xv = [1, 2, 3, 0, 0, 1];
  const r = await runGraph(g, { x: float32([2, 3], Float32Array.from(xv)) });
  assert.deepEqual(r.mean!.shape, [2, 1]);
  close(values(r.mean), [2, 1 / 3]);
  assert.deepEqual(r.sum!.shape, [3]);
  close(values(r.sum), [1, 2, 4]);
  const e = [Math.E, Math.E ** 2, Math.E ** 3];
  const z = e[0]! + e[1]! + e[2]!;
  const z2 = 2 + Math.E;
  close(values(r.sm), [e[0]! / z, e[1]! / z, e[2]! / z, 1 / z2, 1 / z2, Math.E / z2], 1e-6);
  assert.deepEqual(r.pad!.shape, [3, 4]);
  assert.deepEqual(values(r.pad), [-1, 1, 2, 3, -1, 0, 0, 1, -1, -1, -1, -1]);
});

/** Direct convolution in float64, NCHW, for checking the graph. */
function convRef(x: HostTensor, w: HostTensor, b: number[] | undefined, s: number, p: readonly number[], group: number): { shape: number[]; data: number[] } {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [o, cg, kh, kw] = w.shape as [number, number, number, number];
  const ho = Math.floor((h + p[0]! + p[2]! - kh) / s) + 1;
  const wo = Math.floor((wd + p[1]! + p[3]! - kw) / s) + 1;
  const xd = values(x);
  const wdv = values(w);
  const out: number[] = [];
  const og = o / group;
  for (let ni = 0; ni < n; ni++)
    for (let oi = 0; oi < o; oi++)
      for (let yi = 0; yi < ho; yi++)
        for (let xi = 0; xi < wo; xi++) {
          let acc = b ? b[oi]! : 0;
          const gi = Math.floor(oi / og);
          for (let ci = 0; ci < cg; ci++)
            for (let ky = 0; ky < kh; ky++)
              for (let kx = 0; kx < kw; kx++) {
                const iy = yi * s + ky - p[0]!;
                const ix = xi * s + kx - p[1]!;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += xd[((ni * c + gi * cg + ci) * h + iy) * wd + ix]! * wdv[((oi * cg + ci) * kh + ky) * kw + kx]!;
              }
          out.push(acc);
        }
  void c;
  return { shape: [n, o, ho, wo], data: out };
}

test('conv: padding, stride 2, groups, bias', async () => {
  const x = rand([1, 4, 5, 5], 3);
  for (const [s, pads, group] of [
    [1, [1, 1, 1, 1], 1],
    [2, [0, 0, 1, 1], 1],
    [2, [1, 1, 1, 1], 2],
  ] as const) {
    const w = rand([4, 4 / group, 3, 3], 7);
    const bias = [0.1, -0.2, 0.3, 0];
    const g = new GraphBuilder();
    const xi = g.input('x', 'float32', x.shape);
    const y = g.conv(xi, g.weight('w', w), g.weight('b', float32([4], Float32Array.from(bias))), { strides: [s, s], pads, group });
    g.output(y, 'y');
    const ref = convRef(x, w, bias, s, pads, group);
    assert.deepEqual(y.shape, ref.shape);
    const r = await runGraph(g, { x });
    close(values(r.y), ref.data, 1e-5);
  }
});

test('resizeNearest repeats each pixel scale x scale times', async () => {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [1, 1, 2, 2]);
  const y = g.resizeNearest(x, 2);
  assert.deepEqual(y.shape, [1, 1, 4, 4]);
  g.output(y, 'y');
  const r = await runGraph(g, { x: float32([1, 1, 2, 2], Float32Array.from([1, 2, 3, 4])) });
  assert.deepEqual(values(r.y), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
});

test('layerNorm and groupNorm match two-pass float64 statistics (eps matters)', async () => {
  // A large common offset makes single-pass E[x^2]-E[x]^2 variance visibly wrong; the graph must not do that.
  const x = rand([2, 4, 3, 3], 5);
  const shifted = float32(x.shape, (x.data as Float32Array).map((v, i) => v * (1 + (i % 5)) + 30));
  const gamma = [1, 0.5, -1, 2];
  const beta = [0, 0.1, 0.2, -0.3];
  for (const eps of [1e-5, 1e-6]) {
    const g = new GraphBuilder();
    const xi = g.input('x', 'float32', x.shape);
    g.output(g.groupNorm(xi, g.weight('g', float32([4], Float32Array.from(gamma))), g.weight('b', float32([4], Float32Array.from(beta))), 2, eps), 'y');
    const r = await runGraph(g, { x: shifted });
    const xv = values(shifted);
    const expected: number[] = new Array<number>(xv.length);
    for (let n = 0; n < 2; n++)
      for (let grp = 0; grp < 2; grp++) {
        const start = n * 36 + grp * 18;
        const seg = xv.slice(start, start + 18);
        const mean = seg.reduce((a, b) => a + b, 0) / 18;
        const v = seg.reduce((a, b) => a + (b - mean) ** 2, 0) / 18;
        seg.forEach((val, k) => {
          const ch = grp * 2 + Math.floor(k / 9);
          expected[start + k] = ((val - mean) / Math.sqrt(v + eps)) * gamma[ch]! + beta[ch]!;
        });
      }
    close(values(r.y), expected, 2e-4);
  }
  const g = new GraphBuilder();
  const xi = g.input('x', 'float32', [3, 4]);
  g.output(g.layerNorm(xi, g.weight('g', float32([4], Float32Array.from(gamma))), g.weight('b', float32([4], Float32Array.from(beta))), 1e-5), 'y');
  const lx = rand([3, 4], 9);
  const r = await runGraph(g, { x: lx });
  const lv = values(lx);
  const expected = lv.map((val, i) => {
    const row = lv.slice(Math.floor(i / 4) * 4, Math.floor(i / 4) * 4 + 4);
    const m = row.reduce((a, b) => a + b, 0) / 4;
    const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / 4;
    return ((val - m) / Math.sqrt(v + 1e-5)) * gamma[i % 4]! + beta[i % 4]!;
  });
  close(values(r.y), expected, 1e-5);
});

function attentionRef(q: number[], k: number[], v: number[], b: number, s: number, l: number, d: number, heads: number, scale: number): number[] {
  const dh = d / heads;
  const out = new Array<number>(b * s * d).fill(0);
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < s; i++) {
        const scores: number[] = [];
        for (let j = 0; j < l; j++) {
          let dot = 0;
          for (let e = 0; e < dh; e++) dot += q[(bi * s + i) * d + h * dh + e]! * k[(bi * l + j) * d + h * dh + e]!;
          scores.push(dot * scale);
        }
        const m = Math.max(...scores);
        const ex = scores.map((x) => Math.exp(x - m));
        const z = ex.reduce((a, c) => a + c, 0);
        for (let j = 0; j < l; j++)
          for (let e = 0; e < dh; e++) out[(bi * s + i) * d + h * dh + e]! += (ex[j]! / z) * v[(bi * l + j) * d + h * dh + e]!;
      }
  return out;
}

test('attention (plain) and mha (fused) match a direct computation', async () => {
  const [b, s, l, d, heads] = [2, 3, 4, 6, 2];
  const q = rand([b, s, d], 1);
  const k = rand([b, l, d], 2);
  const v = rand([b, l, d], 3);
  const g = new GraphBuilder();
  const qi = g.input('q', 'float32', q.shape);
  const ki = g.input('k', 'float32', k.shape);
  const vi = g.input('v', 'float32', v.shape);
  g.output(g.attention(qi, ki, vi, heads), 'plain');
  g.output(g.mha(qi, ki, vi, heads), 'fused');
  g.output(g.attention(qi, ki, vi, heads, 0.25), 'scaled');
  const r = await runGraph(g, { q, k, v });
  const ref = attentionRef(values(q), values(k), values(v), b, s, l, d, heads, 1 / Math.sqrt(d / heads));
  close(values(r.plain), ref, 1e-5);
  close(values(r.fused), ref, 1e-5);
  close(values(r.scaled), attentionRef(values(q), values(k), values(v), b, s, l, d, heads, 0.25), 1e-5);
});

test('attention with a causal mask: plain and fused agree with a direct computation', async () => {
  const [s, d, heads] = [4, 4, 2];
  const q = rand([1, s, d], 4);
  const g = new GraphBuilder();
  const qi = g.input('q', 'float32', q.shape);
  const causal = g.constant(hostTensor('float32', [1, 1, s, s], Array.from({ length: s * s }, (_, i) => (i % s > Math.floor(i / s) ? -Infinity : 0))));
  g.output(g.attention(qi, qi, qi, heads, undefined, causal), 'plain');
  g.output(g.mha(qi, qi, qi, heads, undefined, causal), 'fused');
  const r = await runGraph(g, { q });
  // Row i may only see keys 0..i: compute each row with the keys cut to its prefix.
  const qv = values(q);
  const expected: number[] = [];
  for (let i = 0; i < s; i++) {
    const prefix = qv.slice(0, (i + 1) * d);
    const row = attentionRef(qv.slice(i * d, (i + 1) * d), prefix, prefix, 1, 1, i + 1, d, heads, 1 / Math.sqrt(d / heads));
    expected.push(...row);
  }
  close(values(r.plain), expected, 1e-5);
  close(values(r.fused), expected, 1e-5);
});

test('shape errors are typed and raised at build time', () => {
  const g = new GraphBuilder();
  const a = g.input('a', 'float32', [2, 3]);
  const b = g.input('b', 'float32', [4]);
  assert.throws(() => g.add(a, b), (e: unknown) => isDarkroomError(e, 'GRAPH_SHAPE_ERROR'));
  assert.throws(() => g.matmul(a, a), (e: unknown) => isDarkroomError(e, 'GRAPH_SHAPE_ERROR'));
  assert.throws(() => g.reshape(a, [4, -1]), (e: unknown) => isDarkroomError(e, 'GRAPH_SHAPE_ERROR'));
  assert.throws(() => g.reshape(a, [5]), (e: unknown) => isDarkroomError(e, 'GRAPH_SHAPE_ERROR'));
  assert.throws(() => g.input('a', 'float32', [1]), (e: unknown) => isDarkroomError(e, 'GRAPH_DUPLICATE_NAME'));
  assert.throws(() => g.op('NoSuchOp', [a]), (e: unknown) => isDarkroomError(e, 'GRAPH_UNKNOWN_OP'));
  const other = new GraphBuilder().input('z', 'float32', [1]);
  assert.throws(() => g.neg(other), (e: unknown) => isDarkroomError(e, 'GRAPH_FOREIGN_VALUE'));
});
