/**
 * Noise computed on noise threads gives the sampler exactly what its own generators and Brownian trees would,
 * leaves the ImageRNG where the run would have, and falls back to the generators when a run leaves its plan.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import { ImageRNG, randnLocal, type NoiseSource } from '../../src/sampling/rng/image-rng.js';
import { samplerByName, samplerOptions } from '../../src/sampling/samplers.js';
import { karrasSigmas } from '../../src/sampling/kdiffusion/karras.js';
import { prefetchNoise } from '../../src/sampling/prefetch/noise-prefetch.js';
import { planNoise } from '../../src/sampling/prefetch/noise-plan.js';
import { NoiseThreads } from '../../src/sampling/prefetch/noise-threads.js';
import type { Sampler, SamplerContext } from '../../src/sampling/types.js';

const SHAPE: [number, number, number] = [4, 8, 8];
const SEEDS = [1234, 98765];
const pool = new NoiseThreads(2);

/** A denoiser whose answer depends on x and sigma, so every noise value reaches the result. */
const denoise: SamplerContext['denoise'] = async (x, sigma) =>
  float32(x.shape, Float32Array.from(x.data, (v, i) => Math.fround(v * 0.7 + Math.sin(i + sigma[0]!) * 0.3)));

interface Run {
  readonly out: Float32Tensor;
  /** The generator's next draw after the run: the run left it where it should. */
  readonly nextDraw: Float32Tensor;
}

async function run(sampler: Sampler, name: string, source: NoiseSource, threaded: boolean, expectThreads = threaded): Promise<Run> {
  const info = samplerByName(name)!;
  const rng = new ImageRNG({ shape: SHAPE, seeds: SEEDS, source });
  const noise = rng.next();
  const sigmas = karrasSigmas(8, 0.0291675, 14.614643);
  const options = samplerOptions(info, { steps: 8 });
  const x = float32(noise.shape, Float32Array.from(noise.data, (v) => v * sigmas[0]!));
  const local = (seed: number, shape: readonly number[]) => randnLocal(source, seed, shape);
  const prefetched = threaded ? await prefetchNoise({ sampler, sigmas, options, seeds: SEEDS, rng, source, randnLocal: local }, pool) : undefined;
  assert.equal(prefetched !== undefined, expectThreads, `${name}: threads took the run`);
  try {
    const out = await sampler(x, {
      denoise,
      sigmas,
      options,
      seeds: SEEDS,
      randnLocal: local,
      noise: prefetched?.noise ?? (() => rng.next()),
      skipNoise: prefetched?.skipNoise ?? (() => rng.skip()),
      ...(prefetched?.brownian ? { brownian: prefetched.brownian } : {}),
    });
    prefetched?.finish();
    return { out, nextDraw: rng.next() };
  } catch (e) {
    prefetched?.finish();
    throw e;
  }
}

function assertSameBits(a: Float32Tensor, b: Float32Tensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, what);
  assert.deepEqual(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength), what);
}

// Euler only skips draws (s_churn 0) and Restart's 8-step run restarts nowhere: nothing to compute ahead
for (const [name, source, threads] of [
  ['Euler a', 'nv', true],
  ['Euler a', 'cpu', true],
  ['Euler', 'nv', false],
  ['DPM++ 2S a', 'nv', true],
  ['DPM2 a', 'cpu', true],
  ['DPM++ SDE', 'nv', true],
  ['DPM++ 2M SDE', 'cpu', true],
  ['DPM++ 3M SDE', 'nv', true],
  ['Restart', 'nv', false],
] as const) {
  test(`prefetched noise: ${name} (${source}) gives the same bits and leaves the generators in step`, async () => {
    const sampler = samplerByName(name)!.sampler;
    const plain = await run(sampler, name, source, false);
    const threaded = await run(sampler, name, source, true, threads);
    assertSameBits(threaded.out, plain.out, 'sampler output');
    assertSameBits(threaded.nextDraw, plain.nextDraw, 'next draw after the run');
  });
}

test('prefetched noise: a run that draws more than its dry run falls back to the generators exactly', async () => {
  // the dry run's model answers zeros; the real one does not, and then this sampler draws twice per step
  const greedy: Sampler = async (x0, ctx) => {
    const x = float32(x0.shape, new Float32Array(x0.data));
    for (let i = 0; i < ctx.sigmas.length - 1; i++) {
      const d = await ctx.denoise(x, Float32Array.of(ctx.sigmas[i]!, ctx.sigmas[i]!));
      const draws = d.data[0] !== 0 ? 2 : 1;
      for (let k = 0; k < draws; k++) {
        const n = ctx.noise().data;
        for (let j = 0; j < x.data.length; j++) x.data[j] = Math.fround(x.data[j]! + n[j]! * 0.1);
      }
      ctx.skipNoise?.();
    }
    return x;
  };
  const plan = await planNoise(greedy, { sigmas: karrasSigmas(8, 0.0291675, 14.614643), options: {}, seeds: SEEDS }, SEEDS.length);
  assert.deepEqual(plan.draws.slice(0, 4), ['draw', 'skip', 'draw', 'skip']);
  const plain = await run(greedy, 'Euler a', 'nv', false);
  const threaded = await run(greedy, 'Euler a', 'nv', true);
  assertSameBits(threaded.out, plain.out, 'sampler output');
  assertSameBits(threaded.nextDraw, plain.nextDraw, 'next draw after the run');
});

test('prefetched noise: a run with nothing to compute ahead is left to the generators', async () => {
  const info = samplerByName('DPM++ 2M')!;
  const rng = new ImageRNG({ shape: SHAPE, seeds: SEEDS, source: 'nv' });
  rng.next();
  const p = await prefetchNoise({ sampler: info.sampler, sigmas: karrasSigmas(8, 0.03, 14.6), options: {}, seeds: SEEDS, rng, source: 'nv', randnLocal: (s, sh) => randnLocal('nv', s, sh) }, pool);
  assert.equal(p, undefined);
});
