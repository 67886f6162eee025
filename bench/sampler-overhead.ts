/**
 * Per-step TypeScript overhead of the samplers at 512x512 with CFG: one 1x4x64x64 latent, a model batch of
 * 2x4x64x64 (cond + uncond) from a zero-cost "UNet", A1111's CFG combine, the real noise sources (CPU
 * mt19937/AVX2 per-image generator; Brownian trees for the SDE samplers) and each sampler's own arithmetic.
 * Target: < 0.1 ms per step of sampler math. Prints a table; writes bench/results/sampler-overhead-<time>.json.
 *
 * Steps that draw noise only to advance the generators (Euler, Heun, DPM2 with s_churn 0) skip it through
 * `ImageRNG.skip()`, as the pipeline's sampler context should.
 *
 *   npx tsx bench/sampler-overhead.ts [--steps 20] [--repeats 5] [--nv]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { float32 } from '../packages/core/src/tensor.js';
import { ImageRNG, randnLocal, type NoiseSource } from '../packages/core/src/sampling/rng/image-rng.js';
import { cfgCombine } from '../packages/core/src/sampling/tensor-math.js';
import { samplerByName } from '../packages/core/src/sampling/samplers.js';
import { karrasSigmas } from '../packages/core/src/sampling/kdiffusion/karras.js';
import type { Denoiser, SamplerContext } from '../packages/core/src/sampling/types.js';

const LATENT = [1, 4, 64, 64];
const N = 4 * 64 * 64;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const steps = arg('steps', 20);
const repeats = arg('repeats', 5);
const source: NoiseSource = process.argv.includes('--nv') ? 'nv' : 'cpu';

/** The model's batch output (cond, uncond), fixed: the UNet costs nothing here. */
const cond = Float32Array.from({ length: N }, (_, i) => Math.sin(i) * 0.1);
const uncond = Float32Array.from({ length: N }, (_, i) => Math.cos(i) * 0.1);

/** CFG denoiser over a free UNet: the CFG combine into a fresh buffer (samplers may keep denoised outputs). */
const cfgDenoiser: Denoiser = async (x) => float32(x.shape, cfgCombine(new Float32Array(N), cond, uncond, 7));

function noiseSource(): Pick<SamplerContext, 'noise' | 'skipNoise'> & { rng: ImageRNG } {
  const rng = new ImageRNG({ shape: [4, 64, 64], seeds: [4077357776], source });
  rng.next();
  return { rng, noise: () => rng.next(), skipNoise: () => rng.skip() };
}

/** The fastest of `reps` timed runs (ms) after a warm-up: on a shared machine the minimum is the honest figure. */
async function timeIt(fn: () => Promise<unknown> | unknown, reps: number): Promise<number> {
  await fn(); // warm-up (JIT)
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return best;
}

interface Row {
  readonly what: string;
  readonly msPerStep: number;
  readonly note: string;
}

async function main(): Promise<void> {
  const sigmas = karrasSigmas(steps, 0.0291675, 14.614643);
  const x0 = float32(LATENT, Float32Array.from({ length: N }, (_, i) => Math.sin(i * 0.37) * 14.6));
  const rows: Row[] = [];

  // Components on their own.
  const out = new Float32Array(N);
  const loops = (fn: () => unknown, n: number) => () => {
    for (let i = 0; i < n; i++) fn();
  };
  rows.push({
    what: 'CFG combine (1 call)',
    msPerStep: (await timeIt(loops(() => cfgCombine(out, cond, uncond, 7), 100), 20)) / 100,
    note: 'uncond + (cond - uncond) * 7',
  });
  {
    const src = noiseSource();
    rows.push({ what: `noise draw, ${source} source (1 draw)`, msPerStep: await timeIt(() => src.rng.next(), 50), note: '16384 normals' });
  }
  rows.push({
    what: `randn_local, ${source} source (1 draw)`,
    msPerStep: await timeIt(() => randnLocal(source, 1234, [4, 64, 64]), 50),
    note: 'fresh generator: the Brownian tree draws one per new tree node',
  });

  // Whole sampler runs: everything per step except the UNet.
  const names = ['Euler', 'Euler a', 'Heun', 'LMS', 'DPM++ 2M', 'DPM++ 2S a', 'DPM++ SDE', 'DPM++ 2M SDE', 'DPM++ 3M SDE', 'Restart'];
  for (const name of names) {
    const info = samplerByName(name)!;
    const run = async (withNoise: boolean) => {
      const src = noiseSource();
      const zero = float32(LATENT);
      const ctx: SamplerContext = {
        denoise: cfgDenoiser,
        sigmas,
        noise: withNoise ? src.noise : () => zero,
        skipNoise: withNoise ? src.skipNoise : () => undefined,
        seeds: [4077357776],
        randnLocal: (seed, shape) => (withNoise ? randnLocal(source, seed, shape) : float32(shape)),
        options: {},
      };
      await info.sampler(x0, ctx);
    };
    const full = (await timeIt(() => run(true), info.brownianNoise ? 1 : repeats)) / steps;
    const mathOnly = (await timeIt(() => run(false), repeats)) / steps;
    rows.push({ what: `${name}: sampler math + CFG`, msPerStep: mathOnly, note: 'noise replaced by a free source' });
    rows.push({ what: `${name}: + real noise`, msPerStep: full, note: info.brownianNoise ? 'Brownian trees (randn_local)' : 'per-image generator' });
  }

  const width = Math.max(...rows.map((r) => r.what.length));
  console.log(`sampler overhead per step, latent 1x4x64x64, model batch 2x4x64x64 (CFG), ${steps} Karras steps, node ${process.version}`);
  console.log(`${'what'.padEnd(width)}  ms/step   note`);
  for (const r of rows) console.log(`${r.what.padEnd(width)}  ${r.msPerStep.toFixed(4).padStart(7)}   ${r.note}`);

  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `sampler-overhead-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ bench: 'sampler-overhead', steps, repeats, node: process.version, latent: LATENT, rows }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
