/**
 * A new embedding as A1111's `create_embedding` makes it: vectors copied from the token embeddings of an init
 * text, each init token spread over about n/k consecutive vectors; an empty init text gives zeros.
 */
import { DarkroomError } from '../../errors.js';
import { float32, type Float32Tensor } from '../../tensor.js';
import type { Embedding } from './embedding.js';
import type { TokenEncoder } from './database.js';
import { sanitizeNetworkName } from '../names.js';

export interface CreateEmbeddingOptions {
  readonly name: string;
  readonly vectors: number;
  /** A1111's default is '*'. */
  readonly initText: string;
  readonly tokenizer: TokenEncoder;
  /** The text encoder's token embedding matrix, (vocab, width). */
  readonly tokenEmbeddings: Float32Tensor;
  /** SD1 (the transformers tokenizer) keeps at most `vectors` init tokens; SD2's OpenCLIP path does not. */
  readonly truncateInitTokens?: boolean;
}

export function createEmbedding(opts: CreateEmbeddingOptions): Embedding {
  const { vectors: n, tokenEmbeddings: table } = opts;
  if (!Number.isInteger(n) || n < 1) {
    throw new DarkroomError('EMBEDDING_BAD_VECTOR_COUNT', `vectors per token must be a positive integer, got ${n}`);
  }
  const width = table.shape[1]!;
  let ids = opts.tokenizer.encode(opts.initText || '*');
  if (opts.truncateInitTokens ?? true) ids = ids.slice(0, n);
  if (ids.length === 0) {
    throw new DarkroomError('EMBEDDING_BAD_INIT_TEXT', `init text "${opts.initText}" has no tokens to start the embedding from`);
  }
  const vec = new Float32Array(n * width);
  if (opts.initText) {
    const k = ids.length;
    for (let i = 0; i < n; i++) {
      const id = ids[Math.floor((i * k) / n)]!;
      if (id < 0 || id >= table.shape[0]!) throw new DarkroomError('EMBEDDING_BAD_INIT_TEXT', `token id ${id} is outside the vocabulary`);
      vec.set(table.data.subarray(id * width, (id + 1) * width), i * width);
    }
  }
  const name = sanitizeNetworkName(opts.name);
  return {
    name,
    vec: float32([n, width], vec),
    vectors: n,
    width,
    step: 0,
    sdCheckpoint: null,
    sdCheckpointName: null,
    filename: `${name}.pt`,
    hash: '',
    shorthash: '',
  };
}
