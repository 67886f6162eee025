import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { isDarkroomError } from '../../src/errors.js';
import { decodePng, readPngChunks, readPngText } from '../../src/formats/png.js';
import { readTorch } from '../../src/formats/torch.js';
import { memorySource, readZipDirectory, readZipEntry } from '../../src/formats/zip.js';
import { createEmbedding } from '../../src/networks/embeddings/create.js';
import { EmbeddingDatabase } from '../../src/networks/embeddings/database.js';
import type { Embedding } from '../../src/networks/embeddings/embedding.js';
import { loadEmbedding, loadEmbeddingFile } from '../../src/networks/embeddings/load.js';
import { embeddingToJson, pythonBase64Decode } from '../../src/networks/embeddings/payload-json.js';
import { extractPixelPayload, xorBlock } from '../../src/networks/embeddings/pixel-codec.js';
import { embeddingPayload, saveEmbeddingPng, saveEmbeddingPt, saveEmbeddingSafetensors } from '../../src/networks/embeddings/save.js';
import { float32 } from '../../src/tensor.js';

const ti = join(oracleRoot(), 'text', 'ti');
const haveOracle = existsSync(join(ti, 'loader_results.json'));
const skip = !haveOracle && 'oracle absent';

function sample(name = 'sample', n = 3, width = 8): Embedding {
  const data = Float32Array.from({ length: n * width }, (_, i) => Math.sin(i * 1.7) * 0.03 + (i % 5) * 1e-7);
  return {
    name,
    vec: float32([n, width], data),
    vectors: n,
    width,
    step: 1234,
    sdCheckpoint: '7460a6fa',
    sdCheckpointName: 'v1-5-pruned-emaonly',
    filename: `${name}.pt`,
    hash: '',
    shorthash: '',
  };
}

function assertSameEmbedding(back: Embedding, e: Embedding): void {
  assert.equal(back.name, e.name);
  assert.deepEqual(back.vec.shape, e.vec.shape);
  assert.deepEqual(back.vec.data, e.vec.data);
  assert.equal(back.step, e.step);
  assert.equal(back.sdCheckpoint, e.sdCheckpoint);
  assert.equal(back.sdCheckpointName, e.sdCheckpointName);
}

const picture = { width: 16, height: 12, channels: 3 as const, data: Uint8Array.from({ length: 16 * 12 * 3 }, (_, i) => 40 + (i % 200)) };

test('an embedding written as .pt, .safetensors and PNG (text, pixels, both) reads back identically', async () => {
  const e = sample();
  assertSameEmbedding(await loadEmbedding(saveEmbeddingPt(e), 'sample.pt'), e);
  const st = await loadEmbedding(saveEmbeddingSafetensors(e), 'sample.safetensors');
  assert.deepEqual(st.vec.data, e.vec.data);
  assert.equal(st.step, null, 'kohya-style safetensors carry no step');
  for (const opts of [{}, { pixels: false }, { textChunk: false }]) {
    const png = saveEmbeddingPng(e, picture, opts);
    assertSameEmbedding(await loadEmbedding(png, 'whatever-stem.png'), e);
    const hasText = 'sd-ti-embedding' in readPngText(png);
    assert.equal(hasText, opts.textChunk !== false);
    const img = decodePng(png);
    assert.equal(img.width > picture.width, opts.pixels !== false);
    if (opts.pixels !== false) assert.ok(extractPixelPayload(img, 'x.png'), 'pixel payload present');
  }
});

test('the LCG scramble stream starts as A1111 documents', () => {
  const first = xorBlock(new Uint8Array(10));
  assert.deepEqual([...first], [253, 242, 127, 44, 157, 27, 239, 133, 38, 79].map((v) => v & 0x0f));
});

test('Python base64 rules: junk characters dropped, a 1-mod-4 length refused', () => {
  assert.deepEqual([...pythonBase64Decode('aGk=\n', 'x')], [104, 105]);
  assert.throws(() => pythonBase64Decode('not*base64!', 'x'), (e: unknown) => isDarkroomError(e, 'EMBEDDING_BAD_BASE64'));
  assert.throws(() => pythonBase64Decode('aGk', 'x'), (e: unknown) => isDarkroomError(e, 'EMBEDDING_BAD_BASE64'));
});

async function dataPkl(bytes: Uint8Array): Promise<Uint8Array> {
  const src = memorySource(bytes);
  const dir = await readZipDirectory(src, 'x');
  return readZipEntry(src, dir.find((e) => e.name.endsWith('/data.pkl'))!, 'x');
}

test('our .pt matches the files A1111 writes: same members and a byte-identical data.pkl', { skip }, async () => {
  for (const [stem, requiresGrad] of [['pekora', false], ['mignon', true], ['fresh_embedding', false]] as const) {
    const oracleBytes = new Uint8Array(readFileSync(join(ti, `${stem}.pt`)));
    const e = await loadEmbedding(oracleBytes, `${stem}.pt`);
    const ours = saveEmbeddingPt(e, { requiresGrad });
    const [a, b] = [await readTorch(oracleBytes), await readTorch(ours)];
    assert.deepEqual(b.members, a.members);
    assert.deepEqual(b.globals, a.globals);
    assert.deepEqual(await dataPkl(ours), await dataPkl(oracleBytes), `${stem}: data.pkl differs`);
  }
});

test('our PNG payload is the JSON A1111 writes, in the same chunk', { skip }, async () => {
  for (const file of ['pekora_embedding_both.png', 'mignon_pixels_only.png']) {
    const bytes = new Uint8Array(readFileSync(join(ti, file)));
    const theirs = new TextDecoder().decode(extractPixelPayload(decodePng(bytes), file));
    const e = await loadEmbedding(bytes, file);
    assert.equal(embeddingToJson(embeddingPayload(e)), theirs, `${file}: JSON differs from json.dumps`);
  }
  const both = new Uint8Array(readFileSync(join(ti, 'pekora_embedding_both.png')));
  const e = await loadEmbeddingFile(join(ti, 'pekora.pt'));
  const ours = saveEmbeddingPng(e, picture);
  const chunkKinds = (b: Uint8Array): string[] =>
    readPngChunks(b).filter((c) => c.type === 'tEXt' || c.type === 'iTXt' || c.type === 'zTXt').map((c) => c.type);
  assert.deepEqual(chunkKinds(ours), chunkKinds(both));
  assert.equal(readPngText(ours)['sd-ti-embedding'], readPngText(both)['sd-ti-embedding']);
});

test('lookup follows A1111: by first token id, longest name first, width checked', () => {
  // A toy tokenizer: one id per word.
  const vocab = new Map<string, number>();
  const tokenizer = { encode: (s: string) => s.toLowerCase().split(/\s+/).filter(Boolean).map((w) => vocab.get(w) ?? (vocab.set(w, vocab.size + 1), vocab.size)) };
  const db = new EmbeddingDatabase(tokenizer, 8);
  db.add(sample('big style', 2));
  db.add(sample('big', 1));
  const prompt = tokenizer.encode('a BIG style big cat');
  assert.equal(db.findEmbeddingAtPosition(prompt, 1)?.embedding.name, 'big style');
  assert.equal(db.findEmbeddingAtPosition(prompt, 1)?.lengthInTokens, 2);
  assert.equal(db.findEmbeddingAtPosition(prompt, 3)?.embedding.name, 'big');
  assert.equal(db.findEmbeddingAtPosition(prompt, 0), undefined);
  assert.throws(() => db.add({ ...sample('wide', 1, 16), filename: 'wide.pt' }), (e: unknown) => isDarkroomError(e, 'EMBEDDING_WIDTH_MISMATCH') && e.message.includes('wide.pt'));
  assert.equal(db.add(sample('wide', 1, 16), { onMismatch: 'skip' }), false);
  assert.ok(db.skipped.has('wide'));
  // Re-registering a name replaces the old entry instead of adding a second one.
  db.add(sample('big', 3));
  assert.equal(db.findEmbeddingAtPosition(prompt, 3)?.embedding.vectors, 3);
  assert.deepEqual(db.list().map((e) => e.name), ['big', 'big style']);
});

test('a new embedding spreads the init tokens over the vectors as A1111 does', () => {
  const table = float32([5, 2], Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]));
  const tokenizer = { encode: (s: string) => s.split(' ').map(Number) };
  const e = createEmbedding({ name: 'new', vectors: 5, initText: '1 3', tokenizer, tokenEmbeddings: table });
  assert.deepEqual([...e.vec.data], [1, 1, 1, 1, 1, 1, 3, 3, 3, 3]);
  const zero = createEmbedding({ name: 'z', vectors: 2, initText: '', tokenizer: { encode: () => [4] }, tokenEmbeddings: table });
  assert.deepEqual([...zero.vec.data], [0, 0, 0, 0]);
  const cut = createEmbedding({ name: 'c', vectors: 1, initText: '2 3', tokenizer, tokenEmbeddings: table });
  assert.deepEqual([...cut.vec.data], [2, 2], 'SD1 keeps at most n init tokens');
});

test('loading a folder as A1111 does: previews, plain images and empty files ignored, other width skipped, bad files reported', { skip }, async () => {
  const { expectedRefusal } = await import('../../parity/hostile.js');
  const tokenizer = { encode: (s: string) => [...s.toLowerCase()].map((c) => c.codePointAt(0)!) };
  // The oracle folder also holds expected-vector sidecars and JSON: copy just the embedding files.
  const { mkdtemp, copyFile, readdir, rm, mkdir } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-emb-'));
  await mkdir(join(dir, 'nested'));
  for (const f of await readdir(ti)) {
    if (f.includes('.expected.') || f.endsWith('.json')) continue;
    await copyFile(join(ti, f), join(dir, f.startsWith('bigstyle') ? join('nested', f) : f));
  }
  const db = new EmbeddingDatabase(tokenizer, 768);
  const failures = await db.loadDirectory(dir).finally(() => rm(dir, { recursive: true, force: true }));
  assert.deepEqual(failures, []);
  assert.deepEqual([...db.skipped.keys()], ['sdxl_emb']);
  // pekora.pt and pekora_embedding_both.png share the name "pekora" (the PNG's payload name): the later file wins.
  assert.deepEqual(
    db.list().map((e) => e.name),
    ['bf16emb', 'bigstyle', 'cat-toy', 'fresh_embedding', 'halfprec', 'legacy_format', 'mignon', 'oldstyle', 'pekora', 'textchunk-emb'],
  );
  assert.equal(db.get('pekora')!.filename, 'pekora_embedding_both.png');

  const hostileDir = join(oracleRoot(), 'text', 'hostile');
  const hostile = new EmbeddingDatabase(tokenizer, 768);
  const bad = await hostile.loadDirectory(hostileDir);
  assert.equal(hostile.list().length, 0);
  const byFile = new Map(bad.map((f) => [f.file.split('/').pop()!, f.error.code]));
  // Empty files are passed over silently, as A1111's load_from_dir does; every other file is reported with a
  // code its kind allows (hostile/expected.json).
  const { cases } = JSON.parse(readFileSync(join(hostileDir, 'expected.json'), 'utf-8')) as { cases: Parameters<typeof expectedRefusal>[0][] };
  const reported = cases.filter((c) => c.a1111?.status !== 'ignored_empty_file');
  assert.deepEqual([...byFile.keys()].sort(), reported.map((c) => c.file).sort());
  for (const c of reported) assert.ok(expectedRefusal(c).codes.includes(byFile.get(c.file)!), `${c.file}: ${byFile.get(c.file)}`);
});
