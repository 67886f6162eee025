/**
 * Compatible requests rendered as one UNet batch on the demo model: each image is its solo render (pixels within
 * 1 of 255, the same infotext, seeds and parameters), the batch samples once, and the batch key keeps apart the
 * requests whose batched image would differ from their solo one.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { Engine } from '../../src/pipeline/engine.js';
import { batchKey, certainlyOneChunk, renderBatch } from '../../src/pipeline/request-batch.js';
import { decodePng } from '../../src/formats/png.js';
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
  negative_prompt: 'grainy, fog',
  steps: 6,
  scheduler: 'Automatic',
  cfg_scale: 6.5,
  width: 64,
  height: 64,
};

/** Four requests that differ in prompt (with emphasis and a prompt-editing schedule) and seed only. */
function requests(sampler: string): Txt2ImgParams[] {
  return [
    { ...base, sampler_name: sampler, prompt: 'a (red:1.2) castle in a [forest:snow:3]', seed: 1234 },
    { ...base, sampler_name: sampler, prompt: 'a lighthouse at dusk', seed: 7 },
    { ...base, sampler_name: sampler, prompt: 'two cats', seed: 99, negative_prompt: 'blurry' },
    { ...base, sampler_name: sampler, prompt: '[dog|fox] on a hill', seed: 4_000_000_000 },
  ];
}

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  const x = decodePng(a);
  const y = decodePng(b);
  assert.equal(x.width, y.width);
  assert.equal(x.height, y.height);
  let m = 0;
  for (let i = 0; i < x.data.length; i++) m = Math.max(m, Math.abs(x.data[i]! - y.data[i]!));
  return m;
}

for (const sampler of ['Euler a', 'DPM++ 2M SDE', 'DPM++ 2M']) {
  test(`${sampler}: four requests batched are each their solo render`, async (t) => {
    const reqs = requests(sampler);
    const keys = reqs.map((r) => batchKey(r));
    assert.ok(keys[0] !== null);
    assert.ok(keys.every((k) => k === keys[0]), 'the four requests share a key');

    let sampled = 0;
    const batched = await renderBatch(engine, reqs, { onStep: () => sampled++ });
    // one sampling pass for the whole batch: the steps are counted once, not once per request
    assert.equal(sampled, base.steps);
    assert.equal(batched.length, reqs.length);

    let worst = 0;
    for (let i = 0; i < reqs.length; i++) {
      const solo = await engine.txt2img(reqs[i]!);
      const b = batched[i]!;
      assert.equal(b.images.length, 1);
      assert.equal(b.infotexts[0], solo.infotexts[0], `infotext of request ${i}`);
      assert.deepEqual(b.seeds, solo.seeds);
      assert.deepEqual(b.parameters, { ...solo.parameters, subseed: b.parameters.subseed });
      const d = maxPixelDiff(b.images[0]!, solo.images[0]!);
      worst = Math.max(worst, d);
      assert.ok(d <= 1, `request ${i}: batched image differs from solo by ${d}/255`);
    }
    t.diagnostic(`${sampler}: max |batched - solo| = ${worst}/255`);
  });
}

test('variation seeds: requests with their own seed and variation seed at one strength are each their solo render', async () => {
  const reqs = requests('Euler a').slice(0, 3).map((r, i) => ({ ...r, steps: 3, subseed: 500 + 7 * i, subseed_strength: 0.3 }));
  assert.ok(batchKey(reqs[0]!) !== null && reqs.every((r) => batchKey(r) === batchKey(reqs[0]!)));
  const batched = await renderBatch(engine, reqs);
  for (let i = 0; i < reqs.length; i++) {
    const solo = await engine.txt2img(reqs[i]!);
    assert.match(solo.infotexts[0]!, new RegExp(`Variation seed: ${500 + 7 * i}, Variation seed strength: 0.3`));
    assert.equal(batched[i]!.infotexts[0], solo.infotexts[0]);
    assert.deepEqual(batched[i]!.parameters, solo.parameters);
    assert.ok(maxPixelDiff(batched[i]!.images[0]!, solo.images[0]!) <= 1);
  }
});

for (const upscaler of ['Latent', 'Lanczos']) {
  test(`hires fix (${upscaler}): each image of the batch, with its own hires prompt or its prompt, is its solo render`, async () => {
    const reqs = requests('Euler a').slice(0, 3).map((r) => ({
      ...r, steps: 3, enable_hr: true, hr_scale: 2, hr_upscaler: upscaler, hr_second_pass_steps: 2, denoising_strength: 0.6,
    }));
    reqs[1] = { ...reqs[1]!, hr_prompt: 'a lighthouse at night, detailed', hr_negative_prompt: 'noise' };
    assert.ok(reqs.every((r) => batchKey(r) !== null && batchKey(r) === batchKey(reqs[0]!)));
    let sampled = 0;
    const batched = await renderBatch(engine, reqs, { onStep: () => sampled++ });
    assert.equal(sampled, 3 + 2, 'one first pass and one hires pass for the batch');
    for (let i = 0; i < reqs.length; i++) {
      const solo = await engine.txt2img(reqs[i]!);
      assert.equal(batched[i]!.infotexts[0], solo.infotexts[0], `infotext of request ${i}`);
      assert.equal(decodePng(batched[i]!.images[0]!).width, 128);
      const d = maxPixelDiff(batched[i]!.images[0]!, solo.images[0]!);
      assert.ok(d <= 1, `request ${i}: batched image differs from solo by ${d}/255`);
    }
    assert.match(batched[1]!.infotexts[0]!, /Hires prompt: "?a lighthouse at night, detailed/);
    assert.doesNotMatch(batched[0]!.infotexts[0]!, /Hires prompt/);
  });
}

test('random seeds are fixed per request and recorded as a solo render records them', async () => {
  const reqs = requests('Euler').map((r) => ({ ...r, seed: -1, subseed: -1, steps: 2 }));
  let n = 0;
  const values = [11, 12, 21, 22, 31, 32, 41, 42];
  const batched = await renderBatch(engine, reqs, { random: () => values[n++]! });
  assert.deepEqual(batched.map((b) => [b.seeds[0], b.subseeds[0]]), [[11, 12], [21, 22], [31, 32], [41, 42]]);
  for (let i = 0; i < reqs.length; i++) {
    const solo = await engine.txt2img({ ...reqs[i]!, seed: values[2 * i], subseed: values[2 * i + 1] });
    assert.equal(batched[i]!.infotexts[0], solo.infotexts[0]);
    assert.equal(batched[i]!.parameters.seed, values[2 * i]);
    assert.equal(batched[i]!.parameters.subseed, values[2 * i + 1]);
  }
});

test('the batch key keeps apart requests whose batched image would differ', () => {
  const a: Txt2ImgParams = { ...base, sampler_name: 'Euler a', prompt: 'a castle', seed: 1 };
  const key = batchKey(a)!;
  assert.ok(key);
  // prompts, negative prompts (within one chunk) and seeds may differ; names of the same sampler meet
  assert.equal(batchKey({ ...a, prompt: 'a (tower:1.3) [at:by:2] night', negative_prompt: 'x', seed: 5 }), key);
  assert.equal(batchKey({ ...a, sampler_name: 'Euler a Karras' }), batchKey({ ...a, scheduler: 'Karras' }));
  // an unknown sampler renders with A1111's default (DPM++ 2M), alone or batched
  assert.equal(batchKey({ ...a, sampler_name: 'no such sampler' }), batchKey({ ...a, sampler_name: 'DPM++ 2M' }));
  // every setting that changes the computation
  for (const other of [
    { steps: 7 },
    { cfg_scale: 7 },
    { width: 128 },
    { sampler_name: 'Euler' },
    { scheduler: 'Karras' },
    { clip_skip: 2 },
    { eta: 0.5 },
    { tiling: true },
    { seed_resize_from_w: 32, seed_resize_from_h: 32 },
    { subseed_strength: 0.3 },
    { enable_hr: true },
    { override_settings: { randn_source: 'CPU' as const } },
    { override_settings: { eta_noise_seed_delta: 31337 } },
    { override_settings: { sd_model_checkpoint: 'other' } },
    { override_settings: { sd_vae: 'other.vae.pt' } },
  ]) {
    const k = batchKey({ ...a, ...other });
    assert.ok(k !== null && k !== key, JSON.stringify(other));
  }
  assert.notEqual(batchKey(a, { checkpoint: '/m/a.safetensors' }), key);
  assert.notEqual(batchKey(a, { loras: ['/l/x.safetensors'] }), key);

  // chunk counts: a prompt past one certain chunk only batches with the identical prompt
  const long = `${'a very detailed painting of a castle, '.repeat(3)}`;
  assert.equal(certainlyOneChunk(long, false), false);
  assert.notEqual(batchKey({ ...a, prompt: long }), key);
  assert.equal(batchKey({ ...a, prompt: long, seed: 9 }), batchKey({ ...a, prompt: long }));
  assert.notEqual(batchKey({ ...a, prompt: `${long} x` }), batchKey({ ...a, prompt: long }));
  assert.notEqual(batchKey({ ...a, negative_prompt: long }), key);
  // BREAK starts a chunk, AND gives several conds per image, embeddings may be many vectors per name
  assert.notEqual(batchKey({ ...a, prompt: 'a BREAK castle' }), key);
  assert.notEqual(batchKey({ ...a, prompt: 'a castle AND a moat' }), key);
  const withEmbeddings = { embeddings: ['/e/style.pt'] };
  assert.notEqual(batchKey({ ...a, prompt: 'style castle' }, withEmbeddings), batchKey(a, withEmbeddings));
  assert.equal(batchKey({ ...a, seed: 3 }, withEmbeddings), batchKey(a, withEmbeddings));
  // a multi-byte character can be several tokens: bytes are counted, not characters
  assert.equal(certainlyOneChunk('é'.repeat(37), false), true);
  assert.equal(certainlyOneChunk('é'.repeat(38), false), false);

  // hires fix: its options count, and its prompts fall under the same chunk and tag rules
  const hires = batchKey({ ...a, enable_hr: true })!;
  assert.equal(batchKey({ ...a, enable_hr: true, prompt: 'a dog', hr_prompt: 'a dog, detailed' }), hires);
  assert.notEqual(batchKey({ ...a, enable_hr: true, hr_scale: 1.5 }), hires);
  assert.notEqual(batchKey({ ...a, enable_hr: true, hr_upscaler: 'Lanczos' }), hires);
  assert.notEqual(batchKey({ ...a, enable_hr: true, hr_second_pass_steps: 2 }), hires);
  assert.notEqual(batchKey({ ...a, enable_hr: true, hr_prompt: long }), hires);
  assert.notEqual(batchKey({ ...a, enable_hr: true, hr_prompt: 'a castle <lora:ink:1>' }), hires);
  // hires options do not count without hires fix
  assert.equal(batchKey({ ...a, hr_scale: 1.5, hr_prompt: long }), key);

  // only the first prompt's extra-network tags activate: tags must be the same
  const lora = batchKey({ ...a, prompt: 'a castle <lora:ink:0.8>' });
  assert.ok(lora !== null && lora !== key);
  assert.equal(batchKey({ ...a, prompt: 'a dog <lora:ink:0.8>' }), lora);
  assert.notEqual(batchKey({ ...a, prompt: 'a castle <lora:ink:0.7>' }), lora);

  // requests that render alone
  for (const alone of [
    { batch_size: 2 },
    { n_iter: 2 },
    { seed_blend: [{ seed: 1, weight: 1 }] },
    { sampler_name: 'DPM adaptive' },
    { steps: 0 },
    { script_name: 'x/y/z plot' },
  ]) {
    assert.equal(batchKey({ ...a, ...alone } as Txt2ImgParams), null, JSON.stringify(alone));
  }
});

test('renderBatch refuses requests that may not share a batch', async () => {
  const reqs = requests('Euler a');
  await assert.rejects(renderBatch(engine, [reqs[0]!, { ...reqs[1]!, steps: 3 }]), (e: unknown) => isDarkroomError(e, 'BATCH_INCOMPATIBLE'));
  await assert.rejects(renderBatch(engine, [{ ...reqs[0]!, batch_size: 2 }]), (e: unknown) => isDarkroomError(e, 'BATCH_INCOMPATIBLE'));
});

test('why chunk counts are keyed: a one-chunk prompt batched beside a two-chunk one is padded and changes', async () => {
  const short: Txt2ImgParams = { ...base, sampler_name: 'Euler', prompt: 'a castle', seed: 5, subseed: 1, steps: 3 };
  const long = `${'a very detailed painting of a castle on a hill, '.repeat(10)}`;
  assert.notEqual(batchKey(short), batchKey({ ...short, prompt: long }));
  const solo = await engine.txt2img(short);
  const forced = await engine.txt2img(
    { ...short, batch_size: 2 },
    {
      perImage: [
        { prompt: short.prompt!, negative_prompt: short.negative_prompt!, seed: 5, subseed: 1 },
        { prompt: long, negative_prompt: short.negative_prompt!, seed: 6, subseed: 2 },
      ],
    },
  );
  assert.equal(forced.infotexts[0], solo.infotexts[0]);
  assert.ok(maxPixelDiff(forced.images[0]!, solo.images[0]!) > 1, 'padding to the longest prompt changes the short prompt\'s image');
});
