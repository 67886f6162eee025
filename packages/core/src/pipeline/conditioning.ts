/**
 * Prompts to conditioning as A1111 computes it (prompt_parser.get_learned_conditioning,
 * get_multicond_learned_conditioning, sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords.forward):
 * every distinct (sub-)prompt is expanded to its schedule, and all texts of that schedule are encoded in one
 * batch: 75-token chunks, token embeddings with textual-inversion vectors spliced in, the text encoder at the
 * requested clip skip, and emphasis over the whole chunk batch; chunks are concatenated along tokens.
 */
import { DarkroomError } from '../errors.js';
import { float32, type Float32Tensor } from '../tensor.js';
import {
  chunkBatches,
  fixVectorPositions,
  padAfterFirstEnd,
  processTexts,
  type ChunkingOptions,
  type EmbeddingLookup,
  type EmphasisMode,
  type PromptChunk,
} from '../text/chunking.js';
import { applyEmphasis } from '../text/emphasis.js';
import { blendedPrompts, blendWeightSyntax } from '../text/prompt-blend.js';
import { getMulticondPromptList } from '../text/prompt-parser.js';
import { getLearnedConditioningPromptSchedules, type ScheduleOptions } from '../text/prompt-schedule.js';
import type { MultiCond, ScheduledCond } from './cfg-denoiser.js';
import type { ConditioningEmbedding, PipelineModel, PipelineTokenizer } from './types.js';

/** What one text-encoder call saw and produced (for parity checks and debugging). */
export interface TextCallTrace {
  readonly texts: readonly string[];
  readonly chunks: ReadonlyArray<{
    readonly tokens: readonly (readonly number[])[];
    readonly multipliers: readonly (readonly number[])[];
    readonly fixes: ReadonlyArray<ReadonlyArray<{ offset: number; embedding: string; vectors: number }>>;
    readonly zRaw: Float32Tensor;
    readonly z: Float32Tensor;
  }>;
  readonly out: Float32Tensor;
}

export interface TextContext {
  readonly model: PipelineModel;
  readonly tokenizer: PipelineTokenizer;
  readonly embeddings?: EmbeddingLookup<ConditioningEmbedding>;
  readonly clipSkip: number;
  readonly emphasis: EmphasisMode;
  readonly commaPaddingBacktrack: number;
  /**
   * What the encoder adds to the infotext across calls, in insertion order (A1111's
   * model_hijack.extra_generation_params): "TI hashes" ("name: shorthash, ...") and "Emphasis".
   */
  readonly generationParams: Map<string, string>;
  readonly onTextCall?: (trace: TextCallTrace) => void;
  /** "Prompt Blending": `{a|b}` groups are weighted averages of their alternatives' conditioning. */
  readonly promptBlending?: boolean;
}

function chunkingOptions(ctx: TextContext): ChunkingOptions {
  return {
    bosId: ctx.tokenizer.bosId,
    eosId: ctx.tokenizer.eosId,
    commaId: ctx.tokenizer.commaId,
    commaPaddingBacktrack: ctx.commaPaddingBacktrack,
    emphasis: ctx.emphasis,
  };
}

/** What splicing needs of the text encoder: its token table and the id rows are padded with after EOS. */
export interface TokenTable {
  /** (vocab, D). */
  readonly tokenEmbedding: Float32Tensor;
  readonly padTokenId: number;
}

/** Token embeddings (N,77,D) of a chunk batch, with each fix's vectors in place of its placeholder rows. */
export function spliceTokenEmbeddings(chunks: readonly PromptChunk<ConditioningEmbedding>[], encoder: TokenTable, eosId: number): Float32Tensor {
  const table = encoder.tokenEmbedding;
  const [vocab, width] = table.shape as [number, number];
  const rows = chunks[0]!.tokens.length;
  const out = new Float32Array(chunks.length * rows * width);
  chunks.forEach((chunk, i) => {
    const tokens = padAfterFirstEnd(chunk.tokens, eosId, encoder.padTokenId);
    tokens.forEach((id, r) => {
      if (id < 0 || id >= vocab) throw new DarkroomError('TOKEN_OUT_OF_RANGE', `token id ${id} is outside the model's vocabulary of ${vocab}`);
      out.set(table.data.subarray(id * width, (id + 1) * width), (i * rows + r) * width);
    });
    for (const fix of chunk.fixes) {
      const vec = fix.embedding.vec;
      if (vec.shape[1] !== width) {
        throw new DarkroomError(
          'EMBEDDING_WIDTH_MISMATCH',
          `embedding "${fix.embedding.name}" has width ${vec.shape[1]}, the model's text encoder ${width}`,
          { embedding: fix.embedding.name },
        );
      }
      fixVectorPositions(fix, rows).forEach((row, k) => {
        out.set(vec.data.subarray(k * width, (k + 1) * width), (i * rows + row) * width);
      });
    }
  });
  return float32([chunks.length, rows, width], out);
}

/** A1111's "TI hashes": this call's embeddings in first-use order, then what earlier calls recorded. */
function accumulateTiHashes(ctx: TextContext, used: ReadonlyMap<string, ConditioningEmbedding>): void {
  const hashes: string[] = [];
  for (const [name, e] of used) {
    if (!e.shorthash) continue;
    hashes.push(`${name.replaceAll(':', '').replaceAll(',', '')}: ${e.shorthash}`);
  }
  if (hashes.length === 0) return;
  const earlier = ctx.generationParams.get('TI hashes');
  if (earlier) hashes.push(earlier);
  ctx.generationParams.set('TI hashes', hashes.join(', '));
}

/** FrozenCLIPEmbedderWithCustomWords.forward(texts): (N, 77*chunks, D). */
export async function encodeTexts(texts: readonly string[], ctx: TextContext): Promise<Float32Tensor> {
  const opts = chunkingOptions(ctx);
  const { batchChunks } = processTexts<ConditioningEmbedding>(texts, ctx.tokenizer, opts, ctx.embeddings);
  const batches = chunkBatches(batchChunks, opts);
  const width = ctx.model.textEncoder.width;
  const used = new Map<string, ConditioningEmbedding>();
  const zs: Float32Tensor[] = [];
  const traceChunks: TextCallTrace['chunks'][number][] = [];
  for (const chunks of batches) {
    for (const c of chunks) for (const fix of c.fixes) used.set(fix.embedding.name, fix.embedding);
    const zRaw = await ctx.model.textEncoder.encode(spliceTokenEmbeddings(chunks, ctx.model.textEncoder, ctx.tokenizer.eosId), ctx.clipSkip);
    const shape: [number, number, number] = [chunks.length, zRaw.shape[1]!, width];
    const multipliers = chunks.flatMap((c) => c.multipliers);
    const z = float32(shape, applyEmphasis(ctx.emphasis, zRaw.data, shape, multipliers));
    zs.push(z);
    if (ctx.onTextCall) {
      traceChunks.push({
        tokens: chunks.map((c) => [...c.tokens]),
        multipliers: chunks.map((c) => [...c.multipliers]),
        fixes: chunks.map((c) => c.fixes.map((x) => ({ offset: x.offset, embedding: x.embedding.name, vectors: x.embedding.vectors }))),
        zRaw,
        z,
      });
    }
  }
  accumulateTiHashes(ctx, used);
  if (ctx.emphasis !== 'Original' && texts.some((t) => t.includes('(') || t.includes('['))) {
    ctx.generationParams.set('Emphasis', ctx.emphasis);
  }
  const out = concatTokens(zs);
  ctx.onTextCall?.({ texts, chunks: traceChunks, out });
  return out;
}

/** Concatenates (N,T_i,D) tensors along tokens. */
function concatTokens(parts: readonly Float32Tensor[]): Float32Tensor {
  const [n, , d] = parts[0]!.shape as [number, number, number];
  const total = parts.reduce((s, p) => s + p.shape[1]!, 0);
  const out = new Float32Array(n * total * d);
  for (let i = 0; i < n; i++) {
    let at = 0;
    for (const p of parts) {
      const t = p.shape[1]!;
      out.set(p.data.subarray(i * t * d, (i + 1) * t * d), (i * total + at) * d);
      at += t;
    }
  }
  return float32([n, total, d], out);
}

/**
 * The prompt-blending script's get_learned_conditioning(texts): when some text blends alternatives, every
 * alternative of every text is encoded in one batch (so they share its chunk count, as in one A1111 call) and
 * each text's conditioning is the weighted sum of its alternatives' rows (torch.add(c, cond, alpha=weight) from
 * zeros); otherwise the texts are encoded as they are.
 */
export async function encodeBlendedTexts(texts: readonly string[], ctx: TextContext): Promise<Float32Tensor> {
  if (!ctx.promptBlending) return encodeTexts(texts, ctx);
  const blends = texts.map((t) => blendedPrompts(t));
  const all = blends.flatMap((b) => b.map(([t]) => t));
  if (all.length <= texts.length) return encodeTexts(texts, ctx);
  const conds = await encodeTexts(all, ctx);
  const [, tokens, d] = conds.shape as [number, number, number];
  const per = tokens * d;
  const out = new Float32Array(texts.length * per);
  let at = 0;
  blends.forEach((blend, i) => {
    const c = out.subarray(i * per, (i + 1) * per);
    for (const [, weight] of blend) {
      const w = Math.fround(weight);
      const src = conds.data.subarray(at * per, (at + 1) * per);
      for (let k = 0; k < per; k++) c[k] = c[k]! + Math.fround(w * src[k]!);
      at++;
    }
  });
  return float32([texts.length, tokens, d], out);
}

function row(t: Float32Tensor, i: number): Float32Tensor {
  const [, tokens, d] = t.shape as [number, number, number];
  return float32([tokens, d], t.data.slice(i * tokens * d, (i + 1) * tokens * d));
}

/** prompt_parser.get_learned_conditioning: one schedule of conds per prompt; identical prompts share one. */
export async function learnedConditioning(
  prompts: readonly string[],
  steps: number,
  ctx: TextContext,
  schedule: ScheduleOptions = {},
): Promise<ScheduledCond[][]> {
  // prompt blending reads `{a:2|b}` weights before A1111's parser could take the `:` for prompt editing
  const schedules = getLearnedConditioningPromptSchedules(ctx.promptBlending ? prompts.map(blendWeightSyntax) : prompts, steps, schedule);
  const cache = new Map<string, ScheduledCond[]>();
  const res: ScheduledCond[][] = [];
  for (let i = 0; i < prompts.length; i++) {
    const prompt = prompts[i]!;
    const hit = cache.get(prompt);
    if (hit) {
      res.push(hit);
      continue;
    }
    const entries = schedules[i]!;
    const conds = await encodeBlendedTexts(entries.map(([, text]) => text), ctx);
    const scheduled = entries.map(([endAtStep], k) => ({ endAtStep, cond: row(conds, k) }));
    cache.set(prompt, scheduled);
    res.push(scheduled);
  }
  return res;
}

/** prompt_parser.get_multicond_learned_conditioning: per prompt its AND parts with weights. */
export async function multicondLearnedConditioning(
  prompts: readonly string[],
  steps: number,
  ctx: TextContext,
  schedule: ScheduleOptions = {},
): Promise<MultiCond[]> {
  const { resIndexes, promptFlatList } = getMulticondPromptList(prompts);
  const learned = await learnedConditioning(promptFlatList, steps, ctx, schedule);
  return resIndexes.map((parts) => ({ parts: parts.map((p) => ({ weight: p.weight, schedule: learned[p.index]! })) }));
}
