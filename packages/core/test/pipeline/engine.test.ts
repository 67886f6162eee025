import { BUILTIN_MODEL_NAME } from '../../src/catalog/built-in-model.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot, repoRoot } from '../../parity/oracle.js';
import { Engine, pngInfo } from '../../src/pipeline/engine.js';
import { encodePng } from '../../src/formats/png.js';
import { isDarkroomError } from '../../src/errors.js';

const tiny = join(oracleRoot(), 'model', 'tiny-sd1.safetensors');
const vocab = join(oracleRoot(), 'text', 'vocab');

test('png-info: the parameters infotext parsed, other text chunks as items', () => {
  const png = encodePng({ width: 1, height: 1, channels: 3, data: Uint8Array.of(1, 2, 3) }, [
    ['parameters', 'a cat\nNegative prompt: fog\nSteps: 20, Sampler: Euler, CFG scale: 7.0, Seed: 1, Size: 512x768'],
    ['Software', 'darkroom'],
  ]);
  const info = pngInfo(png);
  assert.equal(info.items.Software, 'darkroom');
  assert.equal(info.parameters.Prompt, 'a cat');
  assert.equal(info.parameters['Negative prompt'], 'fog');
  assert.equal(info.parameters['Size-2'], '768');
  assert.equal(pngInfo(encodePng({ width: 1, height: 1, channels: 1, data: Uint8Array.of(0) })).info, '');
});

test('unknown checkpoints and missing vocabularies are typed errors', async () => {
  const engine = new Engine({ root: repoRoot });
  await assert.rejects(engine.txt2img({ steps: 1 }, { checkpoint: '/nonexistent/model.safetensors' }), (e: unknown) =>
    isDarkroomError(e, 'MODEL_NOT_FOUND'),
  );
  if (existsSync(tiny) && !process.env.DARKROOM_CLIP_VOCAB) {
    // a real checkpoint with no vocabulary beside it and none configured
    await assert.rejects(engine.txt2img({ steps: 1 }, { checkpoint: tiny }), (e: unknown) => isDarkroomError(e, 'TOKENIZER_NOT_FOUND'));
  }
  await engine.close();
});

test('models beyond the memory budget are evicted least recently used first', async (t) => {
  if (!existsSync(tiny) || !existsSync(vocab)) {
    t.skip('oracle tiny-sd1 checkpoint or vocabulary not found');
    return;
  }
  const engine = new Engine({ root: repoRoot, memoryBudgetBytes: 1, vocabulary: vocab, threads: 1 });
  try {
    const request = { prompt: 'a castle', steps: 1, seed: 3, width: 64, height: 64, sampler_name: 'Euler' };
    const demo = await engine.txt2img(request);
    assert.deepEqual(engine.loadedCheckpoints(), ['']);
    const real = await engine.txt2img(request, { checkpoint: tiny });
    assert.deepEqual(engine.loadedCheckpoints(), [tiny]);
    assert.match(demo.infotexts[0]!, new RegExp(`Model: ${BUILTIN_MODEL_NAME}`));
    assert.match(real.infotexts[0]!, /Model hash: bfcd16918c, Model: tiny-sd1/);
  } finally {
    await engine.close();
  }
});

test('override_settings.sd_model_checkpoint picks a checkpoint from the models folder by name; other UI keys are ignored', async (t) => {
  if (!existsSync(tiny) || !existsSync(vocab)) {
    t.skip('oracle tiny-sd1 checkpoint or vocabulary not found');
    return;
  }
  const engine = new Engine({ root: repoRoot, modelsDir: join(oracleRoot(), 'model'), vocabulary: vocab, threads: 1 });
  try {
    assert.equal(await engine.checkpointByName('tiny-sd1.safetensors [bfcd16918c]'), tiny);
    assert.equal(await engine.checkpointByName('tiny-sd1'), tiny);
    await assert.rejects(engine.checkpointByName('sd_xl_base'), (e: unknown) => isDarkroomError(e, 'MODEL_NOT_FOUND'));
    const r = await engine.txt2img({
      prompt: 'a castle',
      steps: 1,
      width: 64,
      height: 64,
      override_settings: { sd_model_checkpoint: 'tiny-sd1', sd_vae: 'Automatic', ...({ samples_format: 'png' } as object) },
    });
    assert.match(r.infotexts[0]!, /Model: tiny-sd1,/);
    assert.deepEqual(r.parameters.ignored_settings, ['samples_format']);
  } finally {
    await engine.close();
  }
});

test('jobs may name their files: embeddings, hypernetworks and the checkpoint under given names', async (t) => {
  const emb = join(oracleRoot(), 'pipeline', 'embeddings', 'oraclestyle.pt');
  const hn = join(oracleRoot(), 'model', 'hn_relu_ln.pt');
  if (!existsSync(emb) || !existsSync(hn)) {
    t.skip('oracle embedding or hypernetwork not found');
    return;
  }
  const engine = new Engine({ root: repoRoot, threads: 1 });
  try {
    const { ensureDemoModel } = await import('../../src/pipeline/demo-model.js');
    const demo = await ensureDemoModel(repoRoot);
    const request = { prompt: 'a castle, mystyle <hypernet:myhn:0.5>', steps: 2, seed: 4, width: 64, height: 64 };
    const named = await engine.txt2img(request, {
      checkpoint: { path: demo.checkpoint, name: 'renamed-model' },
      embeddings: [{ path: emb, name: 'mystyle' }],
      hypernetworks: [{ path: hn, name: 'myhn' }],
    });
    assert.match(named.infotexts[0]!, /Model: renamed-model, .*TI hashes: "mystyle: 3e2fb1aacfff"/);
    // without the hypernetwork at that name the prompt cannot run
    await assert.rejects(engine.txt2img(request, { embeddings: [{ path: emb, name: 'mystyle' }], hypernetworks: [hn] }), (e: unknown) =>
      isDarkroomError(e, 'HYPERNETWORK_NOT_FOUND'),
    );
    // the hypernetwork changes the image
    const without = await engine.txt2img({ ...request, prompt: 'a castle, mystyle' }, { embeddings: [{ path: emb, name: 'mystyle' }] });
    assert.notDeepEqual(without.images[0], named.images[0]);
  } finally {
    await engine.close();
  }
});
