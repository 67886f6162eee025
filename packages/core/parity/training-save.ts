/**
 * save/: the files A1111's trainers wrote (`.pt` and `.optim` of embeddings and hypernetworks) and the PNGs that
 * carry an embedding. For every file save.json describes, we build our own from the run's recorded parameters
 * and optimizer state (saved-files.ts), read it back with our torch reader and compare the tree with A1111's
 * field by field; A1111's own file must read to the same description and load; each `.optim` must apply or not
 * on resume as A1111's rules say. The PNG cases live in training-save-png.ts.
 *
 * Tensor values are compared exactly, except the optimizer moments of intermediate saves, which the oracle does not
 * record per step: we rebuild them from the recorded gradients and allow STATE_TOL of their largest value.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { readTorch } from '../src/formats/torch.js';
import { TorchTensor, type PyValue } from '../src/formats/pickle/values.js';
import { embeddingChecksum } from '../src/networks/embeddings/embedding.js';
import { loadEmbedding } from '../src/networks/embeddings/load.js';
import { loadHypernetwork } from '../src/networks/hypernetworks/hypernetwork.js';
import { toFloat32, type HostTensor } from '../src/tensor.js';
import type { AdamWState } from '../src/training/adamw-state.js';
import {
  embeddingResumeState,
  embeddingTrainingOptim,
  embeddingTrainingPt,
  hypernetworkFileHash,
  hypernetworkOptimHash,
  hypernetworkResumeState,
  hypernetworkTrainingOptim,
  hypernetworkTrainingPt,
  readOptimFile,
  type CheckpointInfo,
  type SavedFile,
  type SaveKind,
} from '../src/training/saved-files.js';
import { fmt, type CaseResult } from './report.js';
import { f32, fixtureHypernetwork, loadRuns, paramsAt, saveOf, stateAt, type Run, type SavedFileEntry } from './training-save-fixtures.js';
import { runPngCases, type PngCase } from './training-save-png.js';
import { compareTree, valueAt, type TensorCheck, type TreeNode, type TreePath } from './training-save-tree.js';
import type { TrainingGroup } from './training-support.js';

const STATE_TOL = 1e-6;

interface SaveJson {
  readonly files?: ReadonlyArray<{ readonly file: string; readonly zip_entries?: ReadonlyArray<{ readonly name: string }>; readonly object: TreeNode }>;
  readonly png_cases?: readonly PngCase[];
}

type Tensors = ReadonlyMap<string, HostTensor>;

/** Running worst figures over the tensor comparisons of one case. */
class Figures {
  maxAbs = 0;
  maxRel = 0;
  add(actual: ArrayLike<number>, ref: ArrayLike<number>): { maxAbs: number; maxRef: number } {
    let d = 0;
    let r = 0;
    for (let i = 0; i < ref.length; i++) {
      const x = Math.abs(actual[i]! - ref[i]!);
      d = Number.isNaN(x) ? NaN : Math.max(d, x);
      r = Math.max(r, Math.abs(ref[i]!));
    }
    this.maxAbs = Math.max(this.maxAbs, d);
    this.maxRel = Math.max(this.maxRel, r > 0 ? d / r : d);
    return { maxAbs: d, maxRef: r };
  }
}

/** Where a saved file comes from: the run, its `saved_files` entry, and whether it is the `.pt` or the `.optim`. */
interface Origin {
  readonly run: Run;
  readonly entry: SavedFileEntry;
  readonly part: 'pt' | 'optim';
}

function originOf(runs: readonly Run[], file: string): Origin | undefined {
  const base = file.split('/').pop()!;
  for (const run of runs) {
    for (const entry of run.fx.saved_files ?? []) {
      if (entry.pt === base) return { run, entry, part: 'pt' };
      if (entry.optim === base) return { run, entry, part: 'optim' };
    }
  }
  return undefined;
}

function checkpointOf(run: Run): CheckpointInfo {
  return { shorthash: run.fx.model.checkpoint_sha256.slice(0, 10), modelName: run.fx.model.name };
}

/** Our `.pt` and `.optim` for one saved_files entry, with the state we wrote and how its hash was decided. */
interface Built {
  readonly pt: SavedFile;
  readonly optim: SavedFile;
  readonly replayed: boolean;
  readonly kind: SaveKind;
  readonly note?: string;
}

async function build(origin: Origin, trainedDir: string, tensors: Tensors): Promise<Built> {
  const { run, entry } = origin;
  const { fx } = run;
  const { kind, step } = saveOf(fx, entry);
  const values = paramsAt(run, tensors, step);
  const { state, replayed } = stateAt(run, tensors, step, kind);
  const checkpoint = checkpointOf(run);
  const baseName = fx.train_args.name;
  if (fx.kind === 'textual_inversion') {
    const s = { baseName, vec: values[0]!, step, kind, checkpoint };
    return { pt: embeddingTrainingPt(s), optim: embeddingTrainingOptim(s, state), replayed, kind };
  }
  const s = { hn: fixtureHypernetwork(fx, values), baseName, step, kind, checkpoint };
  const pt = hypernetworkTrainingPt(s);
  const loadedPath = join('hypernetworks', `${baseName}.pt`);
  const savedPath = kind === 'final' ? loadedPath : join('logs', pt.fileName);
  let loadedHash = '';
  let note: string | undefined;
  if (kind === 'intermediate') {
    // The hash of the file training started from; that file is not part of the oracle, so take it from A1111's save.
    const theirs = await readOptimFile(new Uint8Array(await readFile(join(trainedDir, entry.optim ?? ''))), entry.optim ?? '');
    loadedHash = theirs.hash ?? '';
    note = 'optim hash of the starting file taken from A1111\'s .optim (the file is not in the oracle)';
  }
  const hash = hypernetworkOptimHash({ loadedPath, loadedHash, savedPath, savedBytes: pt.bytes });
  return { pt, optim: hypernetworkTrainingOptim(s, state, hash), replayed, kind, ...(note ? { note } : {}) };
}

function isMoment(path: TreePath): boolean {
  const last = path[path.length - 1];
  return last === 'exp_avg' || last === 'exp_avg_sq';
}

/** Tensor values against save.safetensors (`ref`), or where the oracle stores none, against A1111's own file. */
function tensorCheck(refs: Tensors, theirs: PyValue, figures: Figures, tolerant: boolean): TensorCheck {
  return (path, actual, node) => {
    let ref: ArrayLike<number> | undefined;
    if (node.ref) {
      const t = refs.get(node.ref);
      if (!t) return `save.safetensors has no ${node.ref}`;
      ref = toFloat32(t).data;
    } else {
      const t = valueAt(theirs, path);
      if (!(t instanceof TorchTensor)) return 'no reference values (ref null and A1111\'s file lacks the tensor)';
      ref = toFloat32(t).data;
    }
    const ours = toFloat32(actual).data;
    if (ours.length !== ref.length) return `${ours.length} values, reference ${ref.length}`;
    const { maxAbs, maxRef } = figures.add(ours, ref);
    const limit = tolerant && isMoment(path) ? STATE_TOL * maxRef : 0;
    return maxAbs <= limit ? undefined : `values differ by up to ${fmt(maxAbs)} (allowed ${fmt(limit)})`;
  };
}

function zipNames(bytes: Uint8Array): Promise<string[]> {
  return readTorch(bytes, 'zip').then((f) => [...f.members].sort());
}

/** The resume rule for an `.optim` beside its `.pt`: does A1111 take the state? */
async function resumeApplies(origin: Origin, ptBytes: Uint8Array, optimBytes: Uint8Array, source: string): Promise<boolean> {
  const optim = await readOptimFile(optimBytes, source);
  if (origin.run.fx.kind === 'textual_inversion') {
    const e = await loadEmbedding(ptBytes, `${origin.run.fx.train_args.name}.pt`);
    return embeddingResumeState(optim, e.vec) !== null;
  }
  const hn = await loadHypernetwork(ptBytes, `${origin.run.fx.train_args.name}.pt`);
  return hypernetworkResumeState(optim, hypernetworkFileHash(ptBytes), hn) !== null;
}

async function fileCase(
  file: NonNullable<SaveJson['files']>[number],
  saveFolder: string,
  runs: readonly Run[],
  refs: Tensors,
): Promise<CaseResult> {
  const name = `file/${file.file}`;
  const origin = originOf(runs, file.file);
  if (!origin) return { name, status: 'skip', detail: 'no step fixture lists this file in saved_files' };
  const theirPath = join(saveFolder, file.file);
  if (!existsSync(theirPath)) return { name, status: 'skip', detail: `A1111's file ${file.file} is missing` };
  const tensors = await origin.run.tensors();
  const trainedDir = join(theirPath, '..');
  let built: Built;
  try {
    built = await build(origin, trainedDir, tensors);
  } catch (e) {
    return { name, status: 'skip', detail: `cannot build our file from the fixture: ${e instanceof Error ? e.message : String(e)}` };
  }
  const figures = new Figures();
  const problems: string[] = [];
  const facts: string[] = [];
  const theirBytes = new Uint8Array(await readFile(theirPath));
  const theirs = (await readTorch(theirBytes, file.file, { keepFloats: true })).value;
  const ours = origin.part === 'pt' ? built.pt : built.optim;
  const oursTree = (await readTorch(ours.bytes, ours.fileName, { keepFloats: true })).value;

  const rules = new Map<string, (v: PyValue) => string | undefined>();
  if (origin.run.fx.kind === 'hypernetwork' && origin.part === 'optim' && built.kind === 'final') {
    // The final hash is the sha256 of the .pt written with it: ours hashes our bytes, A1111's its bytes.
    const theirPt = new Uint8Array(await readFile(theirPath.replace(/\.optim$/, '')));
    rules.set('hash', (v) => (v === hypernetworkFileHash(built.pt.bytes) ? undefined : `${String(v)} is not the hash of our .pt`));
    const theirHash = valueAt(theirs, ['hash']);
    if (theirHash !== hypernetworkFileHash(theirPt)) problems.push(`A1111's final hash ${String(theirHash)} is not the sha256 of its .pt`);
    else facts.push('final .optim hash = sha256[:10] of the .pt saved with it (ours and A1111\'s)');
  }
  problems.push(...compareTree(oursTree, file.object, { tensor: tensorCheck(refs, theirs, figures, built.replayed), rules }).map((p) => `ours ${p}`));

  // A1111's file through our reader: the same description, and it loads.
  const refOnly: TensorCheck = (path, t, node) => (node.ref ? tensorCheck(refs, theirs, figures, false)(path, t, node) : undefined);
  problems.push(...compareTree(theirs, file.object, { tensor: refOnly }).map((p) => `A1111's ${p}`));
  if (file.zip_entries) {
    const expected = file.zip_entries.map((z) => z.name).sort();
    const got = await zipNames(ours.bytes);
    if (got.join('|') !== expected.join('|')) problems.push(`zip members [${got.join(', ')}], A1111 [${expected.join(', ')}]`);
  }
  try {
    if (origin.part === 'pt') {
      if (origin.run.fx.kind === 'textual_inversion') {
        const e = await loadEmbedding(theirBytes, file.file);
        const stored = valueAt(theirs, ['step']);
        if (e.step !== stored) problems.push(`loadEmbedding gives step ${String(e.step)}, the file stores ${String(stored)}`);
      } else {
        const hn = await loadHypernetwork(theirBytes, file.file);
        const stored = valueAt(theirs, ['step']);
        if (hn.step !== stored) problems.push(`loadHypernetwork gives step ${hn.step}, the file stores ${String(stored)}`);
      }
    } else {
      const theirPtBytes = new Uint8Array(await readFile(theirPath.replace(/\.optim$/, '')));
      // Embeddings: the hash is the checksum of the vectors saved with it, so the pair always resumes.
      // Hypernetworks: it resumes only when the .optim hash is the .pt's own hash, i.e. for the final save.
      const expected = origin.run.fx.kind === 'textual_inversion' || built.kind === 'final';
      const theirApplies = await resumeApplies(origin, theirPtBytes, theirBytes, file.file);
      const ourApplies = await resumeApplies(origin, built.pt.bytes, built.optim.bytes, built.optim.fileName);
      if (theirApplies !== expected) problems.push(`A1111's pair ${theirApplies ? 'resumes' : 'does not resume'}, the rule says ${expected ? 'it does' : 'not'}`);
      if (ourApplies !== expected) problems.push(`our pair ${ourApplies ? 'resumes' : 'does not resume'}, the rule says ${expected ? 'it does' : 'not'}`);
      facts.push(`resume: ${expected ? 'state taken' : 'state ignored'}`);
    }
  } catch (e) {
    problems.push(`A1111's file does not load: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (built.replayed && origin.part === 'optim') facts.push('moments rebuilt from recorded gradients');
  if (built.note && origin.part === 'optim') facts.push(built.note);
  const shown = problems.slice(0, 4).join('; ') + (problems.length > 4 ? `; and ${problems.length - 4} more` : '');
  return {
    name,
    status: problems.length ? 'fail' : 'pass',
    maxAbs: figures.maxAbs,
    maxRel: figures.maxRel,
    detail: [shown, ...facts].filter(Boolean).join('; '),
  };
}

/** The resumed run: it started from another run's final save; did the `.optim` apply, and with what? */
async function resumeCase(run: Run, runs: readonly Run[], saveFolder: string, listed: readonly string[]): Promise<CaseResult> {
  const { fx } = run;
  const name = `resume/${fx.id}`;
  const r = fx.resume!;
  if (fx.kind !== 'textual_inversion') return { name, status: 'skip', detail: 'resume checks are written for embeddings only' };
  const from = runs.find((x) => x.fx.id === r.of);
  const entry = from?.fx.saved_files?.find((e) => e.label === 'final');
  if (!from || !entry?.optim) return { name, status: 'skip', detail: `the final save of ${r.of} is not listed` };
  const where = (base: string): string | undefined => listed.find((f) => f.split('/').pop() === base);
  const ptFile = where(entry.pt);
  const optimFile = where(entry.optim);
  if (!ptFile || !optimFile) return { name, status: 'skip', detail: `save.json does not list ${entry.pt} and its .optim` };
  const ptPath = join(saveFolder, ptFile);
  const optimPath = join(saveFolder, optimFile);
  if (!existsSync(ptPath) || !existsSync(optimPath)) return { name, status: 'skip', detail: `${ptFile} or ${optimFile} is missing` };
  const e = await loadEmbedding(new Uint8Array(await readFile(ptPath)), `${fx.train_args.name}.pt`);
  const optim = await readOptimFile(new Uint8Array(await readFile(optimPath)), entry.optim);
  const state: AdamWState | null = embeddingResumeState(optim, e.vec);
  const tensors = await run.tensors();
  const figures = new Figures();
  const problems: string[] = [];
  if (e.step !== r.initial_step) problems.push(`step ${String(e.step)}, A1111 resumed at ${r.initial_step}`);
  if (embeddingChecksum(e.vec) !== r.embedding_checksum) problems.push(`checksum ${embeddingChecksum(e.vec)}, A1111 ${r.embedding_checksum}`);
  if (optim.hash !== r.optim_hash_in_file) problems.push(`.optim hash ${String(optim.hash)}, A1111 ${r.optim_hash_in_file}`);
  if ((state !== null) !== r.optimizer_state_loaded) problems.push(`state ${state ? 'loaded' : 'not loaded'}, A1111 ${r.optimizer_state_loaded ? 'loaded' : 'not loaded'}`);
  const init = f32(tensors, 'init.vec').data;
  if (figures.add(e.vec.data, init).maxAbs !== 0) problems.push('the loaded vectors are not the resumed run\'s init.vec');
  if (state) {
    const p = state.params[0]!;
    if (figures.add(p.expAvg, f32(tensors, 'init.exp_avg').data).maxAbs !== 0) problems.push('exp_avg differs from init.exp_avg');
    if (figures.add(p.expAvgSq, f32(tensors, 'init.exp_avg_sq').data).maxAbs !== 0) problems.push('exp_avg_sq differs from init.exp_avg_sq');
    const step = f32(tensors, 'init.optim_step').data[0];
    if (p.step !== step) problems.push(`state step ${p.step}, A1111 ${String(step)}`);
    // load_state_dict restores the param group's lr: the earlier run's last lr, not the new schedule's first.
    if (state.lr !== from.fx.optimizer.lr) problems.push(`lr ${state.lr}, the earlier run ended at ${from.fx.optimizer.lr}`);
  }
  return {
    name,
    status: problems.length ? 'fail' : 'pass',
    maxAbs: figures.maxAbs,
    maxRel: figures.maxRel,
    detail: problems.join('; ') || `resumed from ${entry.pt} at step ${r.initial_step}, state ${state ? `loaded (lr ${state.lr})` : 'fresh'}`,
  };
}

export const runGroup: TrainingGroup = async function* (groupFolder, trainingFolder) {
  const jsonPath = join(groupFolder, 'save.json');
  if (!existsSync(jsonPath)) {
    yield { name: 'save.json', status: 'skip', detail: 'no save.json in the folder' };
    return;
  }
  const saveJson = JSON.parse(await readFile(jsonPath, 'utf8')) as SaveJson;
  const stPath = join(groupFolder, 'save.safetensors');
  const refs: Tensors = existsSync(stPath) ? (await readSafetensorsFile(stPath)).tensors : new Map();
  const runs = await loadRuns(trainingFolder);
  for (const file of saveJson.files ?? []) yield await fileCase(file, groupFolder, runs, refs);
  const listed = (saveJson.files ?? []).map((f) => f.file);
  for (const run of runs) if (run.fx.resume) yield await resumeCase(run, runs, groupFolder, listed);
  yield* runPngCases(saveJson.png_cases ?? [], groupFolder, refs);
};
