import { z } from 'zod';
import type { DatasetFileInfo } from './dataset-validation.js';
import { FarmError } from './errors.js';
import { isJobId, newJobId } from './ids.js';
import type { DatasetSummary, DatasetView } from './schemas.js';
import type { Storage } from './storage/index.js';

/**
 * Training datasets in storage: `datasets/<tenant>/<id>/files/<n>.<ext>` for the bytes and
 * `datasets/<tenant>/<id>/manifest.json`, written last. A dataset exists once its manifest does, so an upload
 * that dies halfway leaves unlisted files and never half a dataset. File keys are numbered, not named after the
 * upload's file names, because storage keys never carry user text (see `assertKey`); the manifest maps names to keys.
 */

const MANIFEST = 'manifest.json';

const ImageRecord = z.object({
  kind: z.literal('image'), name: z.string(), key: z.string(), bytes: z.number().int(), sha256: z.string(),
  width: z.number().int(), height: z.number().int(), caption: z.string().nullable(),
});
const CaptionRecord = z.object({
  kind: z.literal('caption'), name: z.string(), key: z.string(), bytes: z.number().int(), sha256: z.string(), image: z.string(),
});
const FileRecord = z.discriminatedUnion('kind', [ImageRecord, CaptionRecord]);

export const DatasetManifest = z.object({
  version: z.literal(1),
  id: z.string(),
  name: z.string(),
  created_at: z.string(),
  bytes: z.number().int(),
  files: z.array(FileRecord),
});
export type DatasetManifest = z.infer<typeof DatasetManifest>;
export type DatasetFileRecord = z.infer<typeof FileRecord>;
export type DatasetImageRecord = z.infer<typeof ImageRecord>;

/** Dataset ids are ULIDs, like job ids: sortable by creation and safe in storage keys. */
export const newDatasetId = newJobId;
export const isDatasetId = isJobId;

export function datasetPrefix(tenant: string, id: string): string {
  return `datasets/${tenant}/${id}/`;
}

export function datasetManifestKey(tenant: string, id: string): string {
  return `${datasetPrefix(tenant, id)}${MANIFEST}`;
}

function fileKey(tenant: string, id: string, index: number, kind: DatasetFileInfo['kind']): string {
  return `${datasetPrefix(tenant, id)}files/${String(index).padStart(6, '0')}.${kind === 'image' ? 'png' : 'txt'}`;
}

const CONTENT_TYPES = { image: 'image/png', caption: 'text/plain; charset=utf-8' } as const;

/** A validated file waiting on local disk. */
export interface StagedDatasetFile {
  info: DatasetFileInfo;
  path: string;
}

/** Storage round trips run a few at a time: S3 latency dominates small files, and one at a time is slow. */
const WRITE_CONCURRENCY = 8;

async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

/**
 * Stores the files, then the manifest. Validation is the caller's (dataset-validation.ts): this only writes.
 * On failure, whatever was written is removed as far as storage allows; leftovers are invisible without a manifest.
 */
export async function writeDataset(
  storage: Storage, tenant: string, input: { id: string; name: string; files: readonly StagedDatasetFile[]; createdAt?: Date },
): Promise<DatasetManifest> {
  const { id } = input;
  const files: DatasetFileRecord[] = input.files.map((f, i) => ({ ...f.info, key: fileKey(tenant, id, i, f.info.kind) }));
  const manifest: DatasetManifest = {
    version: 1, id, name: input.name, created_at: (input.createdAt ?? new Date()).toISOString(),
    bytes: files.reduce((n, f) => n + f.bytes, 0), files,
  };
  const written: string[] = [];
  try {
    await eachLimited(input.files, WRITE_CONCURRENCY, async (f, i) => {
      await storage.putFile(files[i]!.key, f.path, CONTENT_TYPES[f.info.kind]);
      written.push(files[i]!.key);
    });
    await storage.put(datasetManifestKey(tenant, id), new TextEncoder().encode(JSON.stringify(manifest)), 'application/json');
  } catch (e) {
    await Promise.allSettled(written.map((k) => storage.delete(k)));
    throw e;
  }
  return manifest;
}

function damaged(id: string, why: string): FarmError {
  return new FarmError('DATASET_DAMAGED', 500, `dataset ${id}: ${why}`);
}

/** The manifest of a tenant's dataset, or null when there is none (or it belongs to someone else). */
export async function readManifest(storage: Storage, tenant: string, id: string): Promise<DatasetManifest | null> {
  if (!isDatasetId(id)) return null;
  const raw = await storage.get(datasetManifestKey(tenant, id));
  if (!raw) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    throw damaged(id, 'manifest is not JSON');
  }
  const r = DatasetManifest.safeParse(parsed);
  if (!r.success) throw damaged(id, `manifest does not match its schema (${r.error.issues[0]?.message ?? ''})`);
  // A manifest only ever names keys inside its own dataset; anything else was not written by writeDataset.
  const prefix = datasetPrefix(tenant, id);
  if (r.data.id !== id || r.data.files.some((f) => !f.key.startsWith(prefix))) throw damaged(id, 'manifest names files outside the dataset');
  return r.data;
}

/** What a training job reads: the manifest and each file's bytes on demand. */
export interface Dataset {
  readonly manifest: DatasetManifest;
  /** Images in name order, each with its caption file's name (or null). */
  readonly images: readonly DatasetImageRecord[];
  /** The bytes of a file by its name in the manifest. */
  read(name: string): Promise<Uint8Array>;
  /** An image's caption text (UTF-8, BOM and trailing whitespace removed), or null when it has none. */
  caption(imageName: string): Promise<string | null>;
}

export async function readDataset(storage: Storage, tenant: string, id: string): Promise<Dataset | null> {
  const manifest = await readManifest(storage, tenant, id);
  if (!manifest) return null;
  const byName = new Map(manifest.files.map((f) => [f.name, f]));
  const read = async (name: string): Promise<Uint8Array> => {
    const f = byName.get(name);
    if (!f) throw new FarmError('NOT_FOUND', 404, `dataset ${id} has no file "${name}"`);
    const bytes = await storage.get(f.key);
    if (!bytes) throw damaged(id, `"${name}" is missing from storage`);
    return bytes;
  };
  return {
    manifest,
    images: manifest.files.filter((f): f is DatasetImageRecord => f.kind === 'image'),
    read,
    async caption(imageName) {
      const f = byName.get(imageName);
      if (f?.kind !== 'image') throw new FarmError('NOT_FOUND', 404, `dataset ${id} has no image "${imageName}"`);
      if (f.caption === null) return null;
      return new TextDecoder().decode(await read(f.caption)).replace(/^\uFEFF/, '').trimEnd();
    },
  };
}

/** A tenant's datasets (those with a manifest), oldest first. */
export async function listDatasets(storage: Storage, tenant: string): Promise<DatasetManifest[]> {
  const keys = await storage.list(`datasets/${tenant}/`);
  const ids = keys
    .map((k) => k.slice(`datasets/${tenant}/`.length).split('/'))
    .filter((parts) => parts.length === 2 && parts[1] === MANIFEST && isDatasetId(parts[0]!))
    .map((parts) => parts[0]!);
  const manifests = await Promise.all(ids.map((id) => readManifest(storage, tenant, id)));
  return manifests.filter((m): m is DatasetManifest => m !== null);
}

/** Removes the manifest first, so the dataset disappears at once even if removing its files is cut short. */
export async function deleteDataset(storage: Storage, tenant: string, id: string): Promise<boolean> {
  if (!isDatasetId(id) || !(await storage.exists(datasetManifestKey(tenant, id)))) return false;
  await storage.delete(datasetManifestKey(tenant, id));
  const keys = await storage.list(datasetPrefix(tenant, id));
  await eachLimited(keys, WRITE_CONCURRENCY, (k) => storage.delete(k));
  return true;
}

export function datasetSummary(m: DatasetManifest): DatasetSummary {
  return {
    id: m.id, name: m.name, created_at: m.created_at, bytes: m.bytes,
    images: m.files.filter((f) => f.kind === 'image').length,
    captions: m.files.filter((f) => f.kind === 'caption').length,
  };
}

export function datasetView(m: DatasetManifest): DatasetView {
  return { ...datasetSummary(m), files: m.files.map(({ key: _key, ...view }) => view) };
}
