import assert from 'node:assert/strict';
import { encodePng } from '@darkroom/core/formats/png.js';
import type { Farm } from './farm.js';

/**
 * A 64x64 image of stripes that differ by seed (the demo model's VAE makes 8x8 latents of it). Small on purpose:
 * an optimizer step on the demo model then takes tens of milliseconds.
 */
export function stripes(seed: number): Uint8Array {
  const w = 64;
  const data = new Uint8Array(w * w * 3);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      data[i] = (x * 4 + seed * 40) & 255;
      data[i + 1] = (y * 4) & 255;
      data[i + 2] = ((x + y) * 2 * seed) & 255;
    }
  }
  return encodePng({ width: w, height: w, channels: 3, data });
}

/** Four stripe images and one caption. */
export const STRIPES_DATASET: readonly { name: string; bytes: Uint8Array }[] = [
  ...[1, 2, 3, 4].map((s) => ({ name: `img${s}.png`, bytes: stripes(s) })),
  { name: 'img1.txt', bytes: new TextEncoder().encode('red stripes') },
];

/** Uploads files as a multipart dataset for the tenant of `key`; returns the dataset's id. */
export async function uploadDataset(farm: Farm, key: string, name: string, files = STRIPES_DATASET): Promise<string> {
  const form = new FormData();
  form.append('name', name);
  for (const f of files) form.append('files', new Blob([f.bytes]), f.name);
  const res = await fetch(`${farm.url}/v1/datasets`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}
