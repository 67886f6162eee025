/**
 * The job's textual-inversion database (networks/) seen through the chunker's lookup interface (text/):
 * the chunker wants the vector count as a number, conditioning wants the vectors and the short hash.
 */
import type { EmbeddingLookup as ChunkLookup, EmbeddingMatch } from '../text/chunking.js';
import type { EmbeddingLookup as DatabaseLookup } from '../networks/embeddings/database.js';
import type { Embedding } from '../networks/embeddings/embedding.js';
import type { ConditioningEmbedding } from './types.js';

export function conditioningEmbedding(e: Embedding): ConditioningEmbedding {
  return { name: e.name, vectors: e.vectorCount, data: e.vectors, shorthash: e.shorthash };
}

export function chunkLookup(db: DatabaseLookup): ChunkLookup<ConditioningEmbedding> {
  const adapted = new WeakMap<Embedding, ConditioningEmbedding>();
  return {
    findEmbeddingAtPosition(tokens, offset): EmbeddingMatch<ConditioningEmbedding> | undefined {
      const m = db.findEmbeddingAtPosition(tokens, offset);
      if (!m) return undefined;
      let e = adapted.get(m.embedding);
      if (!e) {
        e = conditioningEmbedding(m.embedding);
        adapted.set(m.embedding, e);
      }
      return { embedding: e, lengthInTokens: m.tokenCount };
    },
  };
}
