import { readdir } from 'node:fs/promises';
import { basename, extname, join, relative } from 'node:path';
import { HIRES_UPSCALERS, isLatentUpscaler } from '@darkroom/core/catalog/upscalers.js';
import { ASSET_EXTENSIONS, type AssetRecord } from './assets.js';

/**
 * Upscaler models as A1111 names and lists them (modules/upscaler.py, esrgan_model.py, realesrgan_model.py): one
 * module so `/sdapi/v1/upscalers`, `/sdapi/v1/realesrgan-models`, `hr_upscaler` at submission, the extras routes
 * and the worker's lookup agree on which file a name means.
 *
 * A1111's `shared.sd_upscalers` holds the built-ins first (None, Lanczos, Nearest), then the model upscalers; a
 * name is looked up in that order, so a file named "Lanczos" never shadows the built-in. The latent modes are not
 * upscalers there (they have their own listing), and the extras tab cannot use them.
 */

/** The image upscalers every worker runs without a file (A1111's UpscalerNone, UpscalerLanczos, UpscalerNearest). */
export const BUILTIN_IMAGE_UPSCALERS: readonly string[] = HIRES_UPSCALERS.filter((n) => !isLatentUpscaler(n));

/** A1111's models/ESRGAN and models/RealESRGAN under MODELS_DIR, shared by every tenant. */
export const ESRGAN_DIR = 'ESRGAN';
export const REALESRGAN_DIR = 'RealESRGAN';

/**
 * The Real-ESRGAN models A1111 knows (realesrgan_model.get_realesrgan_models) that are RRDBNets, by the file name it
 * downloads them as: A1111 lists a file of its RealESRGAN folder only under one of these names. The SRVGG ones
 * (General 4xV3, AnimeVideo) and the pixel-unshuffle 2x+ are other networks, which the engine does not build.
 */
const REALESRGAN_KNOWN: ReadonlyArray<{ file: string; name: string; scale: number }> = [
  { file: 'RealESRGAN_x4plus.pth', name: 'R-ESRGAN 4x+', scale: 4 },
  { file: 'RealESRGAN_x4plus_anime_6B.pth', name: 'R-ESRGAN 4x+ Anime6B', scale: 4 },
];

/** What an upload's file said of itself at upload (its record's metadata): the RRDBNet key layout and scale. */
export interface UpscalerDescription {
  readonly layout: string;
  readonly scale: number;
}

/** An upscaler model of MODELS_DIR: its name, path relative to MODELS_DIR, and what A1111 lists for it. */
export interface LocalUpscaler {
  readonly name: string;
  readonly relativePath: string;
  readonly realEsrgan: boolean;
  readonly scale: number;
}

/** ESRGAN-folder files A1111 loads (.pth, .pt; .safetensors too, as the engine reads them). */
const ESRGAN_EXTENSIONS = ASSET_EXTENSIONS.upscalers;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

/**
 * MODELS_DIR/ESRGAN files (any depth; named by file stem, as A1111's friendly_name does, scale 4 as A1111 reports
 * every ESRGAN file) and the RealESRGAN folder's known files under A1111's names.
 */
export async function listUpscalerDirs(modelsDir: string): Promise<LocalUpscaler[]> {
  const out: LocalUpscaler[] = [];
  for (const rel of await filesUnder(join(modelsDir, ESRGAN_DIR))) {
    if (!ESRGAN_EXTENSIONS.includes(extname(rel).toLowerCase())) continue;
    out.push({ name: basename(rel, extname(rel)), relativePath: join(ESRGAN_DIR, rel), realEsrgan: false, scale: 4 });
  }
  const real = await filesUnder(join(modelsDir, REALESRGAN_DIR));
  for (const known of REALESRGAN_KNOWN) {
    // A1111 takes the first local file whose path ends with the download's file name
    const rel = real.find((r) => r === known.file || r.endsWith(`/${known.file}`));
    if (rel) out.push({ name: known.name, relativePath: join(REALESRGAN_DIR, rel), realEsrgan: true, scale: known.scale });
  }
  return out;
}

function describedOf(rec: AssetRecord): UpscalerDescription | undefined {
  const m = rec.metadata;
  return m && typeof m.layout === 'string' && typeof m.scale === 'number' ? { layout: m.layout, scale: m.scale } : undefined;
}

/** A1111's UpscalerItem. */
export interface UpscalerItem {
  name: string;
  model_name: string | null;
  model_path: string | null;
  model_url: string | null;
  scale: number;
}

/**
 * `/sdapi/v1/upscalers`: the built-ins (no file, A1111's UpscalerData scale 4), the tenant's uploads by name
 * (A1111's ESRGAN upscaler, model_name "ESRGAN_4x", the scale read from the file), then MODELS_DIR's files a name
 * of the tenant's does not already take. `model_path` is where A1111 keeps the file; a farm shows the uploaded file
 * name or the path inside MODELS_DIR, never a server path.
 */
export function upscalerItems(records: readonly AssetRecord[], local: readonly LocalUpscaler[]): UpscalerItem[] {
  const items: UpscalerItem[] = BUILTIN_IMAGE_UPSCALERS.map((name) => ({ name, model_name: null, model_path: null, model_url: null, scale: 4 }));
  const taken = new Set(items.map((i) => i.name));
  for (const r of records) {
    if (taken.has(r.name)) continue;
    taken.add(r.name);
    items.push({ name: r.name, model_name: 'ESRGAN_4x', model_path: r.filename, model_url: null, scale: describedOf(r)?.scale ?? 4 });
  }
  for (const f of local) {
    if (taken.has(f.name)) continue;
    taken.add(f.name);
    // A1111's RealESRGAN upscaler sets no model_name of its own
    items.push({ name: f.name, model_name: f.realEsrgan ? null : 'ESRGAN_4x', model_path: f.relativePath, model_url: null, scale: f.scale });
  }
  return items;
}

/** `/sdapi/v1/realesrgan-models` (A1111's RealesrganItem): uploads in Real-ESRGAN's key layout and the RealESRGAN folder's. */
export function realesrganItems(records: readonly AssetRecord[], local: readonly LocalUpscaler[]): Array<{ name: string; path: string; scale: number }> {
  const fromUploads = records.flatMap((r) => {
    const d = describedOf(r);
    return d?.layout === 'real-esrgan' ? [{ name: r.name, path: r.filename, scale: d.scale }] : [];
  });
  return [...fromUploads, ...local.filter((f) => f.realEsrgan).map((f) => ({ name: f.name, path: f.relativePath, scale: f.scale }))];
}

/** What a job carries of an upscaler model its request names: an upload by content hash, or a file of MODELS_DIR. */
export type JobUpscaler = { name: string; sha256: string; filename: string } | { name: string; modelsDirPath: string };

/** An upscaler name as a request gives it: a built-in (no file), a model (its file), or unknown (undefined). */
export type ResolvedUpscaler = { builtin: string } | { model: JobUpscaler };

/**
 * The upscaler `name` means for a tenant, in A1111's order: a built-in, then the tenant's upload by name (file stem,
 * A1111's friendly_name), then MODELS_DIR's. Undefined when none has it.
 */
export function resolveUpscaler(records: readonly AssetRecord[], local: readonly LocalUpscaler[], name: string): ResolvedUpscaler | undefined {
  if (BUILTIN_IMAGE_UPSCALERS.includes(name)) return { builtin: name };
  const rec = records.find((r) => r.name === name);
  if (rec) return { model: { name: rec.name, sha256: rec.sha256, filename: rec.filename } };
  const file = local.find((f) => f.name === name);
  return file ? { model: { name: file.name, modelsDirPath: file.relativePath } } : undefined;
}
