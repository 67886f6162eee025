import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng } from '@darkroom/core/formats/png.js';
import { newJobId, outputKey } from '@darkroom/farm';

/** A small PNG with an A1111 infotext, coloured by `seed` so thumbnails differ. */
export function infotextPng(prompt: string, seed: number, size = 64, model = 'demo'): Uint8Array {
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) {
    data[i * 3] = (seed * 37 + i) & 255;
    data[i * 3 + 1] = (seed * 91) & 255;
    data[i * 3 + 2] = (i >> 3) & 255;
  }
  const infotext = `${prompt}\nSteps: 3, Sampler: Euler, Schedule type: Automatic, CFG scale: 5, Seed: ${seed}, Size: ${size}x${size}, Model: ${model}`;
  return encodePng({ width: size, height: size, channels: 3, data }, [['parameters', infotext]]);
}

/**
 * Writes finished outputs straight into a folder storage (`file://` STORAGE_URL), as a worker leaves them,
 * so gallery tests can hold hundreds of images without rendering each. Returns the job ids, oldest first.
 */
export async function seedOutputs(storageUrl: string, tenant: string, prompts: readonly string[], size = 64): Promise<string[]> {
  const root = fileURLToPath(storageUrl);
  const ids: string[] = [];
  for (let i = 0; i < prompts.length; i++) {
    const id = newJobId();
    const path = join(root, ...outputKey(tenant, id, 0).split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, infotextPng(prompts[i]!, 1000 + i, size));
    ids.push(id);
    // ULIDs made in the same millisecond are not ordered: space them so "newest first" is well defined.
    await new Promise((r) => setTimeout(r, 2));
  }
  return ids;
}
