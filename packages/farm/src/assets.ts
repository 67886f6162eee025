import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';
import type { Redis } from 'ioredis';
import type { FarmKeys } from './keys.js';
import type { AssetKind, AssetView } from './schemas.js';
import { DEMO_MODEL_NAME } from '@darkroom/core/pipeline/demo-model.js';

/**
 * Uploaded models, embeddings and hypernetworks are stored once by content (`assets/<kind>/<sha256>`) and
 * named per tenant in a Redis hash, so two tenants uploading the same file share the bytes, workers cache by
 * hash, and renaming never moves data.
 */
export const ASSET_EXTENSIONS: Record<AssetKind, readonly string[]> = {
  models: ['.safetensors', '.ckpt'],
  embeddings: ['.pt', '.bin', '.safetensors', '.png', '.webp'],
  hypernetworks: ['.pt'],
};

/** The tiny demo model every worker serves when a job names no checkpoint (its name in infotexts). */
export const BUILTIN_MODEL = DEMO_MODEL_NAME;

export function assetStorageKey(kind: AssetKind, sha256: string): string {
  return `assets/${kind}/${sha256}`;
}

export function assetName(filename: string): string {
  return basename(filename, extname(filename));
}

export interface AssetRecord {
  name: string;
  filename: string;
  sha256: string;
  size: number;
  uploadedAt: string;
}

export class AssetRegistry {
  constructor(private readonly redis: Redis, private readonly keys: FarmKeys) {}

  async put(tenant: string, kind: AssetKind, rec: AssetRecord): Promise<void> {
    await this.redis.hset(this.keys.assets(tenant, kind), rec.name, JSON.stringify(rec));
  }

  async get(tenant: string, kind: AssetKind, name: string): Promise<AssetRecord | null> {
    const raw = await this.redis.hget(this.keys.assets(tenant, kind), name);
    return raw ? (JSON.parse(raw) as AssetRecord) : null;
  }

  async list(tenant: string, kind: AssetKind): Promise<AssetRecord[]> {
    const all = await this.redis.hvals(this.keys.assets(tenant, kind));
    return all.map((r) => JSON.parse(r) as AssetRecord).sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }));
  }

  async remove(tenant: string, kind: AssetKind, name: string): Promise<boolean> {
    return (await this.redis.hdel(this.keys.assets(tenant, kind), name)) === 1;
  }
}

export interface LocalModel {
  /** A1111 model_name: relative path without extension, separators replaced by `_`. */
  modelName: string;
  /** Path relative to MODELS_DIR, as A1111's title shows it. */
  relativePath: string;
  path: string;
  size: number;
}

/** Checkpoints in MODELS_DIR (shared by every tenant, as A1111's models/Stable-diffusion folder is). */
export async function listModelsDir(dir: string): Promise<LocalModel[]> {
  const out: LocalModel[] = [];
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
      else if (ASSET_EXTENSIONS.models.includes(extname(e.name).toLowerCase())) {
        const rel = relative(dir, p);
        const modelName = rel.slice(0, -extname(rel).length).split(sep).join('_');
        out.push({ modelName, relativePath: rel, path: p, size: (await stat(p)).size });
      }
    }
  };
  await walk(dir);
  return out.sort((a, b) => a.relativePath.localeCompare(b.relativePath));
}

export function assetView(rec: AssetRecord): AssetView {
  return { name: rec.name, filename: rec.filename, sha256: rec.sha256, size: rec.size, source: 'upload' };
}
