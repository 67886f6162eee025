/**
 * Text-side parity against A1111's own outputs (oracle/text): vocabulary, tokenizer, prompt parser (attention,
 * schedules at 20/30 steps, hires and old-timeline variants, AND lists, pipeline sub-prompts, batches, the
 * recorded errors), chunking (tokens, multipliers, TI fixes, token counts, option variants, batches), emphasis
 * and infotext (parse, write, read back). Every comparison is exact, emphasis included (bitwise float32: the
 * means follow torch's CPU summation order).
 *
 * Output: one summary line per case file with its count; every failing case also gets its own line.
 * The ti/, hypernetworks/ and hostile/ folders belong to the networks suite.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSafetensors } from '../src/formats/safetensors.js';
import {
  createInfotext,
  parseGenerationParameters,
  parseStylesCsv,
  pyFloat,
  quoteInfotextValue,
  unquoteInfotextValue,
  type InfotextFields,
  type InfotextValue,
} from '../src/formats/infotext.js';
import { vocabularyFromHuggingFace, vocabularyFromOpenAiGz } from '../src/text/bpe-vocab.js';
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
import {
  getLearnedConditioningPromptSchedules,
  getMulticondPromptList,
  parsePromptAttention,
  type ScheduleOptions,
} from '../src/text/prompt-parser.js';
import { ClipTokenizer } from '../src/text/tokenizer.js';
import { isDarkroomError } from '../src/errors.js';
import { elementwiseClose, type CaseResult } from './report.js';
import type { Suite } from './suites.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const readJson = (path: string): Obj => JSON.parse(readFileSync(path, 'utf-8')) as Obj;
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const short = (x: unknown): string => {
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 160 ? s.slice(0, 157) + '...' : s;
};

/** Runs `fn` the way the oracle recorded Python calls: {ok, value} or {ok: false, error_type, error}. */
function recorded(fn: () => unknown): Json {
  try {
    return { ok: true, value: fn() as Json };
  } catch (e) {
    if (isDarkroomError(e)) return { ok: false, error_type: String(e.details.pythonType ?? e.code), error: e.message };
    throw e;
  }
}

/** Compares against a recorded {ok, value} / {ok: false, error_type, error}. */
function sameRecorded(actual: Json, expected: Json): boolean {
  const a = actual as Obj;
  const e = expected as Obj;
  if (e.ok === false) return a.ok === false && a.error_type === e.error_type && a.error === e.error;
  return a.ok === true && same(a.value, e.value);
}

interface Group {
  readonly label: string;
  readonly total: number;
  readonly failures: CaseResult[];
}

function* report(g: Group): Generator<CaseResult> {
  yield* g.failures;
  const ok = g.failures.length === 0;
  yield {
    name: g.label,
    status: ok ? 'pass' : 'fail',
    maxAbs: 0,
    maxRel: 0,
    detail: ok ? `${g.total} cases exact` : `${g.failures.length} of ${g.total} cases differ`,
  };
}

/** Collects per-case mismatches: check() returns a list of "what: got vs want" strings. */
function group(label: string, cases: readonly Obj[], name: (c: Obj, i: number) => string, check: (c: Obj) => string[]): Group {
  const failures: CaseResult[] = [];
  cases.forEach((c, i) => {
    let problems: string[];
    try {
      problems = check(c);
    } catch (e) {
      problems = [`threw ${e instanceof Error ? e.message : String(e)}`];
    }
    if (problems.length) failures.push({ name: `${label}/${name(c, i)}`, status: 'fail', detail: problems.join('; ') });
  });
  return { label, total: cases.length, failures };
}

function diff(what: string, got: unknown, want: unknown): string[] {
  return same(got, want) ? [] : [`${what}: got ${short(got)} want ${short(want)}`];
}

// ------------------------------------------------------------------------------------------ vocabulary

function vocabGroup(folder: string): Group {
  const dir = join(folder, 'vocab');
  const hf = vocabularyFromHuggingFace(readFileSync(join(dir, 'vocab.json'), 'utf-8'), readFileSync(join(dir, 'merges.txt'), 'utf-8'));
  const gz = vocabularyFromOpenAiGz(readFileSync(join(dir, 'bpe_simple_vocab_16e6.txt.gz')));
  const problems: string[] = [];
  if (hf.encoder.size !== 49408) problems.push(`vocab.json has ${hf.encoder.size} entries, want 49408`);
  if (gz.encoder.size !== hf.encoder.size) problems.push(`gz vocabulary has ${gz.encoder.size} entries`);
  for (const [t, id] of hf.encoder) if (gz.encoder.get(t) !== id) problems.push(`token ${JSON.stringify(t)}: gz id ${gz.encoder.get(t)} vs ${id}`);
  if (!same(gz.merges, hf.merges)) problems.push('merges differ between gz and merges.txt');
  return {
    label: 'vocab (gz-derived vs vocab.json+merges.txt)',
    total: 1,
    failures: problems.length ? [{ name: 'vocab/derivation', status: 'fail', detail: problems.slice(0, 5).join('; ') }] : [],
  };
}

// ------------------------------------------------------------------------------------------- tokenizer

function tokenizerGroup(folder: string, tok: ClipTokenizer): Group {
  const d = readJson(join(folder, 'tokenizer/tokenizer_cases.json'));
  return group('tokenizer/tokenizer_cases.json', d.cases as Obj[], (c) => String(c.id), (c) => [
    ...diff('ids', tok.encode(String(c.text)), c.hf_ids),
    ...diff('tokens', tok.tokenize(String(c.text)), c.hf_tokens),
    ...diff('openai ids', tok.encodeOpenAi(String(c.text)), c.openai_ids),
  ]);
}

// --------------------------------------------------------------------------------------- prompt parser

const SCHEDULE_VARIANTS: Record<string, [number, ScheduleOptions]> = {
  steps20: [20, {}],
  steps30: [30, {}],
  steps20_hires10: [20, { hiresSteps: 10 }],
  steps30_hires15: [30, { hiresSteps: 15 }],
  steps20_old: [20, { useOldScheduling: true }],
  steps20_hires10_old: [20, { hiresSteps: 10, useOldScheduling: true }],
};

function multicondJson(prompts: string[]): Json {
  const m = getMulticondPromptList(prompts);
  return {
    res_indexes: m.resIndexes.map((parts) => parts.map((p) => [p.index, p.weight])),
    prompt_flat_list: m.promptFlatList,
    prompt_indexes: Object.fromEntries(m.promptIndexes),
  };
}

function promptParserGroups(folder: string): Group[] {
  const d = readJson(join(folder, 'prompt_parser/prompt_parser_cases.json'));
  const cases = group('prompt_parser/prompt_parser_cases.json', d.cases as Obj[], (c) => String(c.id), (c) => {
    const p = String(c.prompt);
    const problems: string[] = [];
    const check = (what: string, got: Json, want: Json): void => {
      if (!sameRecorded(got, want)) problems.push(`${what}: got ${short(got)} want ${short(want)}`);
    };
    check('attention', recorded(() => parsePromptAttention(p)), c.parse_prompt_attention!);
    const schedules = c.schedules as Obj;
    for (const [k, [steps, opts]] of Object.entries(SCHEDULE_VARIANTS)) {
      check(`schedule ${k}`, recorded(() => getLearnedConditioningPromptSchedules([p], steps, opts)[0]), schedules[k]!);
    }
    check('multicond', recorded(() => multicondJson([p])), c.multicond!);
    const sub = c.pipeline_subprompt_schedules as Obj;
    const flat = (): string[] => getMulticondPromptList([p]).promptFlatList;
    check('subprompt steps20', recorded(() => getLearnedConditioningPromptSchedules(flat(), 20)), sub.steps20!);
    check('subprompt steps20_hires10', recorded(() => getLearnedConditioningPromptSchedules(flat(), 20, { hiresSteps: 10 })), sub.steps20_hires10!);
    const attn = c.pipeline_subprompt_attention as Json[];
    const flatList = flat();
    if (attn.length !== flatList.length) problems.push(`subprompt attention: ${flatList.length} parts, want ${attn.length}`);
    flatList.forEach((text, i) => check(`subprompt attention ${i}`, recorded(() => parsePromptAttention(text)), attn[i]!));
    return problems;
  });
  const batches = group('prompt_parser batch_cases', d.batch_cases as Obj[], (_c, i) => `batch-${i}`, (c) => {
    const prompts = c.prompts as string[];
    const problems: string[] = [];
    const m = recorded(() => multicondJson(prompts));
    if (!sameRecorded(m, c.multicond!)) problems.push(`multicond: got ${short(m)}`);
    const s = recorded(() => getLearnedConditioningPromptSchedules(prompts, 20));
    if (!sameRecorded(s, c.schedules_steps20!)) problems.push(`schedules: got ${short(s)}`);
    return problems;
  });
  return [cases, batches];
}

// -------------------------------------------------------------------------------------------- chunking

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

function chunkingGroups(folder: string, tok: ClipTokenizer): Group[] {
  const d = readJson(join(folder, 'chunking/chunking_cases.json'));
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
  const cases = group('chunking/chunking_cases.json', d.cases as Obj[], (c) => String(c.id), (c) => checkLine(c, base));
  const variants = group('chunking option_variants', d.option_variants as Obj[], (c, i) => `variant-${i} ${short(c.option)}`, (c) => {
    const opt = c.option as Obj;
    const opts: ChunkingOptions = {
      ...base,
      ...(opt.comma_padding_backtrack !== undefined ? { commaPaddingBacktrack: Number(opt.comma_padding_backtrack) } : {}),
      ...(opt.emphasis !== undefined ? { emphasis: String(opt.emphasis) as EmphasisMode } : {}),
    };
    return checkLine(c, opts);
  });
  const batches = group('chunking batch_cases', d.batch_cases as Obj[], (_c, i) => `batch-${i}`, (c) => {
    const r = processTexts(c.texts as string[], tok, base, index);
    return [...diff('batch_chunks', r.batchChunks.map(chunkJson), c.batch_chunks), ...diff('token_count', r.tokenCount, c.token_count)];
  });
  return [cases, variants, batches];
}

// -------------------------------------------------------------------------------------------- emphasis

function* emphasisResults(folder: string): Generator<CaseResult> {
  const d = readJson(join(folder, 'chunking/emphasis_cases.json'));
  const { tensors } = parseSafetensors(readFileSync(join(folder, 'chunking/emphasis_cases.safetensors')));
  const get = (k: string): Float32Array => {
    const t = tensors.get(k);
    if (!t || !(t.data instanceof Float32Array)) throw new Error(`missing float32 tensor ${k}`);
    return t.data;
  };
  for (const c of d.cases as Obj[]) {
    const key = String(c.key);
    const zT = tensors.get(`${key}.z`)!;
    const shape = zT.shape as [number, number, number];
    const z = get(`${key}.z`);
    const f64 = tensors.get(`${key}.multipliers_f64`);
    const mult = f64 ? Array.from(f64.data as ArrayLike<number>) : Array.from(get(`${key}.multipliers`));
    const checks: [string, ReturnType<typeof elementwiseClose>][] = [];
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

// -------------------------------------------------------------------------------------------- infotext

function parsedJson(text: string, opts: Parameters<typeof parseGenerationParameters>[1] = {}): Json {
  return Object.fromEntries(parseGenerationParameters(text, opts)) as Json;
}

/** Parses the Python literals the create_infotext cases carry (`{'k': 0.55}`, `['a']`): str, int, float, bool, None. */
function parsePythonLiteral(src: string): unknown {
  let i = 0;
  const ws = (): void => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  const value = (): unknown => {
    ws();
    const c = src[i]!;
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      const items: unknown[] = [];
      const entries: [string, unknown][] = [];
      ws();
      while (src[i] !== close) {
        const v = value();
        ws();
        if (c === '{') {
          i++; // ':'
          entries.push([String(v), value()]);
        } else items.push(v);
        ws();
        if (src[i] === ',') i++;
        ws();
      }
      i++;
      return c === '{' ? entries : items;
    }
    if (c === "'" || c === '"') {
      i++;
      let s = '';
      while (src[i] !== c) {
        if (src[i] === '\\') {
          const n = src[i + 1]!;
          s += n === 'n' ? '\n' : n === 't' ? '\t' : n === 'r' ? '\r' : n;
          i += 2;
        } else s += src[i++];
      }
      i++;
      return s;
    }
    const m = /^(True|False|None|[-+]?\d+\.\d*(?:e[-+]?\d+)?|[-+]?\d+)/.exec(src.slice(i))!;
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return m[0].includes('.') ? pyFloat(Number(m[0])) : Number(m[0]);
  };
  return value();
}

function infotextFieldsFromCase(c: Obj, defaults: Obj): InfotextFields {
  const p = c.p as Obj;
  const o = { ...defaults, ...(c.options_changed as Obj) };
  const negs = parsePythonLiteral(String(p.all_negative_prompts)) as string[];
  const seeds = parsePythonLiteral(String(p.all_seeds)) as number[];
  const subseeds = parsePythonLiteral(String(p.all_subseeds)) as number[];
  const extra = parsePythonLiteral(String(p.extra_generation_params)) as [string, InfotextValue][];
  const strength = Number(p.subseed_strength);
  const ensd = Number(o.eta_noise_seed_delta);
  return {
    prompt: (c.all_prompts as string[])[0]!,
    negativePrompt: negs[0]!,
    steps: Number(p.steps),
    sampler: String(p.sampler_name),
    scheduleType: String(p.scheduler),
    cfgScale: pyFloat(Number(p.cfg_scale)),
    seed: seeds[0]!,
    width: Number(p.width),
    height: Number(p.height),
    modelHash: o.add_model_hash_to_info ? (p.sd_model_hash as string | null) : null,
    model: o.add_model_name_to_info ? (p.sd_model_name as string | null) : null,
    vaeHash: o.add_vae_hash_to_info ? (p.sd_vae_hash as string | null) : null,
    vae: o.add_vae_name_to_info ? (p.sd_vae_name as string | null) : null,
    variationSeed: subseeds[0]!,
    variationSeedStrength: strength === 0 ? 0 : pyFloat(strength),
    seedResizeFrom: [Number(p.seed_resize_from_w), Number(p.seed_resize_from_h)],
    clipSkip: p.clip_skip !== undefined ? Number(p.clip_skip) : Number(o.CLIP_stop_at_last_layers),
    // The generator's stub: every sampler but DDIM uses eta noise.
    ensd: ensd !== 0 && p.sampler_name !== 'DDIM' ? ensd : null,
    rng: String(o.randn_source),
    tiling: Boolean(p.tiling),
    extra,
    version: o.add_version_to_infotext ? 'v1.10.1' : null,
    user: (p.user as string | null) ?? null,
  };
}

function infotextGroups(folder: string): Group[] {
  const d = readJson(join(folder, 'infotext/infotext_cases.json'));
  const parse = group('infotext/infotext_cases.json', d.cases as Obj[], (c) => `${String(c.id)} ${String(c.category)}`, (c) =>
    diff('parsed', parsedJson(String(c.infotext)), c.result),
  );
  const styles = parseStylesCsv(String(d.styles_csv));
  const styleCases = group('infotext style_cases', d.style_cases as Obj[], (c) => `${String(c.id)} ${String(c.category)}`, (c) =>
    diff('parsed', parsedJson(String(c.infotext), { styles }), c.result),
  );
  const skip = group('infotext skip_fields_cases', d.skip_fields_cases as Obj[], (c) => String(c.id), (c) =>
    diff('parsed', parsedJson(String(c.infotext), { skipFields: c.skip_fields as string[] }), c.result),
  );
  const quote = group('infotext quote_cases', d.quote_cases as Obj[], (c) => short(c.input), (c) =>
    diff('quote', quoteInfotextValue(String(c.input)), c.quote),
  );
  const unquote = group('infotext unquote_cases', d.unquote_cases as Obj[], (c) => short(c.input), (c) =>
    diff('unquote', unquoteInfotextValue(String(c.input)), c.unquote),
  );
  const w = readJson(join(folder, 'infotext/create_infotext_cases.json'));
  const create = group('infotext/create_infotext_cases.json (write + read back)', w.cases as Obj[], (c) => String(c.name), (c) => {
    const text = createInfotext(infotextFieldsFromCase(c, w.options_default as Obj));
    return [
      ...diff('written', text, c.infotext),
      ...diff('read back (ours)', parsedJson(text), c.parsed_back),
      ...diff('read back (A1111 text)', parsedJson(String(c.infotext)), c.parsed_back),
    ];
  });
  return [parse, styleCases, skip, quote, unquote, create];
}

export const suite: Suite = {
  name: 'text',
  under: 'text',
  marker: 'MANIFEST.json',
  async *run(folder: string) {
    yield* report(vocabGroup(folder));
    const tok = ClipTokenizer.fromDirectory(join(folder, 'vocab'));
    yield* report(tokenizerGroup(folder, tok));
    for (const g of promptParserGroups(folder)) yield* report(g);
    for (const g of chunkingGroups(folder, tok)) yield* report(g);
    yield* emphasisResults(folder);
    for (const g of infotextGroups(folder)) yield* report(g);
  },
};
