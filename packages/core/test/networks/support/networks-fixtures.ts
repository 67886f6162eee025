/**
 * Embeddings and hypernetworks for end-to-end tests on the demo model, made with the project's own creators
 * from a seeded random source and written to disk with its writers, so jobs load them as they load user files.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Embedding } from '../../../src/networks/embeddings/embedding.js';
import { saveEmbeddingPt } from '../../../src/networks/embeddings/save.js';
import { createHypernetwork, type CreateHypernetworkOptions, type RandomSource } from '../../../src/networks/hypernetworks/create.js';
import { saveHypernetworkPt } from '../../../src/networks/hypernetworks/save.js';
import { float32 } from '../../../src/tensor.js';

/** A deterministic uniform/normal source (LCG + Box-Muller), independent of Math.random. */
export function seededRandom(seed: number): RandomSource {
  let s = seed >>> 0;
  const uniform = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return { uniform, normal: () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()) };
}

/** An embedding of `vectors` random vectors of `width` (standard normal scaled by `scale`). */
export function randomEmbedding(name: string, vectors: number, width: number, seed: number, scale = 1): Embedding {
  const rnd = seededRandom(seed);
  return {
    name,
    vec: float32([vectors, width], Float32Array.from({ length: vectors * width }, () => rnd.normal() * scale)),
    vectors,
    width,
    step: 0,
    sdCheckpoint: null,
    sdCheckpointName: null,
    filename: `${name}.pt`,
    hash: '',
    shorthash: '',
  };
}

/** The demo UNet's attention widths: self-attention at 32 and 64 channels, cross-attention context 32. */
export const DEMO_ATTENTION_WIDTHS = [32, 64] as const;

export function demoHypernetwork(
  name: string,
  seed: number,
  extra: Partial<Omit<CreateHypernetworkOptions, 'name' | 'random'>> = {},
): ReturnType<typeof createHypernetwork> {
  return createHypernetwork({
    name,
    sizes: DEMO_ATTENTION_WIDTHS,
    layerStructure: '1, 2, 1',
    activationFunc: 'relu',
    weightInit: 'KaimingNormal',
    addLayerNorm: false,
    useDropout: false,
    ...extra,
    random: seededRandom(seed),
  });
}

/** A scratch folder for network files, removed by `dispose`. */
export async function scratchDir(): Promise<{ dir: string; write: (file: string, bytes: Uint8Array) => Promise<string>; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-networks-'));
  return {
    dir,
    async write(file, bytes) {
      const path = join(dir, file);
      await writeFile(path, bytes);
      return path;
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

export { saveEmbeddingPt, saveHypernetworkPt };
