/**
 * LoRA through the whole txt2img pipeline on the demo model (no oracle needed): networks made in the test,
 * written as kohya files, loaded by the job's loader; a render with `<lora:name:m>` against a render of a
 * checkpoint whose weights were merged by hand, and graph builds counted across a switch of networks.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot } from '../../parity/oracle.js';
import { decodePng } from '../../src/formats/png.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { loadModel, type StableDiffusionModel } from '../../src/models/load.js';
import { activateLoras, LoraLibrary, loadLoraFile, mergeLoras, type LoraFile, type LoraModuleTable } from '../../src/networks/lora/index.js';
import { LoraRunner } from '../../src/networks/lora/runner.js';
import { demoCheckpointTensors, ensureDemoModel } from '../../src/pipeline/demo-model.js';
import { loraUses, parseExtraNetworks } from '../../src/pipeline/extra-networks.js';
import { prepareLoraJob } from '../../src/pipeline/loras.js';
import { pipelineModel, tokenizerFor } from '../../src/pipeline/model.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import { txt2img } from '../../src/pipeline/txt2img.js';
import type { PipelineModel } from '../../src/pipeline/types.js';
import { float32, type HostTensor } from '../../src/tensor.js';
import { scratchDir, seededRandom } from './support/networks-fixtures.js';

let sd: StableDiffusionModel;
let model: PipelineModel;
let runner: LoraRunner;
let table: LoraModuleTable;
let scratch: Awaited<ReturnType<typeof scratchDir>>;
let demo: Awaited<ReturnType<typeof ensureDemoModel>>;

const base: Txt2ImgParams = {
  prompt: 'a castle',
  negative_prompt: '',
  steps: 3,
  sampler_name: 'Euler',
  scheduler: 'Automatic',
  cfg_scale: 7,
  seed: 4242,
  width: 64,
  height: 64,
};

before(async () => {
  scratch = await scratchDir();
  demo = await ensureDemoModel(repoRoot);
  sd = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir: `${scratch.dir}/cache`, threads: 1 });
  model = pipelineModel(sd, tokenizerFor(sd.kind, demo.tokenizer));
  runner = new LoraRunner(sd, { cacheDir: `${scratch.dir}/cache`, threads: 1 });
  table = (await runner.base()).table;
});

after(async () => {
  await runner.release();
  await sd.release();
  await scratch.dispose();
});

/**
 * A kohya-named LoRA (ldm names, which A1111 matches through its `lora_unet` / `lora_te1_text_model`
 * fallbacks) on `count` linear layers of each component and one convolution, rank 2, alpha 1.
 */
async function kohyaFile(name: string, seed: number, opts: { count?: number; skip?: number } = {}): Promise<LoraFile> {
  const rnd = seededRandom(seed);
  const tensors = new Map<string, HostTensor>();
  const targets = [...table.targets.values()].filter((t) => t.patched && t.weightKey);
  // Plain Linear and Conv2d layers (out projections are left out: on SD2 they only apply with q, k and v).
  const pick = (component: 'text' | 'unet', className: 'Linear' | 'Conv2d', n: number) =>
    targets.filter((t) => t.component === component && t.className === className).slice(opts.skip ?? 0, (opts.skip ?? 0) + n);
  const chosen = [...pick('unet', 'Linear', opts.count ?? 3), ...pick('text', 'Linear', opts.count ?? 3), ...pick('unet', 'Conv2d', 1)];
  for (const t of chosen) {
    const fileKey = t.component === 'unet' ? `lora_unet_${t.key.slice('diffusion_model_'.length)}` : `lora_te1_text_model_${t.key.slice('transformer_text_model_'.length)}`;
    const [out, inp, ...k] = t.shape!;
    const r = 2;
    const gen = (shape: number[]) => float32(shape, Float32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => rnd.normal() * 0.4));
    tensors.set(`${fileKey}.lora_down.weight`, gen(k.length ? [r, inp!, ...k] : [r, inp!]));
    tensors.set(`${fileKey}.lora_up.weight`, gen(k.length ? [out!, r, 1, 1] : [out!, r]));
    tensors.set(`${fileKey}.alpha`, float32([], Float32Array.of(1)));
  }
  return loadLoraFile(writeSafetensors(tensors, { ss_output_name: name }), `${name}.safetensors`);
}

function pixels(png: Uint8Array): Uint8Array {
  return decodePng(png).data;
}

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('a render with <lora:name:0.7> differs from the plain one and equals a render of the weights merged by hand', async () => {
  const file = await kohyaFile('la', 7);
  const library = new LoraLibrary([file]);
  const prompt = 'a castle <lora:la:0.7>';
  const job = await prepareLoraJob(model, [prompt], library, runner);
  assert.notEqual(job.model, model);
  assert.deepEqual([...job.generationParams], [['Lora hashes', `la: ${file.shorthash}`]]);
  assert.deepEqual(job.comments, []);
  const withLora = await txt2img(job.model, { ...base, prompt });
  const plain = await txt2img(model, { ...base, prompt });
  assert.ok(maxPixelDiff(pixels(withLora.images[0]!), pixels(plain.images[0]!)) > 8, 'the LoRA changes the image');

  // The same weights merged into a checkpoint file, rendered through the plain graphs of another model.
  const { weights } = await runner.base();
  const act = activateLoras(loraUses(parseExtraNetworks(prompt).calls).uses, library, table);
  const merged = mergeLoras(weights, table, act.applications);
  assert.ok(merged.weights.size >= 7);
  const tensors = new Map<string, HostTensor>(demoCheckpointTensors(demo.tokenizer.vocabSize));
  for (const [k, t] of merged.weights) tensors.set(k, t);
  const path = await scratch.write('merged.safetensors', writeSafetensors(tensors));
  const byHand = await loadModel({ checkpoint: path, config: demo.config, cacheDir: `${scratch.dir}/cache-merged`, threads: 1 });
  try {
    const handRender = await txt2img(pipelineModel(byHand, tokenizerFor(byHand.kind, demo.tokenizer)), { ...base, prompt });
    assert.ok(maxPixelDiff(pixels(withLora.images[0]!), pixels(handRender.images[0]!)) <= 1, 'LoRA graphs and hand-merged weights agree within 1/255');
  } finally {
    await byHand.release();
  }

  // A prompt without LoRA tags keeps the very same model (the plain graphs).
  const none = await prepareLoraJob(model, ['a castle'], library, runner);
  assert.equal(none.model, model);
  // An unknown name is reported as A1111 reports it, and the model stays plain.
  const missing = await prepareLoraJob(model, ['a castle <lora:nobody:1>'], library, runner);
  assert.equal(missing.model, model);
  assert.deepEqual(missing.comments, ['Lora not found: nobody']);
});

test('switching LoRA between two renders compiles no graph', async () => {
  const library = new LoraLibrary([await kohyaFile('lb', 11), await kohyaFile('lc', 13, { count: 2, skip: 1 })]);
  const render = async (prompt: string): Promise<Uint8Array> => {
    const job = await prepareLoraJob(model, [prompt], library, runner);
    return pixels((await txt2img(job.model, { ...base, prompt })).images[0]!);
  };
  const b = await render('a castle <lora:lb:1>');
  const builds = runner.buildCount;
  const modelBuilds = sd.buildCount;
  assert.ok(builds > 0, 'the LoRA graphs were compiled once into the empty cache');
  // Another file, other layers, two networks at once: the same graphs, fed other weights.
  const c = await render('a castle <lora:lc:0.8>');
  const bc = await render('a castle <lora:lb:0.5> <lora:lc:0.5>');
  assert.equal(runner.buildCount, builds, 'no LoRA graph compiled for another network');
  assert.equal(sd.buildCount, modelBuilds, 'no plain graph compiled either');
  assert.ok(maxPixelDiff(b, c) > 0 && maxPixelDiff(b, bc) > 0 && maxPixelDiff(c, bc) > 0, 'each job ran its own networks');
});

test('the engine renders a job\'s LoRA files by name, writes Lora hashes in the infotext, and leaves jobs without tags alone', async () => {
  const { Engine } = await import('../../src/pipeline/engine.js');
  const engine = new Engine({ root: repoRoot, checkpoint: demo.checkpoint, cacheDir: `${scratch.dir}/engine-cache`, threads: 1 });
  try {
    const file = await kohyaFile('le', 17);
    const path = await scratch.write('le-stored-by-hash.safetensors', writeSafetensors(file.tensors, { ss_output_name: 'le' }));
    const prompt = 'a castle <lora:le:0.7>';
    const viaEngine = await engine.txt2img({ ...base, prompt }, { loras: [{ path, name: 'le' }] });
    const stored = await loadLoraFile(await (await import('node:fs/promises')).readFile(path), 'le.safetensors');
    assert.match(viaEngine.infotexts[0]!, new RegExp(`, Lora hashes: "le: ${stored.shorthash}", `));
    const direct = await prepareLoraJob(model, [prompt], new LoraLibrary([stored]), runner);
    const directRender = await txt2img(direct.model, { ...base, prompt });
    assert.ok(maxPixelDiff(pixels(viaEngine.images[0]!), pixels(directRender.images[0]!)) <= 1);
    // Files offered but not named: the plain model, and the infotext says nothing of LoRA.
    const plain = await engine.txt2img({ ...base }, { loras: [{ path, name: 'le' }] });
    const plainDirect = await txt2img(model, { ...base });
    assert.deepEqual(pixels(plain.images[0]!), pixels(plainDirect.images[0]!));
    assert.doesNotMatch(plain.infotexts[0]!, /Lora hashes/);
  } finally {
    await engine.close();
  }
});
