/**
 * What the training parity groups share: the group contract and how a case finds its checkpoint.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HF_VOCABULARY_FILES } from '../src/text/bpe-vocab.js';
import type { CaseResult } from './report.js';

/** One group of the training oracle (a sub-folder such as `lr_schedule/`): its cases, one result each. */
export type TrainingGroup = (groupFolder: string, trainingFolder: string) => AsyncIterable<CaseResult>;

/** The model fields a training fixture names. */
export interface FixtureModel {
  readonly name: string;
  readonly checkpoint_sha256: string;
  readonly checkpoint_file?: string;
}

const hashCache = new Map<string, string>();

async function sha256File(path: string): Promise<string> {
  const hit = hashCache.get(path);
  if (hit) return hit;
  const h = createHash('sha256').update(await readFile(path)).digest('hex');
  hashCache.set(path, h);
  return h;
}

/**
 * The checkpoint a fixture was made with. The fixture names it relative to the upstream repository
 * (`shared/oracle/model/tiny-sd1.safetensors`) and by sha256; the file is looked for beside the training
 * folder (its parent is the oracle root), first by the path's tail, then by hash among the `.safetensors`
 * files of the sibling folders. The hash must match either way.
 */
export async function findCheckpoint(trainingFolder: string, model: FixtureModel): Promise<string> {
  const root = join(trainingFolder, '..');
  const candidates: string[] = [];
  if (model.checkpoint_file) {
    const parts = model.checkpoint_file.split('/');
    for (let i = 0; i < parts.length; i++) candidates.push(join(root, ...parts.slice(i)));
  }
  for (const dir of readdirSync(root, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const f of readdirSync(join(root, dir.name))) {
      if (f.endsWith('.safetensors') && (f === `${model.name}.safetensors` || f.startsWith(model.name))) candidates.push(join(root, dir.name, f));
    }
  }
  for (const dir of readdirSync(root, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const f of readdirSync(join(root, dir.name))) if (f.endsWith('.safetensors')) candidates.push(join(root, dir.name, f));
  }
  const seen = new Set<string>();
  for (const c of candidates) {
    if (seen.has(c) || !existsSync(c)) continue;
    seen.add(c);
    if ((await sha256File(c)) === model.checkpoint_sha256) return c;
  }
  throw new Error(`checkpoint ${model.name} (sha256 ${model.checkpoint_sha256.slice(0, 12)}…) not found near ${trainingFolder}; looked for ${basename(model.checkpoint_file ?? model.name)}`);
}

/**
 * The config beside a checkpoint (`<stem>.json`, `<stem>.yaml`), as the model oracle lays them out; undefined
 * when there is none (then the config is inferred from the checkpoint).
 */
export function findModelConfig(checkpoint: string): string | undefined {
  const stem = checkpoint.replace(/\.(safetensors|ckpt|pt)$/, '');
  return ['.json', '.yaml'].map((ext) => stem + ext).find((p) => existsSync(p));
}

/** The CLIP vocabulary folder (`vocab.json` + `merges.txt`): beside the checkpoint, or a `vocab/` of a sibling folder. */
export function findVocabulary(trainingFolder: string, checkpoint: string): string {
  const root = join(trainingFolder, '..');
  const candidates = [join(checkpoint, '..', 'vocab'), join(trainingFolder, 'vocab')];
  for (const dir of readdirSync(root, { withFileTypes: true })) if (dir.isDirectory()) candidates.push(join(root, dir.name, 'vocab'));
  const found = candidates.find((c) => existsSync(join(c, HF_VOCABULARY_FILES.encoder)));
  if (!found) throw new Error(`no CLIP vocabulary (vocab/vocab.json) found near ${trainingFolder}`);
  return found;
}
