import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { GraphBuilder, type Value } from '../../src/graph/builder.js';
import { createSession } from '../../src/runtime/session.js';
import { isDarkroomError } from '../../src/errors.js';
import { float32, floatToHalf, halfToFloat, type HostTensor } from '../../src/tensor.js';
import { maxAbsDiff, rand, values } from './helpers.js';

/** A small conv + norm + attention block with several weights, enough to exercise every writer path. */
function block(opts: { storeWeightsAs?: 'float16' } = {}): GraphBuilder {
  const g = new GraphBuilder('block', opts);
  const x = g.input('x', 'float32', [1, 4, 4, 4]);
  const ctx = g.input('context', 'float32', [1, 3, 8]);
  const w = g.weight('conv.weight', rand([8, 4, 3, 3], 1, 0.3));
  const b = g.weight('conv.bias', rand([8], 2));
  let h = g.conv(x, w, b, { pads: [1, 1, 1, 1] });
  h = g.silu(g.groupNorm(h, g.weight('norm.weight', rand([8], 3)), g.weight('norm.bias', rand([8], 4)), 2, 1e-6));
  const seq = g.transpose(g.reshape(h, [1, 8, 16]), [0, 2, 1]);
  const q = g.matmul(seq, g.weight('to_q', rand([8, 8], 5, 0.3)));
  const k = g.matmul(ctx, g.weight('to_k', rand([8, 8], 6, 0.3)));
  const v = g.matmul(ctx, g.weight('to_v', rand([8, 8], 7, 0.3)));
  const a = g.layerNorm(g.attention(q, k, v, 2), g.weight('ln.weight', rand([8], 8)), g.weight('ln.bias', rand([8], 9)), 1e-5);
  g.output(g.reduceMean(a, [1], false), 'pooled');
  g.output(g.resizeNearest(h, 2), 'up');
  return g;
}

const feeds = { x: rand([1, 4, 4, 4], 11), context: rand([1, 3, 8], 12) };

async function run(model: Parameters<typeof createSession>[0]): Promise<Record<string, HostTensor>> {
  const s = await createSession(model, { threads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

test('equal graphs serialize to identical bytes', () => {
  const a = block().toModel();
  const b = block().toModel();
  assert.equal(createHash('sha256').update(a.bytes).digest('hex'), createHash('sha256').update(b.bytes).digest('hex'));
  // Attribute order in the call does not matter.
  const mk = (attrsFirst: boolean): Uint8Array => {
    const g = new GraphBuilder('attrs');
    const x = g.input('x', 'float32', [1, 1, 3, 3]);
    const attrs = attrsFirst
      ? { mode: { s: 'constant' }, foo_unused: { i: 1 } }
      : { foo_unused: { i: 1 }, mode: { s: 'constant' } };
    g.output(g.op('Pad', [x, g.ints([0, 0, 1, 1, 0, 0, 1, 1])], attrs)[0]!, 'y');
    return g.toModel().bytes;
  };
  assert.deepEqual(mk(true), mk(false));
  // And different weight storage changes them.
  assert.notDeepEqual(block({ storeWeightsAs: 'float16' }).toModel().bytes, a.bytes);
});

test('the model round-trips through onnxruntime with its declared names and shapes', async () => {
  const m = block().toModel();
  assert.deepEqual(m.inputs, ['x', 'context']);
  assert.deepEqual(m.outputs, ['pooled', 'up']);
  assert.equal(m.externalData.length, 0);
  const r = await run(m);
  assert.deepEqual(r.pooled!.shape, [1, 8]);
  assert.deepEqual(r.up!.shape, [1, 8, 8, 8]);
  assert.ok(values(r.pooled).every(Number.isFinite));
});

test('dead nodes and unused weights are left out of the model', () => {
  const g = new GraphBuilder('dead');
  const x = g.input('x', 'float32', [4]);
  g.weight('unused', float32([1000]));
  g.exp(g.log(x));
  g.output(g.neg(x), 'y');
  const m = g.toModel();
  assert.ok(m.bytes.length < 400, `${m.bytes.length} bytes`);
  assert.ok(!new TextDecoder().decode(m.bytes).includes('unused'));
});

test('external data: in-memory buffers and files on disk give the same results as inline weights', async () => {
  const inline = await run(block().toModel());
  const ext = block().toModel({ externalDataAboveBytes: 64 });
  assert.equal(ext.externalData.length, 4, 'conv.weight, to_q, to_k, to_v are over 64 bytes');
  const moved = ext.externalData.reduce((n, e) => n + e.data.length, 0);
  assert.equal(moved, (8 * 4 * 9 + 3 * 64) * 4);
  // The raw bytes left the protobuf; only location/offset/length entries stayed behind.
  assert.ok(ext.bytes.length < block().toModel().bytes.length - moved + 4 * 80);
  const r = await run(ext);
  assert.equal(maxAbsDiff(values(r.pooled), values(inline.pooled)), 0);
  assert.equal(maxAbsDiff(values(r.up), values(inline.up)), 0);

  // The same locations work as files next to a .onnx path (how a compile cache would store them).
  const dir = mkdtempSync(join(tmpdir(), 'darkroom-ext-'));
  try {
    writeFileSync(join(dir, 'model.onnx'), ext.bytes);
    for (const e of ext.externalData) writeFileSync(join(dir, e.path), e.data);
    const fromDisk = await run(join(dir, 'model.onnx'));
    assert.equal(maxAbsDiff(values(fromDisk.up), values(inline.up)), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('opsets 17 to 21 load and agree; others are refused', async () => {
  const ref = await run(block().toModel());
  for (const opset of [18, 21]) {
    const r = await run(block().toModel({ opset }));
    assert.ok(maxAbsDiff(values(r.pooled), values(ref.pooled)) < 1e-6, `opset ${opset}`);
  }
  assert.throws(() => block().toModel({ opset: 13 }), (e: unknown) => isDarkroomError(e, 'GRAPH_OPSET_UNSUPPORTED'));
});

test('float16 weights: stored as half, computed in float32', async () => {
  const ref = await run(block().toModel());
  const half = block({ storeWeightsAs: 'float16' }).toModel();
  const sizeOf = (opts: { storeWeightsAs?: 'float16' }): number => {
    const g = new GraphBuilder('heavy', opts);
    g.output(g.matmul(g.input('x', 'float32', [2, 64]), g.weight('w', rand([64, 64], 1))), 'y');
    return g.toModel().bytes.length;
  };
  assert.ok(sizeOf({ storeWeightsAs: 'float16' }) < sizeOf({}) * 0.52, 'weights take half the bytes');
  const r = await run(half);
  const d = maxAbsDiff(values(r.pooled), values(ref.pooled));
  assert.ok(d > 0 && d < 5e-3, `fp16 storage error ${d}`);

  // A float16 tensor given directly, and float16 scalars in a float16 graph.
  const g = new GraphBuilder('fp16');
  const x = g.input('x', 'float16', [3]);
  const w: HostTensor = { dtype: 'float16', shape: [3], data: Uint16Array.from([0.5, -2, 3], floatToHalf) };
  const y: Value = g.mul(g.add(x, g.weight('w', w)), 0.5);
  assert.equal(y.dtype, 'float16');
  g.output(y, 'y');
  const s = await createSession(g.toModel());
  const out = await s.run({ x: { dtype: 'float16', shape: [3], data: Uint16Array.from([1, 1, 1], floatToHalf) } });
  await s.release();
  assert.equal(out.y!.dtype, 'float16');
  assert.deepEqual(Array.from(out.y!.data as Uint16Array, halfToFloat), [0.75, -0.5, 2]);
});
