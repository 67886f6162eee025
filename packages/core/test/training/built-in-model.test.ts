/**
 * The built-in model draws what its prompt says, and seeds, samplers and CFG behave on it as users expect. Every
 * figure here is read by the scene detector (training/scenes/detect.ts) from the engine's own PNGs; the floors
 * are what the shipped weights reach on this small sample (the full held-out figures are in the README).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { BUILTIN_CHECKPOINT, BUILTIN_MODEL_RESOLUTION } from '../../src/catalog/built-in-model.js';
import { decodePng } from '../../src/formats/png.js';
import { Engine } from '../../src/pipeline/engine.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import { evaluateHeldOut } from '../../src/training/scenes/evaluate-model.js';
import { detectScene } from '../../src/training/scenes/detect.js';
import { evaluateReconstruction, readAutoencoder } from '../../src/training/scenes/evaluate-vae.js';
import { heldOutScenes, SHAPES } from '../../src/training/scenes/scene.js';

let engine: Engine;

before(() => {
  engine = new Engine({ root: repoRoot, threads: 2 });
});

after(async () => {
  await engine.close();
});

const SIDE = BUILTIN_MODEL_RESOLUTION;
/** The first held-out captions (of 53), and how many of them the shipped weights draw right, per fact. */
const HELD_OUT_SAMPLE = 12;
// Measured: colour 11, background 12, position 12. One of slack each for another CPU's rounding. Shape has no floor:
// these first 12 are all circles, the shape the model draws best, and over all six shapes it is far below the
// issue's goal (see the README).
const HELD_OUT_FLOORS: Readonly<Record<string, number>> = { background: 11, colour: 10, position: 11 };

async function render(p: Partial<Txt2ImgParams>): Promise<Uint8Array> {
  const r = await engine.txt2img({ prompt: '', negative_prompt: '', steps: 20, sampler_name: 'DPM++ 2M', cfg_scale: 5, seed: 1, width: SIDE, height: SIDE, ...p });
  const png = decodePng(r.images[0]!);
  const rgb = new Uint8Array(SIDE * SIDE * 3);
  for (let i = 0; i < SIDE * SIDE; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = png.data[i * png.channels + c]!;
  return rgb;
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

test('held-out captions, never seen in training: the detector finds what they say', async (t) => {
  const report = await evaluateHeldOut(engine, { checkpoint: '', resolution: SIDE, limit: HELD_OUT_SAMPLE });
  const found = Object.fromEntries(Object.entries(report.rates).map(([k, v]) => [k, Math.round(v * report.cases.length)]));
  t.diagnostic(`of ${report.cases.length}: ${Object.entries(found).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const [fact, floor] of Object.entries(HELD_OUT_FLOORS)) {
    assert.ok(found[fact]! >= floor, `${fact}: ${found[fact]} of ${report.cases.length}, floor ${floor} (${report.cases.map((c) => c.prompt).join(' | ')})`);
  }
});

test("the built-in autoencoder's round trip, by shape: the ceiling a UNet on it can reach for each", async (t) => {
  const scenes = SHAPES.flatMap((shape) => heldOutScenes(1).filter((s) => s.objects[0]!.shape === shape).slice(0, 2));
  const { vae, weights } = await readAutoencoder(BUILTIN_CHECKPOINT);
  const r = await evaluateReconstruction(weights, vae, scenes, { resolution: SIDE, threads: 2 });
  t.diagnostic(JSON.stringify(r.shapeByShape));
  assert.equal(r.ceiling.shape, 1, 'the detector reads every render right');
  assert.deepEqual(Object.keys(r.shapeByShape).sort(), [...SHAPES].sort());
  for (const shape of SHAPES) assert.equal(r.shapeByShape[shape]!.scenes, 2, shape);
  // Measured over all 318 held-out scenes of seeds 1-6: circles and squares kept in every one, stars in 10 of 24.
  assert.equal(r.shapeByShape.circle!.kept, 2);
  assert.equal(r.shapeByShape.square!.kept, 2);
  assert.ok(r.rates.colour >= 11 / 12 && r.rates.background === 1, JSON.stringify(r.rates));
});

test('the same seed gives the same image; another seed another one', async () => {
  const prompt = 'a large red circle in the centre, blue background';
  const a = await render({ prompt, seed: 7 });
  assert.deepEqual(await render({ prompt, seed: 7 }), a);
  assert.ok(meanAbsDiff(a, await render({ prompt, seed: 8 })) > 1, 'seed 8 differs from seed 7');
});

test('CFG 1 and CFG 7 differ visibly; with guidance the prompt is drawn', async (t) => {
  const prompt = 'a large yellow square in the centre, purple background';
  const weak = await render({ prompt, cfg_scale: 1, seed: 3 });
  const strong = await render({ prompt, cfg_scale: 7, seed: 3 });
  const d = meanAbsDiff(weak, strong);
  t.diagnostic(`CFG 1 vs 7: mean difference ${d.toFixed(1)} of 255`);
  // Measured 12.7 on the shipped weights; an earlier model reached 28.6 mostly through the blotchy background it
  // drew at CFG 7. Half the measured figure still means guidance changes the picture, which is what this checks;
  // that the guided picture is the prompt's is checked below.
  assert.ok(d > 6, `mean difference ${d.toFixed(1)} of 255`);
  const seen = detectScene({ width: SIDE, height: SIDE, data: strong });
  assert.equal(seen.background.kind === 'plain' ? seen.background.colour : seen.background.colours[0], 'purple');
  assert.equal(seen.objects[0]?.colour, 'yellow');
});

test('20 steps of DPM++ 2M draw what 50 steps of Euler draw', async (t) => {
  const prompt = 'a large green circle in the centre, white background';
  const dpm = await render({ prompt, steps: 20, sampler_name: 'DPM++ 2M', seed: 5 });
  const euler = await render({ prompt, steps: 50, sampler_name: 'Euler', seed: 5 });
  const d = meanAbsDiff(dpm, euler);
  t.diagnostic(`DPM++ 2M 20 vs Euler 50: mean difference ${d.toFixed(1)} of 255`);
  assert.ok(d < 4, `mean difference ${d.toFixed(1)} of 255`);
  const a = detectScene({ width: SIDE, height: SIDE, data: dpm });
  const b = detectScene({ width: SIDE, height: SIDE, data: euler });
  assert.deepEqual(a.background, b.background);
  assert.equal(a.objects[0]?.colour, b.objects[0]?.colour);
});
