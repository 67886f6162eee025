import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, hostTensor } from '../../src/graph/builder.js';
import { grad, NON_DIFFERENTIABLE, VJP_RULES } from '../../src/graph/autodiff.js';
import { SHAPE_RULES } from '../../src/graph/shapes.js';
import { isDarkroomError } from '../../src/errors.js';
import { float32, type HostTensor } from '../../src/tensor.js';
import { gradCheck } from './gradcheck.js';
import { maxAbsDiff, rand, runGraph, values } from './helpers.js';
import { createSession } from '../../src/runtime/session.js';

/** Values bounded away from zero (for Log, Sqrt, Relu, Abs kinks). */
function awayFromZero(shape: number[], seed: number): HostTensor<'float32'> {
  const t = rand(shape, seed);
  return float32(shape, (t.data as Float32Array).map((v) => (v >= 0 ? v + 0.2 : v - 0.2)));
}
function positive(shape: number[], seed: number): HostTensor<'float32'> {
  const t = rand(shape, seed);
  return float32(shape, (t.data as Float32Array).map((v) => Math.abs(v) + 0.3));
}

test('VJP Add/Sub/Mul/Div with broadcasting', async () => {
  const ins = [
    { name: 'a', value: rand([2, 3, 4], 1) },
    { name: 'b', value: positive([3, 1], 2) },
  ];
  await gradCheck((g, [a, b]) => g.add(a!, b!), ins);
  await gradCheck((g, [a, b]) => g.sub(a!, b!), ins);
  await gradCheck((g, [a, b]) => g.mul(a!, b!), ins);
  await gradCheck((g, [a, b]) => g.div(a!, b!), ins);
  await gradCheck((g, [a, b]) => g.div(b!, g.add(g.mul(a!, a!), 1)), ins);
});

test('VJP Neg, Exp, Log, Sqrt, Reciprocal, Pow', async () => {
  const x = [{ name: 'x', value: positive([3, 4], 3) }];
  await gradCheck((g, [v]) => g.neg(v!), x);
  await gradCheck((g, [v]) => g.exp(v!), x);
  await gradCheck((g, [v]) => g.log(v!), x);
  await gradCheck((g, [v]) => g.sqrt(v!), x);
  await gradCheck((g, [v]) => g.reciprocal(v!), x);
  await gradCheck((g, [v]) => g.pow(v!, 2.5), x);
  await gradCheck((g, [v]) => g.pow(v!, -1), x);
  // A tensor exponent: both base and exponent get gradients.
  await gradCheck((g, [v, p]) => g.op('Pow', [v!, p!])[0]!, [x[0]!, { name: 'p', value: rand([4], 4) }]);
});

test('VJP Erf, Tanh, Sigmoid, Relu, Abs and the composite activations', async () => {
  const x = [{ name: 'x', value: awayFromZero([2, 5], 5) }];
  await gradCheck((g, [v]) => g.erf(v!), x);
  await gradCheck((g, [v]) => g.tanh(v!), x);
  await gradCheck((g, [v]) => g.sigmoid(v!), x);
  await gradCheck((g, [v]) => g.relu(v!), x);
  await gradCheck((g, [v]) => g.abs(v!), x);
  await gradCheck((g, [v]) => g.silu(v!), x);
  await gradCheck((g, [v]) => g.gelu(v!), x);
  await gradCheck((g, [v]) => g.quickGelu(v!), x);
  await gradCheck((g, [v]) => g.fusedGelu(v!), x);
  await gradCheck((g, [v]) => g.fusedQuickGelu(v!), x);
  // Sign is piecewise constant: it contributes nothing, the other path still does.
  await gradCheck((g, [v]) => g.add(g.sign(v!), g.mul(v!, 2)), x);
});

test('every op with a shape rule has a VJP rule or is declared non-differentiable', () => {
  const knownGaps = new Set(['ScatterND', 'ConvTranspose']);
  const fusedDomain = new Set(['MultiHeadAttention', 'Gelu', 'QuickGelu', 'GroupNorm']);
  for (const op of Object.keys(SHAPE_RULES)) {
    const key = fusedDomain.has(op) ? `com.microsoft:${op}` : op;
    assert.ok(VJP_RULES[key] || NON_DIFFERENTIABLE.has(key) || knownGaps.has(op), `${op} has no gradient rule`);
  }
});

test('VJP activations used by hypernetworks: LeakyRelu, Elu, Celu, Selu, HardSwish, HardSigmoid, Softplus, Softsign, Clip, Mish', async () => {
  // Spread over (-4, 4) but away from every kink (0, +-3) by more than the finite-difference step.
  const t = rand([3, 8], 80, 4);
  const x = [{ name: 'x', value: float32([3, 8], (t.data as Float32Array).map((v) => (Math.abs(v) < 0.1 || Math.abs(Math.abs(v) - 3) < 0.1 ? v + 0.25 : v))) }];
  await gradCheck((g, [v]) => g.leakyRelu(v!, 0.2), x);
  await gradCheck((g, [v]) => g.elu(v!, 0.7), x);
  await gradCheck((g, [v]) => g.celu(v!, 1.5), x);
  await gradCheck((g, [v]) => g.selu(v!), x);
  await gradCheck((g, [v]) => g.hardSwish(v!), x);
  await gradCheck((g, [v]) => g.hardSigmoid(v!), x);
  await gradCheck((g, [v]) => g.softplus(v!), x);
  await gradCheck((g, [v]) => g.softsign(v!), x);
  await gradCheck((g, [v]) => g.clip(v!, -1, 2), x);
  await gradCheck((g, [v]) => g.mish(v!), x);
  await gradCheck((g, [v]) => g.sin(v!), x);
  await gradCheck((g, [v]) => g.cos(v!), x);
});

test('meanSquaredError: value and gradient', async () => {
  const g = new GraphBuilder();
  const a = g.input('a', 'float32', [2, 2]);
  const t = g.input('t', 'float32', [2, 2]);
  const loss = g.meanSquaredError(a, t);
  assert.deepEqual(loss.shape, []);
  g.output(loss, 'loss');
  g.output(grad(g, loss, [a])[0]!, 'ga');
  const r = await runGraph(g, { a: float32([2, 2], Float32Array.from([1, 2, 3, 4])), t: float32([2, 2], Float32Array.from([0, 2, 5, 4])) });
  assert.deepEqual(values(r.loss), [(1 + 0 + 4 + 0) / 4]);
  assert.deepEqual(values(r.ga), [0.5, 0, -1, 0]);
  await gradCheck((h, [x, y]) => h.meanSquaredError(x!, y!), [
    { name: 'x', value: rand([2, 3], 130) },
    { name: 'y', value: rand([2, 3], 131) },
  ]);
});

test('VJP Max, Min, Where', async () => {
  const ins = [
    { name: 'a', value: rand([3, 4], 6) },
    // Hand-picked so that no element of a is within the finite-difference step of its competitor.
    { name: 'b', value: float32([4], Float32Array.from([0.05, -0.3, 0.4, -0.9])) },
  ];
  await gradCheck((g, [a, b]) => g.max(a!, b!), ins);
  await gradCheck((g, [a, b]) => g.min(a!, b!), ins);
  await gradCheck((g, [a, b]) => g.where(g.greater(a!, 0), a!, b!), ins);
});

test('VJP MatMul: batched, broadcast weight, 1-D operands', async () => {
  await gradCheck((g, [a, b]) => g.matmul(a!, b!), [
    { name: 'a', value: rand([2, 3, 4], 8) },
    { name: 'b', value: rand([2, 4, 5], 9) },
  ]);
  await gradCheck((g, [a, b]) => g.matmul(a!, b!), [
    { name: 'a', value: rand([2, 3, 4], 10) },
    { name: 'b', value: rand([4, 5], 11) },
  ]);
  await gradCheck((g, [a, b]) => g.matmul(a!, b!), [
    { name: 'a', value: rand([1, 3, 4], 12) },
    { name: 'b', value: rand([2, 4, 2], 13) },
  ]);
  await gradCheck((g, [a, b]) => g.matmul(a!, b!), [
    { name: 'a', value: rand([4], 14) },
    { name: 'b', value: rand([2, 4, 3], 15) },
  ]);
  await gradCheck((g, [a, b]) => g.matmul(a!, b!), [
    { name: 'a', value: rand([3, 4], 16) },
    { name: 'b', value: rand([4], 17) },
  ]);
});

test('VJP Gemm: every transpose combination, alpha and a bias', async () => {
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    await gradCheck((g, [a, b]) => g.gemm(a!, b!, { transA, transB }), [
      { name: 'a', value: rand(transA ? [4, 3] : [3, 4], 90) },
      { name: 'b', value: rand(transB ? [5, 4] : [4, 5], 91) },
    ]);
  }
  await gradCheck((g, [a, b, c]) => g.op('Gemm', [a!, b!, c!], { alpha: { f: 0.5 }, beta: { f: 2 }, transB: { i: 1 } })[0]!, [
    { name: 'a', value: rand([3, 4], 92) },
    { name: 'b', value: rand([5, 4], 93) },
    { name: 'c', value: rand([5], 94) },
  ]);
});

test('VJP Reshape, Transpose, Unsqueeze, Squeeze, Expand, Cast', async () => {
  const x = [{ name: 'x', value: rand([2, 3, 4], 18) }];
  await gradCheck((g, [v]) => g.reshape(v!, [4, -1]), x);
  await gradCheck((g, [v]) => g.transpose(v!, [2, 0, 1]), x);
  await gradCheck((g, [v]) => g.squeeze(g.unsqueeze(g.mul(v!, v!), [0, 4]), [0]), x);
  await gradCheck((g, [v]) => g.expand(g.reshape(v!, [2, 1, 3, 4]), [2, 5, 3, 4]), x);
  await gradCheck((g, [v]) => g.cast(g.mul(g.cast(v!, 'float64'), g.scalar(3, 'float64')), 'float32'), x);
});

test('VJP Concat, Split (one output unused), Slice (strided, negative starts), Pad', async () => {
  const x = [
    { name: 'x', value: rand([2, 7], 19) },
    { name: 'y', value: rand([2, 3], 20) },
  ];
  await gradCheck((g, [a, b]) => g.concat([a!, b!, a!], 1), x);
  await gradCheck((g, [a]) => g.split(a!, [2, 4, 1], 1)[1]!, [x[0]!]);
  await gradCheck((g, [a]) => {
    const [p, , r] = g.split(a!, [3, 3, 1], 1);
    return g.mul(p!, r!);
  }, [x[0]!]);
  await gradCheck((g, [a]) => g.slice(a!, [1], [6], [1], [2]), [x[0]!]);
  await gradCheck((g, [a]) => g.slice(a!, [0, -5], [1, 100], [0, 1], [1, 3]), [x[0]!]);
  await gradCheck((g, [a]) => g.slice(a!, [2], [7], [1], [4]), [x[0]!]);
  await gradCheck((g, [a]) => g.slice(a!, [-1], [-(2 ** 53)], [1], [-1]), [x[0]!]);
  await gradCheck((g, [a]) => g.slice(a!, [5, 1], [0, -100], [1, 0], [-2, -1]), [x[0]!]);
  await gradCheck((g, [a]) => g.pad(a!, [1, 0, 0, 2], 0.5), [x[0]!]);
});

test('VJP Gather as a lookup: repeated, negative indices and a non-leading axis', async () => {
  const table = [{ name: 'table', value: rand([5, 3], 21) }];
  await gradCheck((g, [t]) => g.gather(t!, g.constant(hostTensor('int64', [2, 3], [0, 4, 4, 1, -1, 2])), 0), table);
  await gradCheck((g, [t]) => g.gather(t!, g.constant(hostTensor('int64', [4], [2, 0, 2, 1])), 1), table);
});

test('Gather gradient with token ids fed at run time scatter-adds rows', async () => {
  const g = new GraphBuilder();
  const table = g.input('table', 'float32', [4, 2]);
  const ids = g.input('ids', 'int64', [5]);
  const rows = g.gather(table, ids, 0);
  const loss = g.reduceSum(g.mul(rows, g.constant(hostTensor('float32', [5, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))), [0, 1], false);
  g.output(grad(g, loss, [table])[0]!, 'gt');
  const r = await runGraph(g, {
    table: float32([4, 2]),
    ids: { dtype: 'int64', shape: [5], data: BigInt64Array.from([3n, 0n, 3n, -1n, 1n]) },
  });
  // Rows 0 and 4 hit index 0 and 1; index 3 is hit three times (3, 3 and -1).
  assert.deepEqual(values(r.gt), [3, 4, 9, 10, 0, 0, 1 + 5 + 7, 2 + 6 + 8]);
});

test('VJP ReduceMean, ReduceSum (keepdims on and off), Softmax', async () => {
  const x = [{ name: 'x', value: rand([2, 3, 4], 22) }];
  await gradCheck((g, [v]) => g.reduceMean(v!, [1]), x);
  await gradCheck((g, [v]) => g.reduceMean(v!, [0, 2], false), x);
  await gradCheck((g, [v]) => g.reduceSum(v!, [-1], false), x);
  await gradCheck((g, [v]) => g.reduceSum(g.mul(v!, v!), [0, 1, 2]), x);
  await gradCheck((g, [v]) => g.softmax(v!, -1), x);
  await gradCheck((g, [v]) => g.softmax(v!, 1), x);
});

test('VJP ReduceMax (keepdims on and off, several axes) and ties shared evenly', async () => {
  const x = [{ name: 'x', value: rand([2, 3, 4], 23) }];
  await gradCheck((g, [v]) => g.reduceMax(v!, [-1]), x);
  await gradCheck((g, [v]) => g.reduceMax(v!, [0, 2], false), x);
  await gradCheck((g, [v]) => g.reduceMax(v!, [1]), x);
  // Two maxima in a row: each gets half the cotangent, as torch.amax gives it.
  const g = new GraphBuilder('ties');
  const xs = g.input('x', 'float32', [1, 4]);
  const [gx] = grad(g, g.reduceSum(g.reduceMax(xs, [1]), [0, 1], false), [xs]) as [ReturnType<GraphBuilder['input']>];
  g.output(gx, 'gx');
  const r = await runGraph(g, { x: float32([1, 4], Float32Array.from([1, 3, 3, -2])) });
  assert.deepEqual(values(r.gx), [0, 0.5, 0.5, 0]);
});

test('VJP Conv: padding, stride 2, groups, dilation; input, weight and bias gradients', async () => {
  const cases: Array<{ x: number[]; w: number[]; strides: number[]; pads: number[]; group: number; dilations: number[] }> = [
    { x: [2, 3, 5, 5], w: [4, 3, 3, 3], strides: [1, 1], pads: [1, 1, 1, 1], group: 1, dilations: [1, 1] },
    { x: [1, 4, 6, 5], w: [4, 4, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], group: 1, dilations: [1, 1] },
    { x: [1, 4, 5, 6], w: [4, 4, 3, 3], strides: [2, 2], pads: [0, 0, 1, 1], group: 1, dilations: [1, 1] },
    { x: [2, 4, 5, 5], w: [6, 2, 3, 3], strides: [2, 1], pads: [1, 0, 1, 2], group: 2, dilations: [1, 1] },
    { x: [1, 2, 7, 7], w: [3, 2, 3, 2], strides: [1, 2], pads: [2, 1, 2, 1], group: 1, dilations: [2, 1] },
  ];
  for (const [k, c] of cases.entries()) {
    await gradCheck(
      (g, [x, w, b]) => g.conv(x!, w!, b!, { strides: c.strides, pads: c.pads, group: c.group, dilations: c.dilations }),
      [
        { name: 'x', value: rand(c.x, 30 + k) },
        { name: 'w', value: rand(c.w, 40 + k, 0.5) },
        { name: 'b', value: rand([c.w[0]!], 50 + k) },
      ],
      { maxElements: 24 },
    );
  }
});

test('VJP Resize (nearest upsampling)', async () => {
  await gradCheck((g, [v]) => g.resizeNearest(v!, 2), [{ name: 'x', value: rand([1, 2, 3, 2], 23) }]);
});

test('VJP LayerNorm and GroupNorm (input, gamma, beta)', async () => {
  await gradCheck((g, [x, gm, bt]) => g.layerNorm(x!, gm!, bt!, 1e-5), [
    { name: 'x', value: rand([2, 3, 6], 24) },
    { name: 'gamma', value: rand([6], 25) },
    { name: 'beta', value: rand([6], 26) },
  ]);
  await gradCheck((g, [x, gm, bt]) => g.groupNorm(x!, gm!, bt!, 2, 1e-6), [
    { name: 'x', value: rand([2, 4, 3, 3], 27) },
    { name: 'gamma', value: rand([4], 28) },
    { name: 'beta', value: rand([4], 29) },
  ]);
});

test('VJP attention: the plain form and the fused MultiHeadAttention', async () => {
  const ins = [
    { name: 'q', value: rand([2, 3, 4], 60) },
    { name: 'k', value: rand([2, 5, 4], 61) },
    { name: 'v', value: rand([2, 5, 4], 62) },
  ];
  await gradCheck((g, [q, k, v]) => g.attention(q!, k!, v!, 2), ins);
  await gradCheck((g, [q, k, v]) => g.mha(q!, k!, v!, 2), ins);
  await gradCheck((g, [q, k, v]) => g.mha(q!, k!, v!, 1, 0.3), [ins[0]!, { ...ins[1]!, wrt: false }, ins[2]!]);
  // With an additive bias (a mask of -Infinity where keys are hidden), plain and fused.
  const mask = (g: GraphBuilder): ReturnType<GraphBuilder['input']> =>
    g.constant(hostTensor('float32', [1, 1, 3, 5], Array.from({ length: 15 }, (_, i) => (i % 5 > Math.floor(i / 5) + 1 ? -Infinity : 0.1 * (i % 3)))));
  await gradCheck((g, [q, k, v]) => g.attention(q!, k!, v!, 2, undefined, mask(g)), ins);
  await gradCheck((g, [q, k, v]) => g.mha(q!, k!, v!, 2, undefined, mask(g)), ins);
});

test('VJP through a UNet-like block: conv, group norm, SiLU, cross-attention with context, upsampling', async () => {
  await gradCheck(
    (g, [x, ctx]) => {
      let h = g.conv(x!, g.weight('conv', rand([4, 2, 3, 3], 100, 0.5)), g.weight('bias', rand([4], 101)), { pads: [1, 1, 1, 1] });
      h = g.silu(g.groupNorm(h, g.weight('gn.w', rand([4], 102)), g.weight('gn.b', rand([4], 103)), 2, 1e-5));
      const seq = g.transpose(g.reshape(h, [1, 4, 9]), [0, 2, 1]);
      const q = g.matmul(g.layerNorm(seq, g.weight('ln.w', rand([4], 104)), g.weight('ln.b', rand([4], 105)), 1e-5), g.weight('wq', rand([4, 4], 106)));
      const k = g.matmul(ctx!, g.weight('wk', rand([3, 4], 107)));
      const v = g.matmul(ctx!, g.weight('wv', rand([3, 4], 108)));
      const a = g.add(seq, g.mha(q, k, v, 2));
      const back = g.reshape(g.transpose(a, [0, 2, 1]), [1, 4, 3, 3]);
      return g.conv(g.resizeNearest(back, 2), g.weight('down', rand([2, 4, 3, 3], 109, 0.5)), undefined, { strides: [2, 2], pads: [1, 1, 1, 1] });
    },
    [
      { name: 'x', value: rand([1, 2, 3, 3], 110) },
      { name: 'context', value: rand([1, 5, 3], 111) },
    ],
  );
});

test('fused GroupNorm (CUDA-only kernel): well formed for onnxruntime, and its gradient equals the plain one', async () => {
  const build = (fused: boolean): GraphBuilder => {
    const g = new GraphBuilder(fused ? 'fused' : 'plain');
    const x = g.input('x', 'float32', [2, 4, 3, 3]);
    const gamma = g.input('gamma', 'float32', [4]);
    const beta = g.input('beta', 'float32', [4]);
    const y = fused ? g.groupNormFused(x, gamma, beta, 2, 1e-6, { silu: true }) : g.silu(g.groupNorm(x, gamma, beta, 2, 1e-6));
    const loss = g.reduceSum(g.mul(y, g.constant(rand([2, 4, 3, 3], 120))), [0, 1, 2, 3], false);
    grad(g, loss, [x, gamma, beta]).forEach((v, i) => g.output(v, `g${i}`));
    return g;
  };
  const feeds = { x: rand([2, 4, 3, 3], 121), gamma: rand([4], 122), beta: rand([4], 123) };
  // The loss is linear in y, so the gradient graph does not need the fused node itself and runs on CPU.
  const fused = await runGraph(build(true), feeds);
  const plain = await runGraph(build(false), feeds);
  for (const k of ['g0', 'g1', 'g2']) assert.ok(maxAbsDiff(values(fused[k]), values(plain[k])) < 1e-6, k);

  const fwd = new GraphBuilder('fused-forward');
  const x = fwd.input('x', 'float32', [1, 4, 3, 3]);
  fwd.output(fwd.groupNormFused(x, fwd.weight('g', rand([4], 1)), fwd.weight('b', rand([4], 2)), 2, 1e-5), 'y');
  // Schema and type checks pass; only the CPU kernel is missing.
  await assert.rejects(createSession(fwd.toModel()), /Could not find an implementation for GroupNorm/);
});

test('frozen weights get no gradient nodes; unrelated values get zeros; reuse accumulates', async () => {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [1, 2, 4, 4]);
  const w = g.weight('w', rand([3, 2, 3, 3], 70));
  const unrelated = g.input('u', 'float32', [2]);
  const y = g.conv(x, w, undefined, { pads: [1, 1, 1, 1] });
  const loss = g.reduceSum(g.mul(y, y), [0, 1, 2, 3], false);
  const before = g.nodes.length;
  const [gx, gu] = grad(g, loss, [x, unrelated]);
  const backward = g.nodes.slice(before).map((n) => n.opType);
  assert.ok(backward.includes('ConvTranspose'), 'input gradient uses ConvTranspose');
  assert.ok(!backward.includes('Conv'), `no weight-gradient convolution for a frozen weight: ${backward}`);
  g.output(gx!, 'gx');
  g.output(gu!, 'gu');
  const r = await runGraph(g, { x: rand([1, 2, 4, 4], 71), u: float32([2], Float32Array.from([3, 4])) });
  assert.deepEqual(values(r.gu), [0, 0]);
  assert.ok(values(r.gx).some((v) => v !== 0));

  // A frozen Linear weight is read in place by Gemm (transB), never materialized as its transpose.
  const lin = new GraphBuilder();
  const li = lin.input('x', 'float32', [2, 3, 4]);
  const lw = lin.weight('w', rand([4, 5], 72));
  const ly = lin.matmul(li, lw);
  const start = lin.nodes.length;
  grad(lin, lin.reduceSum(lin.mul(ly, ly), [0, 1, 2], false), [li]);
  const linBackward = lin.nodes.slice(start);
  assert.ok(linBackward.some((n) => n.opType === 'Gemm' && n.inputs[1] === lw));
  assert.ok(!linBackward.some((n) => n.opType === 'Transpose' && n.inputs[0] === lw), 'no transposed copy of the weight');

  const h = new GraphBuilder();
  const a = h.input('a', 'float32', [3]);
  const l = h.reduceSum(h.add(h.mul(a, a), h.mul(a, 3)), [0], false);
  h.output(grad(h, l, [a])[0]!, 'ga');
  const r2 = await runGraph(h, { a: float32([3], Float32Array.from([1, -2, 0.5])) });
  assert.deepEqual(values(r2.ga), [5, -1, 4]);
});

test('grad rejects a non-scalar loss and ops without a rule', () => {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [2]);
  assert.throws(() => grad(g, x, [x]), (e: unknown) => isDarkroomError(e, 'VJP_LOSS_NOT_SCALAR'));
  const y = g.op('Round', [x], {}, { outputInfo: [{ dtype: 'float32', shape: [2] }] })[0]!;
  assert.throws(() => grad(g, g.reduceSum(y, [0], false), [x]), (e: unknown) => isDarkroomError(e, 'VJP_MISSING'));
});
