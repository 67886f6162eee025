import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../parity/oracle.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { Engine } from '../../src/pipeline/engine.js';
import { demoTokenizer } from '../../src/pipeline/demo-model.js';
import { mentionsEmbedding, promptTokenRuns } from '../../src/networks/embeddings/mentions.js';
import { float32 } from '../../src/tensor.js';

function embedding(width: number, seed: number): Uint8Array {
  return writeSafetensors({ emb_params: float32([2, width], Float32Array.from({ length: 2 * width }, (_, i) => Math.sin(i + seed) * 0.05)) });
}

test('an embedding is found in a prompt by its tokens, not as a substring', () => {
  const tok = demoTokenizer();
  const used = (prompt: string, name: string) => mentionsEmbedding(tok, promptTokenRuns(tok, [prompt]), name);
  assert.equal(used('a x-wing fighter', 'x'), true);
  assert.equal(used('a (x:1.3) fighter', 'x'), true);
  assert.equal(used('a xylophone', 'x'), false);
  assert.equal(used('in the Fox-Style', 'fox-style'), true, 'case-insensitive, as the tokenizer lower-cases');
  assert.equal(used('foxes, style', 'fox-style'), false);
});

test('jobs use only the embeddings their prompts name by token; broken or misfit ones are skipped, not fatal', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-emb-'));
  const engine = new Engine({ root: repoRoot, threads: 1 });
  try {
    const files = {
      x: join(dir, 'x.safetensors'),
      broken: join(dir, 'broken.pt'),
      wide: join(dir, 'wide.safetensors'),
    };
    await writeFile(files.x, embedding(32, 1));
    await writeFile(files.broken, 'not a torch file');
    await writeFile(files.wide, embedding(64, 2)); // SD2's width on the demo model's 32-wide text encoder
    const embeddings = Object.entries(files).map(([name, path]) => ({ path, name }));
    const base = { steps: 1, seed: 5, width: 64, height: 64 };
    const run = async (prompt: string) => {
      const skipped: Record<string, string> = {};
      const r = await engine.txt2img({ ...base, prompt }, { embeddings, onEmbeddingSkipped: (name, why) => void (skipped[name] = why.code) });
      return { info: r.infotexts[0]!, skipped };
    };
    // "x" inside a word is not the embedding "x"; the broken file is never read.
    const plain = await run('a xylophone');
    assert.doesNotMatch(plain.info, /TI hashes/);
    assert.deepEqual(plain.skipped, {});
    const used = await run('a x-wing');
    assert.match(used.info, /TI hashes: "x: [0-9a-f]{12}"/);
    // Named, but unusable: rendered without them and reported, as A1111 skips them.
    const bad = await run('a x-wing, broken, wide');
    assert.match(bad.info, /TI hashes: "x: [0-9a-f]{12}"/);
    assert.match(bad.skipped.broken ?? '', /^TORCH_/);
    assert.equal(bad.skipped.wide, 'EMBEDDING_WIDTH_MISMATCH');
  } finally {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  }
});
