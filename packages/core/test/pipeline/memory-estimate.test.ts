import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionMode } from '../../src/planning/attention.js';
import { DEMO_MODEL_CONFIG, SD1_CONFIG, SD2_CONFIG } from '../../src/model-files/reference-configs.js';
import { hiresSize } from '../../src/pipeline/hires-size.js';
import { attentionMemory, estimateJobMemory, PLAIN_ATTENTION_MEMORY, type MemoryEstimateRequest } from '../../src/pipeline/memory-estimate.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/**
 * Peak RSS of the demo model measured by bench/memory-estimate.ts (a child process per case, cold graph cache,
 * two iterations of three steps): [attention, case, child baseline MiB, peak MiB]. The estimate must stay above each.
 */
const MEASURED: ReadonlyArray<readonly [AttentionMode, string, number, number]> = [
  ['plain', '128', 94.0, 222.6], ['plain', '256', 98.0, 415.6], ['plain', '384', 100.9, 880.5], ['plain', '512', 103.0, 2003.2],
  ['plain', '256b2', 101.9, 528.8], ['plain', '384b2', 101.2, 959.6], ['plain', '512x256', 94.4, 799.9], ['plain', '256hr1.5', 101.3, 1014.1],
  ['plain', '256hr2', 100.5, 2134.9], ['plain', '256i2i', 101.5, 444.9],
  ['subquad', '512', 103.3, 1196.3], ['subquad', '768', 99.6, 2227.8], ['subquad', '1024', 95.9, 3807.0],
  ['auto', '1024', 101.2, 2826.9], ['auto', '1536', 102.9, 2155.1], ['auto', '2048', 100.8, 2870.0],
];

function demoCase(attention: AttentionMode, name: string, baselineMiB: number): MemoryEstimateRequest {
  const m = /^(\d+)(?:x(\d+))?(?:b(\d+))?(?:hr([\d.]+))?(i2i)?$/.exec(name)!;
  const width = Number(m[1]);
  const height = m[2] ? Number(m[2]) : width;
  const hr = m[4] ? Number(m[4]) : 0;
  return {
    config: DEMO_MODEL_CONFIG, width, height, batchSize: m[3] ? Number(m[3]) : 1, encodesInput: m[5] !== undefined,
    ...(hr ? { hires: { ...hiresSize({ width, height, hr_scale: hr, hr_resize_x: 0, hr_resize_y: 0 }), latentUpscale: true } } : {}),
    attention: attentionMemory(attention, 'cpu'), runtimeBytes: baselineMiB * MiB,
  };
}

test('the estimate stays above every measured peak of the demo model, within twice the measured growth', () => {
  for (const [attention, name, baseline, peak] of MEASURED) {
    const estimate = estimateJobMemory(demoCase(attention, name, baseline)).bytes / MiB;
    const which = `${attention} ${name}`;
    assert.ok(estimate >= peak, `${which}: estimated ${estimate.toFixed(0)} MiB below the measured ${peak} MiB`);
    assert.ok(estimate - baseline <= 2 * (peak - baseline), `${which}: estimated ${estimate.toFixed(0)} MiB, more than twice the measured growth`);
  }
});

test('plain attention grows with the fourth power of the side; lean attention with the square', () => {
  const at = (side: number, attention: MemoryEstimateRequest['attention']) =>
    estimateJobMemory({ config: DEMO_MODEL_CONFIG, width: side, height: side, batchSize: 1, attention }).parts.unet[0]!;
  const plain = [512, 1024].map((s) => at(s, PLAIN_ATTENTION_MEMORY));
  assert.ok(plain[1]! / plain[0]! > 14, 'twice the side, about sixteen times the scores');
  for (const mode of ['split', 'subquad', 'fused', 'auto'] as const) {
    const lean = [512, 1024].map((s) => at(s, attentionMemory(mode, 'cpu')));
    assert.ok(lean[1]! < plain[1]! / 10, mode);
    assert.ok(lean[1]! / lean[0]! <= 4, `${mode}: four times the tokens, at most four times the memory`);
  }
  assert.deepEqual(attentionMemory('plain', 'cpu'), PLAIN_ATTENTION_MEMORY);
});

test('batch, AND parts, hires and img2img each add what they open', () => {
  const base = { config: SD1_CONFIG, width: 512, height: 512, batchSize: 1, attention: PLAIN_ATTENTION_MEMORY } as const;
  const one = estimateJobMemory(base);
  assert.ok(estimateJobMemory({ ...base, batchSize: 2 }).bytes > one.bytes);
  assert.ok(estimateJobMemory({ ...base, condsPerImage: 2 }).bytes > one.bytes);
  const latentHires = estimateJobMemory({ ...base, hires: { width: 1024, height: 1024, latentUpscale: true } });
  assert.equal(latentHires.parts.unet.length, 2, 'a UNet session per pass');
  assert.equal(latentHires.parts.vae.length, 1, 'decoded once, at the final size');
  const imageHires = estimateJobMemory({ ...base, hires: { width: 1024, height: 1024, latentUpscale: false } });
  assert.equal(imageHires.parts.vae.length, 3, 'first-pass decoder, second-pass encoder and decoder');
  assert.equal(estimateJobMemory({ ...base, encodesInput: true }).parts.vae.length, 2);
});

test('full-size models: weights from the parameter counts dominate small images', () => {
  const sd1 = estimateJobMemory({ config: SD1_CONFIG, width: 256, height: 256, batchSize: 1, attention: PLAIN_ATTENTION_MEMORY });
  // the one full-size observation on record: 8.8 GB for one 256x256 step of SD 1.5 on the CPU
  assert.ok(sd1.bytes > 8.8e9 && sd1.bytes < 1.5 * 8.8e9, `${(sd1.bytes / GiB).toFixed(2)} GiB`);
  assert.ok(sd1.parts.weights > 0.8 * sd1.bytes);
  const sd2 = estimateJobMemory({ config: SD2_CONFIG, width: 256, height: 256, batchSize: 1, attention: PLAIN_ATTENTION_MEMORY });
  assert.ok(sd2.parts.weights > sd1.parts.weights, 'OpenCLIP ViT-H is larger than CLIP ViT-L');
});

test('a checkpoint file smaller than the config\'s parameters holds a smaller model: its weights are scaled down', () => {
  const base = { config: SD1_CONFIG, width: 64, height: 64, batchSize: 1, attention: PLAIN_ATTENTION_MEMORY } as const;
  const full = estimateJobMemory(base);
  assert.equal(estimateJobMemory({ ...base, checkpointBytes: 2.2e9 }).parts.weights, full.parts.weights, 'an F16 SD 1.5 file is the whole model');
  const tiny = estimateJobMemory({ ...base, checkpointBytes: 10 * MiB });
  assert.ok(tiny.parts.weights < 64 * MiB);
  assert.deepEqual(tiny.parts.unet, full.parts.unet, 'activations still as large as the config allows');
});
