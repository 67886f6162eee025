import { readdir } from 'node:fs/promises';
import { basename, extname, join, relative } from 'node:path';
import { ASSET_EXTENSIONS, type AssetRecord } from './assets.js';

/**
 * VAE uploads as A1111 names them (modules/sd_vae.py): `sd_vae` is "Automatic", "None" or a VAE's file name
 * (what `/sdapi/v1/sd-vae` lists as `model_name`). One module so the API's check at submission, the options
 * route and the worker's lookup agree on which upload a name means.
 */
export const SD_VAE_AUTOMATIC = 'Automatic';
export const SD_VAE_NONE = 'None';

/** Whether an `sd_vae` value names a file (rather than choosing the checkpoint's own VAE or one beside it). */
export function namesVaeFile(value: string): boolean {
  // A1111 takes "auto" as "Automatic" too (sd_vae.is_automatic)
  return value !== SD_VAE_AUTOMATIC && value !== 'auto' && value !== SD_VAE_NONE;
}

/** The tenant's VAE an `sd_vae` value names: by uploaded file name (A1111's), else by upload name (stem). */
export function vaeNamed(records: readonly AssetRecord[], value: string): AssetRecord | undefined {
  return records.find((r) => r.filename === value) ?? records.find((r) => r.name === value);
}

/** The operator's VAE folder, A1111's models/VAE: `MODELS_DIR/VAE`, shared by every tenant. */
export const VAE_DIR = 'VAE';

/** A VAE file in `MODELS_DIR/VAE`: its path relative to that folder and its file name (what sd_vae takes). */
export interface LocalVae {
  readonly relativePath: string;
  readonly filename: string;
}

/** The VAE files under `MODELS_DIR/VAE` (any depth), sorted; none when the folder is absent. */
export async function listVaeDir(modelsDir: string): Promise<LocalVae[]> {
  const dir = join(modelsDir, VAE_DIR);
  const files = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return files
    .filter((e) => e.isFile() && ASSET_EXTENSIONS.vaes.includes(extname(e.name).toLowerCase()))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort()
    .map((relativePath) => ({ relativePath, filename: basename(relativePath) }));
}

/** What a job carries of the VAE its sd_vae names: an upload by content hash, or a file of `MODELS_DIR/VAE`. */
export type JobVae = { sha256: string; filename: string } | { modelsDirPath: string; filename: string };

/**
 * The VAE an `sd_vae` value names for a tenant: its upload first (by file name, then upload name), else a file of
 * `MODELS_DIR/VAE` (by file name or relative path); undefined when neither has it.
 */
export function vaeForSetting(records: readonly AssetRecord[], local: readonly LocalVae[], value: string): JobVae | undefined {
  const rec = vaeNamed(records, value);
  if (rec) return { sha256: rec.sha256, filename: rec.filename };
  const file = local.find((f) => f.relativePath === value) ?? local.find((f) => f.filename === value);
  return file ? { modelsDirPath: file.relativePath, filename: file.filename } : undefined;
}

/**
 * `/sdapi/v1/sd-vae` items (A1111's SDVaeItem): `model_name` is the file name `sd_vae` takes; A1111's `filename`
 * is where its server keeps the file, and a farm's uploads live in storage by content hash, so the uploaded file
 * name stands in, and `MODELS_DIR/VAE` files show their path inside that folder (no server path is ever shown).
 */
export function sdVaeItems(records: readonly AssetRecord[], local: readonly LocalVae[] = []): Array<{ model_name: string; filename: string }> {
  const items = records.map((r) => ({ model_name: r.filename, filename: r.filename }));
  const taken = new Set(items.map((i) => i.model_name));
  for (const f of local) if (!taken.has(f.filename)) items.push({ model_name: f.filename, filename: `${VAE_DIR}/${f.relativePath}` });
  return items;
}
