/**
 * Text-side parity against A1111's own outputs (oracle/text): vocabulary, tokenizer, prompt parser (attention,
 * every recorded schedule variant, AND lists, pipeline sub-prompts, batches, the recorded errors), chunking and
 * emphasis (text-chunking.ts) and infotext (text-infotext.ts). Every comparison is exact, emphasis included
 * (bitwise float32: the means follow torch's CPU summation order).
 *
 * Output: one summary line per case list with its count; every failing case also gets its own line. A group
 * (sub-folder, file or JSON section) the folder lacks is one skipped line; the others are still checked.
 * The ti/, hypernetworks/ and hostile/ folders belong to the networks suite.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDarkroomError } from '../src/errors.js';
import { HF_VOCABULARY_FILES, vocabularyFromHuggingFace, vocabularyFromOpenAiGz } from '../src/text/bpe-vocab.js';
import {
  getLearnedConditioningPromptSchedules,
  getMulticondPromptList,
  parsePromptAttention,
  type ScheduleOptions,
} from '../src/text/prompt-parser.js';
import { ClipTokenizer } from '../src/text/tokenizer.js';
import { runGroups, type GroupSpec } from './groups.js';
import type { CaseResult } from './report.js';
import type { Suite } from './suites.js';
import { chunkingGroups, emphasisResults } from './text-chunking.js';
import { diff, readJson, report, same, sectionGroup, short, type Group, type Json, type Obj } from './text-cases.js';
import { infotextCreateGroup, infotextParseGroups } from './text-infotext.js';

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

// ------------------------------------------------------------------------------------------ vocabulary

function vocabGroup(folder: string): Group {
  const dir = join(folder, 'vocab');
  const hf = vocabularyFromHuggingFace(readFileSync(join(dir, HF_VOCABULARY_FILES.encoder), 'utf-8'), readFileSync(join(dir, HF_VOCABULARY_FILES.merges), 'utf-8'));
  const gz = vocabularyFromOpenAiGz(readFileSync(join(dir, 'bpe_simple_vocab_16e6.txt.gz')));
  const problems: string[] = [];
  // The size the folder states for its vocabulary (vocab_meta.json), where it states one.
  const meta = existsSync(join(dir, 'vocab_meta.json')) ? readJson(join(dir, 'vocab_meta.json')) : {};
  if (typeof meta.vocab_size === 'number' && hf.encoder.size !== meta.vocab_size) {
    problems.push(`vocab.json has ${hf.encoder.size} entries, vocab_meta.json says ${meta.vocab_size}`);
  }
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
  const file = 'tokenizer/tokenizer_cases.json';
  return sectionGroup(file, readJson(join(folder, file)), 'cases', file, (c) => String(c.id), (c) => [
    ...diff('ids', tok.encode(String(c.text)), c.hf_ids),
    ...diff('tokens', tok.tokenize(String(c.text)), c.hf_tokens),
    ...diff('openai ids', tok.encodeOpenAi(String(c.text)), c.openai_ids),
  ]);
}

// --------------------------------------------------------------------------------------- prompt parser

/**
 * A schedule variant as the prompt-parser file names it (its `formats.schedule_variants`): `steps<N>`, then
 * `_hires<M>` for a hires pass of M steps, then `_old` for use_old_scheduling.
 */
function scheduleVariant(key: string): [number, ScheduleOptions] | undefined {
  const m = /^steps(\d+)(?:_hires(\d+))?(_old)?$/.exec(key);
  if (!m) return undefined;
  return [Number(m[1]), { ...(m[2] ? { hiresSteps: Number(m[2]) } : {}), ...(m[3] ? { useOldScheduling: true } : {}) }];
}

/** Checks every recorded variant of a schedules object against `run(steps, opts)`. */
function checkVariants(label: string, recordedByVariant: Json | undefined, run: (steps: number, opts: ScheduleOptions) => unknown, problems: string[]): void {
  for (const [key, want] of Object.entries((recordedByVariant ?? {}) as Obj)) {
    const variant = scheduleVariant(key);
    if (!variant) {
      problems.push(`${label} ${key}: not a schedule variant this suite can read`);
      continue;
    }
    const got = recorded(() => run(...variant));
    if (!sameRecorded(got, want)) problems.push(`${label} ${key}: got ${short(got)} want ${short(want)}`);
  }
}

function multicondJson(prompts: string[]): Json {
  const m = getMulticondPromptList(prompts);
  return {
    res_indexes: m.resIndexes.map((parts) => parts.map((p) => [p.index, p.weight])),
    prompt_flat_list: m.promptFlatList,
    prompt_indexes: Object.fromEntries(m.promptIndexes),
  };
}

function promptParserGroups(folder: string): Group[] {
  const file = 'prompt_parser/prompt_parser_cases.json';
  const d = readJson(join(folder, file));
  const cases = sectionGroup(file, d, 'cases', file, (c) => String(c.id), (c) => {
    const p = String(c.prompt);
    const problems: string[] = [];
    const check = (what: string, got: Json, want: Json): void => {
      if (!sameRecorded(got, want)) problems.push(`${what}: got ${short(got)} want ${short(want)}`);
    };
    check('attention', recorded(() => parsePromptAttention(p)), c.parse_prompt_attention!);
    checkVariants('schedule', c.schedules, (steps, opts) => getLearnedConditioningPromptSchedules([p], steps, opts)[0], problems);
    check('multicond', recorded(() => multicondJson([p])), c.multicond!);
    const flat = (): string[] => getMulticondPromptList([p]).promptFlatList;
    checkVariants('subprompt', c.pipeline_subprompt_schedules, (steps, opts) => getLearnedConditioningPromptSchedules(flat(), steps, opts), problems);
    const attn = c.pipeline_subprompt_attention as Json[];
    const flatList = flat();
    if (attn.length !== flatList.length) problems.push(`subprompt attention: ${flatList.length} parts, want ${attn.length}`);
    flatList.forEach((text, i) => check(`subprompt attention ${i}`, recorded(() => parsePromptAttention(text)), attn[i]!));
    return problems;
  });
  const batches = sectionGroup('prompt_parser batch_cases', d, 'batch_cases', file, (_c, i) => `batch-${i}`, (c) => {
    const prompts = c.prompts as string[];
    const problems: string[] = [];
    const m = recorded(() => multicondJson(prompts));
    if (!sameRecorded(m, c.multicond!)) problems.push(`multicond: got ${short(m)}`);
    // Batch schedules are recorded as schedules_<variant>.
    const schedules = Object.fromEntries(
      Object.entries(c)
        .filter(([k]) => k.startsWith('schedules_'))
        .map(([k, v]) => [k.slice('schedules_'.length), v]),
    );
    checkVariants('schedules', schedules, (steps, opts) => getLearnedConditioningPromptSchedules(prompts, steps, opts), problems);
    return problems;
  });
  return [cases, batches];
}

// ------------------------------------------------------------------------------------------------ suite

const VOCAB = ['vocab/vocab.json', 'vocab/merges.txt'];

function groupsOf(folder: string): GroupSpec[] {
  let tok: ClipTokenizer | undefined;
  const tokenizer = (): ClipTokenizer => (tok ??= ClipTokenizer.fromDirectory(join(folder, 'vocab')));
  return [
    { name: 'vocab', needs: [...VOCAB, 'vocab/bpe_simple_vocab_16e6.txt.gz'], run: () => report(vocabGroup(folder)) },
    { name: 'tokenizer', needs: [...VOCAB, 'tokenizer/tokenizer_cases.json'], run: () => report(tokenizerGroup(folder, tokenizer())) },
    { name: 'prompt_parser', needs: ['prompt_parser/prompt_parser_cases.json'], run: () => promptParserGroups(folder).flatMap((g) => [...report(g)]) },
    { name: 'chunking', needs: [...VOCAB, 'chunking/chunking_cases.json'], run: () => chunkingGroups(folder, tokenizer()).flatMap((g) => [...report(g)]) },
    { name: 'chunking/emphasis', needs: ['chunking/emphasis_cases.json', 'chunking/emphasis_cases.safetensors'], run: () => emphasisResults(folder) },
    { name: 'infotext', needs: ['infotext/infotext_cases.json'], run: () => infotextParseGroups(folder).flatMap((g) => [...report(g)]) },
    { name: 'infotext/create', needs: ['infotext/create_infotext_cases.json'], run: () => report(infotextCreateGroup(folder)) },
  ];
}

export const suite: Suite = {
  name: 'text',
  under: 'text',
  marker: 'MANIFEST.json',
  run(folder: string): AsyncIterable<CaseResult> {
    return runGroups(folder, groupsOf(folder));
  },
};
