/**
 * Whole-model training on the micro architecture (16x16 images): every weight of the VAE, the UNet and the
 * text encoder gets a gradient that agrees with finite differences, and a few dozen AdamW steps bring the
 * losses down on a fixed batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlatParameters } from '../../src/training/flat-parameters.js';
import { MICRO_ARCHITECTURE, newScratchModel, writeScratchCheckpoint } from '../../src/training/scratch-model.js';
import { captionScene, imageToChw, renderScene, trainingScene } from '../../src/training/scenes/index.js';
import { captionTokenIds, COMPONENTS, DecoderObjective, DiffusionObjective, VaeObjective, WholeModelOptimizer } from '../../src/training/whole-model.js';
import { KeyedStream } from '../../src/training/keyed-random.js';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/models/load.js';
import { checkpointFiles } from '../../src/pipeline/checkpoint-files.js';
import { diffusionTargets } from '../../src/training/objective.js';
import { groupFocusMix, timestepWeight } from '../../src/training/scene-training.js';
import { DarkroomError } from '../../src/errors.js';

const B = 2;
const R = 16;
/** Latent side of the UNet test (any size), and of the VAE's own 16x16 images (an eighth). */
const L = 8;
const VL = R / 8;

function images(seed: number): Float32Tensor {
  const data = new Float32Array(B * 3 * R * R);
  for (let i = 0; i < B; i++) data.set(imageToChw(renderScene(trainingScene(seed, i), R, R)), i * 3 * R * R);
  return float32([B, 3, R, R], data);
}

function normals(n: number, seed: number, shape: readonly number[], scale = 1): Float32Tensor {
  const r = new KeyedStream(seed, 'test-noise');
  return float32(shape, Float32Array.from({ length: n }, () => r.normal() * scale));
}

/** The element of `key` with the largest gradient (a weight that matters to the loss). */
function strongest(p: FlatParameters, grad: Float32Array, key: string): number {
  const o = p.offsets.get(key)!;
  const n = p.shapes.get(key)!.reduce((a, d) => a * d, 1);
  let best = o;
  for (let i = o; i < o + n; i++) if (Math.abs(grad[i]!) > Math.abs(grad[best]!)) best = i;
  return best;
}

async function checkAgainstFiniteDifferences(p: FlatParameters, grad: Float32Array, keys: readonly string[], loss: () => Promise<number>): Promise<void> {
  for (const key of keys) {
    const i = strongest(p, grad, key);
    const g = grad[i]!;
    assert.ok(Math.abs(g) > 1e-3, `${key}: gradient ${g}`);
    // Small steps: the L1 loss and the deep nets are only piecewise smooth.
    const h = 1e-3;
    const w = p.data[i]!;
    p.data[i] = w + h;
    const up = await loss();
    p.data[i] = w - h;
    const down = await loss();
    p.data[i] = w;
    const fd = (up - down) / (2 * h);
    assert.ok(Math.abs(fd - g) <= 0.05 * Math.max(Math.abs(fd), Math.abs(g)) + 2e-4, `${key}[${i}]: finite difference ${fd}, gradient ${g}`);
  }
}

/** Thirty optimizer steps on one fixed batch; the loss of the last. */
async function lossAfterSteps(opt: WholeModelOptimizer, evaluate: () => Promise<{ loss: number; grad: Float32Array }>): Promise<number> {
  let last = Number.NaN;
  for (let s = 0; s < 30; s++) {
    const r = await evaluate();
    opt.step(r.grad);
    last = r.loss;
  }
  return last;
}

test('VAE: gradients of encoder and decoder weights match finite differences, and training lowers the loss', async () => {
  const m = newScratchModel(MICRO_ARCHITECTURE, 3);
  const p = new FlatParameters(m.tensors);
  const vae = await VaeObjective.create(p, m.config, { batch: B, height: R, width: R, threads: 1, klWeight: 1e-3 });
  try {
    const x = images(1);
    const noise = normals(B * 4 * VL * VL, 1, [B, 4, VL, VL]);
    const first = await vae.evaluate(x, noise);
    assert.equal(first.reconstruction.shape.join(','), `${B},3,${R},${R}`);
    // Nothing outside the VAE is touched.
    const [a, b] = p.range(COMPONENTS.vae.checkpoint);
    assert.ok(first.grad.subarray(0, a).every((v) => v === 0) && first.grad.subarray(b).every((v) => v === 0));
    await checkAgainstFiniteDifferences(
      p,
      first.grad,
      [
        'first_stage_model.encoder.conv_in.weight',
        'first_stage_model.encoder.mid.attn_1.q.weight',
        'first_stage_model.quant_conv.bias',
        'first_stage_model.decoder.up.3.block.0.norm1.weight',
        'first_stage_model.decoder.conv_out.bias',
      ],
      async () => (await vae.evaluate(x, noise)).loss,
    );
    const opt = new WholeModelOptimizer(p, [[a, b]], { lr: 3e-3, emaDecay: 0.9 });
    const before = p.data.slice();
    const last = await lossAfterSteps(opt, async () => vae.evaluate(x, noise));
    assert.ok(last < 0.6 * first.loss, `loss ${first.loss} -> ${last}`);
    // Frozen ranges are exactly as they were; the EMA lies between the start and the trained weights.
    assert.deepEqual(p.data.subarray(0, a), before.subarray(0, a));
    assert.notDeepEqual(opt.ema.subarray(a, b), p.data.subarray(a, b));
    assert.notDeepEqual(opt.ema.subarray(a, b), before.subarray(a, b));
  } finally {
    await vae.release();
  }
});

test('VAE decoder alone: gradients for the decoder side only, matching finite differences; training moves it towards the targets', async () => {
  const m = newScratchModel(MICRO_ARCHITECTURE, 5);
  const p = new FlatParameters(m.tensors);
  const dec = await DecoderObjective.create(p, m.config, { batch: B, latentHeight: VL, latentWidth: VL, threads: 1 });
  try {
    const latents = normals(B * 4 * VL * VL, 6, [B, 4, VL, VL]);
    const targets = images(2);
    const first = await dec.evaluate(latents, targets);
    assert.equal(first.reconstruction.shape.join(','), `${B},3,${R},${R}`);
    const decoderRanges = [p.range('first_stage_model.decoder.'), p.range('first_stage_model.post_quant_conv.')];
    const inDecoder = (i: number): boolean => decoderRanges.some(([a, b]) => i >= a && i < b);
    let outside = 0;
    let inside = 0;
    first.grad.forEach((g, i) => {
      if (g === 0) return;
      if (inDecoder(i)) inside++;
      else outside++;
    });
    assert.equal(outside, 0, 'the encoder, quant_conv and the other models get no gradient');
    assert.ok(inside > 0);
    await checkAgainstFiniteDifferences(
      p,
      first.grad,
      ['first_stage_model.post_quant_conv.weight', 'first_stage_model.decoder.mid.block_1.conv1.weight', 'first_stage_model.decoder.conv_out.bias'],
      async () => (await dec.evaluate(latents, targets)).loss,
    );
    const opt = new WholeModelOptimizer(p, decoderRanges, { lr: 3e-3 });
    const before = p.data.slice();
    const last = await lossAfterSteps(opt, async () => dec.evaluate(latents, targets));
    assert.ok(last < 0.6 * first.loss, `loss ${first.loss} -> ${last}`);
    const [ea, eb] = p.range('first_stage_model.encoder.');
    assert.deepEqual(p.data.subarray(ea, eb), before.subarray(ea, eb), 'the encoder is as it was');
    await assert.rejects(dec.evaluate(normals(4 * VL * VL, 7, [1, 4, VL, VL]), targets), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_BATCH');
  } finally {
    await dec.release();
  }
});

for (const trainText of [false, true]) {
  test(`UNet eps loss with the text encoder ${trainText ? 'trained' : 'frozen'}: gradients match finite differences, training lowers the loss`, async () => {
    const m = newScratchModel(MICRO_ARCHITECTURE, 4);
    const p = new FlatParameters(m.tensors);
    const d = await DiffusionObjective.create(p, m.config, { batch: B, latentHeight: L, latentWidth: L, threads: 1, trainText });
    try {
      const ids = [0, 1].map((i) => captionTokenIds(m.tokenizer, captionScene(trainingScene(2, i), 2, i).text));
      ids[1] = captionTokenIds(m.tokenizer, '');
      const batch = { latents: normals(B * 4 * L * L, 2, [B, 4, L, L], 0.8), t: [150, 700], noise: normals(B * 4 * L * L, 3, [B, 4, L, L]) };
      const first = await d.evaluate(ids, batch);
      const text = m.config.text.prefix;
      const [ta, tb] = p.range(text);
      const textGrad = first.grad.subarray(ta, tb);
      assert.equal(textGrad.some((v) => v !== 0), trainText);
      const keys = [
        'model.diffusion_model.input_blocks.0.0.weight',
        'model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight',
        'model.diffusion_model.middle_block.1.proj_in.weight',
        'model.diffusion_model.time_embed.0.bias',
        'model.diffusion_model.out.2.weight',
      ];
      if (trainText) {
        keys.push(`${text}embeddings.token_embedding.weight`, `${text}embeddings.position_embedding.weight`, `${text}encoder.layers.0.self_attn.q_proj.weight`, `${text}final_layer_norm.bias`);
      }
      await checkAgainstFiniteDifferences(p, first.grad, keys, async () => (await d.evaluate(ids, batch)).loss);
      const ranges = [p.range(COMPONENTS.unet.checkpoint), ...(trainText ? [p.range(text)] : [])];
      const opt = new WholeModelOptimizer(p, ranges, { lr: 2e-3 });
      const last = await lossAfterSteps(opt, async () => d.evaluate(ids, batch));
      assert.ok(last < 0.5 * first.loss, `loss ${first.loss} -> ${last}`);
    } finally {
      await d.release();
    }
  });
}

test("the UNet objective's loss, plain, weighted per sample and focused on a group's deviations, is the loss of the model the Engine loads from the written checkpoint", async () => {
  // What the trainer optimises must be what sampling runs: the same token rows, text encoder output, timestep input
  // and schedule, read back from the files rather than from the trainer's own tensors.
  const m = newScratchModel(MICRO_ARCHITECTURE, 6);
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-whole-model-'));
  const p = new FlatParameters(m.tensors);
  const d = await DiffusionObjective.create(p, m.config, { batch: B, latentHeight: L, latentWidth: L, threads: 1, trainText: true });
  let weighted: DiffusionObjective | undefined;
  let mixed: DiffusionObjective | undefined;
  try {
    const checkpoint = await writeScratchCheckpoint(dir, 'm', m.tensors, m.configJson, m.vocabulary);
    const ids = [0, 1].map((i) => captionTokenIds(m.tokenizer, captionScene(trainingScene(3, i), 3, i).text));
    const n = B * 4 * L * L;
    const batch = { latents: normals(n, 7, [B, 4, L, L], 0.8), t: [40, 910], noise: normals(n, 8, [B, 4, L, L]) };
    const trained = await d.evaluate(ids, batch);
    const files = await checkpointFiles(checkpoint);
    const sd = await loadModel({ checkpoint, config: files.config, cacheDir: join(dir, 'cache'), threads: 1 });
    try {
      const { xt } = diffusionTargets(sd, batch);
      const table = sd.textEncoder.tokenEmbedding;
      const w = table.shape[1]!;
      const rows = new Float32Array(B * 77 * w);
      ids.forEach((row, s) => row.forEach((id, j) => rows.set(table.data.subarray(id * w, (id + 1) * w), (s * 77 + j) * w)));
      const context = await sd.textEncoder.encode(float32([B, 77, w], rows), 1);
      const eps = await sd.unet.run(xt, Float32Array.from(batch.t), context);
      const perSample = [0, 0];
      for (let i = 0; i < n; i++) perSample[Math.floor((i * B) / n)]! += (eps.data[i]! - batch.noise.data[i]!) ** 2 / (n / B);
      const plain = (perSample[0]! + perSample[1]!) / B;
      assert.ok(Math.abs(plain - trained.loss) < 1e-5 * trained.loss, `trainer ${trained.loss}, loaded model ${plain}`);

      // Truncated-SNR weighting: each sample's error times max(1, 1/SNR(t)); t = 910 is far noisier than SNR 1.
      const weights = batch.t.map((t) => timestepWeight('truncated-snr', sd.sqrtAlphasCumprod[t]!, sd.sqrtOneMinusAlphasCumprod[t]!));
      assert.equal(weights[0], 1);
      assert.ok(weights[1]! > 20, `weight at t = 910: ${weights[1]}`);
      const weight = float32([B, 4, L, L], Float32Array.from({ length: n }, (_, i) => weights[Math.floor((i * B) / n)]!));
      weighted = await DiffusionObjective.create(p, m.config, { batch: B, latentHeight: L, latentWidth: L, threads: 1, trainText: true, weighted: true });
      const got = await weighted.evaluate(ids, { ...batch, weight });
      const expected = (weights[0]! * perSample[0]! + weights[1]! * perSample[1]!) / B;
      assert.ok(Math.abs(got.loss - expected) < 1e-5 * expected, `weighted trainer ${got.loss}, loaded model ${expected}`);
      await assert.rejects(weighted.evaluate(ids, batch), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_BATCH');

      // Group focus: the two samples as one group, their deviations from the mean residual weighted by `focus`.
      const focus = 9;
      mixed = await DiffusionObjective.create(p, m.config, { batch: B, latentHeight: L, latentWidth: L, threads: 1, trainText: true, mixed: true });
      const focused = await mixed.evaluate(ids, { ...batch, mix: float32([B, B], groupFocusMix(B, B, focus, [true, true])) });
      const per = n / B;
      let shared = 0;
      let deviations = 0;
      for (let j = 0; j < per; j++) {
        const r0 = batch.noise.data[j]! - eps.data[j]!;
        const r1 = batch.noise.data[per + j]! - eps.data[per + j]!;
        const mean = (r0 + r1) / 2;
        shared += B * mean * mean;
        deviations += (r0 - mean) ** 2 + (r1 - mean) ** 2;
      }
      const expectedFocused = (shared + focus * deviations) / n;
      assert.ok(Math.abs(focused.loss - expectedFocused) < 1e-5 * expectedFocused, `focused trainer ${focused.loss}, loaded model ${expectedFocused}`);
      assert.ok(Math.abs(expectedFocused - plain) > 0.05 * plain, 'the focus changes the loss');
      const unmixed = await mixed.evaluate(ids, { ...batch, mix: float32([B, B], groupFocusMix(B, B, focus, [true, false])) });
      assert.ok(Math.abs(unmixed.loss - plain) < 1e-5 * plain, 'a member without a caption leaves the group: the plain loss');
      await assert.rejects(mixed.evaluate(ids, batch), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_BATCH');
      await assert.rejects(d.evaluate(ids, { ...batch, mix: float32([B, B], new Float32Array(B * B)) }), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_BATCH');
    } finally {
      await sd.release();
    }
  } finally {
    await mixed?.release();
    await weighted?.release();
    await d.release();
    await rm(dir, { recursive: true, force: true });
  }
});
