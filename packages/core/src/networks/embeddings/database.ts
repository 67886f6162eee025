/**
 * The embeddings one job can use, looked up as A1111 does (`EmbeddingDatabase`): each name is tokenized, indexed
 * by its first token id, and at a prompt position the longest registered token sequence that matches wins.
 * Matching is on token ids, so it is case-insensitive and follows the tokenizer's normalisation.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DarkroomError, isDarkroomError } from '../../errors.js';
import type { EmbeddingLookup as ChunkEmbeddingLookup, EmbeddingMatch } from '../../text/chunking.js';
import type { Embedding } from './embedding.js';
import { isEmbeddingFileName, loadEmbeddingFile } from './load.js';

/** The part of a tokenizer the database needs: ids without BOS/EOS. */
export interface TokenEncoder {
  encode(text: string): number[];
}

/** The chunker's embedding lookup (text/chunking.ts) over loaded embeddings. */
export type EmbeddingLookup = ChunkEmbeddingLookup<Embedding>;

interface Entry {
  readonly ids: readonly number[];
  readonly embedding: Embedding;
}

/** Implements the chunker's `EmbeddingLookup`, so `tokenizeLine(line, tokenizer, opts, db)` places embeddings. */
export class EmbeddingDatabase implements EmbeddingLookup {
  private readonly byName = new Map<string, Embedding>();
  private readonly idsLookup = new Map<number, Entry[]>();
  /** Embeddings whose width does not fit the model, by name (A1111 lists these as skipped). */
  readonly skipped = new Map<string, Embedding>();

  constructor(
    private readonly tokenizer: TokenEncoder,
    /** The text encoder's token-embedding width: 768 SD1, 1024 SD2. */
    readonly expectedWidth: number,
  ) {}

  /**
   * Registers an embedding under its name; the last one registered under a name wins. A width that does not
   * fit the model is EMBEDDING_WIDTH_MISMATCH (or, with `onMismatch: 'skip'`, recorded in `skipped`).
   */
  add(embedding: Embedding, opts: { onMismatch?: 'throw' | 'skip' } = {}): boolean {
    if (embedding.width !== this.expectedWidth) {
      if (opts.onMismatch === 'skip') {
        this.skipped.set(embedding.name, embedding);
        return false;
      }
      throw new DarkroomError(
        'EMBEDDING_WIDTH_MISMATCH',
        `${embedding.filename}: embedding "${embedding.name}" has vectors of width ${embedding.width}, but this model's text encoder uses ${this.expectedWidth}`,
        { file: embedding.filename, name: embedding.name, width: embedding.width, expected: this.expectedWidth },
      );
    }
    const ids = this.tokenizer.encode(embedding.name);
    if (ids.length === 0) {
      throw new DarkroomError('EMBEDDING_BAD_NAME', `${embedding.filename}: embedding name "${embedding.name}" has no tokens`, {
        file: embedding.filename,
      });
    }
    const first = ids[0]!;
    const list = (this.idsLookup.get(first) ?? []).filter((e) => !this.byName.has(embedding.name) || e.embedding.name !== embedding.name);
    list.push({ ids, embedding });
    // Stable sort, longest first: equal lengths keep registration order, as Python's sorted does.
    list.sort((a, b) => b.ids.length - a.ids.length);
    this.idsLookup.set(first, list);
    this.byName.set(embedding.name, embedding);
    return true;
  }

  get(name: string): Embedding | undefined {
    return this.byName.get(name);
  }

  /** Registered embeddings sorted by name, case-insensitively (A1111's `word_embeddings` order). */
  list(): Embedding[] {
    return [...this.byName.values()].sort((a, b) => {
      const x = a.name.toLowerCase();
      const y = b.name.toLowerCase();
      return x < y ? -1 : x > y ? 1 : 0;
    });
  }

  /** The token ids a registered name matches on. */
  tokenIds(name: string): readonly number[] | undefined {
    const e = this.byName.get(name);
    if (!e) return undefined;
    for (const list of this.idsLookup.values()) for (const x of list) if (x.embedding === e) return x.ids;
    return undefined;
  }

  findEmbeddingAtPosition(tokens: readonly number[], offset: number): EmbeddingMatch<Embedding> | undefined {
    const candidates = this.idsLookup.get(tokens[offset]!);
    if (!candidates) return undefined;
    for (const { ids, embedding } of candidates) {
      if (offset + ids.length > tokens.length) continue;
      let same = true;
      for (let i = 0; i < ids.length && same; i++) same = tokens[offset + i] === ids[i];
      if (same) return { embedding, lengthInTokens: ids.length };
    }
    return undefined;
  }

  /**
   * Loads every embedding file under `dir` (recursively, sorted), as A1111's load_from_dir: empty files, plain
   * and preview images are ignored, width mismatches are skipped; any other failure is returned per file.
   */
  async loadDirectory(dir: string): Promise<Array<{ file: string; error: DarkroomError }>> {
    const failures: Array<{ file: string; error: DarkroomError }> = [];
    const files = (await readdir(dir, { recursive: true })).filter(isEmbeddingFileName).sort();
    for (const rel of files) {
      const file = join(dir, rel);
      try {
        this.add(await loadEmbeddingFile(file), { onMismatch: 'skip' });
      } catch (e) {
        if (isDarkroomError(e, 'EMBEDDING_EMPTY_FILE') || isDarkroomError(e, 'EMBEDDING_NO_DATA')) continue;
        if (e instanceof DarkroomError) failures.push({ file, error: e });
        else throw e;
      }
    }
    return failures;
  }
}
