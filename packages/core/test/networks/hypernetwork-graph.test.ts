import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { scaledClose } from '../../parity/report.js';
import { isDarkroomError } from '../../src/errors.js';
import { readSafetensorsFile } from '../../src/formats/safetensors.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { feedsFor, hypernetworkGraphKey, hypernetworkHook } from '../../src/networks/hypernetworks/graph.js';
import { loadHypernetworkFile, type Hypernetwork } from '../../src/networks/hypernetworks/hypernetwork.js';
import { applyHypernetworks } from '../../src/networks/hypernetworks/reference.js';
import { createSession } from '../../src/runtime/session.js';
import type { Float32Tensor, HostTensor } from '../../src/tensor.js';

const dir = join(oracleRoot(), 'text', 'hypernetworks');
const haveOracle = existsSync(join(dir, 'hypernetwork_cases.json'));

/** The hook alone on a (B, 77, width) context: outputs k and v. */
async function runHook(chain: Hypernetwork[], multipliers: number[], context: Float32Tensor): Promise<Record<string, HostTensor>> {
  const b = new GraphBuilder('hn-test');
  const ctx = b.input('context', 'float32', context.shape);
  const { k, v } = hypernetworkHook(chain)(b, { k: ctx, v: ctx }, context.shape[2]!, { block: 'test', kind: 'cross' });
  b.output(b.identity(k), 'k');
  b.output(b.identity(v), 'v');
  const s = await createSession(b.toModel(), { threads: 1 });
  try {
    return await s.run({ context, ...feedsFor(chain, multipliers) });
  } finally {
    await s.release();
  }
}

test('the graph form of every oracle hypernetwork matches the reference forward (all activations)', { skip: !haveOracle && 'oracle absent' }, async () => {
  const contexts = (await readSafetensorsFile(join(dir, 'contexts.safetensors'))).tensors as Map<string, Float32Tensor>;
  const files = readdirSync(dir).filter((f) => f.endsWith('.pt')).sort();
  assert.ok(files.length >= 30);
  for (const file of files) {
    const hn = await loadHypernetworkFile(join(dir, file));
    for (const width of hn.sizes) {
      const context = contexts.get(`d${width}`)!;
      if (hn.activationFunc === 'glu') {
        await assert.rejects(runHook([hn], [1], context), (e: unknown) => isDarkroomError(e, 'HYPERNETWORK_SHAPE_MISMATCH'));
        continue;
      }
      const got = await runHook([hn], [0.5], context);
      const want = applyHypernetworks([{ hypernetwork: hn, multiplier: 0.5 }], context);
      for (const [name, ref] of [['k', want.contextK], ['v', want.contextV]] as const) {
        const c = scaledClose(got[name]!.data as Float32Array, ref.data, 1e-5);
        assert.ok(c.ok, `${file} d${width} ${name}: maxAbs ${c.maxAbs}`);
      }
    }
  }
});

test('networks of one architecture share a graph key; order and structure change it', { skip: !haveOracle && 'oracle absent' }, async () => {
  const a = await loadHypernetworkFile(join(dir, 'hn_tanh_dropout.pt'));
  const b = await loadHypernetworkFile(join(dir, 'hn_relu_121.pt'));
  const c = await loadHypernetworkFile(join(dir, 'hn_linear_121.pt'));
  const bRandom = { ...b, layers: c.layers };
  assert.equal(hypernetworkGraphKey([b]), hypernetworkGraphKey([bRandom]));
  assert.notEqual(hypernetworkGraphKey([b]), hypernetworkGraphKey([c]));
  assert.notEqual(hypernetworkGraphKey([a, b]), hypernetworkGraphKey([b, a]));
  // Chained in one graph, the feeds switch networks without rebuilding: equal to the reference chain.
  const context = (await readSafetensorsFile(join(dir, 'contexts.safetensors'))).tensors.get('d32') as Float32Tensor;
  const got = await runHook([b, a], [1, 0.25], context);
  const want = applyHypernetworks([{ hypernetwork: b, multiplier: 1 }, { hypernetwork: a, multiplier: 0.25 }], context);
  assert.ok(scaledClose(got.k!.data as Float32Array, want.contextK.data, 1e-5).ok);
  assert.ok(scaledClose(got.v!.data as Float32Array, want.contextV.data, 1e-5).ok);
});

test('a hypernetwork written by us loads back with the same settings, keys and weights', { skip: !haveOracle && 'oracle absent' }, async () => {
  const { saveHypernetworkPt } = await import('../../src/networks/hypernetworks/save.js');
  const { loadHypernetwork } = await import('../../src/networks/hypernetworks/hypernetwork.js');
  const { readTorch, PyDict, PyTuple, PyOrderedDict } = await import('../../src/formats/torch.js');
  const { readFileSync } = await import('node:fs');
  for (const file of ['hn_silu_deep_ln_dropout.pt', 'hn_act_prelu.pt', 'hn_multisize_swish.pt', 'hn_old_format.pt']) {
    const hn = await loadHypernetworkFile(join(dir, file));
    const bytes = saveHypernetworkPt(hn);
    const back = await loadHypernetwork(bytes, file);
    const { filename: _a, hash: _b, shorthash: _c, layers: la, ...rest } = back;
    const { filename: _d, hash: _e, shorthash: _f, layers: lb, ...want } = hn;
    assert.deepEqual(rest, want, file);
    assert.deepEqual([...la.keys()], [...lb.keys()]);
    for (const [w, [k, v]] of lb) {
      assert.deepEqual(la.get(w)![0].params, k.params);
      assert.deepEqual(la.get(w)![1].params, v.params);
    }
    if (file === 'hn_old_format.pt') continue;
    // Same top-level keys, state-dict keys and globals as the file A1111 wrote.
    const [ours, theirs] = [await readTorch(bytes), await readTorch(new Uint8Array(readFileSync(join(dir, file))))];
    assert.deepEqual(ours.globals, theirs.globals);
    const o = ours.value as InstanceType<typeof PyDict>;
    const t = theirs.value as InstanceType<typeof PyDict>;
    assert.deepEqual([...o.keys()], [...t.keys()]);
    for (const key of t.keys()) {
      if (typeof key !== 'number') continue;
      const [ok, tk] = [(o.get(key) as InstanceType<typeof PyTuple>).items[0], (t.get(key) as InstanceType<typeof PyTuple>).items[0]];
      assert.ok(ok instanceof PyOrderedDict && tk instanceof PyOrderedDict);
      assert.deepEqual([...ok.keys()], [...tk.keys()]);
      assert.equal(JSON.stringify([...((ok.attributes as InstanceType<typeof PyDict>).get('_metadata') as InstanceType<typeof PyDict>).keys()]),
        JSON.stringify([...((tk.attributes as InstanceType<typeof PyDict>).get('_metadata') as InstanceType<typeof PyDict>).keys()]));
    }
  }
});

test('a created hypernetwork has A1111 structure and init statistics, and round-trips through .pt', async () => {
  const { createHypernetwork } = await import('../../src/networks/hypernetworks/create.js');
  const { saveHypernetworkPt } = await import('../../src/networks/hypernetworks/save.js');
  const { loadHypernetwork } = await import('../../src/networks/hypernetworks/hypernetwork.js');
  let s = 12345;
  const uniform = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const random = { uniform, normal: () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()) };
  const hn = createHypernetwork({
    name: 'my/net*', sizes: [64, 32], layerStructure: '1, 2, 2, 1', activationFunc: 'relu', weightInit: 'KaimingNormal',
    addLayerNorm: true, useDropout: true, dropoutStructure: '0, 0.1, 0.1, 0', random,
  });
  assert.equal(hn.name, 'mynet');
  assert.equal(hn.activateOutput, false);
  assert.equal(hn.lastLayerDropout, true);
  const [k] = hn.layers.get(64)!;
  const w0 = k.params.get(0)!;
  assert.deepEqual(w0.weight.shape, [128, 64]);
  let sq = 0;
  for (const v of w0.weight.data) sq += v * v;
  const std = Math.sqrt(sq / w0.weight.data.length);
  assert.ok(Math.abs(std - Math.SQRT2 / Math.sqrt(64)) < 0.01, `kaiming std ${std}`);
  assert.ok(w0.bias!.data.every((v) => v === 0));
  const back = await loadHypernetwork(saveHypernetworkPt(hn), 'mynet.pt');
  assert.deepEqual(back.dropoutStructure, [0, 0.1, 0.1, 0]);
  for (const [i, p] of hn.layers.get(32)![1].params) {
    const q = back.layers.get(32)![1].params.get(i)!;
    assert.deepEqual([q.weight.shape, q.bias?.shape], [p.weight.shape, p.bias?.shape]);
    assert.ok(Buffer.from(q.weight.data.buffer).equals(Buffer.from(p.weight.data.buffer)), `layer ${i} weight`);
  }
  assert.deepEqual(back.layers.get(64)![0].layers.map((l) => l.kind), ['linear', 'activation', 'layernorm', 'dropout', 'linear', 'activation', 'layernorm', 'dropout', 'linear', 'layernorm']);
});

test('the hook is differentiable with respect to its weight inputs (directional finite differences)', { skip: !haveOracle && 'oracle absent' }, async () => {
  const { grad } = await import('../../src/graph/autodiff.js');
  const { declaredHypernetworkInputs } = await import('../../src/networks/hypernetworks/graph.js');
  const context = (await readSafetensorsFile(join(dir, 'contexts.safetensors'))).tensors.get('d32') as Float32Tensor;
  for (const file of ['hn_leakyrelu_ln.pt', 'hn_act_prelu.pt', 'hn_act_softshrink.pt', 'hn_mish_ln_actout.pt', 'hn_act_hardsigmoid.pt']) {
    const hn = await loadHypernetworkFile(join(dir, file));
    const b = new GraphBuilder('hn-grad');
    const ctx = b.input('context', 'float32', context.shape);
    const { k, v } = hypernetworkHook([hn])(b, { k: ctx, v: ctx }, 32, { block: 'test', kind: 'cross' });
    const loss = b.reduceSum(b.add(b.mul(k, k), b.mul(v, b.tanh(v))), [0, 1, 2], false);
    const inputs = [...declaredHypernetworkInputs(b)].filter(([name]) => !name.endsWith('multiplier'));
    const grads = grad(b, loss, inputs.map(([, val]) => val));
    b.output(b.identity(loss), 'loss');
    grads.forEach((g, i) => b.output(b.identity(g), `g${i}`));
    const s = await createSession(b.toModel(), { threads: 1 });
    try {
      const base = feedsFor([hn], [1]);
      // A fixed pseudo-random direction over every weight input.
      let seed = 7;
      const dirs = inputs.map(([name]) => Float32Array.from(base[name]!.data as Float32Array, () => ((seed = (Math.imul(seed, 69069) + 1) >>> 0) / 2 ** 32 - 0.5)));
      const at = async (eps: number): Promise<number> => {
        const feeds: Record<string, HostTensor> = { context, ...base };
        inputs.forEach(([name], i) => {
          const t = base[name]!;
          feeds[name] = { dtype: 'float32', shape: t.shape, data: Float32Array.from(t.data as Float32Array, (x, j) => x + eps * dirs[i]![j]!) };
        });
        return ((await s.run(feeds)).loss!.data as Float32Array)[0]!;
      };
      const r = await s.run({ context, ...base });
      let analytic = 0;
      grads.forEach((_, i) => (r[`g${i}`]!.data as Float32Array).forEach((g, j) => (analytic += g * dirs[i]![j]!)));
      const eps = 1e-3;
      const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
      assert.ok(Math.abs(numeric - analytic) <= 2e-2 * Math.abs(analytic) + 1e-3, `${file}: analytic ${analytic} vs numeric ${numeric}`);
    } finally {
      await s.release();
    }
  }
});
