/** Small RRDBNet upscalers with seeded random weights, written as A1111 users' files are. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RasterImage } from '../../src/formats/png.js';
import { PyOrderedDict } from '../../src/formats/pickle/values.js';
import { torchTensor, writeTorchFile } from '../../src/formats/torch.js';
import { float32, type HostTensor } from '../../src/tensor.js';

/** Seeded uniform numbers in [-1, 1) (mulberry32), so the weights and images are the same every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

export interface Arch {
  nf: number;
  nb: number;
  gc: number;
  ups: number;
}

/** An RRDBNet state dict in ESRGAN's original key layout, with seeded random weights. */
export function esrganStateDict(a: Arch, seed = 1): Map<string, HostTensor> {
  const r = rng(seed);
  const sd = new Map<string, HostTensor>();
  const conv = (key: string, out: number, inp: number): void => {
    const bound = Math.sqrt(6 / (inp * 9));
    sd.set(`${key}.weight`, float32([out, inp, 3, 3], Float32Array.from({ length: out * inp * 9 }, () => r() * bound)));
    sd.set(`${key}.bias`, float32([out], Float32Array.from({ length: out }, () => r() * 0.05)));
  };
  conv('model.0', a.nf, 3);
  for (let b = 0; b < a.nb; b++) {
    for (let k = 1; k <= 3; k++) for (let c = 1; c <= 5; c++) conv(`model.1.sub.${b}.RDB${k}.conv${c}.0`, c < 5 ? a.gc : a.nf, a.nf + (c - 1) * a.gc);
  }
  conv(`model.1.sub.${a.nb}`, a.nf, a.nf);
  for (let u = 0; u < a.ups; u++) conv(`model.${3 + 3 * u}`, a.nf, a.nf);
  const last = 4 + 3 * a.ups;
  conv(`model.${last - 2}`, a.nf, a.nf);
  conv(`model.${last}`, 3, a.nf);
  return sd;
}

export function renamed(sd: ReadonlyMap<string, HostTensor>, rename: (k: string) => string): Map<string, HostTensor> {
  return new Map([...sd].map(([k, t]) => [rename(k), t] as const));
}

/** ESRGAN's old names to Real-ESRGAN's, for an nb=1, x4 net. */
export function toRealEsrgan(k: string): string {
  const m = /^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$/.exec(k);
  if (m) return `body.${m[1]}.rdb${m[2]}.conv${m[3]}.${m[4]}`;
  const table: Record<string, string> = { 'model.0': 'conv_first', 'model.1.sub.1': 'conv_body', 'model.3': 'conv_up1', 'model.6': 'conv_up2', 'model.8': 'conv_hr', 'model.10': 'conv_last' };
  const [, head, param] = /^(.*)\.(weight|bias)$/.exec(k)!;
  return `${table[head!]}.${param}`;
}

export function randomImage(width: number, height: number, seed: number): RasterImage {
  const r = rng(seed);
  // A smooth gradient plus noise: something an upscaler's output varies over, not a flat field.
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(((x + 2 * y + 40 * c) % 256) * 0.7 + 40 * r())));
    }
  }
  return { width, height, channels: 3, data };
}

export async function writeModel(dir: string, name: string, sd: Map<string, HostTensor>): Promise<string> {
  const path = join(dir, name);
  const dict = new PyOrderedDict();
  for (const [k, t] of sd) dict.set(k, torchTensor(t));
  await writeFile(path, writeTorchFile(dict, { archiveName: name.replace(/\..*$/, '') }));
  return path;
}

/** nf 8, one RRDB, growth 4, x4. */
export const ARCH: Arch = { nf: 8, nb: 1, gc: 4, ups: 2 };
