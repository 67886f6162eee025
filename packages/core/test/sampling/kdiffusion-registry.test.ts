import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_SAMPLER,
  SAMPLERS,
  effectiveScheduler,
  resolveSamplerAndScheduler,
  samplerByAlias,
  samplerByName,
  samplerContext,
  samplerOptions,
  startLatent,
} from '../../src/sampling/samplers.js';
import { readSafetensorsFile } from '../../src/formats/safetensors.js';
import { ImageRNG, randnLocal } from '../../src/sampling/rng/image-rng.js';
import { sdDiscreteSchedule } from '../../src/sampling/schedules/discrete.js';
import { analyticDenoiser, analyticEps } from '../../parity/analytic-model.js';
import { oracleRoot } from '../../parity/oracle.js';

test('A1111 name resolution: legacy scheduler suffixes, defaults and the Automatic conversion', () => {
  const r = (name: string | undefined, scheduler?: string, convert = true) => {
    const x = resolveSamplerAndScheduler(name, scheduler, convert);
    return [x.sampler.name, x.scheduler];
  };
  assert.deepEqual(r('DPM++ 2M Karras'), ['DPM++ 2M', 'Automatic']);
  assert.deepEqual(r('DPM++ 2M Karras', undefined, false), ['DPM++ 2M', 'Karras']);
  assert.deepEqual(r('DPM++ 2M SDE Karras'), ['DPM++ 2M SDE', 'Karras']);
  assert.deepEqual(r('DPM++ 2M SDE Exponential'), ['DPM++ 2M SDE', 'Automatic']);
  assert.deepEqual(r('LMS Karras'), ['LMS', 'Karras']);
  assert.deepEqual(r('Euler a', 'karras'), ['Euler a', 'Karras']);
  // " Uniform" is split off first, leaving "Euler SGM", which is no sampler: the default takes over.
  assert.deepEqual(r('Euler SGM Uniform'), ['DPM++ 2M', 'Uniform']);
  assert.deepEqual(r('no such sampler'), ['DPM++ 2M', 'Automatic']);
  assert.deepEqual(r(undefined), ['DPM++ 2M', 'Automatic']);
  // Exact display names only: aliases fall back to the default, as in A1111 1.10.
  assert.deepEqual(r('k_euler_a'), ['DPM++ 2M', 'Automatic']);
  assert.equal(DEFAULT_SAMPLER.name, 'DPM++ 2M');
});

test('alias lookup is case-insensitive over names and aliases; exact lookup is not', () => {
  assert.equal(samplerByAlias('k_euler_a')?.name, 'Euler a');
  assert.equal(samplerByAlias('K_EULER_ANCESTRAL')?.name, 'Euler a');
  assert.equal(samplerByAlias('dpm++ 2m sde heun')?.name, 'DPM++ 2M SDE Heun');
  assert.equal(samplerByName('euler a'), undefined);
  assert.equal(samplerByName('Euler a')?.upstream, 'sample_euler_ancestral');
});

test('every sampler has an implementation; options match A1111 flags', () => {
  assert.equal(SAMPLERS.length, 20);
  for (const s of SAMPLERS) assert.equal(typeof s.sampler, 'function', s.name);
  const by = (n: string) => samplerByName(n)!;
  assert.equal(effectiveScheduler(by('DPM++ 2M'), 'Automatic'), 'karras');
  assert.equal(effectiveScheduler(by('Euler a'), 'Automatic'), 'uniform');
  assert.equal(effectiveScheduler(by('DPM++ 3M SDE'), 'Automatic'), 'exponential');
  assert.equal(effectiveScheduler(by('Euler'), 'Karras'), 'karras');
  assert.ok(by('DPM2 a').discardPenultimate && by('DPM2 a').secondOrder && by('DPM2 a').usesEnsd);
  assert.ok(by('DPM++ SDE').brownianNoise && !by('DPM++ SDE').usesEnsd);
  assert.deepEqual(samplerOptions(by('Euler')), { s_churn: 0, s_tmin: 0, s_tmax: Infinity, s_noise: 1 });
  assert.deepEqual(samplerOptions(by('Euler a'), { eta: 0.5 }), { eta: 0.5 });
  assert.deepEqual(samplerOptions(by('DPM++ 2M SDE Heun')), { s_noise: 1, eta: 1, solver_type: 'heun' });
  assert.deepEqual(samplerOptions(by('DPM++ 2M')), {});
  assert.deepEqual(
    samplerOptions(by('DPM fast'), { modelSigmaMin: 0.03, modelSigmaMax: 14.6, steps: 20 }),
    { s_noise: 1, eta: 1, sigma_min: 0.03, sigma_max: 14.6, n: 20 },
  );
  assert.deepEqual(samplerOptions(by('DPM fast'), { steps: 20 }), { s_noise: 1, eta: 1 }, 'img2img: from the schedule');
  assert.deepEqual(samplerOptions(by('DPM adaptive'), { modelSigmaMin: 0.03, modelSigmaMax: 14.6, steps: 20 }), {
    eta: 1,
    sigma_min: 0.03,
    sigma_max: 14.6,
  });
});

test('name resolution and aliases agree with the oracle (schedules.json)', (t) => {
  const file = join(oracleRoot(), 'samplers', 'schedules.json');
  if (!existsSync(file)) {
    t.skip(`oracle data not found at ${file} (set DARKROOM_ORACLE)`);
    return;
  }
  const data = JSON.parse(readFileSync(file, 'utf8')) as {
    sampler_display_name_resolution: {
      names: Record<string, { sampler: string; scheduler: string; scheduler_after_convert_automatic: string }>;
    };
    sampler_alias_map_lowercase: Record<string, string>;
    samplers: Record<string, { options: Record<string, unknown>; aliases: string[] }>;
  };
  for (const [name, want] of Object.entries(data.sampler_display_name_resolution.names)) {
    const raw = resolveSamplerAndScheduler(name, undefined, false);
    assert.deepEqual([raw.sampler.name, raw.scheduler], [want.sampler, want.scheduler], name);
    const converted = resolveSamplerAndScheduler(name, undefined, true);
    assert.equal(converted.scheduler, want.scheduler_after_convert_automatic, name);
  }
  for (const [alias, name] of Object.entries(data.sampler_alias_map_lowercase)) {
    assert.equal(samplerByAlias(alias)?.name, name, alias);
  }
  for (const [name, s] of Object.entries(data.samplers)) {
    const info = samplerByName(name);
    assert.ok(info, name);
    assert.deepEqual([...info.aliases], s.aliases, name);
    assert.equal(info.defaultScheduler, s.options.scheduler, name);
    assert.equal(info.discardPenultimate, s.options.discard_next_to_last_sigma === true, name);
    assert.equal(info.secondOrder, s.options.second_order === true, name);
    assert.equal(info.usesEnsd, s.options.uses_ensd === true, name);
    assert.equal(info.brownianNoise, s.options.brownian_noise === true, name);
  }
});

test('samplerContext + startLatent reproduce oracle runs the way a pipeline drives them', async (t) => {
  const root = join(oracleRoot(), 'samplers');
  if (!existsSync(join(root, 'trajectories.json'))) {
    t.skip(`oracle data not found at ${root} (set DARKROOM_ORACLE)`);
    return;
  }
  const index = JSON.parse(readFileSync(join(root, 'trajectories.json'), 'utf8')) as {
    cases: Array<{ id: string; file: string; sampler: string; steps: number; seeds: number[]; ensd?: number }>;
  };
  const ids = [
    'euler_a__automatic__s10__b1x4x8x8__seed42__cpu__ensd31337',
    'dpmpp_2m_sde__automatic__s10__b2x4x8x8__seed42__cpu',
    'dpmpp_sde__automatic__s10__b1x4x8x8__seed42__cpu',
    'ddim__automatic__s10__b1x4x8x8__seed42__cpu',
  ];
  for (const id of ids) {
    const c = index.cases.find((x) => x.id === id)!;
    const { tensors } = await readSafetensorsFile(join(root, c.file));
    const info = samplerByName(c.sampler)!;
    const rng = new ImageRNG({ shape: [4, 8, 8], seeds: c.seeds, source: 'cpu', ensd: c.ensd ?? 0 });
    const noise = rng.next();
    const sigmas = tensors.has('sigmas') ? (tensors.get('sigmas')!.data as Float32Array) : new Float32Array(c.steps + 1);
    const schedule = sdDiscreteSchedule();
    const ctx = samplerContext({
      info,
      sigmas,
      steps: c.steps,
      denoise: analyticDenoiser(),
      eps: analyticEps(),
      rng,
      seeds: c.seeds,
      randnLocal: (seed, shape) => randnLocal('cpu', seed, shape),
      settings: { modelSigmaMin: schedule.sigmaMin, modelSigmaMax: schedule.sigmaMax },
    });
    const out = await info.sampler(startLatent(info, noise, sigmas), ctx);
    const ref = tensors.get('x_final')!.data as Float32Array;
    const worst = out.data.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i]!)), 0);
    assert.ok(worst < 2e-5, `${id}: max |diff| ${worst}`);
  }
});
