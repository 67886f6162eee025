/**
 * Training a model from scratch end to end on the micro architecture: a handful of VAE and UNet steps, the
 * checkpoint, config and vocabulary written as the training script writes them, loaded by the Engine like any
 * checkpoint, rendering the held-out captions that the evaluation scores.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { Engine } from '../../src/pipeline/engine.js';
import { decodePng, readPngText } from '../../src/formats/png.js';
import { isTransformerBlockOutput } from '../../src/pipeline/demo-model.js';
import { readCheckpointIndex } from '../../src/model-files/checkpoint.js';
import {
  alwaysStatesPosition, drawTimestep, groupContrastWeights, groupFocusMix, learningRate, lowFrequencyNoise, outlineCellWeights, poolGrouping, poolScene, poolVariantKind, randomCrops,
  trainSceneModel, weightByShape,
} from '../../src/training/scene-training.js';
import { atShapeVariant, heldOutScenes, isHeldOut, PALETTE, POSITIONS, seenScenes, SHAPES, shapeGroupScene, trainingScene, type Scene } from '../../src/training/scenes/scene.js';
import { KeyedStream } from '../../src/training/keyed-random.js';
import { float32, toFloat32, type HostTensor } from '../../src/tensor.js';
import { DarkroomError } from '../../src/errors.js';
import { halfPrecisionWeights, MICRO_ARCHITECTURE, newScratchModel, scratchConfig, writeScratchCheckpoint } from '../../src/training/scratch-model.js';
import { evaluateHeldOut } from '../../src/training/scenes/evaluate-model.js';
import { captionScene } from '../../src/training/scenes/captions.js';
import { objectLabels, renderScene } from '../../src/training/scenes/render.js';

let engine: Engine;
let dir: string;

before(async () => {
  engine = new Engine({ root: repoRoot, threads: 1 });
  dir = await mkdtemp(join(tmpdir(), 'darkroom-scene-model-'));
});

after(async () => {
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

test('the learning rate warms up, then decays by a cosine to a tenth', () => {
  assert.ok(learningRate(1, 0, 100) < learningRate(1, 4, 100));
  assert.equal(learningRate(1, 5, 100), 1);
  assert.ok(Math.abs(learningRate(1, 100, 100) - 0.1) < 1e-9);
  assert.ok(learningRate(1, 50, 100) < 1 && learningRate(1, 50, 100) > 0.1);
});

test("the autoencoder's crops are windows of each image, at offsets that vary per image", () => {
  const [n, c, h, w] = [3, 3, 12, 10];
  const images = float32([n, c, h, w], Float32Array.from({ length: n * c * h * w }, (_, i) => i));
  const crops = randomCrops(images, 4, new KeyedStream(9, 'crop', 0));
  assert.deepEqual(crops.shape, [n, c, 4, 4]);
  const offsets = new Set<string>();
  for (let i = 0; i < n; i++) {
    // The first value of the crop names its window: value = ((i*c + ch)*h + y)*w + x.
    const first = crops.data[i * c * 16]!;
    const y0 = Math.floor((first - i * c * h * w) / w);
    const x0 = (first - i * c * h * w) % w;
    assert.ok(y0 >= 0 && y0 <= h - 4 && x0 >= 0 && x0 <= w - 4);
    offsets.add(`${y0},${x0}`);
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 4; x++) assert.equal(crops.data[((i * c + ch) * 4 + y) * 4 + x], (((i * c + ch) * h + y0 + y) * w + x0 + x));
      }
    }
  }
  assert.ok(offsets.size > 1, 'every image cut at the same place');
  // The whole image is its own crop.
  assert.equal(randomCrops(float32([1, 3, 4, 4]), 4, new KeyedStream(1, 'crop', 0)).shape.join('x'), '1x3x4x4');
});

test('a crop that is not a multiple of the latent cell, or larger than the image, is refused before training', async () => {
  for (const vaeCrop of [12, 32, 0]) {
    await assert.rejects(
      trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 5, vaeSteps: 1, unetSteps: 0, vaeCrop, threads: 1, vaeCheckScenes: 0 }),
      (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && /vaeCrop/.test(e.message),
    );
  }
});

test('a scene model trained for a few steps is written as a checkpoint the Engine loads and renders with', async () => {
  const steps: string[] = [];
  const r = await trainSceneModel(
    { arch: MICRO_ARCHITECTURE, resolution: 16, seed: 5, vaeSteps: 6, unetSteps: 6, vaeBatch: 2, vaeCrop: 8, unetBatch: 2, poolSize: 8, trainText: true, threads: 1, vaeCheckScenes: 3 },
    (p) => steps.push(`${p.phase}:${p.step}/${p.steps}`),
  );
  assert.ok(steps.includes('vae:6/6') && steps.includes('unet:6/6') && steps.includes('latents:8/8'));
  assert.ok(Number.isFinite(r.scaleFactor) && r.scaleFactor > 0);
  // The autoencoder's round trip was read by the detector on three held-out scenes before the UNet trained.
  const check = r.vaeCheck;
  assert.ok(check);
  assert.equal(check.scenes, 3);
  assert.ok(steps.indexOf('vae-check:3/3') > steps.indexOf('vae:6/6') && steps.indexOf('vae-check:3/3') < steps.indexOf('latents:8/8'));
  assert.ok(check.meanAbsError > 0 && check.meanAbsError < 255);
  for (const v of [...Object.values(check.rates), ...Object.values(check.ceiling)]) assert.ok(v >= 0 && v <= 1);
  assert.ok(r.losses.unet.every(Number.isFinite) && r.losses.vae.every(Number.isFinite));
  const checkpoint = await writeScratchCheckpoint(dir, 'micro-scenes', r.tensors, r.configJson, r.model.vocabulary, { darkroom: 'micro-scenes' });

  // A1111 layout: ldm UNet and VAE keys, HF CLIP text encoder keys, the DDPM buffer.
  const keys = [...(await readCheckpointIndex(checkpoint)).keys()];
  for (const k of [
    'alphas_cumprod',
    'model.diffusion_model.input_blocks.0.0.weight',
    'first_stage_model.decoder.conv_out.weight',
    'cond_stage_model.transformer.text_model.embeddings.token_embedding.weight',
  ]) {
    assert.ok(keys.includes(k), k);
  }
  const config = JSON.parse(await readFile(join(dir, 'micro-scenes.json'), 'utf8')) as { model: { params: { scale_factor: number } } };
  assert.equal(config.model.params.scale_factor, r.scaleFactor);

  const out = await engine.txt2img({ prompt: 'a small red circle on the left, blue background', steps: 3, seed: 1, width: 16, height: 16 }, { checkpoint });
  const img = decodePng(out.images[0]!);
  assert.deepEqual([img.width, img.height], [16, 16]);
  assert.match(readPngText(out.images[0]!).parameters!, /Model: micro-scenes/);

  // The evaluation renders held-out captions with it and scores them (a few steps draw nothing yet).
  const report = await evaluateHeldOut(engine, { checkpoint, resolution: 16, limit: 2, steps: 3 });
  assert.equal(report.cases.length, 2);
  for (const c of report.cases) assert.match(c.prompt, /^a (small|medium|large) \w+ \w+ .+, \w+ background$/);
  for (const v of Object.values(report.rates)) assert.ok(v >= 0 && v <= 1);
  // The seen split renders trained combinations with the same first shapes.
  const seen = await evaluateHeldOut(engine, { checkpoint, resolution: 16, limit: 2, steps: 3, split: 'seen' });
  assert.deepEqual(seen.cases.map((c) => c.scene), seenScenes(1).slice(0, 2));
  assert.deepEqual(seen.cases.map((c) => c.scene.objects[0]!.shape), report.cases.map((c) => c.scene.objects[0]!.shape));
  for (const c of seen.cases) assert.ok(!isHeldOut(c.scene.objects[0]!, c.scene.background), c.prompt);
  // The varied phrasing captions the same scenes as training does and checks only what each caption states.
  const varied = await evaluateHeldOut(engine, { checkpoint, resolution: 16, limit: 6, steps: 3, phrasing: 'varied' });
  assert.deepEqual(
    varied.cases.map((c) => c.prompt),
    varied.cases.map((c, i) => captionScene(c.scene, 1, i).text),
  );
  const placeless = varied.cases.filter((_, i) => !captionScene(heldOutScenes(1)[i]!, 1, i).statesPosition);
  assert.ok(placeless.length > 0 && placeless.length < varied.cases.length, 'some captions give no position, some do');
  for (const c of placeless) assert.equal(c.match.position, true, `${c.prompt}: no position stated, none checked`);
});

test('with statedPositions position-groups only the position groups always state the place', () => {
  const both = poolGrouping(true, true);
  const kinds = [0, both.size].map((k) => poolVariantKind(k, both));
  assert.deepEqual(kinds, ['position', 'shape']);
  assert.equal(alwaysStatesPosition(0, both, 'all'), true);
  assert.equal(alwaysStatesPosition(both.size, both, 'all'), true);
  assert.equal(alwaysStatesPosition(0, both, 'position-groups'), true);
  assert.equal(alwaysStatesPosition(both.size, both, 'position-groups'), false);
  assert.equal(alwaysStatesPosition(both.size, poolGrouping(false, true), 'all'), false, 'without position groups nothing forces it');
});

test("weightByShape multiplies each sample's elements by its shape's factor; unnamed shapes and bad factors", async () => {
  const weight = new Float32Array([1, 1, 2, 2, 1, 3]);
  weightByShape(weight, ['square', 'circle', 'square'], 2, { square: 2.5, ring: 4 });
  assert.deepEqual([...weight], [2.5, 2.5, 2, 2, 2.5, 7.5]);
  for (const [weights, what] of [[{ square: 0 }, 'shapeLossWeights.square'], [{ hexagon: 2 }, 'no shape "hexagon"']] as const) {
    await assert.rejects(
      trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 5, vaeSteps: 0, unetSteps: 1, threads: 1, vaeCheckScenes: 0, shapeLossWeights: weights as Record<string, number> }),
      (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && e.message.includes(what),
    );
  }
});

test('objectLabels: the object painted at each pixel, the later one over the earlier, as renderScene paints them', () => {
  const scene: Scene = {
    objects: [
      { shape: 'square', colour: 'red', size: 'large', position: 'centre' },
      { shape: 'circle', colour: 'green', size: 'small', position: 'centre' },
    ],
    background: { kind: 'split', colours: ['blue', 'white'], direction: 'vertical' },
  };
  const labels = objectLabels(scene, 64, 64);
  const image = renderScene(scene, 64, 64);
  const at = (x: number, y: number): number => labels[y * 64 + x]!;
  assert.equal(at(32, 32), 2, 'the circle is painted over the square');
  assert.equal(at(32, 19), 1, 'the square outside the circle');
  assert.equal(at(2, 2), 0);
  assert.equal(at(62, 62), 0, 'the split background is background on both sides');
  // Wherever a pixel and its eight neighbours agree on the object, the whole pixel lies inside it (the shapes are
  // convex and the circle too large to fit between those centres), so it is rendered in that object's own colour.
  const colours = [null, PALETTE.red, PALETTE.green] as const;
  let checked = 0;
  for (let y = 1; y < 63; y++) {
    for (let x = 1; x < 63; x++) {
      const l = at(x, y);
      if (l === 0 || [-1, 0, 1].some((dy) => [-1, 0, 1].some((dx) => at(x + dx, y + dy) !== l))) continue;
      const i = (y * 64 + x) * 3;
      assert.deepEqual([image.data[i], image.data[i + 1], image.data[i + 2]], [...colours[l]!], `pixel (${x}, ${y})`);
      checked++;
    }
  }
  assert.ok(checked > 300);
});

test("outlineCellWeights: 1 away from outlines, 1 + factor x the outline's share of a cell's pixels on them", () => {
  const square: Scene = { objects: [{ shape: 'square', colour: 'red', size: 'large', position: 'centre' }], background: { kind: 'split', colours: ['blue', 'white'], direction: 'vertical' } };
  const w = outlineCellWeights(square, 128, 8, 2, 4);
  assert.equal(w.length, 256);
  const at = (cx: number, cy: number): number => w[cy * 16 + cx]!;
  assert.equal(at(0, 0), 1, 'a corner of the image, far from the object');
  assert.equal(at(7, 15), 1, "the background's own split is no outline");
  assert.equal(at(7, 7), 1, "the square's inside");
  // The large square's edges (half side 0.8 x 0.26 x 128 = 26.6 px from the centre) run through the cells of
  // rows and columns 4 and 11; in each of those cells every pixel row or column within 2 px of the edge counts.
  for (const [cx, cy] of [[7, 4], [4, 7], [11, 8], [8, 11]] as const) assert.ok(at(cx, cy) > 2 && at(cx, cy) <= 5, `edge cell (${cx}, ${cy}): ${at(cx, cy)}`);
  assert.ok(Math.max(...w) <= 5);
  // The same scene at factor 0 is all ones, and weights scale with the factor.
  assert.ok(outlineCellWeights(square, 128, 8, 2, 0).every((v) => v === 1));
  const double = outlineCellWeights(square, 128, 8, 2, 8);
  w.forEach((v, i) => assert.ok(Math.abs(double[i]! - 1 - 2 * (v - 1)) < 1e-6));
  // A circle of the same size puts its outline elsewhere: its weights differ at the square's corners.
  const circle = outlineCellWeights({ ...square, objects: [{ ...square.objects[0]!, shape: 'circle' }] }, 128, 8, 2, 4);
  assert.notEqual(circle[4 * 16 + 4], at(4, 4));
});

test('outlineLoss: a negative or non-finite factor is refused before any training', async () => {
  for (const outlineLoss of [-1, Number.NaN]) {
    await assert.rejects(
      trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 5, vaeSteps: 0, unetSteps: 1, threads: 1, vaeCheckScenes: 0, outlineLoss }),
      (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && e.message.includes('outlineLoss'),
    );
  }
});

test('coarse training noise: none is plain standard normals; level 0 shifts each channel by one value, level 1 each quadrant', () => {
  const shape = [2, 4, 8, 8];
  const plain = lowFrequencyNoise(new KeyedStream(3, 'n', 0), shape, []);
  const plainAgain = lowFrequencyNoise(new KeyedStream(3, 'n', 0), shape, [0, 0]);
  assert.deepEqual(plainAgain.data, plain.data);
  const mean = (xs: Float32Array): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = (xs: Float32Array): number => mean(xs.map((x) => x * x)) - mean(xs) ** 2;
  // Offset noise: within a channel the draw is the plain one plus a constant.
  const offset = lowFrequencyNoise(new KeyedStream(3, 'n', 0), shape, [1]);
  const shifts = new Set<number>();
  for (let plane = 0; plane < 8; plane++) {
    const d = offset.data.subarray(plane * 64, (plane + 1) * 64).map((v, i) => v - plain.data[plane * 64 + i]!);
    assert.ok(Math.max(...d) - Math.min(...d) < 1e-5, `plane ${plane}: the added noise varies inside the channel`);
    shifts.add(Math.round(d[0]! * 1e4));
  }
  assert.equal(shifts.size, 8, 'each sample and channel has its own shift');
  // Quadrants: constant inside each 4x4 quarter, different across them.
  const quads = lowFrequencyNoise(new KeyedStream(3, 'n', 0), shape, [0, 2]);
  const added = quads.data.subarray(0, 64).map((v, i) => v - plain.data[i]!);
  const at = (y: number, x: number): number => added[y * 8 + x]!;
  assert.ok(Math.abs(at(0, 0) - at(3, 3)) < 1e-5 && Math.abs(at(4, 4) - at(7, 7)) < 1e-5);
  assert.ok(Math.abs(at(0, 0) - at(0, 4)) > 1e-4 && Math.abs(at(0, 0) - at(4, 0)) > 1e-4);
  // Over many draws the channel means carry the level's variance on top of the white noise's 1/64.
  const many = lowFrequencyNoise(new KeyedStream(4, 'n', 0), [256, 4, 8, 8], [0.5]);
  const means = Float32Array.from({ length: 1024 }, (_, p) => mean(many.data.subarray(p * 64, (p + 1) * 64)));
  assert.ok(Math.abs(variance(means) - (0.25 + 1 / 64)) < 0.05, `channel-mean variance ${variance(means)}`);
});

test('negative or non-finite coarse noise strengths are refused before training', async () => {
  for (const lowFrequencyNoise of [[-1], [Number.NaN]]) {
    await assert.rejects(
      trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 5, vaeSteps: 1, unetSteps: 0, lowFrequencyNoise, threads: 1, vaeCheckScenes: 0 }),
      (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && /lowFrequencyNoise/.test(e.message),
    );
  }
});

test('training can start from an earlier checkpoint: its weights are taken as they are, a shape that differs is refused', async () => {
  const first = await trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 8, vaeSteps: 0, unetSteps: 1, unetBatch: 2, poolSize: 4, threads: 1, vaeCheckScenes: 0 });
  const again = await trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 9, vaeSteps: 0, unetSteps: 0, poolSize: 4, threads: 1, vaeCheckScenes: 0, startFrom: first.tensors });
  for (const [k, t] of first.tensors) assert.deepEqual(again.tensors.get(k)?.data, t.data, k);
  const key = 'model.diffusion_model.out.2.bias';
  const wrong = new Map(first.tensors).set(key, float32([3]));
  await assert.rejects(
    trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 9, vaeSteps: 0, unetSteps: 0, poolSize: 4, threads: 1, vaeCheckScenes: 0, startFrom: wrong }),
    (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && e.message.includes(`startFrom: ${key} is 3`),
  );
});

test('a deeper UNet grown from a checkpoint starts as that checkpoint: the new blocks add nothing until trained', async () => {
  const base = { resolution: 16, vaeSteps: 0, unetBatch: 2, poolSize: 4, threads: 1, vaeCheckScenes: 0 } as const;
  const first = await trainSceneModel({ ...base, arch: MICRO_ARCHITECTURE, seed: 8, unetSteps: 1 });
  const deep = { ...MICRO_ARCHITECTURE, unet: { ...MICRO_ARCHITECTURE.unet, depth: 2 } };
  const grown = await trainSceneModel({ ...base, arch: deep, seed: 8, unetSteps: 0, startFrom: first.tensors });
  const added = [...grown.tensors.keys()].filter((k) => !first.tensors.has(k));
  assert.ok(added.length > 0 && added.every((k) => k.includes('.transformer_blocks.1.')), added.join(', '));
  const outputs = added.filter(isTransformerBlockOutput);
  const blocks = new Set(added.map((k) => k.slice(0, k.indexOf('.transformer_blocks.1.'))));
  assert.equal(outputs.length, 6 * blocks.size, 'three output projections (weight and bias) per new block');
  for (const k of added) {
    const values = grown.tensors.get(k)!.data as Float32Array;
    if (outputs.includes(k)) assert.ok(values.every((v) => v === 0), `${k} starts at zero`);
    else if (k.endsWith('.weight')) assert.ok(values.some((v) => v !== 0), `${k} starts initialised`);
  }
  for (const [k, t] of first.tensors) assert.deepEqual(grown.tensors.get(k)?.data, t.data, k);
  assert.equal((grown.configJson as { model: { params: { unet_config: { params: { transformer_depth: number } } } } }).model.params.unet_config.params.transformer_depth, 2);

  // Rendered, the grown model draws the start's pixels exactly (the same seed measures the same latent scale).
  const request = { prompt: 'a small red circle on the left, blue background', steps: 3, seed: 1, width: 16, height: 16 };
  const pixels = async (name: string, r: typeof first): Promise<Uint8Array> => {
    const checkpoint = await writeScratchCheckpoint(dir, name, r.tensors, r.configJson, r.model.vocabulary, { darkroom: name });
    return decodePng((await engine.txt2img(request, { checkpoint })).images[0]!).data;
  };
  assert.deepEqual(await pixels('grown', grown), await pixels('shallow', first));

  // One step of training moves the new blocks' outputs off zero: they get a gradient.
  const trained = await trainSceneModel({ ...base, arch: deep, seed: 8, unetSteps: 1, startFrom: first.tensors });
  for (const k of outputs.filter((o) => o.endsWith('.weight'))) assert.ok((trained.tensors.get(k)!.data as Float32Array).some((v) => v !== 0), k);
  await assert.rejects(
    trainSceneModel({ ...base, arch: { ...deep, unet: { ...deep.unet, depth: 0 } }, seed: 9, unetSteps: 0 }),
    (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && e.message.includes('arch.unet.depth'),
  );
});

test("half-precision saving: the three models' float weights become float16, the schedule buffer and integer tensors stay", () => {
  const m = newScratchModel(MICRO_ARCHITECTURE, 2);
  const half = halfPrecisionWeights(m.tensors);
  assert.equal(half.size, m.tensors.size);
  for (const [k, t] of m.tensors) {
    const h = half.get(k)!;
    const model = ['model.diffusion_model.', 'first_stage_model.', 'cond_stage_model.'].some((p) => k.startsWith(p));
    assert.equal(h.dtype, model && t.dtype === 'float32' ? 'float16' : t.dtype, k);
    if (h.dtype === 'float16') {
      const back = toFloat32(h).data;
      const src = t.data as Float32Array;
      for (let i = 0; i < src.length; i++) assert.ok(Math.abs(back[i]! - src[i]!) <= Math.abs(src[i]!) * 1e-3 + 1e-7, `${k}[${i}]`);
    }
  }
  assert.equal(half.get('alphas_cumprod')!.dtype, 'float32');
});

test('position groups: consecutive pool scenes differ only in where the object is; a pool smaller than a group is refused', async () => {
  for (let g = 0; g < 20; g++) {
    const members = POSITIONS.map((_, v) => poolScene(3, g * POSITIONS.length + v, poolGrouping(true, false)));
    const base = trainingScene(3, g);
    for (const m of members) {
      assert.deepEqual(m.background, base.background);
      assert.deepEqual(m.objects.map((o) => [o.shape, o.colour, o.size]).sort(), base.objects.map((o) => [o.shape, o.colour, o.size]).sort());
    }
    if (base.objects.length === 1) assert.deepEqual(members.map((m) => m.objects[0]!.position), [...POSITIONS]);
  }
  assert.deepEqual(poolScene(3, 7), trainingScene(3, 7));
  await assert.rejects(
    trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 5, vaeSteps: 1, unetSteps: 1, positionGroups: true, poolSize: 4, threads: 1, vaeCheckScenes: 0 }),
    (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && /poolSize/.test(e.message),
  );
  for (const [groupContrast, positionGroups] of [[-1, true], [Number.NaN, true], [2, false]] as const) {
    await assert.rejects(
      trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 5, vaeSteps: 1, unetSteps: 1, positionGroups, groupContrast, poolSize: 10, threads: 1, vaeCheckScenes: 0 }),
      (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && /groupContrast/.test(e.message),
    );
  }
});

test('high-noise timesteps: the share drawn from the noisy range, the rest uniform; off draws as before; bad values refused', async () => {
  const n = 4000;
  const draw = (highNoise: Parameters<typeof drawTimestep>[2]): number[] => {
    const r = new KeyedStream(3, 'unet-batch', 0);
    return Array.from({ length: n }, () => drawTimestep(r, 1000, highNoise));
  };
  const plain = draw(undefined);
  assert.deepEqual(draw({ from: 0.5, share: 0 }), plain, 'share 0 is the uniform draw, stream and all');
  const r = new KeyedStream(3, 'unet-batch', 0);
  assert.deepEqual(plain.slice(0, 5), Array.from({ length: 5 }, () => r.below(1000)));
  const high = draw({ from: 0.5, share: 0.75 });
  assert.ok(high.every((t) => Number.isInteger(t) && t >= 0 && t < 1000));
  // Expected in the upper half: 0.75 + 0.25 / 2 = 87.5%; uniform: 50%.
  const upper = high.filter((t) => t >= 500).length / n;
  assert.ok(Math.abs(upper - 0.875) < 0.03, `upper half ${upper}`);
  assert.ok(Math.abs(plain.filter((t) => t >= 500).length / n - 0.5) < 0.03);
  assert.ok(draw({ from: 0.9, share: 1 }).every((t) => t >= 900), 'share 1: every timestep from the range');
  for (const highNoise of [{ from: 1, share: 0.5 }, { from: -0.1, share: 0.5 }, { from: 0.5, share: 1.5 }, { from: Number.NaN, share: 0.5 }]) {
    await assert.rejects(
      trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 5, vaeSteps: 1, unetSteps: 1, highNoise, poolSize: 10, threads: 1, vaeCheckScenes: 0 }),
      (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER' && /highNoise/.test(e.message),
    );
  }
});

test('position and shape groups together: groups alternate between the kinds, shape groups vary only the shape', () => {
  const both = poolGrouping(true, true);
  assert.deepEqual(both, { kinds: ['position', 'shape'], size: SHAPES.length });
  assert.deepEqual(poolGrouping(false, true), { kinds: ['shape'], size: SHAPES.length });
  assert.deepEqual(poolGrouping(false, false).size, 1);
  for (let g = 0; g < 12; g++) {
    const members: Scene[] = SHAPES.map((_, v) => poolScene(3, g * SHAPES.length + v, both));
    if (g % 2 === 0) {
      // a position group: the scene the position-only pool would give, moved
      assert.deepEqual(members[0], poolScene(3, g * POSITIONS.length, poolGrouping(true, false)));
      assert.ok(new Set(members.map((m) => m.objects.map((o) => o.shape).join())).size === 1);
    } else {
      assert.deepEqual(members.map((m) => m.objects[0]!.shape), [...SHAPES]);
      for (const [v, m] of members.entries()) {
        assert.deepEqual(m, atShapeVariant(shapeGroupScene(3, g), v));
        assert.ok(!m.objects.some((o) => isHeldOut(o, m.background)));
      }
    }
  }
});

test('group contrast weights the places where a group\'s members differ, relative to the group\'s mean spread', () => {
  // batch 5 in groups of 2: [0,1] differ at cell 3 only (channel 1), [2,3] are alike, [4] stands alone
  const channels = 2;
  const cells = 4;
  const per = channels * cells;
  const latents = new Float32Array(5 * per).fill(0.5);
  latents[0 * per + 1 * cells + 3] = 2;
  latents[1 * per + 1 * cells + 3] = -2;
  const w = groupContrastWeights(latents, 5, channels, cells, 2, 3);
  // spread at cell 3 is the variance of {2, -2} = 4, the mean over 4 cells is 1: 1 + 3 * 4 / 1 = 13, in both channels
  for (const m of [0, 1]) {
    for (let c = 0; c < channels; c++) {
      assert.deepEqual([...w.subarray(m * per + c * cells, m * per + (c + 1) * cells)], [1, 1, 1, 13]);
    }
  }
  assert.ok(w.subarray(2 * per).every((x) => x === 1), 'alike members and a lone member are weighted 1');
  assert.ok(groupContrastWeights(latents, 5, channels, cells, 2, 0).every((x) => x === 1));
  // the mean loss weight of a differing group is 1 + contrast: the weighting moves the loss, it does not scale it
  const mean = w.subarray(0, 2 * per).reduce((a, b) => a + b, 0) / (2 * per);
  assert.equal(mean, 1 + 3);
});

test("group focus mixes each group's residuals so that their deviations from the group's mean weigh `focus` times", () => {
  const batch = 7;
  const captioned = [true, true, true, false, true, true, true];
  const focus = 4;
  const mix = groupFocusMix(batch, 3, focus, captioned);
  const r = new KeyedStream(5, 'mix-test');
  const per = 6;
  const res = Array.from({ length: batch }, () => Array.from({ length: per }, () => r.normal()));
  const mixed = res.map((_, i) => Array.from({ length: per }, (_, k) => res.reduce((a, row, j) => a + mix[i * batch + j]! * row[k]!, 0)));
  const sumSq = (rows: number[][]): number => rows.flat().reduce((a, x) => a + x * x, 0);
  // groups [0, 1, 2], [4, 5] (3 lost its caption) and [6] alone
  let expected = sumSq([res[3]!, res[6]!]);
  for (const members of [[0, 1, 2], [4, 5]]) {
    const mean = Array.from({ length: per }, (_, k) => members.reduce((a, i) => a + res[i]![k]!, 0) / members.length);
    expected += members.length * sumSq([mean]) + focus * sumSq(members.map((i) => res[i]!.map((x, k) => x - mean[k]!)));
  }
  assert.ok(Math.abs(sumSq(mixed) - expected) < 1e-4 * expected, `${sumSq(mixed)} vs ${expected}`);
  for (const i of [3, 6]) assert.deepEqual([...mix.subarray(i * batch, (i + 1) * batch)], Array.from({ length: batch }, (_, j) => (j === i ? 1 : 0)));
  assert.ok(groupFocusMix(batch, 3, 1, captioned).every((x, k) => x === (k % (batch + 1) === 0 ? 1 : 0)), 'focus 1 is the plain loss');
  assert.throws(() => groupFocusMix(batch, 3, 0, captioned), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER');
  assert.throws(() => groupFocusMix(batch, 3, 2, [true]), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_BATCH');
});

test('a UNet step on position groups trains and stays reproducible', async () => {
  const run = () =>
    trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 8, vaeSteps: 0, unetSteps: 2, unetBatch: 5, positionGroups: true, poolSize: 10, threads: 1, vaeCheckScenes: 0 });
  const [a, b] = [await run(), await run()];
  assert.ok(Number.isFinite(a.losses.unet[1]) && a.losses.unet[1] > 0);
  const shaped = await trainSceneModel({ arch: MICRO_ARCHITECTURE, resolution: 16, seed: 8, vaeSteps: 0, unetSteps: 2, unetBatch: 5, positionGroups: true, shapeGroups: true, groupContrast: 2, poolSize: 12, threads: 1, vaeCheckScenes: 0 });
  assert.ok(Number.isFinite(shaped.losses.unet[1]) && shaped.losses.unet[1] > 0);
  const focusOpts = { arch: MICRO_ARCHITECTURE, resolution: 16, seed: 8, vaeSteps: 0, unetSteps: 2, unetBatch: 6, shapeGroups: true, poolSize: 12, threads: 1, vaeCheckScenes: 0 } as const;
  const plainShapes = await trainSceneModel(focusOpts);
  const focused = await trainSceneModel({ ...focusOpts, groupFocus: 9 });
  // The same first batch (one shape group) with its members' deviations weighted nine times.
  assert.ok(focused.losses.unet[0] > plainShapes.losses.unet[0], `focused ${focused.losses.unet[0]}, plain ${plainShapes.losses.unet[0]}`);
  // The same first batch with the cells on the objects' outlines weighted up (every weight at least 1).
  const outlined = await trainSceneModel({ ...focusOpts, outlineLoss: 4 });
  assert.ok(outlined.losses.unet[0] > plainShapes.losses.unet[0], `outlined ${outlined.losses.unet[0]}, plain ${plainShapes.losses.unet[0]}`);
  await assert.rejects(trainSceneModel({ ...focusOpts, shapeGroups: false, groupFocus: 9 }), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER');
  const key = [...a.tensors.keys()].find((k) => k.startsWith('model.diffusion_model.out.'))!;
  assert.deepEqual(toFloat32(a.tensors.get(key)!).data, toFloat32(b.tensors.get(key)!).data);
  const start = newScratchModel(MICRO_ARCHITECTURE, 8).tensors.get(key)!;
  assert.notDeepEqual(toFloat32(a.tensors.get(key)!).data, toFloat32(start).data, 'the UNet was trained');
});

test('v parameterization: the UNet is trained on v targets, the config says v, and the Engine renders with it', async () => {
  const opts = { arch: MICRO_ARCHITECTURE, resolution: 16, seed: 8, vaeSteps: 0, unetSteps: 1, unetBatch: 2, poolSize: 4, threads: 1, vaeCheckScenes: 0 } as const;
  const eps = await trainSceneModel(opts);
  const v = await trainSceneModel({ ...opts, parameterization: 'v' });
  // The same batch (same latents, noise and timesteps) against another target.
  assert.notEqual(v.losses.unet[0], eps.losses.unet[0]);
  const parameterization = (r: { configJson: object }): unknown => (r.configJson as { model: { params: { parameterization: unknown } } }).model.params.parameterization;
  assert.equal(parameterization(eps), 'eps');
  assert.equal(parameterization(v), 'v');
  assert.equal(scratchConfig(v.tensors, MICRO_ARCHITECTURE, v.model.tokenizer.vocabSize, v.scaleFactor, 'v').config.parameterization, 'v');
  const checkpoint = await writeScratchCheckpoint(dir, 'micro-v', v.tensors, v.configJson, v.model.vocabulary, { darkroom: 'micro-v' });
  const out = await engine.txt2img({ prompt: 'a red circle, blue background', steps: 2, seed: 1, width: 16, height: 16 }, { checkpoint });
  assert.equal(decodePng(out.images[0]!).width, 16);
  await assert.rejects(trainSceneModel({ ...opts, parameterization: 'v', lossWeighting: 'truncated-snr' }), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER');
});

test('snapshots: every N UNet steps the EMA weights and config as they would be saved then, none at the end', async () => {
  const opts = { arch: MICRO_ARCHITECTURE, resolution: 16, seed: 8, vaeSteps: 0, unetBatch: 2, poolSize: 4, threads: 1, vaeCheckScenes: 0 } as const;
  const seen: Array<{ step: number; tensors: Map<string, unknown>; configJson: object }> = [];
  const long = await trainSceneModel({ ...opts, unetSteps: 5, snapshotEvery: 2, onSnapshot: async (step, snap) => void seen.push({ step, ...snap }) });
  assert.deepEqual(seen.map((s) => s.step), [2, 4], 'not at the end: the result is the last checkpoint');
  const key = [...long.tensors.keys()].find((k) => k.startsWith('model.diffusion_model.out.'))!;
  const at4 = toFloat32(seen[1]!.tensors.get(key) as HostTensor).data;
  assert.notDeepEqual(at4, toFloat32(long.tensors.get(key)!).data, 'training went on after the snapshot');
  assert.deepEqual(seen[1]!.configJson, long.configJson);
  await assert.rejects(trainSceneModel({ ...opts, unetSteps: 1, snapshotEvery: 1.5 }), (e: unknown) => e instanceof DarkroomError && e.code === 'TRAINING_BAD_PARAMETER');
});
