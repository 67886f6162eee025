import type { AssetRecord } from './assets.js';

/**
 * VAE uploads as A1111 names them (modules/sd_vae.py): `sd_vae` is "Automatic", "None" or a VAE's file name
 * (what `/sdapi/v1/sd-vae` lists as `model_name`). One module so the API's check at submission, the options
 * route and the worker's lookup agree on which upload a name means.
 */
export const SD_VAE_AUTOMATIC = 'Automatic';
export const SD_VAE_NONE = 'None';

/** Whether an `sd_vae` value names a file (rather than choosing the checkpoint's own VAE or one beside it). */
export function namesVaeFile(value: string): boolean {
  return value !== SD_VAE_AUTOMATIC && value !== SD_VAE_NONE;
}

/** The tenant's VAE an `sd_vae` value names: by uploaded file name (A1111's), else by upload name (stem). */
export function vaeNamed(records: readonly AssetRecord[], value: string): AssetRecord | undefined {
  return records.find((r) => r.filename === value) ?? records.find((r) => r.name === value);
}

/**
 * `/sdapi/v1/sd-vae` items (A1111's SDVaeItem): `model_name` is the file name `sd_vae` takes; A1111's `filename`
 * is where its server keeps the file, and a farm's files live in storage by content hash, so the uploaded file
 * name stands in (no server path is ever shown).
 */
export function sdVaeItems(records: readonly AssetRecord[]): Array<{ model_name: string; filename: string }> {
  return records.map((r) => ({ model_name: r.filename, filename: r.filename }));
}
