/**
 * The CFG call with the CompVisDenoiser fused in (an untraced eps model) gives the same bits as the unfused path
 * (the same denoiser with a trace attached): one prompt, batch 2 with AND parts and weights, image conditioning,
 * an inpainting blend, the CFG++ multiplier, a prompt schedule that changes entry mid-run; and its WebAssembly
 * SIMD loops against the float32 JavaScript loops (DARKROOM_NO_SIMD=1 runs the fused call without them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import { createCfgDenoiser, type CfgOptions, type MultiCond, type ScheduledCond } from '../../src/pipeline/cfg-denoiser.js';
import { conditionedDenoiser } from '../../src/pipeline/sample.js';
import { cfgCombineSimd, combineSimd, scaleSimd } from '../../src/pipeline/cfg-simd.js';
import type { PipelineModel, PipelineUNet } from '../../src/pipeline/types.js';
import { sdDiscreteSchedule } from '../../src/sampling/schedules/discrete.js';

const C = 4;
const H = 8;
const W = 8;

/** eps depends on every input: the scaled latent, the timestep, the context row and the channels joined on. */
class MixingUNet implements PipelineUNet {
  async run(x: Float32Tensor, t: Float32Array, context: Float32Tensor): Promise<Float32Tensor> {
    const rows = x.shape[0]!;
    const per = x.data.length / rows;
    const width = context.data.length / rows;
    const out = new Float32Array(rows * C * H * W);
    const outPer = C * H * W;
    for (let r = 0; r < rows; r++) {
      const c = context.data[r * width + 3]! + context.data[r * width + width - 1]!;
      for (let k = 0; k < outPer; k++) {
        const extra = per > outPer ? x.data[r * per + outPer + (k % (per - outPer))]! : 0;
        out[r * outPer + k] = Math.sin(x.data[r * per + k]! * 1.7 + t[r]! * 0.013 + c) * 0.8 + extra * 0.1;
      }
    }
    return float32([rows, C, H, W], out);
  }
}

function model(): PipelineModel {
  return {
    kind: 'sd1',
    name: 'test',
    sha256: '0'.repeat(64),
    parameterization: 'eps',
    alphasCumprod: sdDiscreteSchedule().alphasCumprod,
    scaleFactor: 0.18215,
    unet: new MixingUNet(),
  } as unknown as PipelineModel;
}

function tensor(shape: number[], seed: number): Float32Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return float32(shape, Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 3));
}

const sched = (...conds: Array<[number, Float32Tensor]>): ScheduledCond[] => conds.map(([endAtStep, cond]) => ({ endAtStep, cond }));

/** Runs the same calls through the fused and the unfused path and compares every output bit. */
async function sameBits(opts: Omit<CfgOptions, 'trace'>, batch: number, guidance?: { cfgScaleMultiplier: number }): Promise<void> {
  const m = model();
  const fusedInner = conditionedDenoiser(m, undefined);
  const plainInner = conditionedDenoiser(m, undefined, {});
  assert.ok(fusedInner.epsParts, 'an untraced eps model exposes its parts');
  assert.equal(plainInner.epsParts, undefined, 'a traced one does not');
  const fused = createCfgDenoiser(fusedInner, opts);
  const plain = createCfgDenoiser(plainInner, opts);
  for (const [step, s] of [14.6, 7.1, 2.5, 0.3].entries()) {
    const x = tensor([batch, C, H, W], step);
    const sigma = new Float32Array(batch).fill(s);
    const a = await fused.guided(x, sigma, guidance);
    const b = await plain.guided(x, sigma, guidance);
    assert.deepEqual(new Uint8Array(a.denoised.data.buffer), new Uint8Array(b.denoised.data.buffer), `denoised, step ${step}`);
    assert.deepEqual(new Uint8Array(a.uncond.data.buffer), new Uint8Array(b.uncond.data.buffer), `uncond, step ${step}`);
    assert.deepEqual(a.denoised.shape, b.denoised.shape);
  }
}

test('fused CFG: one prompt, one negative prompt', async () => {
  await sameBits({ conds: [{ parts: [{ weight: 1, schedule: sched([100, tensor([77, 16], 1)]) }] }], unconds: [sched([100, tensor([77, 16], 2)])], cfgScale: 7 }, 1);
});

test('fused CFG: batch 2 with AND parts, weights and a prompt schedule', async () => {
  const conds: MultiCond[] = [
    { parts: [{ weight: 1, schedule: sched([1, tensor([77, 16], 3)], [100, tensor([77, 16], 4)]) }, { weight: 0.6, schedule: sched([100, tensor([77, 16], 5)]) }] },
    { parts: [{ weight: 1.3, schedule: sched([100, tensor([77, 16], 6)]) }] },
  ];
  await sameBits({ conds, unconds: [sched([100, tensor([77, 16], 7)]), sched([2, tensor([77, 16], 8)], [100, tensor([77, 16], 9)])], cfgScale: 5.5 }, 2);
  await sameBits({ conds, unconds: [sched([100, tensor([77, 16], 7)]), sched([100, tensor([77, 16], 8)])], cfgScale: 7 }, 2, { cfgScaleMultiplier: 1 / 12.5 });
});

test('fused CFG: image conditioning and an inpainting blend', async () => {
  const blend = { mask: tensor([1, 1, H, W], 11), nmask: tensor([1, 1, H, W], 12) };
  await sameBits(
    {
      conds: [{ parts: [{ weight: 1, schedule: sched([100, tensor([77, 16], 1)]) }] }, { parts: [{ weight: 1, schedule: sched([100, tensor([77, 16], 2)]) }] }],
      unconds: [sched([100, tensor([77, 16], 3)]), sched([100, tensor([77, 16], 4)])],
      cfgScale: 7,
      imageCond: tensor([2, 5, H, W], 13),
      inpaint: { initLatent: tensor([2, C, H, W], 14), blend, beforeDenoising: false },
    },
    2,
  );
});

test('SIMD fused combine, scaling and plain combine: the same bits as the float32 loops, zeros, subnormals, infinities and extremes included', (t) => {
  const f = Math.fround;
  const n = 4096;
  let seed = 12345;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const special = [0, -0, 1e-40, -1e-40, 3.4e38, -3.4e38, 1e-45, Infinity, -Infinity];
  const values = (): Float32Array => Float32Array.from({ length: n }, (_, i) => (i % 37 === 0 ? special[i % special.length]! : (rnd() - 0.5) * 10 ** Math.floor(rnd() * 8 - 4)));
  const bits = (a: Float32Array): number[] => Array.from(a, (v) => (Number.isNaN(v) ? -1 : new Uint32Array(Float32Array.of(v).buffer)[0]!));
  for (let trial = 0; trial < 8; trial++) {
    const x = values();
    const ec = values();
    const eu = values();
    const cOut = f(-rnd() * 15);
    const scale = f(rnd() * 12);
    const un = new Float32Array(n);
    const out = new Float32Array(n);
    if (process.env.DARKROOM_NO_SIMD === '1') {
      t.skip('DARKROOM_NO_SIMD=1: the SIMD loops are off');
      return;
    }
    // Node 20 has WebAssembly SIMD: a kernel that does not load is a broken module, not a missing feature
    assert.ok(cfgCombineSimd(x, ec, eu, cOut, scale, un, out), 'the SIMD kernel loads');
    const un2 = new Float32Array(n);
    const out2 = new Float32Array(n);
    for (let k = 0; k < n; k++) {
      const u = f(x[k]! + f(eu[k]! * cOut));
      un2[k] = u;
      out2[k] = f(u + f(f(f(x[k]! + f(ec[k]! * cOut)) - u) * scale));
    }
    assert.deepEqual(bits(un), bits(un2));
    assert.deepEqual(bits(out), bits(out2));
    const scaled = new Float32Array(n);
    assert.ok(scaleSimd(x, cOut, scaled));
    assert.deepEqual(bits(scaled), bits(Float32Array.from(x, (v) => v * cOut)));
    const combined = new Float32Array(n);
    assert.ok(combineSimd(ec, eu, scale, combined));
    assert.deepEqual(bits(combined), bits(Float32Array.from(ec, (c, k) => f(eu[k]! + f(f(c - eu[k]!) * scale)))));
  }
});
