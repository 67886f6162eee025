/**
 * A1111 `sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords.tokenize_line` / `process_texts`: 75-token chunks
 * wrapped in BOS/EOS, per-token multipliers, BREAK, comma backtracking and textual-inversion placement.
 */
import { isBreakMarker, parsePromptAttention, type AttentionFragment } from './prompt-attention.js';

/** What chunking needs to know of an embedding. */
export interface ChunkEmbedding {
  readonly name: string;
  /** Number of token slots the embedding occupies. */
  readonly vectors: number;
}

/** Result of a lookup: the embedding and how many prompt tokens its name spans. */
export interface EmbeddingMatch<E extends ChunkEmbedding = ChunkEmbedding> {
  readonly embedding: E;
  readonly lengthInTokens: number;
}

/** A1111 `EmbeddingDatabase.find_embedding_at_position`: the longest registered name starting at `offset`. */
export interface EmbeddingLookup<E extends ChunkEmbedding = ChunkEmbedding> {
  findEmbeddingAtPosition(tokens: readonly number[], offset: number): EmbeddingMatch<E> | undefined;
}

/** A textual-inversion placement. `offset` is counted WITHOUT BOS: vectors go to rows offset+1 ... */
export interface PromptChunkFix<E extends ChunkEmbedding = ChunkEmbedding> {
  readonly offset: number;
  readonly embedding: E;
}

export interface PromptChunk<E extends ChunkEmbedding = ChunkEmbedding> {
  /** 77 ids: BOS, 75 tokens (placeholder 0 for embedding slots), EOS. */
  tokens: number[];
  /** 77 weights, 1.0 on BOS/EOS/padding. */
  multipliers: number[];
  fixes: PromptChunkFix<E>[];
}

export type EmphasisMode = 'Original' | 'None' | 'Ignore' | 'No norm';

export interface ChunkingOptions {
  readonly bosId: number;
  readonly eosId: number;
  /** Token id of `,</w>`; undefined disables comma backtracking. */
  readonly commaId: number | undefined;
  /** Content tokens per chunk (75). */
  readonly chunkLength?: number;
  /** A1111 `comma_padding_backtrack` (default 20; 0 = off). */
  readonly commaPaddingBacktrack?: number;
  /** A1111 `emphasis`: "None" skips the attention parse entirely. */
  readonly emphasis?: EmphasisMode;
}

/** Encodes one text fragment without BOS/EOS (the CLIP tokenizer's `encode`). */
export interface FragmentTokenizer {
  encode(text: string): number[];
}

/** Index of registered embeddings keyed by their first token id, longest name first (A1111's `ids_lookup`). */
export class EmbeddingIndex<E extends ChunkEmbedding = ChunkEmbedding> implements EmbeddingLookup<E> {
  private readonly byFirstId = new Map<number, { ids: number[]; embedding: E }[]>();

  /** `register_embedding_by_name`: `ids` are the tokens of the name; a re-registered name replaces the old one. */
  register(ids: readonly number[], embedding: E): void {
    if (ids.length === 0) return;
    const first = ids[0]!;
    const list = (this.byFirstId.get(first) ?? []).filter((x) => x.embedding.name !== embedding.name);
    list.push({ ids: [...ids], embedding });
    // Stable sort, longest first, ties keep registration order (Python's sorted(..., reverse=True) does too).
    list.sort((a, b) => b.ids.length - a.ids.length);
    this.byFirstId.set(first, list);
  }

  findEmbeddingAtPosition(tokens: readonly number[], offset: number): EmbeddingMatch<E> | undefined {
    const candidates = this.byFirstId.get(tokens[offset]!);
    if (!candidates) return undefined;
    for (const { ids, embedding } of candidates) {
      if (ids.length <= tokens.length - offset && ids.every((id, k) => tokens[offset + k] === id)) {
        return { embedding, lengthInTokens: ids.length };
      }
    }
    return undefined;
  }
}

export interface TokenizedLine<E extends ChunkEmbedding = ChunkEmbedding> {
  readonly chunks: PromptChunk<E>[];
  /** 75 per finished chunk plus the real length of the last one. */
  readonly tokenCount: number;
  readonly parsed: AttentionFragment[];
}

/** `tokenize_line(line)`. */
export function tokenizeLine<E extends ChunkEmbedding = ChunkEmbedding>(
  line: string,
  tokenizer: FragmentTokenizer,
  opts: ChunkingOptions,
  embeddings?: EmbeddingLookup<E>,
): TokenizedLine<E> {
  const chunkLength = opts.chunkLength ?? 75;
  const backtrack = opts.commaPaddingBacktrack ?? 20;
  const parsed: AttentionFragment[] = opts.emphasis === 'None' ? [[line, 1.0]] : parsePromptAttention(line);
  const tokenized = parsed.map(([text]) => tokenizer.encode(text));

  const chunks: PromptChunk<E>[] = [];
  let chunk: PromptChunk<E> = { tokens: [], multipliers: [], fixes: [] };
  let tokenCount = 0;
  let lastComma = -1;

  const nextChunk = (isLast = false): void => {
    tokenCount += isLast ? chunk.tokens.length : chunkLength;
    const toAdd = chunkLength - chunk.tokens.length;
    for (let i = 0; i < toAdd; i++) {
      chunk.tokens.push(opts.eosId);
      chunk.multipliers.push(1.0);
    }
    chunk.tokens = [opts.bosId, ...chunk.tokens, opts.eosId];
    chunk.multipliers = [1.0, ...chunk.multipliers, 1.0];
    lastComma = -1;
    chunks.push(chunk);
    chunk = { tokens: [], multipliers: [], fixes: [] };
  };

  parsed.forEach((fragment, f) => {
    const tokens = tokenized[f]!;
    const weight = fragment[1];
    if (isBreakMarker(fragment)) {
      nextChunk();
      return;
    }
    let position = 0;
    while (position < tokens.length) {
      const token = tokens[position]!;
      if (token === opts.commaId) {
        lastComma = chunk.tokens.length;
      } else if (
        backtrack !== 0 &&
        chunk.tokens.length === chunkLength &&
        lastComma !== -1 &&
        chunk.tokens.length - lastComma <= backtrack
      ) {
        // Move what follows the last comma into the next chunk. Upstream leaves `fixes` with the old chunk.
        const breakAt = lastComma + 1;
        const relocTokens = chunk.tokens.slice(breakAt);
        const relocMults = chunk.multipliers.slice(breakAt);
        chunk.tokens = chunk.tokens.slice(0, breakAt);
        chunk.multipliers = chunk.multipliers.slice(0, breakAt);
        nextChunk();
        chunk.tokens = relocTokens;
        chunk.multipliers = relocMults;
      }
      if (chunk.tokens.length === chunkLength) nextChunk();

      const match = embeddings?.findEmbeddingAtPosition(tokens, position);
      if (!match) {
        chunk.tokens.push(token);
        chunk.multipliers.push(weight);
        position++;
        continue;
      }
      const embLen = Math.trunc(match.embedding.vectors);
      if (chunk.tokens.length + embLen > chunkLength) nextChunk();
      chunk.fixes.push({ offset: chunk.tokens.length, embedding: match.embedding });
      for (let i = 0; i < embLen; i++) {
        chunk.tokens.push(0);
        chunk.multipliers.push(weight);
      }
      position += match.lengthInTokens;
    }
  });

  if (chunk.tokens.length > 0 || chunks.length === 0) nextChunk(true);
  return { chunks, tokenCount, parsed };
}

/** `process_texts(texts)`: identical lines share one result; tokenCount is the largest. */
export function processTexts<E extends ChunkEmbedding = ChunkEmbedding>(
  texts: readonly string[],
  tokenizer: FragmentTokenizer,
  opts: ChunkingOptions,
  embeddings?: EmbeddingLookup<E>,
): { batchChunks: PromptChunk<E>[][]; tokenCount: number } {
  const cache = new Map<string, PromptChunk<E>[]>();
  let tokenCount = 0;
  const batchChunks = texts.map((line) => {
    const hit = cache.get(line);
    if (hit) return hit;
    const r = tokenizeLine(line, tokenizer, opts, embeddings);
    tokenCount = Math.max(tokenCount, r.tokenCount);
    cache.set(line, r.chunks);
    return r.chunks;
  });
  return { batchChunks, tokenCount };
}

/** `empty_chunk()`: BOS + EOS x 76, multipliers all 1. */
export function emptyChunk<E extends ChunkEmbedding = ChunkEmbedding>(opts: ChunkingOptions): PromptChunk<E> {
  const n = (opts.chunkLength ?? 75) + 2;
  return { tokens: [opts.bosId, ...new Array<number>(n - 1).fill(opts.eosId)], multipliers: new Array<number>(n).fill(1.0), fixes: [] };
}

/**
 * The chunk batches the encoder runs, as in `forward`: batch index i holds chunk i of every text, texts with
 * fewer chunks getting empty chunks.
 */
export function chunkBatches<E extends ChunkEmbedding = ChunkEmbedding>(
  batchChunks: readonly PromptChunk<E>[][],
  opts: ChunkingOptions,
): PromptChunk<E>[][] {
  const count = Math.max(0, ...batchChunks.map((c) => c.length));
  const out: PromptChunk<E>[][] = [];
  for (let i = 0; i < count; i++) out.push(batchChunks.map((c) => c[i] ?? emptyChunk<E>(opts)));
  return out;
}

/** SD2 (OpenCLIP) pads with 0 after the first EOS of each 77-token row; SD1 pads with EOS and needs nothing. */
export function padAfterFirstEnd(tokens: readonly number[], eosId: number, padId: number): number[] {
  const out = [...tokens];
  const first = out.indexOf(eosId);
  if (first >= 0 && eosId !== padId) for (let i = first + 1; i < out.length; i++) out[i] = padId;
  return out;
}

/** Token rows an embedding's vectors overwrite in the 77-row embedding output (`EmbeddingsWithFixes`). */
export function fixVectorPositions(fix: PromptChunkFix, rows = 77): number[] {
  const n = Math.min(rows - fix.offset - 1, fix.embedding.vectors);
  return Array.from({ length: Math.max(0, n) }, (_, k) => fix.offset + 1 + k);
}

/** `target_prompt_token_count`: the token count rounded up to whole chunks. */
export function targetPromptTokenCount(tokenCount: number, chunkLength = 75): number {
  return Math.ceil(Math.max(tokenCount, 1) / chunkLength) * chunkLength;
}
