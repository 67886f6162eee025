import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inferModelConfig, overridesFromJson, type TensorIndex } from '../../src/model-files/config.js';
import { parameterCounts } from '../../src/model-files/parameter-count.js';
import { BUILTIN_MODEL_CONFIG, DEMO_MODEL_CONFIG, SD1_CONFIG, SD2_CONFIG } from '../../src/model-files/reference-configs.js';
import { readFileSync } from 'node:fs';
import { openCheckpoint } from '../../src/model-files/checkpoint.js';
import { BUILTIN_CHECKPOINT } from '../../src/catalog/built-in-model.js';
import { demoModelConfig, textSpecs, unetSpecs, vaeSpecs } from '../../src/pipeline/demo-model.js';
import { buildDemoVocabulary } from '../../src/text/bpe-vocab.js';

type Spec = readonly [string, readonly number[], ...unknown[]];
const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const sum = (specs: readonly Spec[], prefix: string, exclude?: string): number =>
  specs.filter(([n]) => n.startsWith(prefix) && !(exclude && n.startsWith(exclude))).reduce((a, [, s]) => a + numel(s), 0);

test('the demo config is what inferModelConfig reads from the demo checkpoint, and its counts are its tensors', () => {
  const vocab = buildDemoVocabulary().encoder.size;
  const specs: Spec[] = [...unetSpecs(), ...vaeSpecs(), ...textSpecs(vocab)];
  const index: TensorIndex = new Map(specs.map(([n, s]) => [n, { dtype: 'float32' as const, shape: s }]));
  assert.deepEqual(inferModelConfig(index, overridesFromJson(demoModelConfig(vocab))), DEMO_MODEL_CONFIG);
  const counts = parameterCounts(DEMO_MODEL_CONFIG);
  assert.equal(counts.unet, sum(specs, 'model.diffusion_model.'));
  assert.equal(counts.vaeEncoder, sum(specs, 'first_stage_model.encoder.') + sum(specs, 'first_stage_model.quant_conv.'));
  assert.equal(counts.vaeDecoder, sum(specs, 'first_stage_model.decoder.') + sum(specs, 'first_stage_model.post_quant_conv.'));
  assert.equal(counts.text, sum(specs, 'cond_stage_model.'));
});

test('the built-in config is what inferModelConfig reads from the shipped checkpoint and its config', async () => {
  const source = await openCheckpoint(BUILTIN_CHECKPOINT);
  try {
    const json: unknown = JSON.parse(readFileSync(BUILTIN_CHECKPOINT.replace(/\.safetensors$/, '.json'), 'utf8'));
    const read = inferModelConfig(source.index, overridesFromJson(json as object));
    // The scale factor is measured per training run; memory estimates, the only readers of this copy, ignore it.
    assert.deepEqual({ ...read, scaleFactor: 0 }, { ...BUILTIN_MODEL_CONFIG, scaleFactor: 0 });
  } finally {
    await source.close();
  }
});

// The tensor counts of the upstream ldm / CLIP / OpenCLIP modules at full size (the shapes A1111 loads with
// v1-inference.yaml and v2-inference-v.yaml; bench/support/fullsize-models.json records the UNets').
test('full-size SD1 and SD2 counts match the upstream modules', () => {
  const sd1 = parameterCounts(SD1_CONFIG);
  assert.equal(sd1.unet, 859_520_964);
  assert.equal(sd1.vaeEncoder, 34_163_664);
  assert.equal(sd1.vaeDecoder, 49_490_199);
  assert.equal(sd1.text, 123_060_480);
  const sd2 = parameterCounts(SD2_CONFIG);
  assert.equal(sd2.unet, 865_910_724);
  assert.equal(sd2.vaeDecoder, 49_490_199);
  // 354 032 641 tensors in the checkpoint, less text_projection (1024 x 1024) and logit_scale, which SD never uses
  assert.equal(sd2.text, 352_984_064);
});
