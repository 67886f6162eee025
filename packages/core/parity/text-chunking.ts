/**
 * The chunking groups of the text suite (`chunking/`): A1111's tokenize_line and process_texts (tokens,
 * multipliers, TI fixes, token counts, option variants, batches) and sd_emphasis on recorded tensors, bit for bit.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DarkroomError } from '../src/errors.js';
import { parseSafetensors } from '../src/formats/safetensors.js';
import {
  EmbeddingIndex,
  fixVectorPositions,
  processTexts,
  targetPromptTokenCount,
  tokenizeLine,
  type ChunkingOptions,
  type EmphasisMode,
  type PromptChunk,
} from '../src/text/chunking.js';
import { applyEmphasis } from '../src/text/emphasis.js';
import type { ClipTokenizer } from '../src/text/tokenizer.js';
import { elementwiseClose, type CaseResult, type Closeness } from './report.js';
import { diff, readJson, sectionGroup, short, type Group, type Json, type Obj } from './text-cases.js';

interface CaseEmbedding {
  readonly name: string;
  readonly vectors: number;
}

function chunkJson(chunks: PromptChunk<CaseEmbedding>[]): Json {
  return chunks.map((ch) => ({
    tokens: ch.tokens,
    multipliers: ch.multipliers,
    fixes: ch.fixes.map((f) => ({
      offset: f.offset,
      embedding: f.embedding.name,
      vectors: f.embedding.vectors,
      vector_positions: fixVectorPositions(f),
    })),
  }));
}

/** `chunking/chunking_cases.json`: single lines, option variants and batches. */
export function chunkingGroups(folder: string, tok: ClipTokenizer): Group[] {
  const file = 'chunking/chunking_cases.json';
  const d = readJson(join(folder, file));
  const o = d.options as Obj;
  const base: ChunkingOptions = {
    bosId: Number(o.id_start),
    eosId: Number(o.id_end),
    commaId: Number(o.comma_token),
    chunkLength: Number(o.chunk_length),
    commaPaddingBacktrack: Number(o.comma_padding_backtrack),
    emphasis: String(o.emphasis) as EmphasisMode,
  };
  // The embedding database the cases were made with, rebuilt from its recorded names, vector counts and ids.
  const index = new EmbeddingIndex<CaseEmbedding>();
  for (const [name, e] of Object.entries((d.embedding_db as Obj).embeddings as Obj)) {
    const emb = e as Obj;
    index.register(emb.name_token_ids as number[], { name, vectors: Number(emb.vectors) });
  }
  const checkLine = (c: Obj, opts: ChunkingOptions): string[] => {
    const r = tokenizeLine(String(c.prompt), tok, opts, index);
    const problems = [...diff('chunks', chunkJson(r.chunks), c.chunks), ...diff('token_count', r.tokenCount, c.token_count)];
    if (c.parsed !== undefined) problems.push(...diff('parsed', r.parsed, c.parsed));
    if (c.fragment_token_ids !== undefined) problems.push(...diff('fragment ids', r.parsed.map(([t]) => tok.encode(t)), c.fragment_token_ids));
    if (c.target_prompt_token_count !== undefined) {
      problems.push(...diff('target count', targetPromptTokenCount(r.tokenCount), c.target_prompt_token_count));
    }
    return problems;
  };
  const cases = sectionGroup('chunking/chunking_cases.json', d, 'cases', file, (c) => String(c.id), (c) => checkLine(c, base));
  const variants = sectionGroup('chunking option_variants', d, 'option_variants', file, (c, i) => `variant-${i} ${short(c.option)}`, (c) => {
    const opt = c.option as Obj;
    const opts: ChunkingOptions = {
      ...base,
      ...(opt.comma_padding_backtrack !== undefined ? { commaPaddingBacktrack: Number(opt.comma_padding_backtrack) } : {}),
      ...(opt.emphasis !== undefined ? { emphasis: String(opt.emphasis) as EmphasisMode } : {}),
    };
    return checkLine(c, opts);
  });
  const batches = sectionGroup('chunking batch_cases', d, 'batch_cases', file, (_c, i) => `batch-${i}`, (c) => {
    const r = processTexts(c.texts as string[], tok, base, index);
    return [...diff('batch_chunks', r.batchChunks.map(chunkJson), c.batch_chunks), ...diff('token_count', r.tokenCount, c.token_count)];
  });
  return [cases, variants, batches];
}

// -------------------------------------------------------------------------------------------- emphasis

/** `chunking/emphasis_cases.json` + `.safetensors`: every mode on every recorded z, bitwise. */
export function* emphasisResults(folder: string): Generator<CaseResult> {
  const d = readJson(join(folder, 'chunking/emphasis_cases.json'));
  if (!Array.isArray(d.cases)) {
    yield { name: 'chunking/emphasis_cases', status: 'skip', detail: 'chunking/emphasis_cases.json has no "cases" section' };
    return;
  }
  const { tensors } = parseSafetensors(readFileSync(join(folder, 'chunking/emphasis_cases.safetensors')));
  const get = (k: string): Float32Array => {
    const t = tensors.get(k);
    if (!t || !(t.data instanceof Float32Array)) {
      throw new DarkroomError('PARITY_MISSING_TENSOR', `chunking/emphasis_cases.safetensors has no float32 tensor ${k}`, { tensor: k });
    }
    return t.data;
  };
  for (const c of d.cases as Obj[]) {
    const key = String(c.key);
    const z = get(`${key}.z`);
    const shape = tensors.get(`${key}.z`)!.shape as [number, number, number];
    const f64 = tensors.get(`${key}.multipliers_f64`);
    const mult = f64 ? Array.from(f64.data as ArrayLike<number>) : Array.from(get(`${key}.multipliers`));
    const checks: [string, Closeness][] = [];
    for (const [mode, suffix] of [['None', 'None'], ['Ignore', 'Ignore'], ['No norm', 'No_norm'], ['Original', 'Original']] as const) {
      const out = applyEmphasis(mode, z, shape, mult);
      checks.push([mode, elementwiseClose(out, get(`${key}.out.${suffix}`), 0, 0)]);
    }
    const failed = checks.filter(([, r]) => !r.ok);
    const maxAbs = Math.max(...checks.map(([, r]) => r.maxAbs));
    const maxRel = Math.max(...checks.map(([, r]) => r.maxRel));
    yield {
      name: `chunking/emphasis_cases ${key} (${String(c.source_case)})`,
      status: failed.length ? 'fail' : 'pass',
      maxAbs,
      maxRel,
      detail: failed.length
        ? failed.map(([m, r]) => `${m}: ${r.failing} off`).join('; ')
        : 'None, Ignore, No norm, Original bitwise exact',
    };
  }
}

