import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alphasCumprodF32, sdDiscreteSchedule } from '../../src/sampling/schedules/discrete.js';
import { linspaceF32 } from '../../src/sampling/schedules/linspace.js';
import { betaPpf } from '../../src/sampling/schedules/beta-ppf.js';
import { lcmSchedule } from '../../src/sampling/schedules/lcm.js';
import {
  compVisTimesteps,
  discardPenultimate,
  samplerSigmas,
} from '../../src/sampling/schedules/sampler-schedules.js';
import { resolveSamplerEntry, samplerEntryByAlias } from '../../src/catalog/samplers.js';
import { isDarkroomError } from '../../src/errors.js';

const SIGMA_MIN = 0.029167532920837402;
const SIGMA_MAX = 14.614642143249512;

test('SD sigma table: float32 alphas_cumprod, sigma_min/max as A1111 sees them', () => {
  const s = sdDiscreteSchedule();
  assert.equal(s.sigmas.length, 1000);
  assert.equal(s.sigmaMin, SIGMA_MIN);
  assert.equal(s.sigmaMax, SIGMA_MAX);
  assert.equal(alphasCumprodF32()[0], Math.fround(1 - 0.00085));
});

test('sigma_to_t / t_to_sigma: table ends, clamping outside the table, interpolation in between', () => {
  const s = sdDiscreteSchedule();
  assert.equal(s.sigmaToT(SIGMA_MAX), 999);
  assert.equal(s.sigmaToT(SIGMA_MIN), 0);
  assert.equal(s.sigmaToT(100), 999);
  assert.equal(s.sigmaToT(0.001), 0);
  assert.equal(s.tToSigma(500), s.sigmas[500]);
  const mid = s.tToSigma(500.5);
  assert.ok(mid > s.sigmas[500]! && mid < s.sigmas[501]!);
  assert.ok(Math.abs(s.sigmaToT(mid) - 500.5) < 1e-3);
  assert.equal(s.sigmaToT(s.sigmas[123]! * 1.0001, true), 123);
});

test('torch linspace: exact ends, the second half counted down from the end', () => {
  const v = linspaceF32(999, 0, 20);
  assert.equal(v[0], 999);
  assert.equal(v[19], 0);
  assert.equal(linspaceF32(3, 7, 1)[0], 3);
});

test('Karras: starts at sigma_max, ends at sigma_min then 0, monotone', () => {
  const { sigmas, extraGenerationParams } = samplerSigmas('Euler', 'karras', 10);
  assert.equal(sigmas.length, 11);
  // float32 powf lands one ulp above the table's sigma_max, as in A1111
  assert.ok(Math.abs(sigmas[0]! - SIGMA_MAX) < 2e-6);
  assert.ok(Math.abs(sigmas[9]! - SIGMA_MIN) < 1e-7);
  assert.equal(sigmas[10], 0);
  for (let i = 1; i < sigmas.length; i++) assert.ok(sigmas[i]! < sigmas[i - 1]!);
  assert.equal(extraGenerationParams['Schedule type'], 'Karras');
});

test('A1111 quirks kept: KL Optimal has no trailing 0, DDIM starts below sigma_max, Beta n=1 is [max, 0]', () => {
  const kl = samplerSigmas('Euler', 'kl_optimal', 5).sigmas;
  assert.equal(kl.length, 6);
  assert.ok(Math.abs(kl[5]! - SIGMA_MIN) < 1e-7);
  const ddim = samplerSigmas('Euler', 'ddim', 10).sigmas;
  assert.equal(ddim[0], sdDiscreteSchedule().sigmas[901]);
  assert.equal(ddim[ddim.length - 1], 0);
  const beta = samplerSigmas('Euler', 'Beta', 1).sigmas;
  assert.equal(beta.length, 2);
  assert.equal(beta[1], 0);
});

test('Automatic resolves to the sampler default; discard-penultimate samplers compute n+1 and drop one', () => {
  const dpm2 = samplerSigmas('DPM2', 'Automatic', 10).sigmas;
  const karras11 = samplerSigmas('Euler', 'Karras', 11).sigmas;
  assert.deepEqual(Array.from(dpm2), Array.from(discardPenultimate(karras11)));
  assert.equal(dpm2.length, 11);
  assert.deepEqual(samplerSigmas('Euler a', 'Automatic', 7).sigmas, sdDiscreteSchedule().getSigmas(7));
  const always = samplerSigmas('Euler', 'Automatic', 5, { alwaysDiscardNextToLastSigma: true });
  assert.equal(always.extraGenerationParams['Discard penultimate sigma'], true);
  assert.equal(always.sigmas.length, 6);
});

test('option overrides of sigma_min / rho are applied and reported', () => {
  const r = samplerSigmas('Euler', 'Karras', 4, { sigmaMin: 0.1, rho: 5 });
  assert.ok(Math.abs(r.sigmas[3]! - 0.1) < 1e-7);
  assert.equal(r.extraGenerationParams['Schedule min sigma'], 0.1);
  assert.equal(r.extraGenerationParams['Schedule rho'], 5);
});

test('LCM schedules use its 50-entry table', () => {
  const lcm = samplerSigmas('LCM', 'Automatic', 4).sigmas;
  assert.ok(Math.abs(lcm[0]! - SIGMA_MAX) < 2e-6);
  assert.ok(Math.abs(lcm[3]! - lcmSchedule().sigmas[0]!) < 1e-7);
  assert.equal(lcm[4], 0);
});

test('timestep samplers: clip(arange(0, 1000, 1000 // n) + 1), which can be longer than n', () => {
  assert.deepEqual(Array.from(compVisTimesteps(5)), [1, 201, 401, 601, 801]);
  assert.equal(compVisTimesteps(30).length, 31);
  assert.throws(() => samplerSigmas('DDIM', 'Automatic', 10), (e) => isDarkroomError(e, 'SAMPLER_USES_TIMESTEPS'));
});

test('legacy display names split off their scheduler; unknown names become DPM++ 2M', () => {
  const resolved = (name: string, convertAutomatic = true) => {
    const r = resolveSamplerEntry(name, undefined, convertAutomatic);
    return { sampler: r.sampler.name, scheduler: r.scheduler, fallback: r.fallback };
  };
  assert.deepEqual(resolved('DPM++ 2M Karras', false), { sampler: 'DPM++ 2M', scheduler: 'Karras', fallback: false });
  assert.deepEqual(resolved('DPM++ 2M Karras'), { sampler: 'DPM++ 2M', scheduler: 'Automatic', fallback: false });
  assert.deepEqual(resolved('DPM++ 2M SDE Karras'), { sampler: 'DPM++ 2M SDE', scheduler: 'Karras', fallback: false });
  assert.deepEqual(resolved('Euler SGM Uniform'), { sampler: 'DPM++ 2M', scheduler: 'Uniform', fallback: true });
  assert.equal(samplerEntryByAlias('k_euler_a')?.name, 'Euler a');
  assert.equal(samplerEntryByAlias('nope'), undefined);
});

test('Beta quantile: symmetric, exact ends', () => {
  assert.equal(betaPpf(0, 0.6, 0.6), 0);
  assert.equal(betaPpf(1, 0.6, 0.6), 1);
  assert.ok(Math.abs(betaPpf(0.5, 0.6, 0.6) - 0.5) < 1e-12);
  assert.ok(Math.abs(betaPpf(0.25, 0.6, 0.6) + betaPpf(0.75, 0.6, 0.6) - 1) < 1e-12);
});
