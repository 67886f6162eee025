import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDarkroomError } from '../../src/errors.js';
import { attentionBuild, attentionKey, layerAttention, parseAttentionMode } from '../../src/planning/attention.js';
import { openCheckpoint, readComponent } from '../../src/model-files/checkpoint.js';
import { inferModelConfig, overridesFromJson, UNET_PREFIX } from '../../src/model-files/config.js';
import { unetModel } from '../../src/models/graphs.js';
import { loadModel } from '../../src/models/load.js';
import { createSession } from '../../src/runtime/session.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import type { Float32Tensor } from '../../src/tensor.js';

test('attention modes: names, A1111 flag aliases with or without dashes, unknown names refused', () => {
  assert.equal(parseAttentionMode('auto'), 'auto');
  assert.equal(parseAttentionMode(' SubQuad '), 'subquad');
  assert.equal(parseAttentionMode('opt-split-attention'), 'split');
  assert.equal(parseAttentionMode('--opt-sub-quad-attention'), 'subquad');
  assert.equal(parseAttentionMode('--xformers'), 'fused');
  assert.equal(parseAttentionMode('opt-sdp-attention'), 'fused');
  assert.equal(parseAttentionMode('disable-opt-split-attention'), 'plain');
  assert.throws(() => parseAttentionMode('flash'), (e: unknown) => isDarkroomError(e, 'ATTENTION_MODE_UNKNOWN'));
});

test('auto: the plain reference for small attentions, the fused kernel above on CPU and everywhere on GPUs', () => {
  const tiny = { batch: 2, heads: 8, queries: 64, keys: 64 };
  const small = { batch: 2, heads: 8, queries: 1024, keys: 1024 };
  const large = { batch: 2, heads: 8, queries: 16384, keys: 16384 };
  const cross = { batch: 2, heads: 8, queries: 16384, keys: 77 };
  const lowCross = { batch: 2, heads: 8, queries: 1024, keys: 77 };
  // the bound does not follow the chunk target: a large target must not keep SD 1.5's 1024-token scores plain
  const cpu = attentionBuild('auto', 'cpu', 1024 ** 3);
  assert.equal(layerAttention(cpu, tiny).form, 'plain');
  assert.equal(layerAttention(cpu, lowCross).form, 'plain');
  // SD 1.5 at 1024x1024: 64 MiB of scores at the third level, 80 MiB in the first level's cross-attention
  assert.equal(layerAttention(cpu, small).form, 'fused');
  assert.equal(layerAttention(cpu, cross).form, 'fused');
  assert.equal(layerAttention(cpu, large).form, 'fused');
  assert.ok(attentionBuild('auto', 'cpu').plainUpToBytes <= 16 * 1024 ** 2);
  // the chunked forms keep an attention plain when its scores and their softmax fit one chunk
  assert.equal(layerAttention(attentionBuild('split', 'cpu', 1024 ** 3), small).form, 'plain');
  assert.equal(layerAttention(attentionBuild('auto', 'cuda'), small).form, 'fused');
  assert.equal(layerAttention(attentionBuild('fused'), small).form, 'fused');
  assert.equal(layerAttention(attentionBuild('plain'), large).form, 'plain');
  const split = layerAttention(attentionBuild('split', 'cpu', 256 * 1024 ** 2), large);
  assert.equal(split.form, 'split');
  assert.ok(split.form === 'split' && split.queries.length > 1);
  const sub = layerAttention(attentionBuild('subquad', 'cpu', 256 * 1024 ** 2), large);
  assert.ok(sub.form === 'subquad' && sub.keys.length > 1);
  // The chunk target only matters to the forms that use it.
  assert.deepEqual(attentionKey(attentionBuild('plain', 'cpu', 1)), attentionKey(attentionBuild('plain')));
  assert.notDeepEqual(attentionKey(attentionBuild('split', 'cpu', 1)), attentionKey(attentionBuild('split')));
  assert.throws(() => attentionBuild('split', 'cpu', 0), (e: unknown) => isDarkroomError(e, 'ATTENTION_CHUNK_BYTES'));
});

function latentNoise(shape: number[], seed: number): Float32Tensor {
  let s = seed;
  const n = shape.reduce((a, d) => a * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 31 - 1) * 1.5;
  }
  return { dtype: 'float32', shape, data };
}

function maxDiff(a: Float32Tensor, b: Float32Tensor): number {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

test('every mode renders the demo UNet and VAE within float tolerance of plain, each compiled under its own key', async () => {
  const root = await mkdtemp(join(tmpdir(), 'darkroom-attention-'));
  try {
    const demo = await ensureDemoModel(root);
    const cacheDir = join(root, 'cache');
    const x = latentNoise([2, 4, 16, 16], 3);
    const context = latentNoise([2, 77, 32], 4);
    const t = Float32Array.of(500, 20);
    const latent = latentNoise([1, 4, 16, 16], 5);
    const run = async (attention: string): Promise<{ eps: Float32Tensor; image: Float32Tensor }> => {
      // A tiny chunk target so the 256-token layers really are cut into several chunks.
      const m = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir, threads: 1, attention, attentionChunkBytes: 64 * 1024 });
      try {
        return { eps: await m.unet.run(x, t, context), image: await m.vae.decode(latent) };
      } finally {
        await m.release();
      }
    };
    const plain = await run('plain');
    for (const mode of ['split', 'opt-sub-quad-attention', 'xformers', 'auto']) {
      const r = await run(mode);
      assert.ok(maxDiff(r.eps, plain.eps) < 5e-5, `${mode} unet ${maxDiff(r.eps, plain.eps)}`);
      assert.ok(maxDiff(r.image, plain.image) < 5e-5, `${mode} vae ${maxDiff(r.image, plain.image)}`);
    }
    const graphs = readdirSync(join(cacheDir, 'graphs'));
    // Each mode is its own cache entry for the UNet and the decoder.
    assert.equal(graphs.filter((g) => g.startsWith('unet-')).length, 5);
    assert.equal(graphs.filter((g) => g.startsWith('vae_decoder-')).length, 5);
    const ops = (g: string): string => readFileSync(join(cacheDir, 'graphs', g, 'model.onnx')).toString('latin1');
    assert.ok(graphs.some((g) => g.startsWith('unet-') && ops(g).includes('ReduceMax')), 'a sub-quadratic UNet');
    assert.ok(graphs.some((g) => g.startsWith('unet-') && ops(g).includes('MultiHeadAttention')), 'a fused UNet');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('feed-forwards in token chunks give the same values, bit for bit', async () => {
  const root = await mkdtemp(join(tmpdir(), 'darkroom-ff-chunks-'));
  try {
    const demo = await ensureDemoModel(root);
    const source = await openCheckpoint(demo.checkpoint);
    const weights = await readComponent(source, UNET_PREFIX);
    await source.close();
    const config = inferModelConfig(source.index, overridesFromJson(demo.config)).unet;
    const shape = { batch: 2, height: 16, width: 16, contextLength: 77 };
    const x = latentNoise([2, 4, 16, 16], 7);
    const context = latentNoise([2, 77, 32], 8);
    const run = async (feedForwardChunkBytes?: number): Promise<Float32Tensor> => {
      const s = await createSession(unetModel(weights, config, { ...shape, ...(feedForwardChunkBytes ? { feedForwardChunkBytes } : {}) }), { threads: 1 });
      try {
        return (await s.run({ x, t: { dtype: 'float32', shape: [2], data: Float32Array.of(400, 30) }, context_k: context, context_v: context })).out as Float32Tensor;
      } finally {
        await s.release();
      }
    };
    const whole = await run();
    // 256 tokens x 256 hidden features x batch 2: 1 MiB of GEGLU activations, here in 16 chunks.
    const chunked = await run(64 * 1024);
    assert.deepEqual(Array.from(chunked.data), Array.from(whole.data));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('an unknown attention mode fails the load with ATTENTION_MODE_UNKNOWN', async () => {
  const root = await mkdtemp(join(tmpdir(), 'darkroom-attention-bad-'));
  try {
    const demo = await ensureDemoModel(root);
    await assert.rejects(
      loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir: join(root, 'cache'), attention: 'flash' }),
      (e: unknown) => isDarkroomError(e, 'ATTENTION_MODE_UNKNOWN'),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
