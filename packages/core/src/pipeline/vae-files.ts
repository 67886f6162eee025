/**
 * Where A1111 finds a separate VAE file (modules/sd_vae.py): one named after the checkpoint beside it
 * ("Automatic"), or one chosen by its file name from the VAE folder (`sd_vae`).
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { DarkroomError } from '../errors.js';

/** VAE file extensions A1111 lists in its VAE folder. */
export const VAE_FILE_PATTERN = /\.(safetensors|pt|ckpt)$/i;

/**
 * `<checkpoint stem>.vae.ckpt`, `.vae.pt` or `.vae.safetensors` beside the checkpoint, the first in that
 * (A1111's name-sorted) order, or undefined.
 */
export function vaeNearCheckpoint(checkpoint: string): string | undefined {
  const stem = basename(checkpoint, extname(checkpoint));
  for (const ext of ['.vae.ckpt', '.vae.pt', '.vae.safetensors']) {
    const p = join(dirname(checkpoint), `${stem}${ext}`);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * The VAE file `sd_vae` names: its file name (what A1111's `/sdapi/v1/sd-vae` lists as `model_name`) or its
 * path relative to the folder. An unknown name is an error naming the setting.
 */
export async function vaeByName(dir: string | undefined, name: string): Promise<string> {
  const field = 'override_settings.sd_vae';
  if (!dir) {
    throw new DarkroomError('VAE_NOT_FOUND', `VAE "${name}" was requested by name, but no VAE folder is configured`, { name, field });
  }
  const files = (await readdir(dir, { recursive: true }).catch(() => [] as string[]))
    .map((f) => f.replaceAll('\\', '/'))
    .filter((f) => VAE_FILE_PATTERN.test(f))
    .sort();
  const wanted = name.replaceAll('\\', '/');
  const found = files.find((f) => f === wanted) ?? files.find((f) => basename(f) === wanted);
  if (!found) throw new DarkroomError('VAE_NOT_FOUND', `no VAE named "${name}" in ${dir}`, { name, field, available: files.map((f) => basename(f)) });
  return join(dir, found);
}
