/**
 * The files a checkpoint is loaded with: the checkpoint itself (the built-in model's when none is named), its
 * config (a `<stem>.json` beside the checkpoint) and its CLIP vocabulary. The engine loads a model from these, and
 * creating an embedding or hypernetwork reads the same files.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { writeFileAtomically } from '../atomic-write.js';
import { DarkroomError } from '../errors.js';
import { vocabularyToHuggingFace, type BpeVocabulary } from '../text/bpe-vocab.js';
import { ClipTokenizer } from '../text/tokenizer.js';
import { BUILTIN_CHECKPOINT } from '../catalog/built-in-model.js';

export interface CheckpointFiles {
  readonly path: string;
  /** The explicit config (a JSON path or the parsed object); absent when a `<stem>.yaml`, or nothing, decides. */
  readonly config?: string | object;
  readonly tokenizer: ClipTokenizer;
}

/** The files a checkpoint keeps beside it: its config `<stem>.json` and its vocabulary folder `<stem>.vocab/`. */
export function checkpointCompanions(checkpoint: string): { readonly config: string; readonly vocabulary: string } {
  const stem = join(dirname(checkpoint), basename(checkpoint, extname(checkpoint)));
  return { config: `${stem}.json`, vocabulary: `${stem}.vocab` };
}

/** Writes a vocabulary folder in Hugging Face's layout, each file atomically. */
export async function writeVocabularyFolder(dir: string, vocabulary: BpeVocabulary): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [file, text] of vocabularyToHuggingFace(vocabulary)) await writeFileAtomically(join(dir, file), text);
}

/**
 * The vocabulary folder of a checkpoint: `explicit`, else `<stem>.vocab/` or `vocab/` beside it, else
 * $DARKROOM_CLIP_VOCAB.
 */
export function findVocabulary(checkpoint: string, explicit: string | undefined): string {
  const candidates = [
    explicit,
    checkpointCompanions(checkpoint).vocabulary,
    join(dirname(checkpoint), 'vocab'),
    process.env.DARKROOM_CLIP_VOCAB,
  ].filter((x): x is string => !!x);
  const found = candidates.find((d) => existsSync(d));
  if (!found) {
    throw new DarkroomError(
      'TOKENIZER_NOT_FOUND',
      `no CLIP vocabulary for ${checkpoint}: put vocab.json + merges.txt (or bpe_simple_vocab_16e6.txt.gz) in ${join(dirname(checkpoint), 'vocab')}, or set DARKROOM_CLIP_VOCAB`,
      { checkpoint, searched: candidates },
    );
  }
  return found;
}

/**
 * `checkpoint` '' is the built-in model, always with its own vocabulary; a relative path is taken from the
 * process's working directory; `vocabulary` an explicit vocabulary folder for any other checkpoint.
 */
export async function checkpointFiles(named: string, explicitVocabulary?: string): Promise<CheckpointFiles> {
  const checkpoint = named === '' ? BUILTIN_CHECKPOINT : named;
  const vocabulary = named === '' ? undefined : explicitVocabulary;
  if (!existsSync(checkpoint)) throw new DarkroomError('MODEL_NOT_FOUND', `checkpoint ${checkpoint} does not exist`, { checkpoint });
  const json = checkpointCompanions(checkpoint).config;
  const tokenizer = ClipTokenizer.fromDirectory(findVocabulary(checkpoint, vocabulary));
  return { path: checkpoint, ...(existsSync(json) ? { config: json } : {}), tokenizer };
}
