/** GraphBuilder.promoteWeights (weights fed as inputs, differentiable) and bindInput (a declared input fed in-graph). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/graph/builder.js';
import { grad } from '../../src/graph/autodiff.js';
import { isDarkroomError } from '../../src/errors.js';
import { float32 } from '../../src/tensor.js';
import { runGraph } from './helpers.js';

test('promoted weights become inputs the run feeds, with gradients; constants and other weights stay stored', async () => {
  const b = new GraphBuilder('promote');
  const x = b.input('x', 'float32', [1, 2]);
  const w = b.weight('layer.w', float32([2, 2], Float32Array.of(1, 2, 3, 4)));
  const frozen = b.weight('frozen.bias', float32([2], Float32Array.of(10, 20)));
  const y = b.add(b.mul(b.matmul(x, w), 2), frozen);
  const loss = b.reduceSum(y, [0, 1], false);
  const promoted = b.promoteWeights((name) => name.startsWith('layer.'));
  assert.deepEqual(promoted.map((p) => p.value.name), ['layer.w']);
  assert.deepEqual(Array.from(promoted[0]!.tensor.data as Float32Array), [1, 2, 3, 4]);
  assert.ok(!b.isInitializer(w) && b.isInitializer(frozen));
  assert.deepEqual(b.graphInputs.map((v) => v.name), ['x', 'layer.w']);
  const [gw] = grad(b, loss, [w]);
  b.output(y, 'y');
  b.output(gw!, 'gw');
  // The fed value is used, not the one the weight was built with.
  const r = await runGraph(b, { x: float32([1, 2], Float32Array.of(1, -1)), 'layer.w': float32([2, 2], Float32Array.of(0, 1, 1, 0)) });
  assert.deepEqual(Array.from(r.y!.data as Float32Array), [8, 22]);
  // d sum(2 x W) / dW = 2 x^T 1
  assert.deepEqual(Array.from(r.gw!.data as Float32Array), [2, 2, -2, -2]);
});

test('a bound input is the bound value: no graph input is declared, and shapes must agree', async () => {
  const b = new GraphBuilder('bind');
  const a = b.input('a', 'float32', [2]);
  const doubled = b.mul(a, 2);
  b.bindInput('latent', doubled);
  const latent = b.input('latent', 'float32', [2]);
  assert.equal(latent, doubled);
  assert.deepEqual(b.graphInputs.map((v) => v.name), ['a']);
  b.output(b.add(latent, 1), 'out');
  const r = await runGraph(b, { a: float32([2], Float32Array.of(1, 2)) });
  assert.deepEqual(Array.from(r.out!.data as Float32Array), [3, 5]);
  // The binding is used once; a second input of that name is a real input.
  assert.notEqual(b.input('latent', 'float32', [2]), doubled);

  const c = new GraphBuilder('bad');
  c.bindInput('z', c.input('q', 'float32', [3]));
  assert.throws(() => c.input('z', 'float32', [2]), (e: unknown) => isDarkroomError(e) && e.code === 'GRAPH_SHAPE_ERROR');
});
