/**
 * Textual-inversion captions to the text encoder's inputs, as A1111's `cond_stage_model(captions)` prepares them
 * during training: 75-token chunks with emphasis multipliers, the trained vectors spliced in at every occurrence of
 * the embedding's name (`EmbeddingsWithFixes`), and where those vectors sit, so that the gradient of the token
 * embeddings can be summed back onto them.
 */
import { spliceTokenEmbeddings, type TokenTable } from '../pipeline/conditioning.js';
import type { ConditioningEmbedding, PipelineTokenizer } from '../pipeline/types.js';
import { float32, type Float32Tensor } from '../tensor.js';
import { chunkBatches, EmbeddingIndex, fixVectorPositions, processTexts, type ChunkingOptions, type EmphasisMode } from '../text/chunking.js';

export interface TrainedEmbedding {
  readonly name: string;
  /** (vectors, D). */
  readonly vec: Float32Tensor;
}

export interface EmbeddingBatch {
  /** (C*B, 77, D), chunk-major: chunk 0 of every caption, then chunk 1, ... */
  readonly inputsEmbeds: Float32Tensor;
  /** The emphasis weight of every token row, in the same order. */
  readonly multipliers: Float32Array;
  readonly chunks: number;
  /** For each spliced vector: the token row (in inputsEmbeds) and which vector of the embedding it is. */
  readonly placements: ReadonlyArray<{ readonly row: number; readonly vector: number }>;
}

export interface CaptionEncoding {
  readonly tokenizer: PipelineTokenizer;
  readonly table: TokenTable;
  readonly emphasis: EmphasisMode;
  /** A1111's comma_padding_backtrack (default 20). */
  readonly commaPaddingBacktrack: number;
}

export function embeddingBatch(captions: readonly string[], embedding: TrainedEmbedding, enc: CaptionEncoding): EmbeddingBatch {
  const opts: ChunkingOptions = {
    bosId: enc.tokenizer.bosId,
    eosId: enc.tokenizer.eosId,
    commaId: enc.tokenizer.commaId,
    commaPaddingBacktrack: enc.commaPaddingBacktrack,
    emphasis: enc.emphasis,
  };
  const trained: ConditioningEmbedding = { name: embedding.name, vectors: embedding.vec.shape[0]!, vec: embedding.vec, shorthash: '' };
  const index = new EmbeddingIndex<ConditioningEmbedding>();
  index.register(enc.tokenizer.encode(embedding.name), trained);
  const { batchChunks } = processTexts<ConditioningEmbedding>(captions, enc.tokenizer, opts, index);
  const batches = chunkBatches(batchChunks, opts);
  const parts = batches.map((chunks) => spliceTokenEmbeddings(chunks, enc.table, enc.tokenizer.eosId));
  const [, rows, width] = parts[0]!.shape as [number, number, number];
  const inputs = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let at = 0;
  for (const p of parts) {
    inputs.set(p.data, at);
    at += p.data.length;
  }
  const multipliers = Float32Array.from(batches.flatMap((chunks) => chunks.flatMap((c) => c.multipliers)));
  const placements: { row: number; vector: number }[] = [];
  batches.forEach((chunks, c) => {
    chunks.forEach((chunk, i) => {
      for (const fix of chunk.fixes) {
        if (fix.embedding !== trained) continue;
        fixVectorPositions(fix, rows).forEach((row, k) => placements.push({ row: (c * chunks.length + i) * rows + row, vector: k }));
      }
    });
  });
  return { inputsEmbeds: float32([batches.length * captions.length, rows, width], inputs), multipliers, chunks: batches.length, placements };
}

/** d loss / d vectors: the token-embedding gradient summed over every row a vector was spliced into. */
export function vectorGradient(gradInputsEmbeds: Float32Tensor, batch: EmbeddingBatch, vectors: number): Float32Array {
  const width = gradInputsEmbeds.shape[2]!;
  const out = new Float32Array(vectors * width);
  for (const { row, vector } of batch.placements) {
    const src = row * width;
    const dst = vector * width;
    for (let k = 0; k < width; k++) out[dst + k] = out[dst + k]! + gradInputsEmbeds.data[src + k]!;
  }
  return out;
}
