/**
 * Compile cache: a built graph is written once to `<cacheDir>/graphs/<key>/model.onnx` (large weights as
 * external data files beside it) and reused by every later load. The key hashes the checkpoint's content
 * hash, the component, its build options and a fingerprint of the graph-building source code, so a code
 * change never serves a stale graph. Entries are written to a temporary folder and renamed into place, so a
 * crash or a concurrent builder never leaves a half-written entry behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DarkroomError } from '../errors.js';
import { writeFileAtomically } from '../atomic-write.js';
import type { BuiltModel } from '../graph/ir.js';

export const DEFAULT_CACHE_DIR = '.darkroom/cache';

/** External data files at least this large are shared between entries through `blobs/`. */
const BLOB_MIN_BYTES = 64 * 1024;

/** What identifies one compiled graph. */
export interface GraphKey {
  /** sha256 of the checkpoint file (or another content hash of the weights). */
  readonly weights: string;
  readonly component: string;
  readonly options: Readonly<Record<string, unknown>>;
}

let fingerprint: string | undefined;

/** sha256 over the sources that shape a graph (this folder and graph/): any edit gives new cache keys. */
export function codeFingerprint(): string {
  if (fingerprint) return fingerprint;
  const here = dirname(fileURLToPath(import.meta.url));
  const hash = createHash('sha256');
  for (const dir of [here, resolve(here, '../graph')]) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      if (!name.endsWith('.ts') && !name.endsWith('.js')) continue;
      hash.update(name).update(readFileSync(join(dir, name)));
    }
  }
  fingerprint = hash.digest('hex').slice(0, 16);
  return fingerprint;
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export function graphKeyHash(key: GraphKey): string {
  return createHash('sha256')
    .update(stableJson({ ...key, code: codeFingerprint() }))
    .digest('hex')
    .slice(0, 32);
}

export interface CachedGraph {
  /** Path of model.onnx, ready for createSession. */
  readonly path: string;
  /** True when this call built the graph (a cache miss). */
  readonly built: boolean;
  /** Milliseconds spent writing the entry (a miss only): the model, its external data, the rename into place. */
  readonly storeMs?: number;
}

export class CompileCache {
  /** Graphs built by this instance (misses), for diagnostics and tests. */
  builds = 0;
  private readonly pending = new Map<string, Promise<CachedGraph>>();

  constructor(readonly dir: string = DEFAULT_CACHE_DIR) {}

  pathFor(key: GraphKey): string {
    return join(resolve(this.dir), 'graphs', `${key.component}-${graphKeyHash(key)}`, 'model.onnx');
  }

  /** The cached graph for `key`, building and storing it with `build` when absent. */
  async getOrBuild(key: GraphKey, build: () => BuiltModel | Promise<BuiltModel>): Promise<CachedGraph> {
    const path = this.pathFor(key);
    const inFlight = this.pending.get(path);
    if (inFlight) return inFlight;
    const p = this.resolveEntry(path, key, build).finally(() => this.pending.delete(path));
    this.pending.set(path, p);
    return p;
  }

  private async resolveEntry(path: string, key: GraphKey, build: () => BuiltModel | Promise<BuiltModel>): Promise<CachedGraph> {
    if (existsSync(join(dirname(path), 'complete.json'))) return { path, built: false };
    const model = await build();
    this.builds++;
    const t0 = performance.now();
    await this.store(path, key, model);
    return { path, built: true, storeMs: performance.now() - t0 };
  }

  private async store(path: string, key: GraphKey, model: BuiltModel): Promise<void> {
    const final = dirname(path);
    const tmp = `${final}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await mkdir(tmp, { recursive: true });
    try {
      await writeFile(join(tmp, 'model.onnx'), model.bytes);
      for (const e of model.externalData) {
        if (e.path.includes('/') || e.path.includes('\\') || e.path.startsWith('.')) {
          throw new DarkroomError('CACHE_BAD_ENTRY', `external data name "${e.path}" is not a plain file name`);
        }
        await this.placeBlob(join(tmp, e.path), e.data);
      }
      const meta = { ...key, code: codeFingerprint(), inputs: model.inputs, outputs: model.outputs, createdAt: new Date().toISOString() };
      await writeFile(join(tmp, 'complete.json'), JSON.stringify(meta, null, 2));
      try {
        await rename(tmp, final);
      } catch (e) {
        // Another process finished the same entry first: theirs is as good as ours.
        if (!existsSync(join(final, 'complete.json'))) throw e;
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /**
   * Large weight files are stored once under `blobs/<sha256>` and hard-linked into every entry that uses them:
   * the same UNet compiled for several image sizes shares one copy of its weights on disk.
   */
  private async placeBlob(target: string, data: Uint8Array): Promise<void> {
    if (data.byteLength < BLOB_MIN_BYTES) {
      await writeFile(target, data);
      return;
    }
    const digest = createHash('sha256').update(data).digest('hex');
    const blobs = join(resolve(this.dir), 'blobs');
    const blob = join(blobs, digest);
    if (!existsSync(blob)) {
      await mkdir(blobs, { recursive: true });
      await writeFileAtomically(blob, data);
    }
    try {
      await link(blob, target);
    } catch {
      await writeFile(target, data); // file systems without hard links: a plain copy
    }
  }

  /** The metadata stored with an entry (inputs, outputs, options), if it exists. */
  async meta(key: GraphKey): Promise<Record<string, unknown> | undefined> {
    const file = join(dirname(this.pathFor(key)), 'complete.json');
    if (!existsSync(file)) return undefined;
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  }
}

/**
 * sha256 of a checkpoint, remembered in the cache folder by (path, size, mtime) so multi-GB files are hashed
 * once, as A1111 does with its cache.json. The inode and the change time are part of the key too: a file replaced
 * by another (a new inode) or written in place with its mtime set back (the kernel moves ctime on every write,
 * and nothing can set it back) is hashed again.
 */
export async function cachedFileHash(cacheDir: string, path: string, compute: (p: string) => Promise<string>): Promise<string> {
  const s = await stat(path);
  const id = createHash('sha256').update(`${resolve(path)}|${s.size}|${s.mtimeMs}|${s.ino}|${s.ctimeMs}`).digest('hex').slice(0, 32);
  const file = join(resolve(cacheDir), 'hashes', `${id}.txt`);
  if (existsSync(file)) {
    const stored = (await readFile(file, 'utf8')).trim();
    if (/^[0-9a-f]{64}$/.test(stored)) return stored;
  }
  const hash = await compute(path);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, hash);
  return hash;
}

/** A small string computed once per key (e.g. a checkpoint's detected parameterization) and kept in the cache. */
export async function cachedFact(cacheDir: string, key: string, compute: () => Promise<string>): Promise<string> {
  if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new DarkroomError('CACHE_BAD_ENTRY', `bad cache fact key "${key}"`);
  const file = join(resolve(cacheDir), 'facts', `${key}.txt`);
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const value = await compute();
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, value);
  return value;
}
