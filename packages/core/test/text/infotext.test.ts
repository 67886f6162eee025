import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import {
  createInfotext,
  formatGenerationParams,
  parseGenerationParameters,
  parseInfotextVersion,
  pyFloat,
  quoteInfotextValue,
  tiHashesValue,
} from '../../src/formats/infotext.js';

test('parameter line: Python str() of values, quoting, None dropped, bare flags, repeated keys keep position', () => {
  assert.equal(
    formatGenerationParams([
      ['Steps', 20],
      ['CFG scale', pyFloat(7)],
      ['Denoising strength', null],
      ['Seed', 1],
      ['Tiling', 'Tiling'],
      ['TI hashes', 'a: 123, b: 456'],
      ['Pad conds', true],
      ['Denoising strength', pyFloat(0.55)],
      ['Eta', 1e-5],
    ]),
    'Steps: 20, CFG scale: 7.0, Denoising strength: 0.55, Seed: 1, Tiling, TI hashes: "a: 123, b: 456", Pad conds: True, Eta: 1e-05',
  );
  assert.equal(quoteInfotextValue('line\n"q"'), '"line\\n\\"q\\""');
  assert.equal(quoteInfotextValue('猫, x'), '"猫, x"', 'non-ASCII stays raw');
});

test('create_infotext layout: negative line only when non-empty, whole text stripped', () => {
  const base = { steps: 6, sampler: 'Euler a', scheduleType: 'Automatic', cfgScale: pyFloat(7), seed: 4077357776, width: 64, height: 64 };
  assert.equal(
    createInfotext({ ...base, prompt: '', negativePrompt: '', modelHash: 'bfcd16918c', model: 'tiny-sd1', rng: 'NV', version: 'v1.10.1' }),
    'Steps: 6, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 4077357776, Size: 64x64, Model hash: bfcd16918c, Model: tiny-sd1, RNG: NV, Version: v1.10.1',
  );
  const t = createInfotext({
    ...base,
    prompt: 'a castle',
    negativePrompt: 'fog',
    variationSeed: 12345,
    variationSeedStrength: pyFloat(0.3),
    clipSkip: 2,
    ensd: 31337,
    extra: [['Schedule type', 'Karras'], ['TI hashes', 'oraclestyle: 3e2fb1aacfff']],
  });
  assert.equal(
    t,
    'a castle\nNegative prompt: fog\nSteps: 6, Sampler: Euler a, Schedule type: Karras, CFG scale: 7.0, Seed: 4077357776, Size: 64x64, Variation seed: 12345, Variation seed strength: 0.3, Clip skip: 2, ENSD: 31337, TI hashes: "oraclestyle: 3e2fb1aacfff"',
  );
  const back = parseGenerationParameters(t);
  assert.equal(back.get('Prompt'), 'a castle');
  assert.equal(back.get('Negative prompt'), 'fog');
  assert.equal(back.get('Schedule type'), 'Karras');
  assert.equal(back.get('TI hashes'), 'oraclestyle: 3e2fb1aacfff');
  assert.equal(back.get('Size-1'), '64');
});

test('parse: fewer than 3 params on the last line means it is prompt text; empty values are skipped', () => {
  const r = parseGenerationParameters('a prompt\nSteps: 20, Sampler: Euler a');
  assert.equal(r.get('Prompt'), 'a prompt\nSteps: 20, Sampler: Euler a');
  const e = parseGenerationParameters('x\nSteps: 20, Empty: , Seed: 1, Size: 8x8');
  assert.equal(e.has('Empty'), false);
  assert.equal(e.get('Seed'), '1');
  const keys = [...parseGenerationParameters('x\nSteps: 1, Seed: 2, Size: 8x8').keys()];
  assert.deepEqual(keys.slice(0, 6), ['Steps', 'Seed', 'Size-1', 'Size-2', 'Prompt', 'Negative prompt']);
});

test('version compare follows PEP 440 as A1111 uses it', () => {
  const v = (s: string) => parseInfotextVersion(s);
  assert.ok(v('v1.10.1'));
  assert.equal(v('not a version'), null);
  const hashed = parseGenerationParameters('a [b:c:2]\nSteps: 1, Seed: 2, Size: 8x8, Version: v1.5.2-10-gabcdef');
  assert.equal(hashed.get('Old prompt editing timelines'), true);
  assert.equal(hashed.get('Downcast alphas_cumprod'), true);
  const tsnr = parseGenerationParameters('x\nSteps: 1, Seed: 2, Size: 8x8, Version: v1.7.0-225-gabc');
  assert.equal(tsnr.has('Downcast alphas_cumprod'), false, '1.7.0-225 is not older than itself');
  const before = parseGenerationParameters('x\nSteps: 1, Seed: 2, Size: 8x8, Version: v1.7.0-224-gabc');
  assert.equal(before.get('Downcast alphas_cumprod'), true);
});

const pipelineCases = join(oracleRoot(), 'pipeline/cases.json');

test('createInfotext writes every pipeline oracle infotext exactly', { skip: existsSync(pipelineCases) ? false : 'pipeline oracle absent' }, () => {
  interface Case {
    id: string;
    request: { steps: number; sampler_name: string; scheduler: string; cfg_scale: number; width: number; height: number; subseed_strength: number; override_settings: { randn_source?: string } };
    processing: { all_prompts: string[]; all_negative_prompts: string[]; all_seeds: number[]; all_subseeds: number[]; extra_generation_params: Record<string, string | boolean> };
    infotexts: string[];
  }
  const data = JSON.parse(readFileSync(pipelineCases, 'utf-8')) as { model: { name: string; sd_model_hash: string }; cases: Case[] };
  for (const c of data.cases) {
    c.infotexts.forEach((want, i) => {
      const ti = c.processing.extra_generation_params['TI hashes'];
      const extra = Object.entries(c.processing.extra_generation_params).map(([k, v]) =>
        k === 'TI hashes' ? ([k, tiHashesValue([{ name: String(ti).split(':')[0]!, shorthash: String(ti).split(': ')[1]! }])] as const) : ([k, v] as const),
      );
      const text = createInfotext({
        prompt: c.processing.all_prompts[i]!,
        negativePrompt: c.processing.all_negative_prompts[i]!,
        steps: c.request.steps,
        sampler: c.request.sampler_name,
        scheduleType: c.request.scheduler,
        cfgScale: pyFloat(c.request.cfg_scale),
        seed: c.processing.all_seeds[i]!,
        width: c.request.width,
        height: c.request.height,
        modelHash: data.model.sd_model_hash,
        model: data.model.name,
        variationSeed: c.processing.all_subseeds[i]!,
        variationSeedStrength: pyFloat(c.request.subseed_strength),
        rng: c.request.override_settings.randn_source ?? 'GPU',
        extra,
        version: 'v1.10.1',
      });
      assert.equal(text, want, `${c.id} image ${i}`);
    });
  }
});
