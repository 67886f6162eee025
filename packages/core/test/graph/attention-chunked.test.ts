import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, hostTensor, type Value } from '../../src/graph/builder.js';
import { evenChunks, planSplit, planSubQuad, scoreBlockBytes, wholeScoresUpTo } from '../../src/planning/attention-plan.js';
import { isDarkroomError } from '../../src/errors.js';
import { float32 } from '../../src/tensor.js';
import { gradCheck } from './gradcheck.js';
import { maxAbsDiff, rand, runGraph, values } from './helpers.js';

const MiB = 1024 ** 2;

test('planSplit: fewest slices that keep one slice within the target, at least one query each', () => {
  const shape = { batch: 2, heads: 8, queries: 16384, keys: 16384 };
  const slices = planSplit(shape, 256 * MiB);
  assert.equal(slices.reduce((a, n) => a + n, 0), 16384);
  assert.ok(Math.max(...slices) - Math.min(...slices) <= 1, 'nearly equal slices');
  assert.ok(scoreBlockBytes(shape, slices[0]!, shape.keys) * 2 <= 256 * MiB);
  assert.ok(scoreBlockBytes(shape, slices[0]! + 1, shape.keys) * 2 > 256 * MiB / 1.1, 'not needlessly small');
  assert.deepEqual(planSplit({ batch: 1, heads: 1, queries: 64, keys: 64 }, 1 * MiB), [64]);
  // A target below one row of scores still gives a graph: one query per slice.
  assert.deepEqual(planSplit({ batch: 1, heads: 1, queries: 3, keys: 1000 }, 16), [1, 1, 1]);
});

test('planSubQuad: one block when the scores fit, else A1111-sized query chunks and key chunks within the target', () => {
  assert.deepEqual(planSubQuad({ batch: 2, heads: 4, queries: 64, keys: 77 }, 1 * MiB), { queries: [64], keys: [77] });
  const shape = { batch: 2, heads: 4, queries: 65536, keys: 65536 };
  const { queries, keys } = planSubQuad(shape, 256 * MiB);
  assert.equal(queries.reduce((a, n) => a + n, 0), 65536);
  assert.equal(keys.reduce((a, n) => a + n, 0), 65536);
  assert.equal(queries[0], 1024);
  assert.ok(scoreBlockBytes(shape, queries[0]!, keys[0]!) * 3 <= 256 * MiB);
  // A tiny target shrinks the query chunk once a single key per block would not fit.
  const tiny = planSubQuad({ batch: 1, heads: 1, queries: 100, keys: 100 }, 4 * 3 * 10);
  assert.equal(tiny.queries[0], 10);
  assert.equal(tiny.keys[0], 1);
  assert.deepEqual(evenChunks(10, 3), [4, 3, 3]);
  const whole = { batch: 1, heads: 1, queries: 16, keys: 16 };
  assert.ok(scoreBlockBytes(whole, whole.queries, whole.keys) <= wholeScoresUpTo(2048));
  assert.throws(() => planSplit(shape, 0), (e: unknown) => isDarkroomError(e, 'GRAPH_ATTENTION_TARGET'));
});

interface Case {
  readonly s: number;
  readonly l: number;
  readonly d: number;
  readonly dv: number;
  readonly heads: number;
  readonly split: number[];
  readonly sub: { queries: number[]; keys: number[] };
}

const CASES: Case[] = [
  { s: 37, l: 29, d: 16, dv: 16, heads: 4, split: [10, 10, 10, 7], sub: { queries: [20, 17], keys: [8, 8, 8, 5] } },
  // Cross-attention shape (77 context tokens) and a value width that differs from the key width.
  { s: 24, l: 77, d: 8, dv: 12, heads: 2, split: [5, 19], sub: { queries: [24], keys: [40, 37] } },
  // One head (the VAE's mid-block attention), one query per slice.
  { s: 6, l: 6, d: 4, dv: 4, heads: 1, split: [1, 1, 1, 1, 1, 1], sub: { queries: [3, 3], keys: [1, 2, 3] } },
];

async function forward(c: Case, scale: number, bias?: (g: GraphBuilder) => Value): Promise<Record<string, number[]>> {
  const g = new GraphBuilder('attn');
  const q = g.input('q', 'float32', [2, c.s, c.d]);
  const k = g.input('k', 'float32', [2, c.l, c.d]);
  const v = g.input('v', 'float32', [2, c.l, c.dv]);
  const bv = bias?.(g);
  g.output(g.attention(q, k, v, c.heads, undefined, bv), 'plain');
  g.output(g.splitAttention(q, k, v, c.heads, c.split, bv ? { bias: bv } : {}), 'split');
  g.output(g.subQuadAttention(q, k, v, c.heads, c.sub, bv ? { bias: bv } : {}), 'subquad');
  const r = await runGraph(g, {
    q: rand([2, c.s, c.d], 1, scale),
    k: rand([2, c.l, c.d], 2, scale),
    v: rand([2, c.l, c.dv], 3),
  });
  return { plain: values(r.plain), split: values(r.split), subquad: values(r.subquad) };
}

test('split and sub-quadratic attention compute the plain values (uneven chunks, cross-attention, one head)', async () => {
  for (const c of CASES) {
    const r = await forward(c, 2);
    assert.ok(maxAbsDiff(r.split!, r.plain!) < 1e-6, `split ${maxAbsDiff(r.split!, r.plain!)}`);
    assert.ok(maxAbsDiff(r.subquad!, r.plain!) < 2e-6, `subquad ${maxAbsDiff(r.subquad!, r.plain!)}`);
  }
});

test('sub-quadratic attention stays exact when the scores are large (the per-block max keeps exp finite)', async () => {
  const r = await forward(CASES[0]!, 12);
  assert.ok(r.plain!.every(Number.isFinite));
  assert.ok(maxAbsDiff(r.subquad!, r.plain!) < 1e-5, `subquad ${maxAbsDiff(r.subquad!, r.plain!)}`);
});

/** A causal mask of -Infinity: in the sub-quadratic form whole blocks of some rows are masked. */
function causal(s: number, l: number) {
  return (g: GraphBuilder): Value =>
    g.constant(hostTensor('float32', [1, 1, s, l], Array.from({ length: s * l }, (_, i) => (i % l > Math.floor(i / l) ? -Infinity : 0.05 * (i % 7)))));
}

test('an additive bias is sliced with the chunks; fully masked key blocks contribute nothing', async () => {
  const c: Case = { s: 12, l: 12, d: 8, dv: 8, heads: 2, split: [5, 4, 3], sub: { queries: [6, 6], keys: [3, 3, 3, 3] } };
  const r = await forward(c, 2, causal(12, 12));
  assert.ok(r.plain!.every(Number.isFinite));
  assert.ok(maxAbsDiff(r.split!, r.plain!) < 1e-6);
  assert.ok(maxAbsDiff(r.subquad!, r.plain!) < 2e-6, `subquad ${maxAbsDiff(r.subquad!, r.plain!)}`);
  // A (S, L) bias with no batch or head axes broadcasts the same way.
  const flat = await forward(c, 2, (g) => g.constant(hostTensor('float32', [12, 12], Array.from({ length: 144 }, (_, i) => 0.1 * Math.sin(i)))));
  assert.ok(maxAbsDiff(flat.subquad!, flat.plain!) < 2e-6);
});

test('chunk sizes that do not cover the sequence are refused when the node is added', () => {
  const g = new GraphBuilder('bad');
  const q = g.input('q', 'float32', [1, 10, 4]);
  assert.throws(() => g.splitAttention(q, q, q, 1, [4, 4]), (e: unknown) => isDarkroomError(e, 'GRAPH_SHAPE_ERROR'));
  assert.throws(() => g.subQuadAttention(q, q, q, 1, { queries: [10], keys: [5, 6] }), (e: unknown) => isDarkroomError(e, 'GRAPH_SHAPE_ERROR'));
});

test('VJP through split and sub-quadratic attention: q, k and v against finite differences', async () => {
  const ins = [
    { name: 'q', value: rand([2, 5, 4], 60) },
    { name: 'k', value: rand([2, 7, 4], 61) },
    { name: 'v', value: rand([2, 7, 4], 62) },
  ];
  await gradCheck((g, [q, k, v]) => g.splitAttention(q!, k!, v!, 2, [2, 2, 1]), ins);
  await gradCheck((g, [q, k, v]) => g.subQuadAttention(q!, k!, v!, 2, { queries: [3, 2], keys: [3, 2, 2] }), ins);
  // One key block per query chunk takes the plain softmax inside the sub-quadratic form.
  await gradCheck((g, [q, k, v]) => g.subQuadAttention(q!, k!, v!, 2, { queries: [2, 3], keys: [7] }), ins);
  const mask = (g: GraphBuilder): Value =>
    g.constant(hostTensor('float32', [1, 1, 5, 7], Array.from({ length: 35 }, (_, i) => (i % 7 > Math.floor(i / 7) + 1 ? -Infinity : 0.1 * (i % 3)))));
  await gradCheck((g, [q, k, v]) => g.splitAttention(q!, k!, v!, 2, [3, 2], { bias: mask(g) }), ins);
  await gradCheck((g, [q, k, v]) => g.subQuadAttention(q!, k!, v!, 2, { queries: [3, 2], keys: [4, 3] }, { bias: mask(g), scale: 0.7 }), ins);
});

test('float16 inputs: scores and softmax in float32, the result in float16 like the plain layer form', async () => {
  const g = new GraphBuilder('half');
  const q = g.input('q', 'float32', [1, 8, 8]);
  const k = g.input('k', 'float32', [1, 8, 8]);
  const h = (x: Value): Value => g.cast(x, 'float16');
  const plain = g.attention(q, k, k, 2);
  const sub = g.subQuadAttention(h(q), h(k), h(k), 2, { queries: [4, 4], keys: [4, 4] });
  assert.equal(sub.dtype, 'float16');
  g.output(plain, 'plain');
  g.output(g.cast(sub, 'float32'), 'sub');
  const r = await runGraph(g, { q: rand([1, 8, 8], 5), k: float32([1, 8, 8], rand([1, 8, 8], 6).data) });
  assert.ok(maxAbsDiff(values(r.sub), values(r.plain)) < 2e-3);
});
