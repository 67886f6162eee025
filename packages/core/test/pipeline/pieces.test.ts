/** The pipeline's small pure pieces: seeds, extra-network tags, 8-bit conversion, resizes, step arithmetic. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { float32 } from '../../src/tensor.js';
import { jobSeeds } from '../../src/pipeline/seeds.js';
import { hypernetworkUses, parseBatchExtraNetworks, parseExtraNetworks } from '../../src/pipeline/extra-networks.js';
import { decodedToRgb8, interpolateLatent, resizeForMode, resizeImage, rgbToVaeInput } from '../../src/pipeline/image.js';
import { img2imgSteps } from '../../src/pipeline/sample.js';
import { flattenOnWhite } from '../../src/pipeline/img2img.js';
import { demoCheckpointTensors, textSpecs, unetSpecs, vaeSpecs } from '../../src/pipeline/demo-model.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { oracleRoot } from '../../parity/oracle.js';

test('seeds: +i per image, the same seed for all with a variation strength, subseeds +i', () => {
  assert.deepEqual(jobSeeds({ seed: 5, subseed: 100, subseed_strength: 0, batch_size: 2, n_iter: 2 }).allSeeds, [5, 6, 7, 8]);
  const v = jobSeeds({ seed: 5, subseed: 100, subseed_strength: 0.3, batch_size: 2, n_iter: 1 });
  assert.deepEqual(v.allSeeds, [5, 5]);
  assert.deepEqual(v.allSubseeds, [100, 101]);
  const r = jobSeeds({ seed: -1, subseed: -1, subseed_strength: 0, batch_size: 1, n_iter: 1 }, () => 31337);
  assert.deepEqual([r.seed, r.subseed], [31337, 31337]);
});

test('extra-network tags leave the text (spaces kept) and only the first prompt of a batch activates', () => {
  const r = parseExtraNetworks('a castle <hypernet:hn_relu_ln:0.8> in <lora:x:1:2>fog');
  assert.equal(r.text, 'a castle  in fog');
  assert.deepEqual(r.calls, [
    { kind: 'hypernet', items: ['hn_relu_ln', '0.8'] },
    { kind: 'lora', items: ['x', '1', '2'] },
  ]);
  assert.deepEqual(hypernetworkUses([...r.calls, { kind: 'hypernet', items: ['y'] }]), [
    { name: 'hn_relu_ln', multiplier: 0.8 },
    { name: 'y', multiplier: 1 },
  ]);
  const b = parseBatchExtraNetworks(['a <hypernet:a:1>', 'b <hypernet:b:1>']);
  assert.deepEqual(b.texts, ['a ', 'b ']);
  assert.deepEqual(b.calls, [{ kind: 'hypernet', items: ['a', '1'] }]);
});

test('8-bit conversion truncates like numpy astype(uint8), after clamping, HWC order', () => {
  // (x+1)/2*255: x=0 -> 127.5 -> 127 (rounding would give 128); x=-1.5 -> 0; x=2 -> 255
  const decoded = Float32Array.of(0, -1.5, 2, 0.999, 0.5, -1, 1, 0.2, 0.1, -0.3, 0.7, 0.9);
  const img = decodedToRgb8(decoded, 2, 2);
  assert.deepEqual([...img.data.subarray(0, 3)], [127, 191, 140]); // B: (1.1/2)*255 = 140.25
  assert.equal(img.data[1 * 3 + 0], 0);
  assert.equal(img.data[2 * 3 + 0], 255);
  const back = rgbToVaeInput(img);
  assert.deepEqual(back.shape, [1, 3, 2, 2]);
  assert.equal(back.data[0], Math.fround(Math.fround(Math.fround(127 / 255) * 2) - 1));
});

test('img2img steps: strength picks int(strength*steps)+1 steps; hires stretches the schedule', () => {
  assert.deepEqual(img2imgSteps(20, 0.75, false), { steps: 20, tEnc: 15 });
  assert.deepEqual(img2imgSteps(20, 1, false), { steps: 20, tEnc: 19 });
  assert.deepEqual(img2imgSteps(10, 0.7, true), { steps: 14, tEnc: 9 });
});

test('PIL-style resampling: identity, constant images stay constant, downscale averages', () => {
  const flat = { width: 8, height: 6, channels: 3 as const, data: new Uint8Array(8 * 6 * 3).fill(77) };
  assert.equal(resizeImage(flat, 8, 6), flat);
  const up = resizeImage(flat, 13, 9);
  assert.ok(up.data.every((v) => v === 77));
  const stripes = { width: 4, height: 1, channels: 1 as const, data: Uint8Array.of(0, 200, 0, 200) };
  // PIL widens the triangle filter by the scale (support 2): output 0 weighs inputs 0,1,2 by .75,.75,.25
  // (normalised /1.75): 200*.75/1.75 = 85.7 -> 86; output 1 weighs inputs 1,2,3: 200/1.75 = 114.3 -> 114
  const half = resizeImage(stripes, 2, 1, 'bilinear');
  assert.deepEqual([...half.data], [86, 114]);
  // crop-and-resize fills the target exactly; resize-and-fill keeps the whole image with stretched edges
  const wide = { width: 16, height: 8, channels: 3 as const, data: new Uint8Array(16 * 8 * 3).fill(10) };
  for (const mode of [0, 1, 2]) {
    const r = resizeForMode(wide, mode, 8, 8);
    assert.deepEqual([r.width, r.height], [8, 8]);
    assert.ok(r.data.every((v) => v === 10), `mode ${mode}`);
  }
});

test('RGBA init images are composited over white', () => {
  const img = flattenOnWhite({ width: 2, height: 1, channels: 4, data: Uint8Array.of(0, 0, 0, 255, 0, 0, 0, 0) });
  assert.deepEqual([...img.data], [0, 0, 0, 255, 255, 255]);
});

test('latent interpolation (torch, align_corners=False): 2x bilinear of a ramp, nearest picks', () => {
  const x = float32([1, 1, 1, 2], Float32Array.of(0, 1));
  const up = interpolateLatent(x, 1, 4, 'bilinear');
  assert.deepEqual([...up.data], [0, 0.25, 0.75, 1]);
  // bicubic (A = -0.75) keeps constants; halving a ramp samples it at half-integers, where the symmetric
  // weights (-0.09375, 0.59375, 0.59375, -0.09375) give the ramp's value exactly (away from clamped borders)
  const flat = interpolateLatent(float32([1, 1, 2, 2], new Float32Array(4).fill(3)), 5, 5, 'bicubic');
  assert.ok(flat.data.every((v) => Math.abs(v - 3) < 1e-5));
  const ramp = float32([1, 1, 1, 8], Float32Array.from({ length: 8 }, (_, i) => i));
  const cubic = interpolateLatent(ramp, 1, 4, 'bicubic');
  assert.deepEqual([cubic.data[1], cubic.data[2]], [2.5, 4.5]);
  const near = interpolateLatent(x, 1, 4, 'nearest');
  assert.deepEqual([...near.data], [0, 0, 1, 1]);
});

test('demo checkpoint: A1111 key names and shapes of the tiny-sd1 layout, deterministic bytes', () => {
  const tensors = demoCheckpointTensors(600);
  const a = createHash('sha256').update(writeSafetensors(tensors)).digest('hex');
  const b = createHash('sha256').update(writeSafetensors(demoCheckpointTensors(600))).digest('hex');
  assert.equal(a, b);
  assert.ok(tensors.has('model.diffusion_model.output_blocks.2.2.conv.weight'));
  const oracle = join(oracleRoot(), 'model', 'tiny-sd1.safetensors');
  if (!existsSync(oracle)) return;
  // every weight of the oracle's tiny-sd1 checkpoint exists here with the same shape (vocab size aside)
  const bytes = readFileSync(oracle);
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString()) as Record<string, { shape: number[] }>;
  const ours = new Map([...unetSpecs(), ...vaeSpecs(), ...textSpecs(49408)].map(([k, s]) => [k, s]));
  const theirs = Object.entries(header).filter(([k]) => k.includes('_model.') && !k.endsWith('position_ids'));
  assert.equal(theirs.length, ours.size);
  for (const [k, v] of theirs) assert.deepEqual(ours.get(k), v.shape, k);
});
