/**
 * From prompt + negative prompt + steps to the text-encoder work A1111 does (`get_learned_conditioning` for
 * the negative prompts, `get_multicond_learned_conditioning` for the prompts), as plain data:
 *
 * - `calls`: encoder calls in upstream order (negatives first). Each call encodes the schedule texts of ONE
 *   distinct prompt (or AND part) together: `chunkBatches[c][t]` is chunk c of text t (texts with fewer chunks
 *   get empty chunks). Run the encoder on each chunk batch, apply emphasis over that whole (texts, 77, C)
 *   batch, and concatenate the chunks of a text along the token axis to get its conditioning.
 * - `uncond[i]` / `cond[i]`: per batch item, which (call, row) is active until which step; `cond` also
 *   carries the AND weights.
 *
 * Extra-network tags are expected to be removed already (extra-networks.ts). Steps are the schedule steps:
 * sampler steps, times 2 for second-order samplers, as A1111's `total_steps_for_schedules`.
 */
import {
  chunkBatches,
  processTexts,
  type ChunkEmbedding,
  type ChunkingOptions,
  type EmbeddingLookup,
  type FragmentTokenizer,
  type PromptChunk,
} from './chunking.js';
import { getMulticondPromptList } from './prompt-parser.js';
import { getLearnedConditioningPromptSchedules, type ScheduleOptions } from './prompt-schedule.js';

export interface EncoderCall<E extends ChunkEmbedding = ChunkEmbedding> {
  /** The texts encoded together (one per schedule entry of one prompt). */
  readonly texts: string[];
  /** [chunk index][text index]: 77-token chunks, padded with empty chunks to a common count. */
  readonly chunkBatches: PromptChunk<E>[][];
  /** `process_texts` token count (the largest of the texts). */
  readonly tokenCount: number;
}

/** One schedule entry: rows `row` of encoder call `call` is the conditioning while step <= endAtStep. */
export interface ScheduledConditioning {
  readonly endAtStep: number;
  readonly call: number;
  readonly row: number;
}

/** One AND part of a prompt. */
export interface ComposableConditioning {
  readonly weight: number;
  readonly schedule: ScheduledConditioning[];
}

export interface ConditioningPlan<E extends ChunkEmbedding = ChunkEmbedding> {
  readonly calls: EncoderCall<E>[];
  /** Per batch item: the negative prompt's schedule. */
  readonly uncond: ScheduledConditioning[][];
  /** Per batch item: the AND parts of its prompt. */
  readonly cond: ComposableConditioning[][];
}

export interface ConditioningRequest<E extends ChunkEmbedding = ChunkEmbedding> {
  readonly prompts: readonly string[];
  readonly negativePrompts: readonly string[];
  /** Schedule steps (A1111 `total_steps_for_schedules`; for a hires pass, the first pass's steps). */
  readonly steps: number;
  readonly schedule?: ScheduleOptions;
  readonly tokenizer: FragmentTokenizer;
  readonly chunking: ChunkingOptions;
  readonly embeddings?: EmbeddingLookup<E>;
}

/** `get_learned_conditioning(prompts)`: one encoder call per distinct prompt, its schedule texts batched. */
function learnedConditioning<E extends ChunkEmbedding>(
  prompts: readonly string[],
  req: ConditioningRequest<E>,
  calls: EncoderCall<E>[],
): ScheduledConditioning[][] {
  const schedules = getLearnedConditioningPromptSchedules(prompts, req.steps, req.schedule);
  const cache = new Map<string, ScheduledConditioning[]>();
  return prompts.map((prompt, i) => {
    const hit = cache.get(prompt);
    if (hit) return hit;
    const schedule = schedules[i]!;
    const texts = schedule.map(([, text]) => text);
    const { batchChunks, tokenCount } = processTexts(texts, req.tokenizer, req.chunking, req.embeddings);
    const call = calls.length;
    calls.push({ texts, chunkBatches: chunkBatches(batchChunks, req.chunking), tokenCount });
    const res = schedule.map(([endAtStep], row) => ({ endAtStep, call, row }));
    cache.set(prompt, res);
    return res;
  });
}

export function planConditioning<E extends ChunkEmbedding = ChunkEmbedding>(req: ConditioningRequest<E>): ConditioningPlan<E> {
  const calls: EncoderCall<E>[] = [];
  const uncond = learnedConditioning(req.negativePrompts, req, calls);
  const multicond = getMulticondPromptList(req.prompts);
  const flat = learnedConditioning(multicond.promptFlatList, req, calls);
  const cond = multicond.resIndexes.map((parts) => parts.map(({ index, weight }) => ({ weight, schedule: flat[index]! })));
  return { calls, uncond, cond };
}

/** `reconstruct_cond_batch`'s choice: the first entry with step <= endAtStep, else the first entry. */
export function scheduleIndexAt(schedule: readonly { readonly endAtStep: number }[], step: number): number {
  const i = schedule.findIndex((e) => step <= e.endAtStep);
  return i < 0 ? 0 : i;
}
