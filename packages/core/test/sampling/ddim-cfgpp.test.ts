/**
 * DDIM CFG++ against synthetic eps models whose guided and unconditional predictions differ: pred_x0 comes from
 * the guided eps, the renoising direction from the unconditional one, and the model is asked for cfg / 12.5.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import { DDIM_CFGPP_SCALE_MULTIPLIER, sampleDdim, sampleDdimCfgpp } from '../../src/sampling/compvis/index.js';
import { samplerByName } from '../../src/sampling/samplers.js';
import { sdDiscreteSchedule } from '../../src/sampling/schedules/discrete.js';
import type { GuidanceOptions, GuidedEpsModel, SamplerContext } from '../../src/sampling/types.js';

const shape = [1, 2, 2, 2];
const x0 = float32(shape, Float32Array.of(0.3, -1.2, 0.8, 0.05, -0.6, 1.1, -0.2, 0.4));
const zeros = () => float32(shape, new Float32Array(8));

function field(fn: (v: number, k: number) => number): (x: Float32Tensor, t: Float32Array) => Float32Tensor {
  return (x, t) => float32(x.shape, Float32Array.from(x.data, (v, k) => fn(v, k) * (1 + t[0]! / 1000)));
}
const guidedPart = field((v, k) => Math.sin(v + k));
const uncondPart = field((v, k) => 0.5 * Math.cos(2 * v - k));

function model(uncond: (x: Float32Tensor, t: Float32Array) => Float32Tensor, seen: GuidanceOptions[] = []): GuidedEpsModel {
  return async (x, t, guidance) => {
    seen.push(guidance ?? {});
    return { eps: guidedPart(x, t), uncondEps: uncond(x, t) };
  };
}

test('one step: pred_x0 from the guided eps, direction sqrt(1 - a_prev) * uncond eps (eta 0)', async () => {
  const acp = sdDiscreteSchedule().alphasCumprod;
  const timesteps = Int32Array.of(1, 501);
  const seen: GuidanceOptions[] = [];
  const out = await sampleDdimCfgpp(x0, timesteps, model(uncondPart, seen), zeros);
  assert.deepEqual(seen, [{ cfgScaleMultiplier: DDIM_CFGPP_SCALE_MULTIPLIER }]);
  assert.equal(DDIM_CFGPP_SCALE_MULTIPLIER, 1 / 12.5);
  const t = Float32Array.of(501);
  const e = guidedPart(x0, t);
  const u = uncondPart(x0, t);
  const aT = acp[501]!;
  const aPrev = acp[1]!;
  for (let k = 0; k < 8; k++) {
    const predX0 = (x0.data[k]! - Math.sqrt(1 - aT) * e.data[k]!) / Math.sqrt(aT);
    const expected = Math.sqrt(aPrev) * predX0 + Math.sqrt(1 - aPrev) * u.data[k]!;
    assert.ok(Math.abs(out.data[k]! - expected) < 2e-6, `element ${k}: ${out.data[k]} vs ${expected}`);
  }
  // the direction term alone moves with the uncond eps: a different uncond changes exactly that term
  const other = await sampleDdimCfgpp(x0, timesteps, model((x, tt) => float32(x.shape, uncondPart(x, tt).data.map((v) => v + 1))), zeros);
  for (let k = 0; k < 8; k++) assert.ok(Math.abs(other.data[k]! - out.data[k]! - Math.sqrt(1 - aPrev)) < 2e-6);
});

test('with the uncond eps equal to the guided one, DDIM CFG++ is plain DDIM, bit for bit', async () => {
  const timesteps = Int32Array.of(1, 201, 401, 601, 801);
  const ddim = await sampleDdim(x0, timesteps, async (x, t) => guidedPart(x, t), zeros);
  const cfgpp = await sampleDdimCfgpp(x0, timesteps, model(guidedPart), zeros);
  assert.deepEqual([...cfgpp.data], [...ddim.data]);
  const differs = await sampleDdimCfgpp(x0, timesteps, model(uncondPart), zeros);
  assert.notDeepEqual([...differs.data], [...ddim.data]);
});

test('the registry sampler prefers ctx.guidedEps and falls back to ctx.eps for both predictions', async () => {
  const info = samplerByName('DDIM CFG++')!;
  const seen: GuidanceOptions[] = [];
  const base: Omit<SamplerContext, 'eps' | 'guidedEps'> = { denoise: async (x) => x, sigmas: new Float32Array(0), noise: zeros, options: { steps: 4, eta: 0 } };
  const guided = await info.sampler(x0, { ...base, eps: async (x, t) => guidedPart(x, t), guidedEps: model(uncondPart, seen) });
  assert.equal(seen.length, 3); // n steps make n - 1 model calls
  assert.ok(seen.every((g) => g.cfgScaleMultiplier === 1 / 12.5));
  const timesteps = Int32Array.of(1, 251, 501, 751);
  assert.deepEqual([...guided.data], [...(await sampleDdimCfgpp(x0, timesteps, model(uncondPart), zeros)).data]);
  const plain = await info.sampler(x0, { ...base, eps: async (x, t) => guidedPart(x, t) });
  assert.deepEqual([...plain.data], [...(await sampleDdim(x0, timesteps, async (x, t) => guidedPart(x, t), zeros)).data]);
});
