import type { Readable } from 'node:stream';

/**
 * Where jobs' inputs, outputs and uploaded networks live. Keys are `/`-separated relative paths
 * (`outputs/<tenant>/<jobId>/<n>.png`); writing a key again replaces it, which is what makes a retried job
 * overwrite rather than duplicate its outputs.
 */
export interface Storage {
  readonly driver: 'folder' | 's3';
  put(key: string, body: Uint8Array, contentType?: string): Promise<void>;
  /** Streams a local file into a key (uploads of multi-GB checkpoints never sit in memory). */
  putFile(key: string, path: string, contentType?: string): Promise<void>;
  get(key: string): Promise<Uint8Array | null>;
  getStream(key: string): Promise<Readable | null>;
  exists(key: string): Promise<boolean>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
  /** A time-limited URL a client can GET without credentials; null when the driver has none (folder). */
  presignedUrl(key: string, expiresInS: number): Promise<string | null>;
}

const KEY_RE = /^[A-Za-z0-9_.=-]+(\/[A-Za-z0-9_.=-]+)*$/;

/** Keys come from tenant names and ids, never raw user paths; this refuses anything that could escape. */
export function assertKey(key: string): void {
  if (!KEY_RE.test(key) || key.split('/').some((p) => p === '.' || p === '..')) {
    throw new Error(`invalid storage key "${key}"`);
  }
}
