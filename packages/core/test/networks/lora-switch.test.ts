/**
 * Switching LoRA between jobs on the demo model (no oracle needed): the feeds a job gets from the recorded feed
 * plan (the base feeds with only the changed tensors' inputs derived again) are exactly what a recording builder
 * run over the merged weights gives, and two jobs with different networks in one Engine compile no graph and
 * open no session for the second.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { decodePng } from '../../src/formats/png.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { UNET_PREFIX } from '../../src/model-files/config.js';
import { loadModel, type StableDiffusionModel } from '../../src/models/load.js';
import { bindLora, loadLoraFile, mergeLoras, type LoraFile, type LoraModuleTable } from '../../src/networks/lora/index.js';
import { buildUnet, feedPlan, LoraRunner, planFeeds, WeightInputBuilder } from '../../src/networks/lora/runner.js';
import { buildTextEncoder, textOutputName } from '../../src/models/clip.js';
import { Engine } from '../../src/pipeline/engine.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import { sessionsCreated } from '../../src/runtime/session.js';
import { float32, type Float32Tensor, type HostTensor } from '../../src/tensor.js';
import { scratchDir, seededRandom } from './support/networks-fixtures.js';

let sd: StableDiffusionModel;
let runner: LoraRunner;
let table: LoraModuleTable;
let scratch: Awaited<ReturnType<typeof scratchDir>>;
/** The random-weight model the LoRA files are made for. */
let demo: Awaited<ReturnType<typeof ensureDemoModel>>;

before(async () => {
  scratch = await scratchDir();
  demo = await ensureDemoModel(repoRoot);
  sd = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir: `${scratch.dir}/cache`, threads: 1 });
  runner = new LoraRunner(sd, { cacheDir: `${scratch.dir}/cache`, threads: 1 });
  table = (await runner.base()).table;
});

after(async () => {
  await runner.release();
  await sd.release();
  await scratch.dispose();
});

/** A kohya LoRA (rank 2, alpha 1) on `count` linears of each component and one convolution, from `skip` on. */
async function kohyaFile(name: string, seed: number, count: number, skip: number): Promise<LoraFile> {
  const rnd = seededRandom(seed);
  const tensors = new Map<string, HostTensor>();
  const targets = [...table.targets.values()].filter((t) => t.patched && t.weightKey);
  const pick = (component: 'text' | 'unet', className: 'Linear' | 'Conv2d', n: number) =>
    targets.filter((t) => t.component === component && t.className === className).slice(skip, skip + n);
  for (const t of [...pick('unet', 'Linear', count), ...pick('text', 'Linear', count), ...pick('unet', 'Conv2d', 1)]) {
    const fileKey = t.component === 'unet' ? `lora_unet_${t.key.slice('diffusion_model_'.length)}` : `lora_te1_text_model_${t.key.slice('transformer_text_model_'.length)}`;
    const [out, inp, ...k] = t.shape!;
    const gen = (shape: number[]) => float32(shape, Float32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => rnd.normal() * 0.4));
    tensors.set(`${fileKey}.lora_down.weight`, gen(k.length ? [2, inp!, ...k] : [2, inp!]));
    tensors.set(`${fileKey}.lora_up.weight`, gen(k.length ? [out!, 2, 1, 1] : [out!, 2]));
    tensors.set(`${fileKey}.alpha`, float32([], Float32Array.of(1)));
  }
  return loadLoraFile(writeSafetensors(tensors, { ss_output_name: name }), `${name}.safetensors`);
}

function sameTensor(a: HostTensor | undefined, b: HostTensor | undefined, name: string): void {
  assert.ok(a && b, `${name} is fed`);
  assert.equal(a.dtype, b.dtype, name);
  assert.deepEqual([...a.shape], [...b.shape], name);
  assert.deepEqual(a.data, b.data, `${name} differs`);
}

test('feeds derived from the feed plan equal a recording build over the merged weights, and share untouched tensors', async () => {
  const { weights } = await runner.base();
  const apps = [
    { name: 'a', network: bindLora(await kohyaFile('a', 3, 3, 0), table), te: 0.7, unet: 0.9, dyn: null },
    { name: 'b', network: bindLora(await kohyaFile('b', 5, 2, 1), table), te: 1, unet: -0.5, dyn: null },
  ];
  const merged = mergeLoras(weights, table, apps);
  assert.ok(merged.weights.size >= 8, 'both components and a convolution are patched');
  const component = (prefix: string, patched: boolean): Map<string, Float32Tensor> => {
    const out = new Map<string, Float32Tensor>();
    for (const [k, t] of weights) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), (patched && merged.weights.get(k)) || t);
    return out;
  };
  const shape = { batch: 2, height: 8, width: 8, contextLength: 77 };
  const builds: Array<[string, (b: WeightInputBuilder, w: ReadonlyMap<string, Float32Tensor>) => void]> = [
    [
      sd.config.text.prefix,
      (b, w) => buildTextEncoder(b, w, sd.config.text, { batch: 2 }).skips.forEach((v, i) => b.output(v, textOutputName(i + 1))),
    ],
    [UNET_PREFIX, (b, w) => buildUnet(b, w, sd.config.unet, shape)],
  ];
  for (const [prefix, build] of builds) {
    const base = new WeightInputBuilder('base');
    build(base, component(prefix, false));
    const plan = feedPlan(base, prefix);
    const derived = planFeeds(plan, merged.weights);
    const whole = new WeightInputBuilder('merged');
    build(whole, component(prefix, true));
    assert.deepEqual([...derived.keys()].sort(), [...whole.captured.keys()].sort());
    let changed = 0;
    for (const [name, t] of whole.captured) {
      sameTensor(derived.get(name), t, name);
      if (derived.get(name) === plan.base.get(name)) continue;
      changed++;
    }
    assert.ok(changed > 0 && changed < derived.size, `${prefix}: only the patched tensors' inputs are new (${changed} of ${derived.size})`);
  }
});

test('switching LoRA between two jobs in one Engine compiles no graph and opens no session', async () => {
  const engine = new Engine({ root: repoRoot, checkpoint: demo.checkpoint, cacheDir: `${scratch.dir}/engine-cache`, threads: 1 });
  const graphs = async (): Promise<number> => (await readdir(join(scratch.dir, 'engine-cache', 'graphs'))).length;
  const params: Txt2ImgParams = { prompt: '', negative_prompt: '', steps: 2, sampler_name: 'Euler', scheduler: 'Automatic', cfg_scale: 7, seed: 99, width: 64, height: 64 };
  try {
    const loras = [
      { path: await scratch.write('one.safetensors', writeSafetensors((await kohyaFile('one', 21, 3, 0)).tensors)), name: 'one' },
      { path: await scratch.write('two.safetensors', writeSafetensors((await kohyaFile('two', 23, 2, 2)).tensors)), name: 'two' },
    ];
    const first = await engine.txt2img({ ...params, prompt: 'a castle <lora:one:0.8>' }, { loras });
    const graphsAfterFirst = await graphs();
    const sessionsAfterFirst = sessionsCreated();
    const second = await engine.txt2img({ ...params, prompt: 'a castle <lora:two:0.6>' }, { loras });
    const both = await engine.txt2img({ ...params, prompt: 'a castle <lora:one:0.5> <lora:two:0.5>' }, { loras });
    assert.equal(await graphs(), graphsAfterFirst, 'no graph compiled for other networks');
    assert.equal(sessionsCreated(), sessionsAfterFirst, 'no session opened for other networks');
    const px = (r: { images: Uint8Array[] }) => decodePng(r.images[0]!).data;
    assert.notDeepEqual(px(first), px(second), 'each job ran its own networks');
    assert.notDeepEqual(px(second), px(both), 'each job ran its own networks');
  } finally {
    await engine.close();
  }
});
