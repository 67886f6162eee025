/**
 * The whole pipeline on Darkroom's built-in model (no oracle needed): determinism, infotext round trip,
 * batches and seeds, img2img, hires fix, cancellation.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { BUILTIN_MODEL_NAME } from '../../src/catalog/built-in-model.js';
import { Engine } from '../../src/pipeline/engine.js';
import { decodePng, readPngText } from '../../src/formats/png.js';
import { parseGenerationParameters } from '../../src/formats/infotext.js';
import { isDarkroomError } from '../../src/errors.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';

let engine: Engine;

before(() => {
  engine = new Engine({ root: repoRoot, threads: 1 });
});

after(async () => {
  await engine.close();
});

const base: Txt2ImgParams = {
  prompt: 'a (red:1.2) castle in a [forest:snow:3]',
  negative_prompt: 'grainy, fog',
  steps: 5,
  sampler_name: 'Euler a',
  scheduler: 'Automatic',
  cfg_scale: 6.5,
  seed: 1234,
  width: 64,
  height: 64,
};

test('the same txt2img request twice gives byte-identical PNGs', async () => {
  const a = await engine.txt2img(base);
  const b = await engine.txt2img(base);
  assert.equal(a.images.length, 1);
  assert.deepEqual(a.images[0], b.images[0]);
  const img = decodePng(a.images[0]!);
  assert.deepEqual([img.width, img.height, img.channels], [64, 64, 3]);
  // a real image, not a constant
  assert.ok(new Set(img.data).size > 50);
  // and a different seed gives a different one
  const c = await engine.txt2img({ ...base, seed: 1235 });
  assert.notDeepEqual(c.images[0], a.images[0]);
});

test("the PNG's infotext parses back to the request's parameters", async () => {
  const r = await engine.txt2img({ ...base, subseed: 99, subseed_strength: 0.25, override_settings: { randn_source: 'CPU' } });
  const text = readPngText(r.images[0]!).parameters!;
  assert.equal(text, r.infotexts[0]);
  const p = parseGenerationParameters(text);
  assert.equal(p.get('Prompt'), base.prompt);
  assert.equal(p.get('Negative prompt'), base.negative_prompt);
  assert.equal(p.get('Steps'), '5');
  assert.equal(p.get('Sampler'), 'Euler a');
  assert.equal(p.get('Schedule type'), 'Automatic');
  assert.equal(p.get('CFG scale'), '6.5');
  assert.equal(p.get('Seed'), '1234');
  assert.equal(p.get('Size-1'), '64');
  assert.equal(p.get('Size-2'), '64');
  assert.equal(p.get('Variation seed'), '99');
  assert.equal(p.get('Variation seed strength'), '0.25');
  assert.equal(p.get('RNG'), 'CPU');
  assert.equal(p.get('Model'), BUILTIN_MODEL_NAME);
  assert.match(String(p.get('Model hash')), /^[0-9a-f]{10}$/);
  assert.equal(p.get('Version'), 'v1.10.1');
});

test('batch size and batch count: seeds increment per image, random seed reported', async () => {
  const r = await engine.txt2img({ ...base, steps: 2, seed: -1, batch_size: 2, n_iter: 2 }, { random: () => 777 });
  assert.deepEqual(r.seeds, [777, 778, 779, 780]);
  assert.equal(r.images.length, 4);
  assert.match(r.infotexts[3]!, /Seed: 780,/);
  assert.equal(r.parameters.seed, 777);
  const v = await engine.txt2img({ ...base, steps: 2, seed: 10, subseed: 20, subseed_strength: 0.5, batch_size: 2 });
  assert.deepEqual(v.seeds, [10, 10]);
  assert.deepEqual(v.subseeds, [20, 21]);
});

test('progress is reported per sampler step', async () => {
  const events: Array<[number, number]> = [];
  await engine.txt2img({ ...base, steps: 4, sampler_name: 'DPM++ 2M', scheduler: 'Karras' }, { onStep: (e) => events.push([e.step, e.steps]) });
  assert.deepEqual(events, [[1, 4], [2, 4], [3, 4], [4, 4]]);
});

test('img2img runs on the demo model: strength picks the start step, infotext has the strength', async () => {
  const init = (await engine.txt2img({ ...base, steps: 3 })).images[0]!;
  const events: number[] = [];
  const r = await engine.img2img(
    { ...base, init_images: [init], denoising_strength: 0.5, steps: 6, width: 64, height: 64 },
    { onStep: (e) => events.push(e.step) },
  );
  assert.deepEqual(events, [1, 2, 3, 4]); // int(0.5 * 6) + 1 steps
  assert.match(r.infotexts[0]!, /Denoising strength: 0\.5/);
  const img = decodePng(r.images[0]!);
  assert.deepEqual([img.width, img.height], [64, 64]);
  // strength 0 would be rejected; a weak strength stays close to the init image
  const weak = await engine.img2img({ ...base, init_images: [init], denoising_strength: 0.1, steps: 10, resize_mode: 1, width: 64, height: 48 });
  assert.deepEqual([decodePng(weak.images[0]!).width, decodePng(weak.images[0]!).height], [64, 48]);
});

test('hires fix: first pass at the requested size, second pass at the upscaled size', async () => {
  const events: Array<[number, string]> = [];
  const r = await engine.txt2img(
    { ...base, steps: 3, enable_hr: true, hr_scale: 1.5, hr_second_pass_steps: 2, denoising_strength: 0.6 },
    { onStep: (e) => events.push([e.step, e.pass]) },
  );
  const img = decodePng(r.images[0]!);
  assert.deepEqual([img.width, img.height], [96, 96]);
  assert.deepEqual(events, [[1, 'first'], [2, 'first'], [3, 'first'], [4, 'hires'], [5, 'hires']]);
  assert.match(r.infotexts[0]!, /Size: 64x64, .*Denoising strength: 0\.6, Hires upscale: 1\.5, Hires steps: 2, Version/);
  const viaImage = await engine.txt2img({ ...base, steps: 2, enable_hr: true, hr_scale: 2, hr_upscaler: 'Lanczos', denoising_strength: 0.5 });
  assert.equal(decodePng(viaImage.images[0]!).width, 128);
  assert.match(viaImage.infotexts[0]!, /Hires upscaler: Lanczos/);
});

test('cancellation stops between sampler steps', async () => {
  const controller = new AbortController();
  const steps: number[] = [];
  await assert.rejects(
    engine.txt2img({ ...base, steps: 10 }, {
      signal: controller.signal,
      onStep: (e) => {
        steps.push(e.step);
        if (e.step === 2) controller.abort();
      },
    }),
    (e: unknown) => isDarkroomError(e, 'CANCELLED'),
  );
  assert.deepEqual(steps, [1, 2]);
});

test('bad parameters are typed errors', async () => {
  await assert.rejects(engine.txt2img({ ...base, width: 65 }), (e: unknown) => isDarkroomError(e, 'BAD_PARAMS'));
  await assert.rejects(engine.txt2img({ ...base, steps: 0 }), (e: unknown) => isDarkroomError(e, 'BAD_PARAMS'));
  await assert.rejects(
    engine.txt2img({ ...base, override_settings: { randn_source: 'XPU' as 'CPU' } }),
    (e: unknown) => isDarkroomError(e, 'BAD_PARAMS'),
  );
  await assert.rejects(engine.txt2img({ ...base, prompt: 'x <hypernet:nothere:1>' }), (e: unknown) => isDarkroomError(e, 'HYPERNETWORK_NOT_FOUND'));
});

test('Clip skip, ENSD and Emphasis reach the infotext only where A1111 writes them', async () => {
  const r = await engine.txt2img({ ...base, steps: 2, clip_skip: 2, override_settings: { eta_noise_seed_delta: 31337, emphasis: 'No norm' } });
  assert.match(r.infotexts[0]!, /Seed: 1234, Size: 64x64, Model hash: [0-9a-f]{10}, Model: darkroom-scenes-128, Clip skip: 2, ENSD: 31337, Emphasis: No norm, Version/);
  // ENSD reseeds the step noise: it changes ancestral samplers only, and only they list it
  const plain = { ...base, steps: 3, sampler_name: 'Euler' };
  const euler = await engine.txt2img(plain);
  const eulerEnsd = await engine.txt2img({ ...plain, override_settings: { eta_noise_seed_delta: 5 } });
  assert.deepEqual(euler.images[0], eulerEnsd.images[0]);
  assert.doesNotMatch(eulerEnsd.infotexts[0]!, /ENSD/);
  const anc = await engine.txt2img({ ...plain, sampler_name: 'Euler a' });
  const ancEnsd = await engine.txt2img({ ...plain, sampler_name: 'Euler a', override_settings: { eta_noise_seed_delta: 5 } });
  assert.notDeepEqual(anc.images[0], ancEnsd.images[0]);
});

test('timestep samplers and LCM run through the same pipeline', async () => {
  for (const sampler_name of ['DDIM', 'PLMS', 'UniPC', 'LCM']) {
    const r = await engine.txt2img({ ...base, steps: 3, sampler_name });
    assert.match(r.infotexts[0]!, new RegExp(`Sampler: ${sampler_name},`));
    assert.equal(decodePng(r.images[0]!).width, 64);
  }
  const ddimEta = await engine.txt2img({ ...base, steps: 3, sampler_name: 'DDIM', override_settings: { eta_ddim: 0.5 } });
  assert.match(ddimEta.infotexts[0]!, /Eta DDIM: 0\.5/);
});

test('progress carries the denoised estimate, which makes a cheap live preview', async () => {
  const { latentPreview, latentPreviewPng } = await import('../../src/pipeline/preview.js');
  const previews: Array<[number, number]> = [];
  let png: Uint8Array | undefined;
  await engine.txt2img({ ...base, steps: 2, sampler_name: 'Euler' }, {
    onStep: (e) => {
      if (!e.denoised) return;
      const p = latentPreview(e.denoised);
      previews.push([p.width, p.height]);
      png = latentPreviewPng(e.denoised);
    },
  });
  assert.deepEqual(previews, [[8, 8], [8, 8]]);
  assert.deepEqual([decodePng(png!).width, decodePng(png!).channels], [8, 3]);
});
