import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import { createCfgDenoiser, scheduleIndex, type ConditionedDenoiser, type MultiCond, type ScheduledCond } from '../../src/pipeline/cfg-denoiser.js';

/** A cond of `tokens` rows of width 2 whose values identify it (every value = id). */
function cond(id: number, tokens = 3): Float32Tensor {
  return float32([tokens, 2], new Float32Array(tokens * 2).fill(id));
}

function sched(...entries: Array<[number, Float32Tensor]>): ScheduledCond[] {
  return entries.map(([endAtStep, c]) => ({ endAtStep, cond: c }));
}

/** Inner model whose output row r is (x row + mean of that row's context): lets the test see which context a row got. */
function recordingInner(calls: Array<{ rows: number; tokens: number; contextMeans: number[] }>): ConditionedDenoiser {
  return async (x, _sigma, context) => {
    const [r, t, d] = context.shape as [number, number, number];
    const per = x.data.length / r;
    const means: number[] = [];
    const out = new Float32Array(x.data.length);
    for (let i = 0; i < r; i++) {
      let s = 0;
      for (let k = 0; k < t * d; k++) s += context.data[i * t * d + k]!;
      const m = s / (t * d);
      means.push(m);
      for (let k = 0; k < per; k++) out[i * per + k] = x.data[i * per + k]! + m;
    }
    calls.push({ rows: r, tokens: t, contextMeans: means });
    return float32(x.shape, out);
  };
}

const x1 = float32([1, 1, 1, 2], Float32Array.of(0.5, -0.25));

test('schedule entry: first with step <= end_at_step, else entry 0', () => {
  const s = sched([4, cond(1)], [8, cond(2)]);
  assert.equal(scheduleIndex(s, 0), 0);
  assert.equal(scheduleIndex(s, 4), 0);
  assert.equal(scheduleIndex(s, 5), 1);
  assert.equal(scheduleIndex(s, 8), 1);
  assert.equal(scheduleIndex(s, 9), 0);
});

test('one batched call when token counts match: cond rows then uncond rows, CFG in float32', async () => {
  const calls: Array<{ rows: number; tokens: number; contextMeans: number[] }> = [];
  const conds: MultiCond[] = [{ parts: [{ weight: 1, schedule: sched([10, cond(3)]) }] }];
  const cfg = createCfgDenoiser(recordingInner(calls), { conds, unconds: [sched([10, cond(1)])], cfgScale: 7 });
  const out = await cfg.denoise(x1, Float32Array.of(2));
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0], { rows: 2, tokens: 3, contextMeans: [3, 1] });
  // uncond + (cond - uncond) * 7 = (x+1) + 2*7
  assert.deepEqual([...out.data], [0.5 + 1 + 14, -0.25 + 1 + 14]);
  assert.equal(cfg.step, 1);
});

test('different token counts: cond and uncond run as separate calls (pad_cond_uncond off)', async () => {
  const calls: Array<{ rows: number; tokens: number; contextMeans: number[] }> = [];
  const conds: MultiCond[] = [{ parts: [{ weight: 1, schedule: sched([10, cond(3, 6)]) }] }];
  const cfg = createCfgDenoiser(recordingInner(calls), { conds, unconds: [sched([10, cond(1, 3)])], cfgScale: 2 });
  await cfg.denoise(x1, Float32Array.of(2));
  assert.deepEqual(calls.map((c) => [c.rows, c.tokens]), [[1, 6], [1, 3]]);
});

test('pad_cond_uncond pads the shorter side with the empty-prompt cond and batches', async () => {
  const calls: Array<{ rows: number; tokens: number; contextMeans: number[] }> = [];
  const conds: MultiCond[] = [{ parts: [{ weight: 1, schedule: sched([10, cond(3, 6)]) }] }];
  const cfg = createCfgDenoiser(recordingInner(calls), {
    conds,
    unconds: [sched([10, cond(1, 3)])],
    cfgScale: 2,
    padCondUncond: true,
    emptyCond: cond(5, 3),
  });
  await cfg.denoise(x1, Float32Array.of(2));
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0], { rows: 2, tokens: 6, contextMeans: [3, 3] }); // uncond = [1 x3, 5 x3]
  assert.equal(cfg.paddedCondUncond, true);
});

test('AND parts: rows per part, weights times CFG scale, shorter part padded with its last vector', async () => {
  const calls: Array<{ rows: number; tokens: number; contextMeans: number[] }> = [];
  const long = float32([4, 2], Float32Array.of(2, 2, 2, 2, 2, 2, 2, 2));
  const short = float32([2, 2], Float32Array.of(0, 0, 6, 6)); // padded: 0,6,6,6 -> mean 4.5
  const conds: MultiCond[] = [
    {
      parts: [
        { weight: 1, schedule: sched([10, long]) },
        { weight: 0.5, schedule: sched([10, short]) },
      ],
    },
  ];
  const cfg = createCfgDenoiser(recordingInner(calls), { conds, unconds: [sched([10, cond(1, 4)])], cfgScale: 3 });
  const out = await cfg.denoise(x1, Float32Array.of(1));
  assert.deepEqual(calls[0]!.contextMeans, [2, 4.5, 1]);
  // uncond (x+1) + (2-1)*3 + (4.5-1)*1.5
  assert.ok(Math.abs(out.data[0]! - (0.5 + 1 + 3 + 5.25)) < 1e-6);
});

test('prompt editing: the cond switches entry when the denoiser step passes end_at_step', async () => {
  const calls: Array<{ rows: number; tokens: number; contextMeans: number[] }> = [];
  const conds: MultiCond[] = [{ parts: [{ weight: 1, schedule: sched([1, cond(3)], [4, cond(9)]) }] }];
  const cfg = createCfgDenoiser(recordingInner(calls), { conds, unconds: [sched([4, cond(1)])], cfgScale: 1 });
  for (let i = 0; i < 3; i++) await cfg.denoise(x1, Float32Array.of(1));
  assert.deepEqual(calls.map((c) => c.contextMeans[0]), [3, 3, 9]);
});

test('batch of two with identical prompts: item-major cond rows then both unconds', async () => {
  const calls: Array<{ rows: number; tokens: number; contextMeans: number[] }> = [];
  const c = sched([10, cond(3)]);
  const conds: MultiCond[] = [{ parts: [{ weight: 1, schedule: c }] }, { parts: [{ weight: 1, schedule: sched([10, cond(4)]) }] }];
  const x = float32([2, 1, 1, 1], Float32Array.of(1, 2));
  const cfg = createCfgDenoiser(recordingInner(calls), { conds, unconds: [sched([10, cond(1)]), sched([10, cond(0)])], cfgScale: 1 });
  const out = await cfg.denoise(x, Float32Array.of(1, 1));
  assert.deepEqual(calls[0]!.contextMeans, [3, 4, 1, 0]);
  assert.deepEqual([...out.data], [1 + 3, 2 + 4]);
});
