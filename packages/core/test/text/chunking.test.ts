import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { buildDemoVocabulary } from '../../src/text/bpe-vocab.js';
import {
  EmbeddingIndex,
  chunkBatches,
  emptyChunk,
  fixVectorPositions,
  padAfterFirstEnd,
  targetPromptTokenCount,
  tokenizeLine,
  type ChunkingOptions,
} from '../../src/text/chunking.js';
import { planConditioning, scheduleIndexAt } from '../../src/text/conditioning-plan.js';
import { parseExtraNetworks } from '../../src/pipeline/extra-networks.js';
import { ClipTokenizer } from '../../src/text/tokenizer.js';

const demo = new ClipTokenizer(buildDemoVocabulary());
const demoOpts: ChunkingOptions = { bosId: demo.bosId, eosId: demo.eosId, commaId: demo.commaId };

test('chunks are BOS + 75 + EOS with padding and per-token weights', () => {
  const r = tokenizeLine('a (red:1.5) cat', demo, demoOpts);
  assert.equal(r.chunks.length, 1);
  const [c] = r.chunks;
  assert.equal(c!.tokens.length, 77);
  assert.equal(c!.tokens[0], demo.bosId);
  assert.deepEqual(c!.tokens.slice(1, 4), demo.encode('a red cat'));
  assert.equal(c!.tokens[4], demo.eosId);
  assert.equal(c!.tokens[76], demo.eosId);
  assert.deepEqual(c!.multipliers.slice(0, 5), [1, 1, 1.5, 1, 1]);
  assert.equal(r.tokenCount, 3);
});

test('BREAK closes a chunk; empty prompt gives one padding chunk; token counts', () => {
  assert.equal(tokenizeLine('', demo, demoOpts).tokenCount, 0);
  assert.deepEqual(tokenizeLine('', demo, demoOpts).chunks[0]!.tokens, emptyChunk(demoOpts).tokens);
  const b = tokenizeLine('a BREAK b', demo, demoOpts);
  assert.equal(b.chunks.length, 2);
  assert.equal(b.tokenCount, 76);
  assert.equal(tokenizeLine('BREAK', demo, demoOpts).tokenCount, 75);
  assert.equal(targetPromptTokenCount(76), 150);
  assert.equal(targetPromptTokenCount(0), 75);
});

test('comma backtracking moves the words after the last comma into the next chunk', () => {
  const words = Array.from({ length: 70 }, () => 'cat').join(' ') + ', dog dog dog dog dog dog';
  const on = tokenizeLine(words, demo, demoOpts);
  const off = tokenizeLine(words, demo, { ...demoOpts, commaPaddingBacktrack: 0 });
  const dog = demo.encode('dog')[0]!;
  // with backtracking the first chunk ends at the comma (70 cats + comma, then padding)
  assert.equal(on.chunks[0]!.tokens[71], demo.commaId);
  assert.equal(on.chunks[0]!.tokens[72], demo.eosId);
  assert.deepEqual(on.chunks[1]!.tokens.slice(1, 7), Array(6).fill(dog));
  // without it the chunk is filled to 75 (4 dogs) and the other 2 spill over
  assert.equal(off.chunks[0]!.tokens[75], dog);
  assert.deepEqual(off.chunks[1]!.tokens.slice(1, 4), [dog, dog, demo.eosId]);
});

test('embeddings: longest name wins, placeholders are 0, fixes counted without BOS', () => {
  const index = new EmbeddingIndex<{ name: string; vectors: number }>();
  index.register(demo.encode('red cat'), { name: 'redcat', vectors: 3 });
  index.register(demo.encode('red'), { name: 'red', vectors: 1 });
  const r = tokenizeLine('a red cat, red dog', demo, demoOpts, index);
  const c = r.chunks[0]!;
  assert.deepEqual(c.fixes.map((f) => [f.offset, f.embedding.name]), [[1, 'redcat'], [5, 'red']]);
  assert.deepEqual(c.tokens.slice(2, 5), [0, 0, 0]);
  assert.deepEqual(fixVectorPositions(c.fixes[0]!), [2, 3, 4]);
  assert.equal(r.tokenCount, 1 + 3 + 1 + 1 + 1);
  // an embedding that does not fit starts a new chunk
  const long = new EmbeddingIndex<{ name: string; vectors: number }>();
  long.register(demo.encode('dragon'), { name: 'dragon', vectors: 16 });
  const filler = Array.from({ length: 70 }, () => 'cat').join(' ');
  const r2 = tokenizeLine(`${filler} dragon`, demo, demoOpts, long);
  assert.equal(r2.chunks.length, 2);
  assert.deepEqual(r2.chunks[1]!.fixes.map((f) => f.offset), [0]);
});

test('chunk batches pad shorter texts with empty chunks; SD2 padding after the first EOS', () => {
  const a = tokenizeLine('cat', demo, demoOpts).chunks;
  const b = tokenizeLine('cat BREAK dog', demo, demoOpts).chunks;
  const batches = chunkBatches([a, b], demoOpts);
  assert.equal(batches.length, 2);
  assert.deepEqual(batches[1]![0]!.tokens, emptyChunk(demoOpts).tokens);
  assert.deepEqual(padAfterFirstEnd([1, 5, 9, 9, 9], 9, 0), [1, 5, 9, 0, 0]);
  assert.deepEqual(padAfterFirstEnd([1, 5, 9, 9], 9, 9), [1, 5, 9, 9]);
});

test('conditioning plan: negatives first, one call per distinct prompt, AND weights, schedules', () => {
  const plan = planConditioning({
    prompts: ['a [cat:dog:0.5] AND a dragon :0.6'],
    negativePrompts: ['grainy, fog'],
    steps: 8,
    tokenizer: demo,
    chunking: demoOpts,
  });
  assert.deepEqual(plan.calls.map((c) => c.texts), [['grainy, fog'], ['a cat', 'a dog'], [' a dragon']]);
  assert.deepEqual(plan.uncond, [[{ endAtStep: 8, call: 0, row: 0 }]]);
  assert.deepEqual(plan.cond[0]!.map((p) => p.weight), [1, 0.6]);
  assert.deepEqual(plan.cond[0]![0]!.schedule, [{ endAtStep: 4, call: 1, row: 0 }, { endAtStep: 8, call: 1, row: 1 }]);
  assert.equal(scheduleIndexAt(plan.cond[0]![0]!.schedule, 4), 0);
  assert.equal(scheduleIndexAt(plan.cond[0]![0]!.schedule, 5), 1);
  assert.equal(scheduleIndexAt(plan.cond[0]![0]!.schedule, 99), 0);
});

const pipelineCases = join(oracleRoot(), 'pipeline/cases.json');
const vocabDir = join(oracleRoot(), 'text/vocab');
const havePipeline = existsSync(pipelineCases) && existsSync(join(vocabDir, 'vocab.json'));

test('conditioning plan reproduces the text-encoder calls A1111 made in the pipeline oracle', { skip: havePipeline ? false : 'pipeline oracle absent' }, () => {
  interface Call {
    texts: string[];
    chunks: { tokens: number[][]; multipliers: number[][]; fixes: { offset: number; embedding: string; vectors: number }[][] }[];
  }
  interface Case {
    id: string;
    request: { prompt: string; negative_prompt: string; batch_size: number };
    processing: { total_steps_for_schedules: number; all_prompts: string[]; all_negative_prompts: string[] };
    text_encoder_calls: Call[];
  }
  const data = JSON.parse(readFileSync(pipelineCases, 'utf-8')) as { cases: Case[]; embeddings: { name: string; vectors: number }[] };
  const tok = ClipTokenizer.fromDirectory(vocabDir);
  const opts: ChunkingOptions = { bosId: tok.bosId, eosId: tok.eosId, commaId: tok.commaId };
  const index = new EmbeddingIndex<{ name: string; vectors: number }>();
  for (const e of data.embeddings) index.register(tok.encode(e.name), { name: e.name, vectors: e.vectors });
  for (const c of data.cases) {
    const prompts = c.processing.all_prompts.map((p) => parseExtraNetworks(p).text);
    const plan = planConditioning({
      prompts,
      negativePrompts: c.processing.all_negative_prompts,
      steps: c.processing.total_steps_for_schedules,
      tokenizer: tok,
      chunking: opts,
      embeddings: index,
    });
    assert.equal(plan.calls.length, c.text_encoder_calls.length, `${c.id}: number of encoder calls`);
    plan.calls.forEach((call, i) => {
      const want = c.text_encoder_calls[i]!;
      assert.deepEqual(call.texts.map((t) => t.trim()), want.texts.map((t) => t.trim()), `${c.id} call ${i} texts`);
      assert.equal(call.chunkBatches.length, want.chunks.length, `${c.id} call ${i} chunk count`);
      call.chunkBatches.forEach((batch, k) => {
        const w = want.chunks[k]!;
        assert.deepEqual(batch.map((ch) => ch.tokens), w.tokens, `${c.id} call ${i} chunk ${k} tokens`);
        assert.deepEqual(batch.map((ch) => ch.multipliers), w.multipliers, `${c.id} call ${i} chunk ${k} multipliers`);
        assert.deepEqual(
          batch.map((ch) => ch.fixes.map((f) => ({ offset: f.offset, embedding: f.embedding.name, vectors: f.embedding.vectors }))),
          w.fixes,
          `${c.id} call ${i} chunk ${k} fixes`,
        );
      });
    });
  }
});
