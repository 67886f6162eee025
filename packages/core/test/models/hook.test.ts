/**
 * The UNet attention hook reaches every attention the way A1111 hypernetworks need it: self-attention by the
 * block width, cross-attention by the context width, per-job data as graph inputs. A small relu+LayerNorm
 * hypernetwork written against the hook reproduces the oracle's unet-hypernet m1 and m0.5 cases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { elementwiseClose } from '../../parity/report.js';
import { readSafetensorsFile } from '../../src/formats/safetensors.js';
import { dictGet, isDict, isTensor, readTorchFile, type PyDict, type PyValue } from '../../src/formats/torch.js';
import type { GraphBuilder, Value } from '../../src/graph/builder.js';
import { loadModel, type AttentionContextHook, type AttentionSite } from '../../src/models/index.js';
import { openCheckpoint, readComponent } from '../../src/model-files/checkpoint.js';
import { inferModelConfig, overridesFromJson, UNET_PREFIX } from '../../src/model-files/config.js';
import { unetModel } from '../../src/models/graphs.js';
import { toFloat32, type Float32Tensor, type HostTensor } from '../../src/tensor.js';

const folder = join(oracleRoot(), 'model');
const skip = existsSync(join(folder, 'cases.json')) ? false : `oracle data not found at ${folder}`;

interface CaseSpec {
  id: string;
  meta: { layers: Record<string, { kind: 'self' | 'cross'; context_width: number }> };
}

function caseSpec(id: string): CaseSpec {
  const cases = (JSON.parse(readFileSync(join(folder, 'cases.json'), 'utf8')) as { cases: CaseSpec[] }).cases;
  return cases.find((c) => c.id === id)!;
}

test('the hook is called for every attention with the kind and context width A1111 sees', { skip }, async () => {
  for (const model of ['tiny-sd1', 'tiny-sd2']) {
    const src = await openCheckpoint(join(folder, `${model}.safetensors`));
    const config = inferModelConfig(src.index, overridesFromJson(JSON.parse(readFileSync(join(folder, `${model}.json`), 'utf8'))));
    const weights = await readComponent(src, UNET_PREFIX);
    await src.close();
    const seen: Record<string, { kind: string; context_width: number }> = {};
    const hook: AttentionContextHook = (_b, sources, width, site: AttentionSite) => {
      assert.equal(sources.k.shape[2], width);
      seen[site.block] = { kind: site.kind, context_width: width };
      return sources;
    };
    unetModel(weights, config.unet, { batch: 2, height: 8, width: 8, contextLength: 77, attentionContext: hook });
    const expected = Object.fromEntries(
      Object.entries(caseSpec(`${model}/unet-hypernet-m1`).meta.layers).map(([k, v]) => [k, { kind: v.kind, context_width: v.context_width }]),
    );
    assert.deepEqual(seen, expected);
  }
});

type Module = Map<string, Float32Tensor>;

function moduleOf(d: PyValue): Module {
  assert.ok(isDict(d));
  const out: Module = new Map();
  for (const [k, v] of d as PyDict) if (typeof k === 'string' && isTensor(v)) out.set(k, toFloat32(v));
  return out;
}

/** x + (LN(Linear(LN(relu(Linear(x)))))) * multiplier: hn_relu_ln's layer structure 1, 2, 1 with layer norm. */
function reluLnMlp(b: GraphBuilder, x: Value, m: Module, name: string, multiplier: Value): Value {
  const w = (k: string): Value => b.weight(`${name}.${k}`, m.get(k)!);
  const lin = (v: Value, i: number): Value => b.add(b.matmul(v, b.transpose(w(`linear.${i}.weight`), [1, 0])), w(`linear.${i}.bias`));
  const ln = (v: Value, i: number): Value => b.layerNorm(v, w(`linear.${i}.weight`), w(`linear.${i}.bias`), 1e-5);
  const h = ln(lin(ln(b.relu(lin(x, 0)), 2), 3), 4);
  return b.add(x, b.mul(h, multiplier));
}

test('a hypernetwork through the hook reproduces the unet-hypernet m1 and m0.5 cases with one graph', { skip }, async () => {
  const hn = (await readTorchFile(join(folder, 'hn_relu_ln.pt'))).value;
  assert.ok(isDict(hn));
  const modules = new Map<number, [Module, Module]>();
  for (const width of [32, 64]) {
    const pair = dictGet(hn, width);
    assert.ok(pair && typeof pair === 'object' && 'items' in pair);
    const [k, v] = (pair as { items: PyValue[] }).items;
    modules.set(width, [moduleOf(k!), moduleOf(v!)]);
  }
  // One multiplier input per graph the hook is asked to build into.
  const multipliers = new WeakMap<GraphBuilder, Value>();
  const hook: AttentionContextHook = (b, sources, width, site) => {
    const pair = modules.get(width);
    if (!pair) return sources;
    let multiplier = multipliers.get(b);
    if (!multiplier) {
      multiplier = b.input('hn_multiplier', 'float32', []);
      multipliers.set(b, multiplier);
    }
    const tag = `hn.${site.block}`;
    return { k: reluLnMlp(b, sources.k, pair[0], `${tag}.k`, multiplier), v: reluLnMlp(b, sources.v, pair[1], `${tag}.v`, multiplier) };
  };
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-model-hook-'));
  try {
    const model = await loadModel({ checkpoint: join(folder, 'tiny-sd1.safetensors'), config: join(folder, 'tiny-sd1.json'), cacheDir, threads: 1 });
    for (const [tag, m] of [['m1', 1], ['m0.5', 0.5]] as const) {
      const c = (await readSafetensorsFile(join(folder, `tiny-sd1.unet-hypernet-${tag}.safetensors`))).tensors;
      const f = (k: string): Float32Tensor => toFloat32(c.get(k) as HostTensor);
      const feeds = { hn_multiplier: { dtype: 'float32' as const, shape: [], data: Float32Array.of(m) } };
      const out = await model.unet.run(f('x'), f('t').data, f('context'), undefined, { key: 'test-hn-relu-ln', attentionContext: hook, feeds });
      const close = elementwiseClose(out.data, f('out').data, 5e-5, 5e-5);
      assert.ok(close.ok, `${tag}: maxAbs ${close.maxAbs}, ${close.failing} off`);
    }
    assert.equal(model.buildCount, 1);
    await model.release();
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
});
