/**
 * CLIP BPE tokenizer, following the path A1111 takes through transformers' `CLIPTokenizer`
 * (`tokenizer(texts, truncation=False, add_special_tokens=False)`): split on the literal special tokens,
 * clean each piece (ftfy, whitespace, lower case), pre-tokenize with CLIP's pattern, map UTF-8 bytes to
 * symbols, apply merges by rank, look the pieces up. No BOS/EOS are added here; chunking does that.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DarkroomError } from '../errors.js';
import {
  END_OF_TEXT,
  HF_VOCABULARY_FILES,
  START_OF_TEXT,
  applyMerges,
  bytesToUnicode,
  vocabularyFromHuggingFace,
  vocabularyFromOpenAiGz,
  type BpeVocabulary,
} from './bpe-vocab.js';
import { REGEX_SPACE } from './python-compat.js';
import { fixText, pythonHtmlUnescape, whitespaceClean } from './text-cleanup.js';

const SPECIAL_SPLIT_RE = /(<\|startoftext\|>|<\|endoftext\|>)/;
const PRETOKENIZE_RE = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${REGEX_SPACE}\\p{L}\\p{N}]+`,
  'giu',
);

export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  /** Id of `,</w>`, the token A1111's chunker backtracks to (undefined if the vocabulary has none). */
  readonly commaId: number | undefined;
  readonly vocabSize: number;
  private readonly encoder: ReadonlyMap<string, number>;
  private readonly ranks = new Map<string, number>();
  private readonly byteSymbols = bytesToUnicode();
  private readonly cache = new Map<string, string[]>();
  private readonly utf8 = new TextEncoder();

  constructor(vocab: BpeVocabulary) {
    this.encoder = vocab.encoder;
    vocab.merges.forEach(([a, b], rank) => {
      const key = `${a} ${b}`;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
    const bos = vocab.encoder.get(START_OF_TEXT);
    const eos = vocab.encoder.get(END_OF_TEXT);
    if (bos === undefined || eos === undefined) {
      throw new DarkroomError('TOKENIZER_BAD_VOCAB', 'vocabulary lacks <|startoftext|> or <|endoftext|>');
    }
    this.bosId = bos;
    this.eosId = eos;
    this.commaId = vocab.encoder.get(',</w>');
    let max = -1;
    for (const id of vocab.encoder.values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    // Upstream seeds its BPE cache with the special tokens, so `<|ENDOFTEXT|>` (lower-cased by the clean-up and
    // matched whole by the pre-tokenizer) still becomes the special id.
    this.cache.set(START_OF_TEXT, [START_OF_TEXT]);
    this.cache.set(END_OF_TEXT, [END_OF_TEXT]);
  }

  /** Reads `vocab.json` + `merges.txt`, or else `bpe_simple_vocab_16e6.txt.gz`, from a folder. */
  static fromDirectory(dir: string): ClipTokenizer {
    try {
      return new ClipTokenizer(
        vocabularyFromHuggingFace(
          readFileSync(join(dir, HF_VOCABULARY_FILES.encoder), 'utf-8'),
          readFileSync(join(dir, HF_VOCABULARY_FILES.merges), 'utf-8'),
        ),
      );
    } catch (e) {
      if (!(e instanceof Error && 'code' in e && e.code === 'ENOENT')) throw e;
    }
    try {
      return new ClipTokenizer(vocabularyFromOpenAiGz(readFileSync(join(dir, 'bpe_simple_vocab_16e6.txt.gz'))));
    } catch (e) {
      if (e instanceof Error && 'code' in e && e.code === 'ENOENT') {
        throw new DarkroomError('TOKENIZER_NOT_FOUND', `no vocab.json+merges.txt or bpe_simple_vocab_16e6.txt.gz in ${dir}`);
      }
      throw e;
    }
  }

  /** Token ids of one text, without BOS/EOS and without truncation. */
  encode(text: string): number[] {
    return this.tokenize(text).map((t) => this.encoder.get(t) ?? this.eosId);
  }

  /** Token strings (`photo</w>`, ...) of one text. */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const piece of text.split(SPECIAL_SPLIT_RE)) {
      if (piece === START_OF_TEXT || piece === END_OF_TEXT) {
        out.push(piece);
        continue;
      }
      if (piece === '') continue;
      const cleaned = whitespaceClean(fixText(piece)).toLowerCase();
      for (const m of cleaned.matchAll(PRETOKENIZE_RE)) {
        let symbols = '';
        for (const b of this.utf8.encode(m[0])) symbols += this.byteSymbols[b];
        out.push(...this.bpe(symbols));
      }
    }
    return out;
  }

  /**
   * openai/open_clip `SimpleTokenizer.encode` (the SD2 OpenCLIP path): ftfy, then `html.unescape` twice, strip,
   * whitespace clean-up, lower case; special tokens are recognised by the pre-tokenizer only, not split out first.
   */
  encodeOpenAi(text: string): number[] {
    const cleaned = whitespaceClean(pythonHtmlUnescape(pythonHtmlUnescape(fixText(text))).trim()).toLowerCase();
    const ids: number[] = [];
    for (const m of cleaned.matchAll(PRETOKENIZE_RE)) {
      let symbols = '';
      for (const b of this.utf8.encode(m[0])) symbols += this.byteSymbols[b];
      for (const t of this.bpe(symbols)) ids.push(this.encoder.get(t) ?? this.eosId);
    }
    return ids;
  }

  /** The normalized text pieces the pre-tokenizer sees (for diagnostics and tests). */
  normalize(text: string): string[] {
    return text
      .split(SPECIAL_SPLIT_RE)
      .filter((p) => p !== '')
      .map((p) => (p === START_OF_TEXT || p === END_OF_TEXT ? p : whitespaceClean(fixText(p)).toLowerCase()));
  }

  /** Id -> token string, for debugging. */
  decodeIds(ids: readonly number[]): string[] {
    const inverse = new Map<number, string>();
    for (const [t, id] of this.encoder) inverse.set(id, t);
    return ids.map((id) => inverse.get(id) ?? `<${id}>`);
  }

  private bpe(token: string): string[] {
    const cached = this.cache.get(token);
    if (cached) return cached;
    const chars = Array.from(token);
    const word = applyMerges([...chars.slice(0, -1), chars[chars.length - 1]! + '</w>'], this.ranks);
    if (this.cache.size > 50_000) {
      this.cache.clear();
      this.cache.set(START_OF_TEXT, [START_OF_TEXT]);
      this.cache.set(END_OF_TEXT, [END_OF_TEXT]);
    }
    this.cache.set(token, word);
    return word;
  }
}
