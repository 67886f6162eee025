import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FarmError } from './errors.js';
import type { FarmKeys } from './keys.js';
import type { AssetKind, AssetView } from './schemas.js';
import { BUILTIN_MODEL_NAME } from '@darkroom/core/catalog/built-in-model.js';

/**
 * Uploaded models, embeddings, hypernetworks and LoRAs are stored once by content (`assets/<kind>/<sha256>`) and
 * named per tenant in a Redis hash, so two tenants uploading the same file share the bytes, workers cache by
 * hash, and renaming never moves data.
 */
export const ASSET_EXTENSIONS: Record<AssetKind, readonly string[]> = {
  models: ['.safetensors', '.ckpt'],
  embeddings: ['.pt', '.bin', '.safetensors', '.png', '.webp'],
  hypernetworks: ['.pt'],
  // A1111's Lora folder lists these three (networks/lora/file.ts reads them).
  loras: ['.safetensors', '.pt', '.ckpt'],
  // A1111's VAE folder lists these three (sd_vae.refresh_vae_list).
  vaes: ['.safetensors', '.pt', '.ckpt'],
  // ESRGAN-family files: A1111's ESRGAN folder takes .pth and .pt; the engine reads .safetensors too.
  upscalers: ['.pth', '.pt', '.safetensors'],
};

/** The built-in model every worker serves when a job names no checkpoint (its name in infotexts). */
export const BUILTIN_MODEL = BUILTIN_MODEL_NAME;

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
  /** LoRA files: the alias prompts may name them by (`ss_output_name`) and their metadata, read at upload. */
  alias?: string;
  metadata?: Record<string, unknown>;
}

const RELEASE_LOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const LOCK_TTL_MS = 60_000;
const LOCK_WAIT_MS = 60_000;

function refMember(tenant: string, name: string): string {
  return `${tenant}\n${name}`;
}

/**
 * Tenants' asset names (a Redis hash per tenant and kind) and who refers to which stored bytes. Bytes are shared
 * by content hash between names and tenants, so they may only be deleted when no name refers to them any more:
 * each name is a member of its hash's reference set, and the decision to delete is taken under a per-hash lock
 * that an upload of the same bytes also takes before it trusts that they are stored (see asset-store.ts).
 */
export class AssetRegistry {
  private refsReady: Promise<void> | null = null;

  constructor(private readonly redis: Redis, private readonly keys: FarmKeys) {}

  /** Records `rec` under its name and returns the record it replaced, if any. */
  async put(tenant: string, kind: AssetKind, rec: AssetRecord): Promise<AssetRecord | null> {
    const key = this.keys.assets(tenant, kind);
    const r = await this.redis.multi().hget(key, rec.name).hset(key, rec.name, JSON.stringify(rec)).exec();
    const old = r?.[0]?.[1];
    return typeof old === 'string' ? (JSON.parse(old) as AssetRecord) : null;
  }

  async get(tenant: string, kind: AssetKind, name: string): Promise<AssetRecord | null> {
    const raw = await this.redis.hget(this.keys.assets(tenant, kind), name);
    return raw ? (JSON.parse(raw) as AssetRecord) : null;
  }

  async list(tenant: string, kind: AssetKind): Promise<AssetRecord[]> {
    const all = await this.redis.hvals(this.keys.assets(tenant, kind));
    return all.map((r) => JSON.parse(r) as AssetRecord).sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }));
  }

  /** Removes the name and returns its record (null when there was none). */
  async remove(tenant: string, kind: AssetKind, name: string): Promise<AssetRecord | null> {
    const key = this.keys.assets(tenant, kind);
    const r = await this.redis.multi().hget(key, name).hdel(key, name).exec();
    const old = r?.[0]?.[1];
    return typeof old === 'string' ? (JSON.parse(old) as AssetRecord) : null;
  }

  /** Bytes a tenant's names account for, every kind summed (what TENANT_QUOTA_BYTES bounds). */
  async usage(tenant: string, kinds: readonly AssetKind[]): Promise<number> {
    let total = 0;
    for (const kind of kinds) for (const r of await this.list(tenant, kind)) total += r.size;
    return total;
  }

  /** `tenant`'s name now refers to these bytes. */
  async claim(kind: AssetKind, sha256: string, tenant: string, name: string): Promise<void> {
    await this.ensureRefs();
    await this.redis.sadd(this.keys.assetRefs(kind, sha256), refMember(tenant, name));
  }

  /** `tenant`'s name no longer refers to these bytes. */
  async unclaim(kind: AssetKind, sha256: string, tenant: string, name: string): Promise<void> {
    await this.redis.srem(this.keys.assetRefs(kind, sha256), refMember(tenant, name));
  }

  /** How many names refer to these bytes. */
  async references(kind: AssetKind, sha256: string): Promise<number> {
    await this.ensureRefs();
    return this.redis.scard(this.keys.assetRefs(kind, sha256));
  }

  /**
   * Runs `fn` holding the lock of these bytes (a Redis key with a TTL, so a crashed holder frees it). Waits up
   * to a minute for another holder; ASSET_BUSY (503) after that.
   */
  async withHashLock<T>(kind: AssetKind, sha256: string, fn: () => Promise<T>): Promise<T> {
    const key = this.keys.assetLock(kind, sha256);
    const token = randomUUID();
    const deadline = Date.now() + LOCK_WAIT_MS;
    while ((await this.redis.set(key, token, 'PX', LOCK_TTL_MS, 'NX')) !== 'OK') {
      if (Date.now() > deadline) throw new FarmError('ASSET_BUSY', 503, `${kind} ${sha256.slice(0, 12)} is being changed; try again`);
      await new Promise((r) => setTimeout(r, 25));
    }
    try {
      return await fn();
    } finally {
      await this.redis.eval(RELEASE_LOCK, 1, key, token);
    }
  }

  /**
   * Counts the names recorded before reference sets existed (once per deployment; idempotent, so two API
   * processes doing it at once is harmless). Until this is done, no bytes are judged unreferenced.
   */
  ensureRefs(): Promise<void> {
    this.refsReady ??= (async () => {
      if (await this.redis.exists(this.keys.assetRefsReady)) return;
      const prefix = this.keys.assetsPattern.slice(0, -1);
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', this.keys.assetsPattern, 'COUNT', 500);
        cursor = next;
        for (const key of keys) {
          const rest = key.slice(prefix.length);
          const cut = rest.lastIndexOf(':');
          const tenant = rest.slice(0, cut);
          const kind = rest.slice(cut + 1);
          for (const [name, raw] of Object.entries(await this.redis.hgetall(key))) {
            const rec = JSON.parse(raw) as AssetRecord;
            await this.redis.sadd(this.keys.assetRefs(kind, rec.sha256), refMember(tenant, name));
          }
        }
      } while (cursor !== '0');
      await this.redis.set(this.keys.assetRefsReady, '1');
    })().catch((e: unknown) => {
      this.refsReady = null;
      throw e;
    });
    return this.refsReady;
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
      // MODELS_DIR/VAE is A1111's models/VAE; `.vae.*` files beside checkpoints are VAEs (A1111's ext_blacklist)
      if (e.isDirectory()) {
        if (!(d === dir && e.name === 'VAE')) await walk(p);
      } else if (ASSET_EXTENSIONS.models.includes(extname(e.name).toLowerCase()) && !/\.vae\.(ckpt|safetensors)$/i.test(e.name)) {
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
