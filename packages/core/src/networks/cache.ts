/**
 * An LRU of parsed networks keyed by content (sha256 of the file bytes) and file name: a worker serving many
 * jobs that name the same embedding or hypernetwork parses it once. The name is part of the key because an
 * embedding's lookup name comes from its file name, so the same bytes under two names are two entries.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import type { Embedding } from './embeddings/embedding.js';
import { loadEmbedding } from './embeddings/load.js';
import type { Hypernetwork } from './hypernetworks/hypernetwork.js';
import { loadHypernetwork } from './hypernetworks/hypernetwork.js';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface NetworkCacheOptions {
  /** Upper bound on the summed tensor bytes kept (default 1 GiB). */
  readonly maxBytes?: number;
  readonly maxEntries?: number;
}

interface Entry {
  readonly value: Promise<Embedding | Hypernetwork>;
  bytes: number;
}

export class NetworkCache {
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly opts: NetworkCacheOptions = {}) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** `sha256` may be given when the caller already knows it (content-addressed storage), to skip hashing. */
  embedding(bytes: Uint8Array, filename: string, sha256?: string): Promise<Embedding> {
    return this.get(`emb:${sha256 ?? sha256Hex(bytes)}:${basename(filename)}`, () => loadEmbedding(bytes, filename), embeddingBytes) as Promise<Embedding>;
  }

  hypernetwork(bytes: Uint8Array, filename: string, sha256?: string): Promise<Hypernetwork> {
    return this.get(`hn:${sha256 ?? sha256Hex(bytes)}:${basename(filename)}`, () => loadHypernetwork(bytes, filename), hypernetworkBytes) as Promise<Hypernetwork>;
  }

  clear(): void {
    this.entries.clear();
    this.totalBytes = 0;
  }

  private get<T extends Embedding | Hypernetwork>(key: string, load: () => Promise<T>, sizeOf: (v: T) => number): Promise<Embedding | Hypernetwork> {
    const hit = this.entries.get(key);
    if (hit) {
      this.hits++;
      this.entries.delete(key);
      this.entries.set(key, hit); // most recently used last
      return hit.value;
    }
    this.misses++;
    const entry: Entry = { value: load(), bytes: 0 };
    this.entries.set(key, entry);
    entry.value.then(
      (v) => {
        if (this.entries.get(key) !== entry) return;
        entry.bytes = sizeOf(v as T);
        this.totalBytes += entry.bytes;
        this.evict();
      },
      // Failures are not cached: a fixed upload under the same name must load next time.
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry.value;
  }

  private evict(): void {
    const maxBytes = this.opts.maxBytes ?? 1 << 30;
    const maxEntries = this.opts.maxEntries ?? Infinity;
    for (const [key, e] of this.entries) {
      if (this.totalBytes <= maxBytes && this.entries.size <= maxEntries) break;
      if (this.entries.size === 1) break; // always keep the newest
      this.entries.delete(key);
      this.totalBytes -= e.bytes;
    }
  }
}

function embeddingBytes(e: Embedding): number {
  return e.vec.data.byteLength + Object.values(e.parts ?? {}).reduce((s, t) => s + t.data.byteLength, 0);
}

function hypernetworkBytes(hn: Hypernetwork): number {
  let n = 0;
  for (const pair of hn.layers.values()) {
    for (const m of pair) for (const p of m.params.values()) n += p.weight.data.byteLength + (p.bias?.data.byteLength ?? 0);
  }
  return n;
}
