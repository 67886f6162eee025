import { decodePng, encodePng, readPngText } from '@darkroom/core/formats/png.js';
import { parseGenerationParameters } from '@darkroom/core/formats/infotext.js';
import { resizeImage } from '@darkroom/core/pipeline/image.js';
import { isJobId, outputKey, type Storage } from '@darkroom/farm';
import type { Redis } from 'ioredis';

/** One stored output of a tenant, as the gallery lists it. */
export interface GalleryEntry {
  id: string;
  index: number;
  /** ISO time the output was first seen (a ULID job id's own time when it has one). */
  created_at: string;
  infotext: string;
  prompt: string;
  model: string | null;
  seed: number | null;
}

/** What is kept per output in Redis: everything but the id and index, which the storage key carries. */
type StoredMeta = Omit<GalleryEntry, 'id' | 'index'>;

export interface GalleryFilter {
  q?: string;
  model?: string;
  since?: number;
  until?: number;
}

export const THUMB_MAX = 160;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** The millisecond time in a ULID's first ten characters (idempotency-key ids carry hash bits there instead). */
export function ulidTime(id: string): number {
  let t = 0;
  for (const c of id.slice(0, 10)) t = t * 32 + CROCKFORD.indexOf(c);
  return t;
}

/** `outputs/<tenant>/<jobId>/<index>.png` -> job id and index, or null for anything else under the prefix. */
export function parseOutputKey(tenant: string, key: string): { id: string; index: number } | null {
  const prefix = `outputs/${tenant}/`;
  if (!key.startsWith(prefix)) return null;
  const m = /^([^/]+)\/(\d{1,4})\.png$/.exec(key.slice(prefix.length));
  if (!m || !isJobId(m[1]!)) return null;
  return { id: m[1]!, index: Number(m[2]) };
}

/** The gallery's metadata from a stored PNG's infotext. */
export function metaFromPng(bytes: Uint8Array, createdMs: number): StoredMeta {
  let infotext = '';
  try {
    infotext = readPngText(bytes).parameters ?? '';
  } catch {
    // An unreadable output still belongs in the gallery; it just has no parameters to show or search.
  }
  const params = infotext ? parseGenerationParameters(infotext) : new Map<string, unknown>();
  const prompt = params.get('Prompt');
  const model = params.get('Model');
  const seed = params.get('Seed');
  return {
    created_at: new Date(createdMs).toISOString(),
    infotext,
    prompt: typeof prompt === 'string' ? prompt : '',
    model: typeof model === 'string' ? model : model === undefined ? null : String(model),
    seed: typeof seed === 'number' ? seed : typeof seed === 'string' && /^\d+$/.test(seed) ? Number(seed) : null,
  };
}

export function matchesFilter(e: GalleryEntry, f: GalleryFilter): boolean {
  if (f.q && !e.prompt.toLowerCase().includes(f.q.toLowerCase())) return false;
  if (f.model && (e.model ?? '').toLowerCase() !== f.model.toLowerCase()) return false;
  const t = Date.parse(e.created_at);
  if (f.since !== undefined && t < f.since) return false;
  if (f.until !== undefined && t > f.until) return false;
  return true;
}

/** Newest first; a job's images in their order. */
export function compareEntries(a: GalleryEntry, b: GalleryEntry): number {
  return b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id) || a.index - b.index;
}

export const cursorOf = (e: GalleryEntry): string => `${e.id}.${e.index}`;

/** The page after `cursor` (the last entry of the previous page), and the cursor of the page after this one. */
export function pageAfter(entries: readonly GalleryEntry[], cursor: string | undefined, limit: number): { items: GalleryEntry[]; next: string | null } {
  let start = 0;
  if (cursor) {
    const at = entries.findIndex((e) => cursorOf(e) === cursor);
    // A cursor whose entry is gone (filtered out or deleted) gives an empty page rather than page one again.
    start = at < 0 ? entries.length : at + 1;
  }
  const items = entries.slice(start, start + limit);
  const next = start + limit < entries.length && items.length > 0 ? cursorOf(items[items.length - 1]!) : null;
  return { items, next };
}

/** A small PNG preview that fits THUMB_MAX on its longer side (no text chunks: the gallery lists the infotext). */
export function thumbnailPng(bytes: Uint8Array, max = THUMB_MAX): Uint8Array {
  const img = decodePng(bytes);
  const scale = Math.min(1, max / Math.max(img.width, img.height));
  const w = Math.max(1, Math.round(img.width * scale));
  const h = Math.max(1, Math.round(img.height * scale));
  return encodePng(scale < 1 ? resizeImage(img, w, h, 'bilinear') : img);
}

export const thumbKey = (tenant: string, id: string, index: number): string => `thumbs/${tenant}/${id}/${index}.png`;

/**
 * Every stored output of one tenant, from the storage listing under that tenant's own prefix (so another
 * tenant's images cannot appear), with the parameters read once per output and kept in a Redis hash.
 */
export async function tenantGallery(storage: Storage, redis: Redis, metaKey: string, tenant: string): Promise<GalleryEntry[]> {
  const found = (await storage.list(`outputs/${tenant}/`)).map((k) => parseOutputKey(tenant, k)).filter((x) => x !== null);
  if (found.length === 0) return [];
  const fields = found.map((f) => `${f.id}/${f.index}`);
  const cached = await redis.hmget(metaKey, ...fields);
  const entries: GalleryEntry[] = new Array(found.length);
  const missing: number[] = [];
  cached.forEach((raw, i) => {
    if (raw) entries[i] = { ...found[i]!, ...(JSON.parse(raw) as StoredMeta) };
    else missing.push(i);
  });
  // Read the new outputs a few at a time: one listing after a busy day must not open hundreds of streams at once.
  const fresh: Record<string, string> = {};
  for (let k = 0; k < missing.length; k += 8) {
    await Promise.all(missing.slice(k, k + 8).map(async (i) => {
      const { id, index } = found[i]!;
      const bytes = await storage.get(outputKey(tenant, id, index));
      const created = ulidTime(id);
      const meta = metaFromPng(bytes ?? new Uint8Array(), created > 0 && created <= Date.now() ? created : Date.now());
      entries[i] = { id, index, ...meta };
      fresh[fields[i]!] = JSON.stringify(meta);
    }));
  }
  if (Object.keys(fresh).length) await redis.hset(metaKey, fresh);
  return entries.sort(compareEntries);
}
