/**
 * The job's textual-inversion database (networks/) is the chunker's lookup (text/); conditioning needs of
 * each match only the vector count, the vectors and the short hash (ConditioningEmbedding).
 */
import type { EmbeddingLookup as ChunkLookup } from '../text/chunking.js';
import type { ConditioningEmbedding } from './types.js';

export function chunkLookup(db: ChunkLookup<ConditioningEmbedding>): ChunkLookup<ConditioningEmbedding> {
  return db;
}
