import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import { isCancelled } from '../../src/errors.js';
import { compVisSamplers, sampleDdim, samplePlms, sampleUnipc, sampleLcm } from '../../src/sampling/compvis/index.js';
import { compVisTimesteps, samplerSigmas } from '../../src/sampling/schedules/sampler-schedules.js';
import { ImageRNG } from '../../src/sampling/rng/image-rng.js';
import type { EpsModel } from '../../src/sampling/types.js';
import { analyticEps, analyticLcmDenoiser } from '../../parity/analytic-model.js';
import { oracleRoot } from '../../parity/oracle.js';
import { compVisCaseIndex, replayCompVisCase } from '../../parity/sampling-compvis.js';

function counting(eps: EpsModel): { eps: EpsModel; ts: number[] } {
  const ts: number[] = [];
  return {
    ts,
    eps: async (x, t) => {
      ts.push(t[0]!);
      return eps(x, t);
    },
  };
}

const noiseOf = (seed: number) => {
  const rng = new ImageRNG({ shape: [4, 8, 8], seeds: [seed], source: 'cpu' });
  const x = rng.next();
  let draws = 0;
  return { x, draws: () => draws, noise: (): Float32Tensor => (draws++, rng.next()) };
};

test('DDIM: n timesteps make n-1 calls walking down, one noise draw per step even at eta 0', async () => {
  const { x, noise, draws } = noiseOf(1);
  const m = counting(analyticEps());
  const ts = compVisTimesteps(10);
  const out = await sampleDdim(x, ts, m.eps, noise);
  assert.deepEqual(m.ts, [901, 801, 701, 601, 501, 401, 301, 201, 101]);
  assert.equal(draws(), 9);
  assert.ok(out.data.every(Number.isFinite));
});

test('DDIM with eta > 0 uses the noise: results differ from eta 0', async () => {
  const a = noiseOf(2);
  const b = noiseOf(2);
  const ts = compVisTimesteps(5);
  const x0 = await sampleDdim(a.x, ts, analyticEps(), a.noise, { eta: 0 });
  const x1 = await sampleDdim(b.x, ts, analyticEps(), b.noise, { eta: 0.5 });
  assert.notDeepEqual(Array.from(x0.data), Array.from(x1.data));
});

test('PLMS: the first step costs two calls, n timesteps make n calls, no noise', async () => {
  const { x } = noiseOf(3);
  const m = counting(analyticEps());
  await samplePlms(x, compVisTimesteps(5), m.eps);
  assert.deepEqual(m.ts, [801, 601, 601, 401, 201]);
});

test('UniPC: one call per step at (t - 1/1000) * 1000, starting at 999', async () => {
  const { x } = noiseOf(4);
  const m = counting(analyticEps());
  await sampleUnipc(x, 10, m.eps);
  assert.equal(m.ts.length, 10);
  assert.ok(Math.abs(m.ts[0]! - 999) < 1e-3);
  assert.ok(Math.abs(m.ts[1]! - (999 - 99.9)) < 1e-3);
  await assert.rejects(sampleUnipc(x, 2, m.eps), /needs at least 3 steps/);
});

test('LCM: re-noises to every next sigma but the last', async () => {
  const { x, noise, draws } = noiseOf(5);
  const sigmas = samplerSigmas('LCM', 'Automatic', 4).sigmas;
  const start = float32(x.shape, Float32Array.from(x.data, (v) => v * sigmas[0]!));
  await sampleLcm(start, sigmas, analyticLcmDenoiser(), noise);
  assert.equal(draws(), 3);
});

test('an aborted signal stops a CompVis sampler, with the caller\'s reason or CANCELLED', async () => {
  const { x, noise } = noiseOf(6);
  const controller = new AbortController();
  controller.abort(new Error('stop'));
  await assert.rejects(
    compVisSamplers.DDIM!(x, {
      denoise: async (y) => y,
      eps: analyticEps(),
      sigmas: new Float32Array(11),
      noise,
      signal: controller.signal,
      options: { steps: 10 },
    }),
    /stop/,
  );
  // Aborted without a reason of its own: the one CANCELLED error every layer throws.
  const plain = new AbortController();
  plain.abort();
  await assert.rejects(
    compVisSamplers.DDIM!(x, { denoise: async (y) => y, eps: analyticEps(), sigmas: new Float32Array(11), noise, signal: plain.signal, options: { steps: 10 } }),
    (e: unknown) => isCancelled(e),
  );
});

const oracle = oracleRoot();
const hasOracle = existsSync(join(oracle, 'samplers', 'trajectories.json'));

for (const id of [
  'ddim__automatic__s10__b1x4x8x8__seed42__cpu__eta0.5',
  'unipc__automatic__s10__b1x4x8x8__seed42__cpu__uni_pc_variantbh2',
  'lcm__automatic__s15__b1x4x8x8__seed42__cpu',
]) {
  test(`trajectory ${id} replays call by call`, { skip: hasOracle ? false : `oracle not found at ${oracle}` }, async () => {
    const c = (await compVisCaseIndex(oracle)).get(id);
    assert.ok(c, `case ${id} in trajectories.json`);
    const r = await replayCompVisCase(join(oracle, 'samplers'), c);
    assert.equal(r.status, 'pass', r.detail);
  });
}

test('img2img: tEnc keeps the first t_enc timesteps and the start latent mixes at timesteps[t_enc]', async () => {
  const { compVisImg2ImgStart, contextTimesteps } = await import('../../src/sampling/compvis/index.js');
  const ctx = { denoise: async (y: Float32Tensor) => y, sigmas: new Float32Array(0), noise: () => float32([1], new Float32Array(1)) };
  assert.deepEqual(Array.from(contextTimesteps({ ...ctx, options: { steps: 20, tEnc: 4 } })), [1, 51, 101, 151]);
  const init = float32([1, 1, 1, 2], Float32Array.from([1, -2]));
  const noise = float32([1, 1, 1, 2], Float32Array.from([0.5, 0.25]));
  const x = compVisImg2ImgStart(init, noise, 20, 4);
  const { sdDiscreteSchedule } = await import('../../src/sampling/schedules/discrete.js');
  const acp = sdDiscreteSchedule().alphasCumprod[201]!;
  assert.ok(Math.abs(x.data[0]! - (1 * Math.sqrt(acp) + 0.5 * Math.sqrt(1 - acp))) < 1e-6);
  assert.ok(Math.abs(x.data[1]! - (-2 * Math.sqrt(acp) + 0.25 * Math.sqrt(1 - acp))) < 1e-6);
});
