/**
 * Embeddings and hypernetworks through the whole txt2img pipeline on Darkroom's demo model (no oracle
 * needed): the networks are created in the test, written with the project's writers and loaded back from disk
 * by the same loaders a job uses.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { repoRoot } from '../../parity/oracle.js';
import { decodePng } from '../../src/formats/png.js';
import { loadModel, type StableDiffusionModel } from '../../src/models/load.js';
import { createEmbedding } from '../../src/networks/embeddings/create.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import { Engine } from '../../src/pipeline/engine.js';
import { hypernetworkProvider } from '../../src/pipeline/hypernetworks.js';
import { pipelineModel, tokenizerFor } from '../../src/pipeline/model.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import type { PipelineModel } from '../../src/pipeline/types.js';
import { txt2img } from '../../src/pipeline/txt2img.js';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import {
  demoHypernetwork,
  randomEmbedding,
  saveEmbeddingPt,
  saveHypernetworkPt,
  scratchDir,
} from './support/networks-fixtures.js';

let engine: Engine;
let model: PipelineModel;
let scratch: Awaited<ReturnType<typeof scratchDir>>;

before(async () => {
  engine = new Engine({ root: repoRoot, threads: 1 });
  const held = await engine.acquire();
  model = held.model;
  held.release();
  scratch = await scratchDir();
});

after(async () => {
  await engine.close();
  await scratch.dispose();
});

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

function pixels(png: Uint8Array): Uint8Array {
  return decodePng(png).data;
}

/** The first prompt's conditioning of the first pass, as the pipeline computed it (77, D). */
function firstCond(info: { conds: ReadonlyArray<{ parts: ReadonlyArray<{ schedule: ReadonlyArray<{ cond: Float32Tensor }> }> }> }): Float32Tensor {
  return info.conds[0]!.parts[0]!.schedule[0]!.cond;
}

/**
 * The conditioning of `before <embedding> after` computed by hand: BOS, the tokens of `before`, one row per
 * embedding vector, the tokens of `after`, EOS, then padding; each row from the token-embedding table except
 * the embedding's rows, which are its vectors; then the text encoder at clip skip 1.
 */
async function handSplicedCond(m: PipelineModel, before: string, vec: Float32Tensor, after: string): Promise<Float32Tensor> {
  const table = m.textEncoder.tokenEmbedding;
  const width = table.shape[1]!;
  const rows: Array<number | { vector: number }> = [m.tokenizer.bosId];
  rows.push(...m.tokenizer.encode(before));
  for (let k = 0; k < vec.shape[0]!; k++) rows.push({ vector: k });
  rows.push(...m.tokenizer.encode(after), m.tokenizer.eosId);
  while (rows.length < 77) rows.push(m.textEncoder.padTokenId);
  const data = new Float32Array(77 * width);
  rows.forEach((r, i) => {
    const src = typeof r === 'number' ? table.data.subarray(r * width, (r + 1) * width) : vec.data.subarray(r.vector * width, (r.vector + 1) * width);
    data.set(src, i * width);
  });
  const z = await m.textEncoder.encode(float32([1, 77, width], data), 1);
  return float32([77, width], z.data);
}

test('an embedding in the prompt changes the image, and its conditioning equals the vectors spliced by hand', async () => {
  const width = model.textEncoder.width;
  const emb = randomEmbedding('zqx', 2, width, 31337);
  const path = await scratch.write('zqx.pt', saveEmbeddingPt(emb));
  const prompt = 'a zqx castle';

  let withCond: Float32Tensor | undefined;
  const withEmb = await engine.txt2img({ ...base, prompt }, {
    embeddings: [path],
    trace: { onConds: (i) => void (i.pass === 'first' && (withCond = firstCond(i))) },
  });
  let plainCond: Float32Tensor | undefined;
  const plain = await engine.txt2img({ ...base, prompt }, { trace: { onConds: (i) => void (i.pass === 'first' && (plainCond = firstCond(i))) } });

  // The vectors are not what the name's own tokens would give, so the conditioning and the image change.
  const nameRows = model.tokenizer.encode('zqx');
  assert.equal(nameRows.length, 3, 'the name spans several tokens, the embedding two vectors: later tokens shift');
  assert.ok(withCond && plainCond);
  assert.notDeepEqual(withCond.data, plainCond.data);
  assert.notDeepEqual(pixels(withEmb.images[0]!), pixels(plain.images[0]!));
  // A1111 quotes the value (it contains ': '); the hash is the first 12 hex of the file's sha256.
  const fileHash = createHash('sha256').update(await readFile(path)).digest('hex').slice(0, 12);
  assert.match(withEmb.infotexts[0]!, new RegExp(`TI hashes: "zqx: ${fileHash}"`));
  assert.doesNotMatch(plain.infotexts[0]!, /TI hashes/);

  // Exactly the hand-spliced conditioning: same rows, same positions, same encoder.
  const hand = await handSplicedCond(model, 'a', emb.vec, 'castle');
  assert.deepEqual(withCond.shape, hand.shape);
  assert.ok(Buffer.from(withCond.data.buffer, withCond.data.byteOffset, withCond.data.byteLength).equals(Buffer.from(hand.data.buffer, hand.data.byteOffset, hand.data.byteLength)), 'pipeline conditioning differs from the hand-spliced one');
  // ...and the vectors really did land there: the hand splice without them is the plain prompt's conditioning shape but other values.
  assert.notDeepEqual(hand.data, plainCond.data);

  // Deterministic: the same job again gives the same pixels.
  const again = await engine.txt2img({ ...base, prompt }, { embeddings: [path] });
  assert.deepEqual(pixels(again.images[0]!), pixels(withEmb.images[0]!));
});

test('an embedding made of the token rows of a text renders exactly the image of that text', async () => {
  // createEmbedding copies the rows of its init text: splicing them where the name sits must give the very
  // same inputs_embeds, hence byte-identical pixels, as writing the text itself.
  const initText = 'red castle';
  const ids = model.tokenizer.encode(initText);
  const emb = createEmbedding({ name: 'pekora', vectors: ids.length, initText, tokenizer: model.tokenizer, tokenEmbeddings: model.textEncoder.tokenEmbedding });
  const path = await scratch.write('pekora.pt', saveEmbeddingPt(emb));
  const viaEmbedding = await engine.txt2img({ ...base, prompt: 'a pekora in a forest' }, { embeddings: [path] });
  const viaText = await engine.txt2img({ ...base, prompt: 'a red castle in a forest' });
  assert.deepEqual(pixels(viaEmbedding.images[0]!), pixels(viaText.images[0]!));
  // Without the embedding the name is ordinary tokens, and the picture is another one.
  const unnamed = await engine.txt2img({ ...base, prompt: 'a pekora in a forest' });
  assert.notDeepEqual(pixels(unnamed.images[0]!), pixels(viaText.images[0]!));
});

test('a hypernetwork at multiplier 0 gives exactly the image without it; at 0.8 a different one', async () => {
  const path = await scratch.write('hnzero.pt', saveHypernetworkPt(demoHypernetwork('hnzero', 777)));
  const without = await engine.txt2img(base);
  const tagged = `${base.prompt} <hypernet:hnzero:0>`;
  const atZero = await engine.txt2img({ ...base, prompt: tagged }, { hypernetworks: [path] });
  assert.deepEqual(pixels(atZero.images[0]!), pixels(without.images[0]!));
  // A1111 writes the prompt as given (tag included) and adds no hypernetwork field: only the prompt line differs.
  assert.equal(atZero.infotexts[0], without.infotexts[0]!.replace(/^a castle\n/, `${tagged}\n`));

  const strong = await engine.txt2img({ ...base, prompt: `${base.prompt} <hypernet:hnzero:0.8>` }, { hypernetworks: [path] });
  assert.notDeepEqual(pixels(strong.images[0]!), pixels(without.images[0]!));
});

test('two jobs with different hypernetworks of one architecture share a compiled UNet graph', async () => {
  // A model of its own with an empty compile cache, so every graph it needs is a counted build.
  const cache = await scratchDir();
  const demo = await ensureDemoModel(repoRoot);
  let sd: StableDiffusionModel | undefined;
  try {
    sd = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir: cache.dir, threads: 1 });
    const m = pipelineModel(sd, tokenizerFor(sd.kind, demo.tokenizer));
    const files = new Map([
      ['hna', await scratch.write('hna.pt', saveHypernetworkPt(demoHypernetwork('hna', 101)))],
      ['hnb', await scratch.write('hnb.pt', saveHypernetworkPt(demoHypernetwork('hnb', 202)))],
      ['hnc', await scratch.write('hnc.pt', saveHypernetworkPt(demoHypernetwork('hnc', 303, { layerStructure: '1, 3, 1' })))],
    ]);
    const job = (name: string): Promise<Awaited<ReturnType<typeof txt2img>>> =>
      txt2img(m, { ...base, prompt: `a castle <hypernet:${name}:1>` }, { networks: { hypernetworks: hypernetworkProvider(files) } });

    const a = await job('hna');
    const afterA = sd.buildCount;
    assert.ok(afterA > 0, 'the first job compiles its graphs into the empty cache');
    const b = await job('hnb');
    assert.equal(sd.buildCount, afterA, 'a second hypernetwork of the same architecture compiles nothing');
    // ...and the shared graph really ran the other network's weights.
    assert.notDeepEqual(pixels(b.images[0]!), pixels(a.images[0]!));

    // The counter does count: another layer structure is another graph.
    await job('hnc');
    assert.equal(sd.buildCount, afterA + 1, 'a different architecture compiles exactly one new UNet graph');
  } finally {
    await sd?.release();
    await cache.dispose();
  }
});

test('an embedding of the wrong width is skipped as A1111 skips it, reported with a typed reason naming the file; the prompt renders as text', async () => {
  const wide = randomEmbedding('widezqx', 2, 768, 99);
  assert.notEqual(wide.width, model.textEncoder.width);
  const path = await scratch.write('widezqx.pt', saveEmbeddingPt(wide));
  const skipped: Array<{ name: string; code: string; message: string }> = [];
  const request = { ...base, prompt: 'a widezqx castle' };
  const withFile = await engine.txt2img(request, { embeddings: [path], onEmbeddingSkipped: (name, r) => void skipped.push({ name, ...r }) });
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0]!.name, 'widezqx');
  assert.equal(skipped[0]!.code, 'EMBEDDING_WIDTH_MISMATCH');
  assert.match(skipped[0]!.message, /widezqx/);
  assert.match(skipped[0]!.message, /768/);
  assert.match(skipped[0]!.message, new RegExp(String(model.textEncoder.width)));
  const without = await engine.txt2img(request);
  assert.deepEqual(Buffer.from(withFile.images[0]!), Buffer.from(without.images[0]!), 'the word is encoded as plain text');
  assert.doesNotMatch(withFile.infotexts[0]!, /TI hashes/);
});
