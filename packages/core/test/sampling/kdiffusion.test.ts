import { test } from 'node:test';
import assert from 'node:assert/strict';
import { float32, type Float32Tensor } from '../../src/tensor.js';
import { isDarkroomError } from '../../src/errors.js';
import {
  BatchedBrownianTree,
  FAST_CACHE,
  UPSTREAM_CACHE,
  linearMultistepCoeff,
  restartStepList,
  sampleDpm2,
  sampleDpmpp2m,
  sampleDpmpp2mSde,
  sampleEuler,
  sampleEulerAncestral,
  sampleHeun,
  sampleLms,
} from '../../src/sampling/kdiffusion/index.js';
import { SeedSequence } from '../../src/sampling/kdiffusion/seed-sequence.js';
import { torchExpf, torchExpm1f, torchLogf } from '../../src/sampling/kdiffusion/torch-scalar-math.js';
import { karrasSigmas } from '../../src/sampling/kdiffusion/karras.js';
import type { Denoiser, Sampler, SamplerContext } from '../../src/sampling/types.js';

const SHAPE = [1, 4, 2, 2];

/** A deterministic stand-in for a noise generator: small integers spread over [-1, 1]. */
function counterNoise(shape: readonly number[]): { next: () => Float32Tensor; draws: () => number } {
  let k = 0;
  return {
    draws: () => k,
    next: () => {
      k++;
      const n = shape.reduce((a, b) => a * b, 1);
      return float32(shape, Float32Array.from({ length: n }, (_, i) => (((i * 7 + k * 3) % 11) - 5) / 5));
    },
  };
}

const start = (): Float32Tensor => float32(SHAPE, Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) * 1.5));
/** D = 0: the probability-flow ODE is dx/dsigma = x / sigma, solved exactly by x * sigma_next / sigma. */
const zeroDenoiser: Denoiser = async (x) => float32(x.shape);
/** A nonlinear denoiser so that samplers differ. */
const tanhDenoiser: Denoiser = async (x, sigma) =>
  float32(x.shape, Float32Array.from(x.data, (v) => Math.tanh(v / (1 + sigma[0]!))));

function ctx(overrides: Partial<SamplerContext> & { sigmas: Float32Array }): SamplerContext {
  const noise = counterNoise(SHAPE);
  return { denoise: zeroDenoiser, noise: noise.next, ...overrides };
}

test('deterministic samplers follow the exact ODE solution x * sigma_next / sigma when D = 0', async () => {
  const sigmas = Float32Array.from([10, 5, 2, 1, 0.5]);
  const expected = Array.from(start().data, (v) => (v * 0.5) / 10);
  const exact: Array<[string, Sampler]> = [
    ['Euler', sampleEuler],
    ['Heun', sampleHeun],
    ['DPM2', sampleDpm2],
    ['DPM++ 2M', sampleDpmpp2m],
  ];
  for (const [name, sampler] of exact) {
    const out = await sampler(start(), ctx({ sigmas }));
    out.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-5, `${name} [${i}]: ${v} vs ${expected[i]}`));
  }
  // LMS is exact for this ODE only up to its polynomial extrapolation.
  const lms = await sampleLms(start(), ctx({ sigmas }));
  lms.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 0.05, `LMS [${i}]: ${v} vs ${expected[i]}`));
});

test('a schedule ending in 0 lands on the denoised estimate', async () => {
  const sigmas = Float32Array.from([3, 1, 0]);
  for (const sampler of [sampleEuler, sampleDpmpp2m]) {
    const out = await sampler(start(), ctx({ sigmas }));
    assert.ok(out.data.every((v) => Math.abs(v) < 1e-6));
  }
});

test('the sampler never writes into the caller latent', async () => {
  const x = start();
  const before = Float32Array.from(x.data);
  await sampleEuler(x, ctx({ sigmas: Float32Array.from([3, 1, 0]) }));
  assert.deepEqual(x.data, before);
});

test('Euler draws one noise per step even with s_churn 0, Euler a one per step to a nonzero sigma', async () => {
  const sigmas = Float32Array.from([8, 4, 2, 1, 0]);
  const a = counterNoise(SHAPE);
  await sampleEuler(start(), { denoise: tanhDenoiser, sigmas, noise: a.next });
  assert.equal(a.draws(), 4);
  let skipped = 0;
  const b = counterNoise(SHAPE);
  await sampleEuler(start(), { denoise: tanhDenoiser, sigmas, noise: b.next, skipNoise: () => skipped++ });
  assert.equal(b.draws(), 0, 'with skipNoise the unused draws are skipped, not produced');
  assert.equal(skipped, 4);
  const c = counterNoise(SHAPE);
  await sampleEulerAncestral(start(), { denoise: tanhDenoiser, sigmas, noise: c.next });
  assert.equal(c.draws(), 3);
});

test('Euler a with eta 0 is Euler; with eta 1 the noise changes the result', async () => {
  const sigmas = Float32Array.from([8, 4, 2, 1, 0]);
  const euler = await sampleEuler(start(), ctx({ denoise: tanhDenoiser, sigmas }));
  const eta0 = await sampleEulerAncestral(start(), ctx({ denoise: tanhDenoiser, sigmas, options: { eta: 0 } }));
  assert.deepEqual(eta0.data, euler.data);
  const eta1 = await sampleEulerAncestral(start(), ctx({ denoise: tanhDenoiser, sigmas, options: { eta: 1 } }));
  assert.notDeepEqual(eta1.data, euler.data);
});

test('s_churn raises sigma_hat above the schedule', async () => {
  const sigmas = Float32Array.from([8, 4, 2, 1, 0]);
  const seen: number[] = [];
  const denoise: Denoiser = async (x, s) => (seen.push(s[0]!), tanhDenoiser(x, s));
  await sampleEuler(start(), ctx({ denoise, sigmas, options: { s_churn: 1 } }));
  // gamma = min(1/4, sqrt(2) - 1) = 0.25
  assert.deepEqual(seen, [10, 5, 2.5, 1.25]);
});

test('LMS coefficients: first order is the step, each order sums to the step (Lagrange basis)', () => {
  const t = Float32Array.from([14.6, 9.1, 5.4, 3.2, 1.7, 0.9]);
  assert.ok(Math.abs(linearMultistepCoeff(1, t, 0, 0) - (t[1]! - t[0]!)) < 1e-12);
  for (let order = 2; order <= 4; order++) {
    const i = order - 1;
    let sum = 0;
    for (let j = 0; j < order; j++) sum += linearMultistepCoeff(order, t, i, j);
    assert.ok(Math.abs(sum - (t[i + 1]! - t[i]!)) < 1e-6, `order ${order}: ${sum}`);
  }
  assert.throws(() => linearMultistepCoeff(3, t, 1, 0), RangeError);
});

test('cancellation stops between steps with a CANCELLED error, or with the abort reason', async () => {
  const sigmas = Float32Array.from([8, 4, 2, 1, 0]);
  const controller = new AbortController();
  let calls = 0;
  const denoise: Denoiser = async (x, s) => {
    if (++calls === 2) controller.abort();
    return tanhDenoiser(x, s);
  };
  await assert.rejects(sampleEuler(start(), ctx({ denoise, sigmas, signal: controller.signal })), (e: unknown) =>
    isDarkroomError(e, 'CANCELLED'),
  );
  assert.equal(calls, 2, 'no model call after the abort');
  const reason = new Error('job removed');
  const c2 = new AbortController();
  c2.abort(reason);
  await assert.rejects(sampleDpmpp2m(start(), ctx({ sigmas, signal: c2.signal })), (e: unknown) => e === reason);
});

test('onStep reports every step with the running latent and the denoised estimate', async () => {
  const sigmas = Float32Array.from([8, 4, 2, 1, 0]);
  const steps: number[] = [];
  await sampleHeun(start(), ctx({
    denoise: tanhDenoiser,
    sigmas,
    onStep: (s) => {
      steps.push(s.step);
      assert.equal(s.steps, 4);
      assert.ok(s.denoised);
    },
  }));
  assert.deepEqual(steps, [0, 1, 2, 3]);
});

test('SDE samplers without seeds or a Brownian factory refuse to run', async () => {
  await assert.rejects(sampleDpmpp2mSde(start(), ctx({ sigmas: Float32Array.from([8, 4, 0]) })), (e: unknown) =>
    isDarkroomError(e, 'SAMPLER_NEEDS_SEEDS'),
  );
});

test('numpy SeedSequence: the first words torchsde draws for entropy 42 (pool 24)', () => {
  // The first two randn_local seeds of every seed-42 Brownian tree in the oracle trajectories.
  assert.deepEqual(new SeedSequence(42, [], 24).generateState(2), [387750627, 2536650517]);
});

/** A seeded stand-in for randn_local: different seeds give different, reproducible values. */
const fakeRandnLocal = (seed: number, shape: readonly number[]): Float32Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return float32(shape, Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 0.001 + i * 1.7)));
};

test('Brownian tree: increments add up and do not depend on the order of queries', () => {
  const make = () => new BatchedBrownianTree([1, 4, 2, 2], 0.03, 14.6, [42], fakeRandnLocal);
  const a = make();
  const b = make();
  // noise(s, s') = (W(s') - W(s)) * sign / sqrt(|s' - s|); recover increments to compare.
  const inc = (tree: BatchedBrownianTree, hi: number, lo: number) =>
    Array.from(tree.noise(hi, lo).data, (v) => v * Math.sqrt(hi - lo));
  const whole = inc(a, 10, 2);
  const first = inc(a, 10, 5);
  const second = inc(a, 5, 2);
  whole.forEach((w, i) => assert.ok(Math.abs(w - (first[i]! + second[i]!)) < 1e-5, `additivity [${i}]`));
  // The other tree sees the queries in reverse order and must answer the same.
  const second2 = inc(b, 5, 2);
  const whole2 = inc(b, 10, 2);
  second2.forEach((v, i) => assert.ok(Math.abs(v - second[i]!) < 1e-6));
  whole2.forEach((v, i) => assert.ok(Math.abs(v - whole[i]!) < 1e-5));
  // A different seed gives different noise.
  const c = new BatchedBrownianTree([1, 4, 2, 2], 0.03, 14.6, [43], fakeRandnLocal);
  assert.notDeepEqual(inc(c, 10, 2), whole);
});

test('Brownian tree: the cache policy changes how often nodes are drawn, never the noise', () => {
  let fastDraws = 0;
  let upstreamDraws = 0;
  const counting = (count: () => void) => (seed: number, shape: readonly number[]) => (count(), fakeRandnLocal(seed, shape));
  const fast = new BatchedBrownianTree([1, 4, 2, 2], 0.03, 14.6, [7], counting(() => fastDraws++), undefined, FAST_CACHE);
  const upstream = new BatchedBrownianTree([1, 4, 2, 2], 0.03, 14.6, [7], counting(() => upstreamDraws++), undefined, UPSTREAM_CACHE);
  const sigmas = [14.6, 11.2, 8.1, 5.9, 4.2, 2.9, 2.0, 1.3, 0.8, 0.5, 0.3, 0.17, 0.09, 0.05, 0.03];
  for (let i = 0; i + 1 < sigmas.length; i++) {
    assert.deepEqual(fast.noise(sigmas[i]!, sigmas[i + 1]!).data, upstream.noise(sigmas[i]!, sigmas[i + 1]!).data);
  }
  assert.ok(fastDraws < upstreamDraws, `${fastDraws} draws with the fast cache vs ${upstreamDraws} with torchsde's`);
});

test("torch's float32 exp/log (SLEEF) reproduce upstream's sigma round trips", () => {
  // exp(-(-log sigma)) as torch computes it on AVX2 CPUs (recorded Brownian query times in the oracle).
  assert.equal(torchExpf(-(-torchLogf(3.168609380722046))), 3.168609142303467);
  assert.equal(torchExpf(-(-torchLogf(0.08191107958555222))), 0.08191108703613281);
  assert.equal(torchExpf(0), 1);
  assert.equal(torchLogf(1), 0);
  for (const x of [1e-3, 0.5, 2, 14.6].map(Math.fround)) {
    assert.ok(Math.abs(torchExpf(x) / Math.exp(x) - 1) < 2.5e-7);
    assert.ok(Math.abs(torchLogf(x) - Math.log(x)) < 2.5e-7 * Math.max(1, Math.abs(Math.log(x))));
  }
});

test("torch's float32 expm1 (SLEEF): within an ulp of the exact value, with upstream's edge cases", () => {
  assert.equal(torchExpm1f(-Infinity), -1, 'expm1(-h) with h = inf (last step to sigma 0)');
  assert.equal(torchExpm1f(0), 0);
  assert.ok(Object.is(torchExpm1f(-0), -0));
  assert.equal(torchExpm1f(100), Infinity);
  for (const x of [-5, -0.7, -1e-3, 1e-4, 0.3, 2].map(Math.fround)) {
    const exact = Math.expm1(x);
    assert.ok(Math.abs(torchExpm1f(x) - exact) <= 1.2e-7 * Math.abs(exact), `expm1(${x})`);
  }
});

test('Restart with 20 steps: 11 Karras sigmas plus one 9-step restart segment', () => {
  const schedule = karrasSigmas(20, 0.0291675, 14.614643);
  const list = restartStepList(schedule);
  assert.equal(list.length, 20);
  const ups = list.filter(([from], i) => i > 0 && from > list[i - 1]![1]);
  assert.equal(ups.length, 1, 'exactly one jump back up');
  const short = restartStepList(karrasSigmas(10, 0.0291675, 14.614643));
  assert.equal(short.length, 10, 'no restarts below 20 steps');
});
