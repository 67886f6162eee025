import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assetStorageKey } from './assets.js';
import { replaceAtomically, temporaryBeside } from '@darkroom/core/atomic-write.js';
import { FarmError } from './errors.js';
import type { AssetKind } from './schemas.js';
import type { Storage } from './storage/types.js';

/** The one call the cache makes on its metrics counter (a prom-client Counter fits). */
export interface CacheRequestCounter {
  inc(labels: { cache: string; result: string }): void;
}

interface Entry {
  path: string;
  bytes: number;
}

/**
 * Files fetched from storage by content hash into a local folder, least recently used evicted beyond a byte
 * budget. The hash is the identity, so a cached file is never stale and a renamed upload is still a hit. The
 * generation worker and the trainer both fetch checkpoints and networks through it.
 */
export class AssetCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<string>>();
  /** Entries a running job holds (id -> number of jobs): never evicted until released. */
  private readonly held = new Map<string, number>();

  constructor(
    private readonly storage: Storage,
    private readonly dir: string,
    private readonly budgetBytes: number,
    private readonly requests: CacheRequestCounter,
  ) {}

  /**
   * The local path of an asset. With `job` (one Set per job), the file is held until `release(job)`, so
   * fetching a job's other files can never evict it before the render has read it.
   */
  async fetch(kind: AssetKind, sha256: string, filename: string, job?: Set<string>): Promise<string> {
    const id = `${kind}/${sha256}`;
    if (job && !job.has(id)) {
      job.add(id);
      this.held.set(id, (this.held.get(id) ?? 0) + 1);
    }
    const hit = this.entries.get(id);
    if (hit) {
      this.entries.delete(id);
      this.entries.set(id, hit);
      this.requests.inc({ cache: kind, result: 'hit' });
      return hit.path;
    }
    const running = this.inFlight.get(id);
    if (running) return running;
    this.requests.inc({ cache: kind, result: 'miss' });
    const p = this.download(kind, sha256, filename).finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, p);
    return p;
  }

  /** Lets go of what `job` holds in this cache (ids of other caches in the same set are left alone). */
  release(job: Set<string>): void {
    for (const id of [...job]) {
      if (!this.held.has(id)) continue;
      job.delete(id);
      const n = (this.held.get(id) ?? 1) - 1;
      if (n <= 0) this.held.delete(id);
      else this.held.set(id, n);
    }
  }

  private async download(kind: AssetKind, sha256: string, filename: string): Promise<string> {
    const folder = join(this.dir, kind, sha256);
    // Keep the original file name: the engine tells formats apart by extension (.pt, .safetensors, .png).
    const path = join(folder, filename.replace(/[^A-Za-z0-9_.-]/g, '_'));
    const existing = await stat(path).catch(() => null);
    if (!existing) {
      // Streamed to disk and hashed on the way: a multi-GB checkpoint never sits in memory, and a download cut
      // short (or bytes changed in storage) is not cached as if it were the file.
      const body = await this.storage.getStream(assetStorageKey(kind, sha256));
      if (!body) throw new FarmError('ASSET_MISSING', 404, `${kind} ${filename} (${sha256.slice(0, 12)}) is not in storage`);
      await mkdir(folder, { recursive: true });
      const hash = createHash('sha256');
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          cb(null, chunk);
        },
      });
      await replaceAtomically(path, temporaryBeside(path), async (tmp) => {
        await pipeline(body, hashing, createWriteStream(tmp));
        const got = hash.digest('hex');
        if (got !== sha256) {
          throw new FarmError('ASSET_CORRUPT', 500, `${kind} ${filename}: the bytes fetched from storage hash to ${got.slice(0, 12)}, not ${sha256.slice(0, 12)}`);
        }
      });
    }
    const bytes = existing?.size ?? (await stat(path)).size;
    const id = `${kind}/${sha256}`;
    this.entries.set(id, { path, bytes });
    await this.evict(id);
    return path;
  }

  /**
   * Drops the cached copy of bytes deleted from storage (unless a running job holds them: the LRU takes them
   * later). Returns whether a file was removed.
   */
  async forget(kind: AssetKind, sha256: string): Promise<boolean> {
    const id = `${kind}/${sha256}`;
    if (this.held.has(id) || this.inFlight.has(id)) return false;
    this.entries.delete(id);
    const folder = join(this.dir, kind, sha256);
    const there = await stat(folder).then(() => true, () => false);
    await rm(folder, { recursive: true, force: true });
    return there;
  }

  /** Drops least recently used files until the budget holds, sparing held ones and the one just fetched. */
  private async evict(justFetched: string): Promise<void> {
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    for (const [id, e] of this.entries) {
      if (total <= this.budgetBytes) break;
      if (id === justFetched || this.held.has(id)) continue;
      this.entries.delete(id);
      total -= e.bytes;
      await rm(join(e.path, '..'), { recursive: true, force: true });
    }
  }
}
