/**
 * readModelText reads a checkpoint's vocabulary, token-embedding matrix and config from its files, without the
 * engine: what it returns must be what the engine's acquireForTraining gives for the same checkpoint, and a
 * checkpoint the engine cannot load fails with the engine's error code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import { DEMO_MODEL_DIR, DEMO_MODEL_NAME, ensureDemoModel } from '../../src/pipeline/demo-model.js';
import { Engine } from '../../src/pipeline/engine.js';
import { readModelText, type ModelText } from '../../src/pipeline/model-text.js';

const oracleModels = join(oracleRoot(), 'model');
const noOracle = existsSync(join(oracleModels, 'tiny-sd2.safetensors')) ? false : `oracle data not found at ${oracleModels}`;
const TEXTS = ['a photo of a cat', 'Lamp, &amp; <b>BOLD</b>  tea-pot'];

async function withRoot(run: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'darkroom-model-text-'));
  try {
    await run(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** What the engine loads for `checkpoint` (undefined: the demo model), against what readModelText read. */
async function assertSameAsEngine(root: string, checkpoint: string | undefined, text: ModelText): Promise<void> {
  const engine = new Engine({ root });
  try {
    const { sd, model, release } = await engine.acquireForTraining(checkpoint);
    release();
    assert.equal(text.kind, sd.kind);
    assert.deepEqual(text.config, sd.config);
    assert.deepEqual(text.tokenEmbeddings.shape, sd.textEncoder.tokenEmbedding.shape);
    assert.deepEqual(text.tokenEmbeddings.data, sd.textEncoder.tokenEmbedding.data);
    for (const t of TEXTS) assert.deepEqual(text.tokenizer.encode(t), model.tokenizer.encode(t), t);
  } finally {
    await engine.close();
  }
}

test("the built-in model's text is the engine's, read without loading the model", async () => {
  await withRoot(async (root) => {
    const text = await readModelText(undefined);
    assert.equal(text.kind, 'sd1');
    assert.equal(text.tokenEmbeddings.shape[1], text.config.text.width);
    await assertSameAsEngine(root, undefined, text);
  });
});

test("the random-weight fixture model's text is the engine's", async () => {
  await withRoot(async (root) => {
    const demo = await ensureDemoModel(root);
    assert.ok(existsSync(join(root, DEMO_MODEL_DIR, `${DEMO_MODEL_NAME}.safetensors`)), 'the fixture model is written on first use');
    const text = await readModelText(demo.checkpoint);
    assert.equal(text.tokenEmbeddings.shape[1], text.config.text.width);
    await assertSameAsEngine(root, demo.checkpoint, text);
  });
});

test('an SD2 checkpoint with its JSON config and vocabulary beside it: the same config, table and OpenCLIP encoding', { skip: noOracle }, async () => {
  await withRoot(async (root) => {
    const demo = await ensureDemoModel(root);
    const dir = join(root, 'models');
    const ckpt = join(dir, 'tiny-sd2.safetensors');
    await cp(join(root, DEMO_MODEL_DIR, `${DEMO_MODEL_NAME}.vocab`), join(dir, 'vocab'), { recursive: true });
    await copyFile(join(oracleModels, 'tiny-sd2.safetensors'), ckpt);
    await copyFile(join(oracleModels, 'tiny-sd2.json'), join(dir, 'tiny-sd2.json'));
    const text = await readModelText(ckpt);
    assert.equal(text.kind, 'sd2');
    // SD2's tokenizer is OpenCLIP's: html unescaped, unlike the plain CLIP tokenizer
    assert.notDeepEqual(text.tokenizer.encode(TEXTS[1]!), demo.tokenizer.encode(TEXTS[1]!));
    await assertSameAsEngine(root, ckpt, text);
  });
});

test('a checkpoint the engine cannot load fails with the same code', async () => {
  const saved = process.env.DARKROOM_CLIP_VOCAB;
  delete process.env.DARKROOM_CLIP_VOCAB;
  try {
    await withRoot(async (root) => {
      const missing = join(root, 'nope.safetensors');
      await assert.rejects(readModelText(missing), (e) => isDarkroomError(e, 'MODEL_NOT_FOUND'));
      const demo = await ensureDemoModel(root);
      const bare = join(root, 'bare', 'model.safetensors');
      await cp(demo.checkpoint, bare);
      await assert.rejects(readModelText(bare), (e) => isDarkroomError(e, 'TOKENIZER_NOT_FOUND'));
      const engine = new Engine({ root });
      try {
        await assert.rejects(engine.acquireForTraining(bare), (e) => isDarkroomError(e, 'TOKENIZER_NOT_FOUND'));
      } finally {
        await engine.close();
      }
    });
  } finally {
    if (saved !== undefined) process.env.DARKROOM_CLIP_VOCAB = saved;
  }
});
