/**
 * The CFG denoiser's guided call (what DDIM CFG++ drives): it answers the uncond rows next to the combined
 * prediction, keeps them as the last uncond, and applies the sampler's CFG scale multiplier.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import { createCfgDenoiser, type ConditionedDenoiser, type MultiCond, type ScheduledCond } from '../../src/pipeline/cfg-denoiser.js';

/** A (3, 2) conditioning whose every value is `id`. */
function cond(id: number): Float32Tensor {
  return float32([3, 2], new Float32Array(6).fill(id));
}

function only(c: Float32Tensor): ScheduledCond[] {
  return [{ endAtStep: 100, cond: c }];
}

/** Row r of the output is x row r times 2 plus the context value of that row: cond and uncond rows differ. */
const inner: ConditionedDenoiser = async (x, _sigma, context) => {
  const rows = x.shape[0]!;
  const per = x.data.length / rows;
  const width = context.data.length / rows;
  return float32(x.shape, Float32Array.from(x.data, (v, k) => v * 2 + context.data[Math.floor(k / per) * width]!));
};

const conds: MultiCond[] = [
  { parts: [{ weight: 1, schedule: only(cond(5)) }] },
  { parts: [{ weight: 1, schedule: only(cond(9)) }] },
];
const unconds = [only(cond(1)), only(cond(2))];
const x = float32([2, 1, 1, 2], Float32Array.of(0.5, -0.25, 1, 3));
const sigma = Float32Array.of(7, 7);

test('guided: the uncond rows per batch item come back with the combined prediction', async () => {
  const cfg = createCfgDenoiser(inner, { conds, unconds, cfgScale: 3 });
  assert.equal(cfg.lastUncond, undefined);
  const r = await cfg.guided(x, sigma);
  assert.deepEqual([...r.uncond.data], [2, 0.5, 4, 8]);
  assert.deepEqual(r.uncond.shape, [2, 1, 1, 2]);
  // uncond + (cond - uncond) * 3: item 0 cond - uncond = 4, item 1 = 7
  assert.deepEqual([...r.denoised.data], [2 + 12, 0.5 + 12, 4 + 21, 8 + 21]);
  assert.deepEqual([...cfg.lastUncond!.data], [...r.uncond.data]);
  // the plain denoiser is the same call: same result, shared step counter
  const plain = await cfg.denoise(x, sigma);
  assert.deepEqual([...plain.data], [...r.denoised.data]);
  assert.equal(cfg.step, 2);
});

test('guided: the CFG scale multiplier scales the guidance as cfg * multiplier, uncond untouched', async () => {
  const cfg = createCfgDenoiser(inner, { conds, unconds, cfgScale: 6.5 });
  const m = 1 / 12.5;
  const r = await cfg.guided(x, sigma, { cfgScaleMultiplier: m });
  const scale = Math.fround(6.5 * m);
  const expected = [2, 0.5, 4, 8].map((u, i) => Math.fround(u + Math.fround((i < 2 ? 4 : 7) * scale)));
  assert.deepEqual([...r.denoised.data], expected);
  assert.deepEqual([...r.uncond.data], [2, 0.5, 4, 8]);
  // and differs from the unscaled call
  const full = await cfg.guided(x, sigma);
  assert.notDeepEqual([...full.denoised.data], expected);
});

test('guided: the uncond tensor is the caller\'s own (a later call does not overwrite it)', async () => {
  const cfg = createCfgDenoiser(inner, { conds, unconds, cfgScale: 2 });
  const first = await cfg.guided(x, sigma);
  const kept = [...first.uncond.data];
  await cfg.guided(float32(x.shape, Float32Array.of(9, 9, 9, 9)), sigma);
  assert.deepEqual([...first.uncond.data], kept);
  assert.notDeepEqual([...cfg.lastUncond!.data], kept);
});
