/**
 * The files a checkpoint is loaded with: the checkpoint itself (the demo model's, written on first use, when none
 * is named), its config (the demo model's, or a `<stem>.json` beside the checkpoint) and its CLIP vocabulary. The
 * engine loads a model from these, and creating an embedding or hypernetwork reads the same files.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { DarkroomError } from '../errors.js';
import { ClipTokenizer } from '../text/tokenizer.js';
import { ensureDemoModel } from './demo-model.js';

export interface CheckpointFiles {
  readonly path: string;
  /** The explicit config (a JSON path or the parsed object); absent when a `<stem>.yaml`, or nothing, decides. */
  readonly config?: string | object;
  readonly tokenizer: ClipTokenizer;
}

/**
 * The vocabulary folder of a checkpoint: `explicit`, else `<stem>.vocab/` or `vocab/` beside it, else
 * $DARKROOM_CLIP_VOCAB.
 */
export function findVocabulary(checkpoint: string, explicit: string | undefined): string {
  const stem = basename(checkpoint, extname(checkpoint));
  const candidates = [
    explicit,
    join(dirname(checkpoint), `${stem}.vocab`),
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

/** `checkpoint` '' is the demo model, under `root`; `vocabulary` an explicit vocabulary folder. */
export async function checkpointFiles(checkpoint: string, root: string, vocabulary?: string): Promise<CheckpointFiles> {
  if (checkpoint === '') {
    const demo = await ensureDemoModel(root);
    return { path: demo.checkpoint, config: demo.config, tokenizer: demo.tokenizer };
  }
  if (!existsSync(checkpoint)) throw new DarkroomError('MODEL_NOT_FOUND', `checkpoint ${checkpoint} does not exist`, { checkpoint });
  const json = join(dirname(checkpoint), `${basename(checkpoint, extname(checkpoint))}.json`);
  const tokenizer = ClipTokenizer.fromDirectory(findVocabulary(checkpoint, vocabulary));
  return { path: checkpoint, ...(existsSync(json) ? { config: json } : {}), tokenizer };
}
