/**
 * The caption-facts objective: heads on the text encoder's end-of-text tokens name each caption's shape, colour,
 * position and background, and training on it moves only the text encoder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DarkroomError } from '../../src/errors.js';
import { toFloat32 } from '../../src/tensor.js';
import { CAPTION_FACTS, CaptionFactsObjective, captionFacts } from '../../src/training/caption-facts.js';
import { FlatParameters } from '../../src/training/flat-parameters.js';
import { trainSceneModel, type TrainingProgress } from '../../src/training/scene-training.js';
import { captionScene } from '../../src/training/scenes/captions.js';
import { trainingScene, type Scene } from '../../src/training/scenes/scene.js';
import { MICRO_ARCHITECTURE, newScratchModel } from '../../src/training/scratch-model.js';
import { captionTokenIds } from '../../src/training/whole-model.js';

test("a one-object scene's facts are the indices of its values; two objects have none", () => {
  const one: Scene = { objects: [{ shape: 'star', colour: 'green', size: 'small', position: 'top' }], background: { kind: 'split', colours: ['pink', 'black'], direction: 'vertical' } };
  const facts = captionFacts(one)!;
  assert.deepEqual(
    CAPTION_FACTS.map((f, i) => f.values[facts[i]!]),
    ['star', 'green', 'top', 'pink'],
  );
  assert.equal(captionFacts({ ...one, objects: [one.objects[0]!, { ...one.objects[0]!, position: 'left' }] }), null);
});

test('the heads learn to name the facts of a fixed batch, and a fact out of range is refused', async () => {
  const model = newScratchModel(MICRO_ARCHITECTURE, 3);
  const params = new FlatParameters(model.tensors);
  const objective = await CaptionFactsObjective.create(params, model.config, { batch: 4, threads: 1, fromToken: 20 });
  try {
    const ids: number[][] = [];
    const facts: number[][] = [];
    for (let k = 0; ids.length < 4; k++) {
      const scene = trainingScene(1, k);
      const row = captionFacts(scene);
      if (!row) continue;
      ids.push(captionTokenIds(model.tokenizer, captionScene(scene, 1, k, false, true).text, model.config.text.maxPositions));
      facts.push(row);
    }
    const first = await objective.evaluate(ids, facts);
    // Untrained heads (zeros) give every value the same chance: the mean of log(count) over the facts.
    const uniform = CAPTION_FACTS.reduce((s, f) => s + Math.log(f.values.length), 0) / CAPTION_FACTS.length;
    assert.ok(Math.abs(first.loss - uniform) < 1e-4, `${first.loss} vs ${uniform}`);
    let last = first;
    for (let s = 0; s < 20; s++) {
      for (let i = 0; i < objective.heads.length; i++) objective.heads[i] = objective.heads[i]! - 0.5 * last.headGrad[i]!;
      last = await objective.evaluate(ids, facts);
    }
    assert.ok(last.loss < first.loss * 0.8, `loss ${first.loss} -> ${last.loss}`);
    assert.ok(last.accuracy > 0.5 && last.accuracy <= 1, `accuracy ${last.accuracy}`);
    const textRange = params.range(model.config.text.prefix);
    const outside = last.grad.some((g, i) => g !== 0 && (i < textRange[0] || i >= textRange[1]));
    assert.equal(outside, false, 'only the text encoder has a gradient');
    assert.ok(last.grad.subarray(...textRange).some((g) => g !== 0));
    const bad = facts.map((r) => [...r]);
    bad[0]![2] = 5;
    await assert.rejects(objective.evaluate(ids, bad), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_BATCH');
  } finally {
    await objective.release();
  }
});

test('the caption-facts phase trains the text encoder before the UNet and leaves the other weights as they were', async () => {
  const seen: TrainingProgress[] = [];
  const opts = { arch: MICRO_ARCHITECTURE, resolution: 16, seed: 4, vaeSteps: 0, unetSteps: 0, poolSize: 4, threads: 1, vaeCheckScenes: 0 } as const;
  const r = await trainSceneModel({ ...opts, captionFactsSteps: 3, captionFactsBatch: 4 }, (p) => seen.push(p));
  const phases = seen.filter((p) => p.phase === 'caption-facts');
  assert.deepEqual(phases.map((p) => p.step), [1, 2, 3]);
  assert.ok(phases.every((p) => Number.isFinite(p.loss) && p.accuracy !== undefined && p.accuracy >= 0 && p.accuracy <= 1));
  const start = newScratchModel(MICRO_ARCHITECTURE, 4).tensors;
  const same = (k: string): boolean => toFloat32(r.tensors.get(k)!).data.every((v, i) => v === toFloat32(start.get(k)!).data[i]);
  const keys = [...r.tensors.keys()].filter((k) => r.tensors.get(k)!.dtype === 'float32');
  assert.ok(keys.filter((k) => k.startsWith('model.diffusion_model.') || k.startsWith('first_stage_model.')).every(same), 'UNet and VAE untouched');
  assert.ok(keys.filter((k) => k.startsWith('cond_stage_model.')).some((k) => !same(k)), 'the text encoder trained');
  await assert.rejects(trainSceneModel({ ...opts, captionFactsSteps: -1 }), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER');
});
