/**
 * Chunk sizes for the memory-lean attention forms, decided at build time from the token counts and a memory
 * target, so every chunk has a static shape. The target bounds the float32 score blocks of one chunk and the
 * tensors derived from them that are alive at the same time (the softmax or exp output beside the scores).
 */
import { DarkroomError } from '../errors.js';

export interface ScoreShape {
  readonly batch: number;
  readonly heads: number;
  /** Query tokens (S). */
  readonly queries: number;
  /** Key tokens (L). */
  readonly keys: number;
}

/** Scores are float32 whatever the compute dtype (the softmax runs in float32). */
const SCORE_BYTES = 4;
/** Split: the scores and their softmax. */
const SPLIT_LIVE_COPIES = 2;
/** Sub-quadratic: the scores, scores minus their max, and the exponentials. */
const SUBQUAD_LIVE_COPIES = 3;
/** A1111's default query chunk for sub-quadratic attention: large enough to keep the matmuls efficient. */
export const SUBQUAD_QUERY_CHUNK = 1024;

function checkTarget(targetBytes: number): void {
  if (!Number.isFinite(targetBytes) || targetBytes <= 0) {
    throw new DarkroomError('GRAPH_ATTENTION_TARGET', `the attention memory target must be a positive number of bytes, got ${targetBytes}`);
  }
}

/** Bytes of the float32 score matrix of `rows` queries against `cols` keys, every batch entry and head. */
export function scoreBlockBytes(shape: ScoreShape, rows: number, cols: number): number {
  return shape.batch * shape.heads * rows * cols * SCORE_BYTES;
}

/**
 * The largest whole score tensor (every batch entry and head) that needs no chunking under the target: the scores
 * and their softmax live together, so half of it.
 */
export function wholeScoresUpTo(targetBytes: number): number {
  checkTarget(targetBytes);
  return targetBytes / SPLIT_LIVE_COPIES;
}

/** Sizes of consecutive chunks covering `n` in `count` nearly equal parts (larger ones first). */
export function evenChunks(n: number, count: number): number[] {
  const parts = Math.max(1, Math.min(n, count));
  const base = Math.floor(n / parts);
  const extra = n % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * Query slices for split attention: as few slices as keep one slice's scores (every key, all heads) within
 * the target. A slice is at least one query, so a target below one row of scores still makes a graph.
 */
export function planSplit(shape: ScoreShape, targetBytes: number): number[] {
  checkTarget(targetBytes);
  const rowBytes = scoreBlockBytes(shape, 1, shape.keys) * SPLIT_LIVE_COPIES;
  const rows = Math.max(1, Math.floor(targetBytes / rowBytes));
  return evenChunks(shape.queries, Math.ceil(shape.queries / rows));
}

/**
 * Query and key chunks for sub-quadratic attention: queries in chunks of A1111's default size (fewer when the
 * sequence is shorter), keys in as few chunks as keep one block's scores within the target; when even one key
 * per block would not fit, the query chunk shrinks instead.
 */
export function planSubQuad(shape: ScoreShape, targetBytes: number): { queries: number[]; keys: number[] } {
  checkTarget(targetBytes);
  const cellBytes = scoreBlockBytes(shape, 1, 1) * SUBQUAD_LIVE_COPIES;
  const cells = Math.max(1, Math.floor(targetBytes / cellBytes));
  if (scoreBlockBytes(shape, shape.queries, shape.keys) * SUBQUAD_LIVE_COPIES <= targetBytes) {
    return { queries: [shape.queries], keys: [shape.keys] };
  }
  const queryChunk = Math.max(1, Math.min(shape.queries, SUBQUAD_QUERY_CHUNK, cells));
  const queries = evenChunks(shape.queries, Math.ceil(shape.queries / queryChunk));
  const keyChunk = Math.max(1, Math.min(shape.keys, Math.floor(cells / queries[0]!)));
  return { queries, keys: evenChunks(shape.keys, Math.ceil(shape.keys / keyChunk)) };
}
