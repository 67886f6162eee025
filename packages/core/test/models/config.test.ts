import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import type { DType } from '../../src/tensor.js';
import { attentionHeads, inferModelConfig, overridesFromJson, type TensorIndex } from '../../src/model-files/config.js';
import { openCheckpoint, readFloat32 } from '../../src/model-files/checkpoint.js';
import { computeAlphasCumprod } from '../../src/models/schedule.js';

const folder = join(oracleRoot(), 'model');
const haveOracle = existsSync(join(folder, 'cases.json'));
const skip = haveOracle ? false : `oracle data not found at ${folder}`;

function keyIndex(file: string): TensorIndex {
  const json = JSON.parse(readFileSync(join(folder, file), 'utf8')) as {
    keys: Record<string, { shape: number[]; dtype: string }>;
  };
  const dtypes: Record<string, DType> = { F32: 'float32', F16: 'float16', I64: 'int64' };
  return new Map(Object.entries(json.keys).map(([k, v]) => [k, { dtype: dtypes[v.dtype] ?? 'float32', shape: v.shape }]));
}

function jsonFile(file: string): unknown {
  return JSON.parse(readFileSync(join(folder, file), 'utf8'));
}

test('SD1.5 key list: full config inferred without any config file', { skip }, () => {
  const c = inferModelConfig(keyIndex('sd15-keys.json'));
  assert.equal(c.kind, 'sd1');
  assert.equal(c.parameterization, 'eps');
  assert.deepEqual(c.unet.channelMult, [1, 2, 4, 4]);
  assert.equal(c.unet.modelChannels, 320);
  assert.equal(c.unet.numResBlocks, 2);
  assert.deepEqual(c.unet.attentionResolutions, [1, 2, 4]);
  assert.equal(c.unet.contextDim, 768);
  assert.equal(c.unet.useLinearInTransformer, false);
  assert.equal(c.unet.numHeads, 8);
  assert.deepEqual(attentionHeads(c.unet, 1280), { heads: 8, dimHead: 160 });
  assert.deepEqual(c.vae.chMult, [1, 2, 4, 4]);
  assert.equal(c.vae.ch, 128);
  assert.equal(c.vae.numResBlocks, 2);
  assert.deepEqual(c.vae.attnLevels, []);
  assert.equal(c.text.layout, 'hf-clip');
  assert.deepEqual([c.text.width, c.text.heads, c.text.layers, c.text.intermediate], [768, 12, 12, 3072]);
  assert.equal(c.text.activation, 'quick_gelu');
  assert.equal(c.text.defaultClipSkip, 1);
  // The explicit config agrees with what the weights say.
  const withJson = inferModelConfig(keyIndex('sd15-keys.json'), overridesFromJson(jsonFile('sd15-config.json')));
  assert.deepEqual(withJson, c);
});

test('SD2.1 key list: OpenCLIP text, linear proj_in, 64-channel heads; v only when the config says so', { skip }, () => {
  const c = inferModelConfig(keyIndex('sd21-keys.json'));
  assert.equal(c.kind, 'sd2');
  assert.equal(c.parameterization, 'eps');
  assert.equal(c.unet.useLinearInTransformer, true);
  assert.equal(c.unet.contextDim, 1024);
  assert.equal(c.unet.numHeadChannels, 64);
  assert.deepEqual(attentionHeads(c.unet, 640), { heads: 10, dimHead: 64 });
  assert.equal(c.text.layout, 'open-clip');
  assert.deepEqual([c.text.width, c.text.heads, c.text.layers, c.text.intermediate], [1024, 16, 24, 4096]);
  assert.equal(c.text.activation, 'gelu');
  assert.equal(c.text.defaultClipSkip, 2);
  assert.equal(c.text.padTokenId, 0);
  const v = inferModelConfig(keyIndex('sd21-keys.json'), overridesFromJson(jsonFile('sd21-config.json')));
  assert.equal(v.parameterization, 'v');
});

test('tiny checkpoints: heads need the config, and then everything matches the oracle config', { skip }, async () => {
  for (const name of ['tiny-sd1', 'tiny-sd2']) {
    const src = await openCheckpoint(join(folder, `${name}.safetensors`));
    try {
      assert.throws(
        () => inferModelConfig(src.index),
        (e: unknown) => isDarkroomError(e, 'MODEL_CONFIG_REQUIRED'),
      );
      const json = jsonFile(`${name}.json`) as {
        derived: { unet_levels: { channels: number; heads: number; dim_head: number }[] };
        parameterization: string;
      };
      const c = inferModelConfig(src.index, overridesFromJson(json));
      assert.equal(c.parameterization, json.parameterization);
      for (const level of json.derived.unet_levels) {
        assert.deepEqual(attentionHeads(c.unet, level.channels), { heads: level.heads, dimHead: level.dim_head });
      }
      assert.equal(c.text.heads, 4);
      assert.equal(c.text.layers, 3);
      assert.equal(c.unet.numResBlocks, name === 'tiny-sd1' ? 2 : 1);
      assert.equal(c.unet.useLinearInTransformer, name === 'tiny-sd2');
      // The stored schedule buffer is what computeAlphasCumprod gives.
      const stored = await readFloat32(src, 'alphas_cumprod');
      const computed = computeAlphasCumprod(c.schedule);
      for (let i = 0; i < 1000; i++) assert.ok(Math.abs(stored.data[i]! - computed[i]!) <= 1e-7 * 2, `acp[${i}]`);
    } finally {
      await src.close();
    }
  }
});

test('SDXL and other families are refused with MODEL_UNSUPPORTED', { skip }, () => {
  const sd15 = keyIndex('sd15-keys.json');
  const sdxl = new Map(sd15);
  sdxl.set('conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight', {
    dtype: 'float16',
    shape: [49408, 768],
  });
  assert.throws(() => inferModelConfig(sdxl), (e: unknown) => isDarkroomError(e, 'MODEL_UNSUPPORTED'));
  const labelEmb = new Map(sd15);
  labelEmb.set('model.diffusion_model.label_emb.0.0.weight', { dtype: 'float16', shape: [1280, 2816] });
  assert.throws(() => inferModelConfig(labelEmb), (e: unknown) => isDarkroomError(e, 'MODEL_UNSUPPORTED'));
  const vaeOnly = new Map([...sd15].filter(([k]) => k.startsWith('first_stage_model.')));
  assert.throws(() => inferModelConfig(vaeOnly), (e: unknown) => isDarkroomError(e, 'MODEL_UNSUPPORTED'));
});

test('a config that contradicts the weights is refused', { skip }, () => {
  const json = jsonFile('sd15-config.json') as { model: { params: { unet_config: { params: { model_channels: number } } } } };
  const wrong = structuredClone(json);
  wrong.model.params.unet_config.params.model_channels = 256;
  assert.throws(
    () => inferModelConfig(keyIndex('sd15-keys.json'), overridesFromJson(wrong)),
    (e: unknown) => isDarkroomError(e, 'MODEL_CONFIG_MISMATCH'),
  );
});

test('old SD1 text keys and SD2 Turbo SGM keys are renamed as A1111 does', { skip }, async () => {
  const { checkpointFromTensors, normalizeKeys } = await import('../../src/model-files/checkpoint.js');
  const tensors = (index: TensorIndex, rename: (k: string) => string) =>
    new Map([...index].map(([k, v]) => [rename(k), { dtype: 'float32' as const, shape: v.shape, data: new Float32Array(0) }]));
  const old = tensors(keyIndex('sd15-keys.json'), (k) => k.replace('cond_stage_model.transformer.text_model.', 'cond_stage_model.transformer.'));
  assert.ok(!old.has('cond_stage_model.transformer.text_model.final_layer_norm.weight'));
  const sd1 = normalizeKeys(checkpointFromTensors('old-sd1', old));
  assert.equal(inferModelConfig(sd1.index).kind, 'sd1');
  const turbo = tensors(keyIndex('sd21-keys.json'), (k) => k.replace(/^cond_stage_model\./, 'conditioner.embedders.0.'));
  const sd2 = normalizeKeys(checkpointFromTensors('turbo', turbo));
  assert.equal(inferModelConfig(sd2.index).kind, 'sd2');
  // Reads go to the stored name.
  const t = await sd2.read('cond_stage_model.model.ln_final.weight');
  assert.deepEqual(t.shape, [1024]);
  // SDXL (two embedders, no 1024-wide ln_final at embedders.0) is not renamed and stays refused.
  const xl = new Map(turbo);
  xl.delete('conditioner.embedders.0.model.ln_final.weight');
  assert.throws(() => inferModelConfig(normalizeKeys(checkpointFromTensors('xl', xl)).index), (e: unknown) => isDarkroomError(e, 'MODEL_UNSUPPORTED'));
});

test('the inferred configs describe every weight of the tiny checkpoints', { skip }, async () => {
  const { GraphBuilder } = await import('../../src/graph/builder.js');
  const { readComponent } = await import('../../src/model-files/checkpoint.js');
  const { buildUNet } = await import('../../src/models/unet.js');
  const { buildTextEncoder } = await import('../../src/models/clip.js');
  const { buildVaeDecoder, buildVaeEncoder } = await import('../../src/models/vae.js');
  for (const name of ['tiny-sd1', 'tiny-sd2']) {
    const src = await openCheckpoint(join(folder, `${name}.safetensors`));
    try {
      const c = inferModelConfig(src.index, overridesFromJson(jsonFile(`${name}.json`)));
      const unet = buildUNet(new GraphBuilder(), await readComponent(src, 'model.diffusion_model.'), c.unet, {
        batch: 1,
        height: 8,
        width: 8,
        contextLength: 77,
      });
      assert.deepEqual(unet.unusedWeights, [], `${name} UNet`);
      const vaeWeights = await readComponent(src, 'first_stage_model.');
      const dec = buildVaeDecoder(new GraphBuilder(), vaeWeights, c.vae, { batch: 1, height: 8, width: 8, scaleFactor: c.scaleFactor });
      const enc = buildVaeEncoder(new GraphBuilder(), vaeWeights, c.vae, { batch: 1, height: 64, width: 64, scaleFactor: c.scaleFactor });
      // Each VAE half reads its own weights; together they read all of them.
      const unusedByBoth = dec.unusedWeights.filter((k) => enc.unusedWeights.includes(k));
      assert.deepEqual(unusedByBoth, [], `${name} VAE`);
      const text = buildTextEncoder(new GraphBuilder(), await readComponent(src, c.text.prefix), c.text, { batch: 1 });
      const expected =
        c.text.layout === 'hf-clip' ? ['embeddings.token_embedding.weight'] : ['logit_scale', 'text_projection', 'token_embedding.weight'];
      assert.deepEqual([...text.unusedWeights].sort(), expected, `${name} text`);
    } finally {
      await src.close();
    }
  }
});

test('a UNet config that leaves checkpoint weights unused is refused at build time', { skip }, async () => {
  const { readComponent } = await import('../../src/model-files/checkpoint.js');
  const { unetModel } = await import('../../src/models/graphs.js');
  const src = await openCheckpoint(join(folder, 'tiny-sd1.safetensors'));
  try {
    const c = inferModelConfig(src.index, overridesFromJson(jsonFile('tiny-sd1.json')));
    const weights = await readComponent(src, 'model.diffusion_model.');
    assert.throws(
      () => unetModel(weights, { ...c.unet, transformerDepth: 0 }, { batch: 1, height: 8, width: 8, contextLength: 77 }),
      (e: unknown) => isDarkroomError(e, 'MODEL_CONFIG_MISMATCH'),
    );
  } finally {
    await src.close();
  }
});
