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
  samplerOptions,
} from '../../src/sampling/samplers.js';
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
