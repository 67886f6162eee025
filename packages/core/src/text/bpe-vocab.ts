/**
 * CLIP's byte-level BPE vocabulary: loading it from the Hugging Face layout (`vocab.json` + `merges.txt`) or
 * from openai's `bpe_simple_vocab_16e6.txt.gz`, and building a small deterministic one for the demo model.
 */
import { gunzipSync } from 'node:zlib';
import { DarkroomError } from '../errors.js';

export const START_OF_TEXT = '<|startoftext|>';
export const END_OF_TEXT = '<|endoftext|>';

/** A vocabulary: token string -> id, and the merges in rank order ('a b' pairs). */
export interface BpeVocabulary {
  readonly encoder: ReadonlyMap<string, number>;
  readonly merges: readonly (readonly [string, string])[];
}

/** GPT-2/CLIP `bytes_to_unicode`: every byte gets a printable character; byte order as upstream builds it. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table = new Array<string>(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
}

/** The symbols in the order upstream's vocabulary lists them (the order of `bs` above). */
function symbolsInVocabOrder(): string[] {
  const table = bytesToUnicode();
  const order: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) order.push(b);
  for (let b = 0xa1; b <= 0xac; b++) order.push(b);
  for (let b = 0xae; b <= 0xff; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  return order.map((b) => table[b]!);
}

function parseMergeLine(line: string, lineNo: number): readonly [string, string] {
  const parts = line.split(' ');
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new DarkroomError('TOKENIZER_BAD_MERGES', `merge line ${lineNo} is not two symbols: ${JSON.stringify(line)}`);
  }
  return [parts[0], parts[1]];
}

/** The two files of a vocabulary folder in Hugging Face's layout, the one a checkpoint's `<stem>.vocab/` holds. */
export const HF_VOCABULARY_FILES = { encoder: 'vocab.json', merges: 'merges.txt' } as const;

/** Hugging Face layout: `vocab.json` text and `merges.txt` text (first line `#version: ...`). */
export function vocabularyFromHuggingFace(vocabJson: string, mergesTxt: string): BpeVocabulary {
  const raw: unknown = JSON.parse(vocabJson);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new DarkroomError('TOKENIZER_BAD_VOCAB', 'vocab.json must be an object of token -> id');
  }
  const encoder = new Map<string, number>();
  for (const [token, id] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      throw new DarkroomError('TOKENIZER_BAD_VOCAB', `vocab.json id of ${JSON.stringify(token)} is not an integer`);
    }
    encoder.set(token, id);
  }
  const lines = mergesTxt.split('\n');
  const merges: (readonly [string, string])[] = [];
  lines.forEach((line, i) => {
    if ((i === 0 && line.startsWith('#version')) || line === '') return;
    merges.push(parseMergeLine(line, i + 1));
  });
  return { encoder, merges };
}

/** A vocabulary as the texts of its Hugging Face files, by file name: what vocabularyFromHuggingFace reads back. */
export function vocabularyToHuggingFace(vocab: BpeVocabulary): ReadonlyArray<readonly [fileName: string, text: string]> {
  return [
    [HF_VOCABULARY_FILES.encoder, JSON.stringify(Object.fromEntries(vocab.encoder))],
    [HF_VOCABULARY_FILES.merges, `#version: 0.2\n${vocab.merges.map(([a, b]) => `${a} ${b}\n`).join('')}`],
  ];
}

/** openai layout: gzipped merges; the vocabulary is derived exactly as `SimpleTokenizer.__init__` does. */
export function vocabularyFromOpenAiGz(gz: Uint8Array, mergeCount = 49152 - 256 - 2): BpeVocabulary {
  const lines = gunzipSync(gz).toString('utf-8').split('\n');
  const merges = lines.slice(1, mergeCount + 1).map((l, i) => parseMergeLine(l, i + 2));
  return vocabularyFromMerges(merges);
}

/** symbols + symbols</w> + one entry per merge + the two special tokens, ids by position. */
export function vocabularyFromMerges(merges: readonly (readonly [string, string])[]): BpeVocabulary {
  const symbols = symbolsInVocabOrder();
  const tokens = [...symbols, ...symbols.map((s) => s + '</w>'), ...merges.map(([a, b]) => a + b), START_OF_TEXT, END_OF_TEXT];
  const encoder = new Map<string, number>();
  tokens.forEach((t, i) => encoder.set(t, i));
  return { encoder, merges };
}

/** Words the demo vocabulary knows as single tokens; everything else falls back to smaller pieces and bytes. */
const DEMO_WORDS = [
  'a', 'an', 'the', 'of', 'in', 'on', 'and', 'with', 'at', 'by', 'photo', 'painting', 'portrait', 'castle', 'forest',
  'cat', 'dog', 'red', 'blue', 'green', 'snow', 'sky', 'dragon', 'knight', 'girl', 'boy', 'mountain', 'lake', 'tree',
  'house', 'night', 'day', 'sun', 'moon', 'city', 'street', 'river', 'flower', 'light', 'dark', 'detailed', 'quality',
  'best', 'masterpiece', 'grainy', 'fog', 'blurry', 'style', 'art', 'oil',
];

/** BPE on one word (symbols, the last carrying `</w>`): merge the lowest-ranked adjacent pair until none applies. */
export function applyMerges(symbols: readonly string[], ranks: ReadonlyMap<string, number>): string[] {
  let word = [...symbols];
  while (word.length > 1) {
    let best: number | undefined;
    let bestRank = Infinity;
    for (let i = 0; i < word.length - 1; i++) {
      const r = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best === undefined) break;
    const first = word[best]!;
    const second = word[best + 1]!;
    // Every non-overlapping occurrence, left to right, like upstream.
    const merged: string[] = [];
    let i = 0;
    while (i < word.length) {
      if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
        merged.push(first + second);
        i += 2;
      } else {
        merged.push(word[i]!);
        i++;
      }
    }
    word = merged;
  }
  return word;
}

/**
 * A small byte-level BPE vocabulary built without any download: the 512 byte symbols, merges chosen so each
 * demo word becomes one token, and the two special tokens. Merges are added word by word: while the word
 * still splits, merge its first two pieces. A merge added later never changes how an earlier word splits
 * (each step of that word had a lower-ranked merge available), so every demo word stays one token.
 * Deterministic: the same call always gives the same ids. Size well under 1000. `extraWords` (lower case, no
 * spaces) become single tokens too: the vocabulary of a model trained from scratch on known captions.
 */
export function buildDemoVocabulary(extraWords: readonly string[] = []): BpeVocabulary {
  const merges: (readonly [string, string])[] = [];
  const ranks = new Map<string, number>();
  // Extra words come after the demo words, so the demo words' merges (and ids) are the same with or without them.
  for (const word of [...DEMO_WORDS, ...extraWords]) {
    const chars = Array.from(word);
    const symbols = [...chars.slice(0, -1), chars[chars.length - 1]! + '</w>'];
    for (let pieces = applyMerges(symbols, ranks); pieces.length > 1; pieces = applyMerges(symbols, ranks)) {
      const [a, b] = pieces as [string, string];
      ranks.set(`${a} ${b}`, merges.length);
      merges.push([a, b]);
    }
  }
  return vocabularyFromMerges(merges);
}
