import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { float32 } from '../../src/tensor.js';
import { adamwStep, newAdamWState } from '../../src/training/adamw.js';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/training/checkpoint-file.js';
import { clipGradients } from '../../src/training/clip-grad.js';
import { batchAt, type PreparedDataset } from '../../src/training/dataset.js';
import { batchPlan } from '../../src/training/run-plan.js';
import { lossCsv } from '../../src/training/train-job.js';
import { initialCheckpoint, TrainingRun, type TargetBatch, type TrainingCheckpoint, type TrainingSettings, type TrainingTarget } from '../../src/training/trainer.js';

/** A dataset of `n` constant 1x2x2 "latents" (entry i is all i/n). */
function dataset(n: number): PreparedDataset {
  const entries = Array.from({ length: n }, (_, i) => {
    const latent = float32([1, 1, 2, 2], new Float32Array(4).fill(i / n));
    return { file: `${i}.png`, filenameText: `${i}`, condText: `image ${i}`, mean: latent, std: latent, latent };
  });
  return {
    entries,
    skipped: [],
    templateLines: ['[name]'],
    options: {
      width: 16,
      height: 16,
      placeholder: 'x',
      template: '[name]',
      wordRegex: '',
      joinString: ' ',
      latentSampling: 'deterministic',
      useWeight: false,
      shuffleTags: false,
      tagDropOut: 0,
      seed: 7,
    },
  };
}

/**
 * A real objective with a known minimum: loss = mean((p - (x_t mean))^2) over a 3-vector, so the trainer must
 * move p towards the noisy latents' mean. `poison` makes the loss NaN whenever |p| exceeds it (divergence).
 */
function quadratic(poison = Infinity): TrainingTarget & { calls: TargetBatch[] } {
  const calls: TargetBatch[] = [];
  return {
    calls,
    sizes: [3],
    weightDecay: 0,
    async gradients(params, batch) {
      calls.push(batch);
      const p = params[0]!;
      let m = 0;
      for (const v of batch.latents.data) m += v;
      for (const v of batch.noise.data) m += 0.01 * v;
      m /= batch.latents.data.length;
      const grads = new Float32Array(3);
      let loss = 0;
      for (let i = 0; i < 3; i++) {
        const d = p[i]! - m;
        loss += (d * d) / 3;
        grads[i] = (2 * d) / 3;
      }
      if (p.some((v) => Math.abs(v) > poison)) loss = NaN;
      return { loss, grads: [grads] };
    },
  };
}

const settings: TrainingSettings = {
  learnRate: '0.5:10, 0.05',
  clipGradMode: 'norm',
  clipGradValue: '1',
  maxSteps: 30,
  batchSize: 2,
  gradientStep: 2,
  seed: 1234,
  saveEvery: 5,
};

function fresh(target: TrainingTarget, run: TrainingRun): TrainingCheckpoint {
  return initialCheckpoint(target, [Float32Array.of(3, -2, 5)], run.startStep, run.firstLearnRate);
}

test('the loop lowers a known objective and follows the schedule', async () => {
  const target = quadratic();
  const run = new TrainingRun(target, dataset(8), settings, 0, 1);
  const rates: number[] = [];
  const losses: number[] = [];
  const r = await run.run(fresh(target, run), { onStep: (e) => void (rates.push(e.learnRate), losses.push(e.loss)) });
  assert.equal(r.status, 'completed');
  assert.equal(r.checkpoint.step, 30);
  assert.equal(rates.length, 30);
  assert.ok(rates.slice(0, 10).every((x) => x === 0.5) && rates.slice(10).every((x) => x === 0.05), `rates ${rates}`);
  assert.ok(losses.at(-1)! < losses[0]! / 10, `loss ${losses[0]} -> ${losses.at(-1)}`);
  // gradient_step 2 with batch 2: four images per optimizer step, 4 micro-batches per epoch of 8 images.
  assert.equal(target.calls.length, 60);
  assert.deepEqual(run.batches, { batchSize: 2, gradientStep: 2, microsPerEpoch: 4 });
});

test('a run stopped at a checkpoint and resumed from its bytes ends bit-identical to an uninterrupted one', async () => {
  const whole = await new TrainingRun(quadratic(), dataset(8), settings, 0, 1).run(fresh(quadratic(), new TrainingRun(quadratic(), dataset(8), settings, 0, 1)));

  const target = quadratic();
  const run = new TrainingRun(target, dataset(8), settings, 0, 1);
  const stop = new AbortController();
  let stored: Uint8Array | undefined;
  const first = await run.run(fresh(target, run), {
    onStep: (e) => {
      if (e.step === 13) stop.abort();
    },
    onCheckpoint: (c) => {
      stored = encodeCheckpoint(c, { kind: 'test' });
    },
    signal: stop.signal,
  });
  assert.equal(first.status, 'stopped');
  assert.equal(first.checkpoint.step, 13);
  const { checkpoint, run: info } = decodeCheckpoint(stored!);
  assert.deepEqual(info, { kind: 'test' });
  const other = quadratic();
  const second = await new TrainingRun(other, dataset(8), settings, 0, 1).run(checkpoint);
  assert.equal(second.status, 'completed');
  assert.deepEqual(Array.from(second.checkpoint.params[0]!), Array.from(whole.checkpoint.params[0]!));
  assert.deepEqual(Array.from(second.checkpoint.optimizer.params[0]!.expAvgSq), Array.from(whole.checkpoint.optimizer.params[0]!.expAvgSq));
  assert.deepEqual(second.checkpoint.lossLog, whole.checkpoint.lossLog);
});

test('a non-finite loss rolls back to the last checkpoint with the rate halved; repeated, the run fails', async () => {
  // The start (3, -2, 5) already lies outside |p| <= 4: every retry fails, whatever the rate.
  const target = quadratic(4);
  const diverging: TrainingSettings = { ...settings, learnRate: '4', clipGradMode: 'disabled', saveEvery: 2 };
  const run = new TrainingRun(target, dataset(8), diverging, 0, 1);
  const rollbacks: number[] = [];
  await assert.rejects(
    run.run(fresh(target, run), { onRollback: (e) => void rollbacks.push(e.lrScale) }),
    (e: unknown) => isDarkroomError(e, 'TRAINING_DIVERGED'),
  );
  assert.deepEqual(rollbacks, [0.5, 0.25, 0.125]);

  // Inside |p| <= 6 the minimum (~0.5) is reachable, but Adam's first step of about lr = 12 leaves it: the
  // loss turns NaN, and the run recovers at a halved rate.
  const recovering = quadratic(6);
  const mild = new TrainingRun(recovering, dataset(8), { ...diverging, learnRate: '12' }, 0, 1);
  const events: { atStep: number; toStep: number }[] = [];
  const r = await mild.run(fresh(recovering, mild), { onRollback: (e) => void events.push(e) });
  assert.equal(r.status, 'completed');
  assert.ok(r.checkpoint.rollbacks >= 1 && r.checkpoint.rollbacks <= 3, `rollbacks ${r.checkpoint.rollbacks}`);
  // save_every 2 saves after 1, 3, 5, ... steps (A1111's name-2, name-4, ...): rollbacks land on those or on 0.
  assert.ok(events.every((e) => e.toStep <= e.atStep && (e.toStep === 0 || e.toStep % 2 === 1)));
  assert.ok(r.checkpoint.params[0]!.every((v) => Number.isFinite(v)));
});

test('batches: full batches only, every image once per epoch, the order fixed by the seed', () => {
  const plan = batchPlan(10, 3, 2);
  assert.deepEqual(plan, { batchSize: 3, gradientStep: 2, microsPerEpoch: 2 });
  const epoch = [0, 1].flatMap((m) => batchAt(5, 10, plan, m));
  assert.equal(new Set(epoch).size, 6);
  assert.deepEqual(batchAt(5, 10, plan, 1), batchAt(5, 10, plan, 1));
  assert.notDeepEqual([2, 3].flatMap((m) => batchAt(5, 10, plan, m)), epoch);
  assert.throws(() => batchPlan(2, 3, 1), (e: unknown) => isDarkroomError(e, 'TRAINING_BAD_PARAMETER') && e.details.field === 'batch_size');
});

test('AdamW matches the textbook update in float64 to float32 precision', () => {
  const p = Float32Array.of(0.5, -1.25, 2);
  const g = Float32Array.of(0.1, -0.3, 0.02);
  const state = newAdamWState([3], 0.01, 0.01);
  const ref = Array.from(p);
  const m = [0, 0, 0];
  const v = [0, 0, 0];
  for (let k = 1; k <= 3; k++) {
    adamwStep([p], [g], state);
    for (let i = 0; i < 3; i++) {
      ref[i]! *= 1 - 0.01 * 0.01;
      m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
      v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
      ref[i]! -= ((0.01 / (1 - 0.9 ** k)) * m[i]!) / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** k) + 1e-8);
    }
  }
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(p[i]! - ref[i]!) < 1e-6, `${p[i]} vs ${ref[i]}`);
  assert.equal(state.params[0]!.step, 3);
});

test('clipping by norm scales only above the threshold; by value clamps', () => {
  const a = [Float32Array.of(3, 4)];
  assert.equal(clipGradients(a, 'norm', 10), 5);
  assert.deepEqual(Array.from(a[0]!), [3, 4]);
  clipGradients(a, 'norm', 1);
  assert.ok(Math.abs(Math.hypot(a[0]![0]!, a[0]![1]!) - 1) < 1e-5);
  const b = [Float32Array.of(-0.5, 0.01, 2)];
  clipGradients(b, 'value', 0.1);
  assert.deepEqual(Array.from(b[0]!), [Math.fround(-0.1), Math.fround(0.01), Math.fround(0.1)]);
});

test('a damaged checkpoint is refused, not resumed from', () => {
  const target = quadratic();
  const c = initialCheckpoint(target, [Float32Array.of(1, 2, 3)], 4, 0.1);
  const bytes = encodeCheckpoint(c, { kind: 'x' });
  assert.deepEqual(Array.from(decodeCheckpoint(bytes).checkpoint.params[0]!), [1, 2, 3]);
  assert.throws(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4)));
  const foreign = new TextEncoder().encode('not a checkpoint at all');
  assert.throws(() => decodeCheckpoint(foreign));
});

test('the loss log is A1111 CSV', () => {
  const csv = lossCsv([
    { step: 1, epoch: 0, epochStep: 1, loss: 0.123456789, learnRate: 0.005 },
    { step: 2, epoch: 0, epochStep: 2, loss: 1, learnRate: 1e-5 },
  ]);
  assert.equal(csv, 'step,epoch,epoch_step,loss,learn_rate\r\n1,0,0,0.1234568,0.005\r\n2,0,1,1.0000000,1e-05\r\n');
});
