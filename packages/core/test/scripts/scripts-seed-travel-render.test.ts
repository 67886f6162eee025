/**
 * Seed travel on the demo model: the planned frames render as plain requests, the first and last frames are plain
 * renders of the two seeds, and consecutive frames differ less than the two ends do (the smoothness figure).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planScript, SEED_TRAVEL_DEFAULTS } from '../../src/index.js';
import type { RasterImage } from '../../src/formats/png.js';
import { DEMO_BASE, demoRenderer } from './demo-engine.js';

const demo = demoRenderer();
const base = DEMO_BASE;
const render = demo.render;

function meanAbsDiff(a: RasterImage, b: RasterImage): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += Math.abs(a.data[i]! - b.data[i]!);
  return s / a.data.length;
}

test('seed travel on the demo model: end frames are the seeds\' own renders, consecutive frames closer than the ends', async (t) => {
  const plan = planScript('seed travel', { ...SEED_TRAVEL_DEFAULTS, destinationSeeds: '1234', steps: 6 }, base);
  assert.equal(plan.cells.length, 7);
  const frames: RasterImage[] = [];
  for (const cell of plan.cells) frames.push(await render(cell.params));
  assert.deepEqual(frames[0]!.data, (await render({ ...base, seed: 77 })).data);
  assert.deepEqual(frames[6]!.data, (await render({ ...base, seed: 1234 })).data);
  // a middle frame is the variation-seed render written out by hand
  assert.deepEqual(frames[3]!.data, (await render({ ...base, seed: 77, subseed: 1234, subseed_strength: 0.5 })).data);
  const ends = meanAbsDiff(frames[0]!, frames[6]!);
  const steps = frames.slice(1).map((f, i) => meanAbsDiff(frames[i]!, f));
  const mean = steps.reduce((s, d) => s + d, 0) / steps.length;
  t.diagnostic(`smoothness: consecutive frames differ by ${steps.map((d) => d.toFixed(2)).join(', ')} (mean ${mean.toFixed(2)}), the ends by ${ends.toFixed(2)} (8-bit levels)`);
  assert.ok(ends > 0, 'the two seeds give different images');
  assert.ok(mean < ends, `consecutive frames (mean ${mean}) must differ less than the ends (${ends})`);
  assert.ok(Math.max(...steps) < ends, `every consecutive pair (max ${Math.max(...steps)}) must differ less than the ends (${ends})`);
  assert.deepEqual(plan.animations![0]!.frames, [0, 1, 2, 3, 4, 5, 6]);
});
