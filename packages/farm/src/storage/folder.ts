import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { assertKey, type Storage } from './types.js';
import { replaceAtomically } from '@darkroom/core/atomic-write.js';

/** Temp files older than this are a writer's that was killed mid-write; the first write of a process removes them. */
const STALE_TMP_MS = 60 * 60 * 1000;

/**
 * A local folder: the single-host default. Writes go to a temp file then rename, so a killed worker never leaves
 * half a PNG. Temp files live in `<root>/.tmp/` (the same file system, so the rename stays atomic), not next to
 * their key: a worker SIGKILLed mid-write used to leave `0.png.<uuid>.tmp` in the job's output folder for ever.
 */
export class FolderStorage implements Storage {
  readonly driver = 'folder' as const;
  private swept = false;
  constructor(readonly root: string) {}

  private get tmpDir(): string {
    return join(this.root, '.tmp');
  }

  private async sweepStaleTemps(): Promise<void> {
    this.swept = true;
    const now = Date.now();
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const p = join(this.tmpDir, name);
      const s = await stat(p).catch(() => null);
      if (s && now - s.mtimeMs > STALE_TMP_MS) await rm(p, { force: true }).catch(() => undefined);
    }
  }

  private path(key: string): string {
    assertKey(key);
    return join(this.root, ...key.split('/'));
  }

  private async atomically(key: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    if (!this.swept) await this.sweepStaleTemps();
    await replaceAtomically(target, join(this.tmpDir, `${randomUUID()}.tmp`), write);
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    await this.atomically(key, (tmp) => writeFile(tmp, body));
  }

  async putFile(key: string, path: string): Promise<void> {
    await this.atomically(key, (tmp) => copyFile(path, tmp));
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(this.path(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async getStream(key: string): Promise<Readable | null> {
    return (await this.exists(key)) ? createReadStream(this.path(key)) : null;
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.path(key))).isFile();
    } catch {
      return false;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const dir = join(this.root, ...prefix.split('/').filter(Boolean));
    const out: string[] = [];
    const walk = async (d: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (!e.name.endsWith('.tmp')) out.push(relative(this.root, p).split(sep).join('/'));
      }
    };
    await walk(dir);
    return out.filter((k) => k.startsWith(prefix)).sort();
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async presignedUrl(): Promise<string | null> {
    return null;
  }
}
