import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { GraphBuilder } from '../../src/graph/builder.js';
import { createSession } from '../../src/runtime/session.js';
import { isDarkroomError } from '../../src/errors.js';
import { float32 } from '../../src/tensor.js';

function doubler(): GraphBuilder {
  const g = new GraphBuilder('doubler');
  const x = g.input('x', 'float32', [3]);
  g.output(g.mul(x, 2), 'y');
  return g;
}

/** The CUDA provider ships as a separate download; this machine class installs without it. */
function cudaProviderInstalled(): boolean {
  const req = createRequire(import.meta.url);
  const pkg = dirname(req.resolve('onnxruntime-node/package.json'));
  return existsSync(join(pkg, 'bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so'));
}

test('a CPU session runs a builder model and reports its names', async () => {
  const s = await createSession(doubler().toModel());
  assert.equal(s.provider, 'cpu');
  assert.deepEqual(s.inputNames, ['x']);
  assert.deepEqual(s.outputNames, ['y']);
  const r = await s.run({ x: float32([3], Float32Array.from([1, 2, 3])) });
  assert.deepEqual(Array.from(r.y!.data as Float32Array), [2, 4, 6]);
  assert.deepEqual(r.y!.shape, [3]);
  await assert.rejects(s.run({}), (e: unknown) => isDarkroomError(e, 'RUNTIME_MISSING_INPUT'));
  await assert.rejects(s.run({ x: float32([3]) }, ['nope']), (e: unknown) => isDarkroomError(e, 'RUNTIME_UNKNOWN_OUTPUT'));
  await s.release();
});

test('run can fetch a subset of the outputs', async () => {
  const g = new GraphBuilder('two');
  const x = g.input('x', 'float32', [2]);
  g.output(g.add(x, 1), 'plus');
  g.output(g.mul(x, 3), 'times');
  const s = await createSession(g.toModel());
  const r = await s.run({ x: float32([2], Float32Array.from([1, 2])) }, ['times']);
  assert.deepEqual(Object.keys(r), ['times']);
  assert.deepEqual(Array.from(r.times!.data as Float32Array), [3, 6]);
  await s.release();
});

test('asking for CUDA without its provider is a typed error, or CPU when fallback is allowed', { skip: cudaProviderInstalled() ? 'the CUDA provider is installed here' : false }, async () => {
  const model = doubler().toModel();
  await assert.rejects(createSession(model, { provider: 'cuda' }), (e: unknown) => isDarkroomError(e, 'PROVIDER_UNAVAILABLE'));
  const s = await createSession(model, { provider: 'cuda', fallbackToCpu: true });
  assert.equal(s.provider, 'cpu');
  const r = await s.run({ x: float32([3], Float32Array.from([1, 0, -1])) });
  assert.deepEqual(Array.from(r.y!.data as Float32Array), [2, 0, -2]);
  await s.release();
});

test('a bad model is not mistaken for a missing provider', async () => {
  const bad = { bytes: new Uint8Array([1, 2, 3]), externalData: [], inputs: [], outputs: [] };
  await assert.rejects(createSession(bad), (e: unknown) => !isDarkroomError(e));
});
