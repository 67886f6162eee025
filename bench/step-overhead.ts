/**
 * Time per sampler step spent outside onnxruntime, at 512x512 with CFG: a 1x4x64x64 latent, model batches of
 * 2x4x64x64 (cond + uncond). Everything is production code — the sampler registry, the per-image noise
 * generators (A1111's NV philox or CPU mt19937 source, Brownian trees for the SDE samplers), the pipeline's
 * CFG denoiser and CompVis denoiser (c_in, sigma -> t, combine) — except the UNet, which is a stand-in that
 * costs nothing (this measures our TypeScript, not the model).
 *
 * Per sampler: ms per step and per model call, split into the denoiser path (CFG + c_in + sigma->t), noise
 * draws, and the sampler's own arithmetic; then as a fraction of the full-size SD 1.5 UNet step measured by
 * fullsize-unet in the same `npm run bench` run (bench/results/fullsize-unet.json), and of the ~11.5 ms that
 * onnxruntime's CUDA provider reaches on an H100. Goal: < 0.1 ms per step.
 *
 *   npm run bench -- step-overhead
 *   npx tsx bench/step-overhead.ts [--steps 20] [--repeats 5] [--rng nv|cpu] [--samplers "Euler a,DPM++ 2M"]
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listArg, numberArg, stringArg } from './support/args.js';
import { cfgDenoiserFor, fakeConditioning, FreeUNet, unetOnlyModel } from './support/cfg-step.js';
import { machineInfo } from './support/machine.js';
import { printTable, RESULTS_DIR, writeResult, type Column, type Row } from './support/report.js';
import { median, nowMs } from './support/stats.js';
import { createCfgDenoiser } from '../packages/core/src/pipeline/cfg-denoiser.js';
import { ImageRNG, randnLocal, type NoiseSource } from '../packages/core/src/sampling/rng/image-rng.js';
import { samplerByName, samplerOptions, type SamplerInfo } from '../packages/core/src/sampling/samplers.js';
import { DiscreteSchedule } from '../packages/core/src/sampling/schedules/discrete.js';
import { samplerSigmas } from '../packages/core/src/sampling/schedules/sampler-schedules.js';
import { discreteSigmaModel } from '../packages/core/src/sampling/schedules/schedulers.js';
import type { EpsModel, SamplerContext } from '../packages/core/src/sampling/types.js';
import { float32, type Float32Tensor } from '../packages/core/src/tensor.js';
import { DarkroomError } from '../packages/core/src/errors.js';
import { BrownianInterval } from '../packages/core/src/sampling/kdiffusion/brownian-tree.js';
import { conditionedDenoiser } from '../packages/core/src/pipeline/sample.js';

const argv = process.argv.slice(2);
const steps = numberArg(argv, 'steps', 20);
const repeats = numberArg(argv, 'repeats', 5);
const rngArg = stringArg(argv, 'rng', 'nv');
const samplerNames = listArg(argv, 'samplers', [
  'Euler a',
  'Euler',
  'DPM++ 2M',
  'DPM++ SDE',
  'DPM++ 2M SDE',
  'DPM++ 3M SDE',
  'DPM++ 2S a',
  'Heun',
  'LMS',
  'DPM2 a',
  'Restart',
  'DDIM',
  'PLMS',
  'UniPC',
]);
if (rngArg !== 'nv' && rngArg !== 'cpu') throw new DarkroomError('BENCH_BAD_ARG', `--rng must be nv or cpu, got ${rngArg}`);
const rng: NoiseSource = rngArg;

const LATENT = [4, 64, 64] as const;
const SEED = 4077357776;
const CFG_SCALE = 7;
/** onnxruntime's CUDA provider on an H100, SD 1.5 512x512 batch 2 fp16 (ORT's published SD figures): the goal's denominator. */
const H100_CUDA_STEP_MS = 11.5;
const GOAL_MS = 0.1;

interface Split {
  denoiseMs: number;
  noiseMs: number;
  calls: number;
}

/** One txt2img sampling pass (no UNet cost) with the time in the denoiser and in noise draws split out. */
async function samplePass(info: SamplerInfo): Promise<{ totalMs: number; split: Split; samplerSteps: number }> {
  const split: Split = { denoiseMs: 0, noiseMs: 0, calls: 0 };
  const timed = <A extends unknown[], R>(fn: (...a: A) => R, key: 'denoiseMs' | 'noiseMs'): ((...a: A) => R) => {
    return (...a: A): R => {
      const t0 = nowMs();
      const r = fn(...a);
      if (r instanceof Promise) {
        return r.finally(() => {
          split[key] += nowMs() - t0;
        }) as R;
      }
      split[key] += nowMs() - t0;
      return r;
    };
  };

  const imageRng = new ImageRNG({ shape: [...LATENT], seeds: [SEED], source: rng });
  const noise = imageRng.first();
  const model = unetOnlyModel(new FreeUNet());
  const cond = fakeConditioning(77, 768, 1);
  const uncond = fakeConditioning(77, 768, 2);
  const schedule = new DiscreteSchedule(model.alphasCumprod);
  const options = samplerOptions(info, {
    modelSigmaMin: schedule.sigmas[0]!,
    modelSigmaMax: schedule.sigmas[schedule.sigmas.length - 1]!,
    steps,
  });

  let start: Float32Tensor;
  let sigmas: Float32Array;
  let denoise: SamplerContext['denoise'];
  let eps: EpsModel | undefined;
  if (info.family === 'timestep') {
    // A1111's CFGDenoiserTimesteps: the same CFG rows and combine, around the raw eps UNet at timestep t.
    const cfg = createCfgDenoiser((x, t, context) => model.unet.run(x, t, context), {
      conds: [{ parts: [{ weight: 1, schedule: [{ endAtStep: Number.MAX_SAFE_INTEGER, cond }] }] }],
      unconds: [[{ endAtStep: Number.MAX_SAFE_INTEGER, cond: uncond }]],
      cfgScale: CFG_SCALE,
    });
    eps = timed(cfg.denoise, 'denoiseMs');
    denoise = () => Promise.reject(new DarkroomError('BENCH_UNUSED', 'timestep samplers call eps'));
    start = noise;
    sigmas = new Float32Array(steps + 1);
    options.steps = steps;
  } else {
    sigmas = samplerSigmas(info.name, 'automatic', steps, {}, discreteSigmaModel(schedule)).sigmas;
    denoise = timed(cfgDenoiserFor(model, cond, uncond, CFG_SCALE).denoise, 'denoiseMs');
    const s0 = sigmas[0]!;
    start = float32(noise.shape, Float32Array.from(noise.data, (v) => Math.fround(v * s0)));
  }
  const countingDenoise: SamplerContext['denoise'] = (x, s) => {
    split.calls++;
    return denoise(x, s);
  };
  const countingEps: EpsModel | undefined = eps
    ? (x, t) => {
        split.calls++;
        return eps(x, t);
      }
    : undefined;

  const t0 = nowMs();
  await info.sampler(start, {
    denoise: countingDenoise,
    ...(countingEps ? { eps: countingEps } : {}),
    sigmas,
    noise: timed(() => imageRng.next(), 'noiseMs'),
    seeds: [SEED],
    randnLocal: timed((seed: number, shape: readonly number[]) => randnLocal(rng, seed, shape), 'noiseMs'),
    options,
  });
  const totalMs = nowMs() - t0;
  return { totalMs, split, samplerSteps: info.family === 'timestep' ? steps : sigmas.length - 1 };
}

/** The full-size SD 1.5 UNet step measured by fullsize-unet: this run's when run.ts started both. */
function unetStepFromResults(): { stepMs: number; ortMs: number; date: string; provider: string; fresh: boolean } | undefined {
  const file = join(RESULTS_DIR, 'fullsize-unet.json');
  if (!existsSync(file)) return undefined;
  const json = JSON.parse(readFileSync(file, 'utf8')) as {
    date: string;
    machine: { provider: string };
    rows: Array<{ model: string; variant: string; stepMs: number; ortRunMs: number }>;
  };
  const row = json.rows.find((r) => r.model === 'sd15' && r.variant === 'plain') ?? json.rows.find((r) => r.model === 'sd15');
  if (!row) return undefined;
  const runStart = process.env.BENCH_RUN_STARTED;
  const fresh = runStart === undefined || json.date >= runStart;
  return { stepMs: row.stepMs, ortMs: row.ortRunMs, date: json.date, provider: json.machine.provider, fresh };
}

/** Mean ms of one call, after one untimed call, over enough calls to last about `budgetMs`. */
async function perCall(fn: () => unknown, budgetMs = 300): Promise<number> {
  await fn();
  let calls = 0;
  const t0 = nowMs();
  while (nowMs() - t0 < budgetMs || calls < 3) {
    await fn();
    calls++;
  }
  return (nowMs() - t0) / calls;
}

/** The pieces a step is made of, each on its own: where the time of the table above goes. */
async function componentRows(): Promise<Row[]> {
  const model = unetOnlyModel(new FreeUNet());
  const cond = fakeConditioning(77, 768, 1);
  const uncond = fakeConditioning(77, 768, 2);
  const x = float32([1, ...LATENT], Float32Array.from({ length: 4 * 64 * 64 }, (_, i) => Math.sin(i * 0.37) * 14.6));
  const sigma = Float32Array.of(14.6);
  const x2 = float32([2, ...LATENT], new Float32Array(2 * 4 * 64 * 64).fill(0.5));
  const sigma2 = Float32Array.of(14.6, 14.6);
  const context2 = float32([2, 77, 768], new Float32Array(2 * 77 * 768).fill(0.1));
  const cfg = cfgDenoiserFor(model, cond, uncond, CFG_SCALE);
  const inner = conditionedDenoiser(model, undefined);
  const rows: Array<{ what: string; ms: number; note: string }> = [];
  for (const source of ['nv', 'cpu'] as const) {
    const r = new ImageRNG({ shape: [...LATENT], seeds: [SEED], source });
    r.first();
    rows.push({ what: `noise draw, ${source} source`, ms: await perCall(() => r.next()), note: 'ImageRNG.next(): 16384 normals (Euler a, DDIM, ... once a step)' });
  }
  rows.push({
    what: 'randn_local, nv source',
    ms: await perCall(() => randnLocal('nv', 1234, LATENT)),
    note: 'a fresh generator\'s first draw: one per new Brownian tree node',
  });
  rows.push({
    what: 'Brownian increment, cold tree',
    ms: await perCall(() => new BrownianInterval(0.0292, 14.6146, 4 * 64 * 64, SEED, (s) => randnLocal('nv', s, LATENT).data).increment(7.0, 7.5), 1000),
    note: 'tol 1e-6: one randn_local per tree level walked (SDE samplers, first query of a region)',
  });
  rows.push({
    what: 'CompVis denoiser, batch 2',
    ms: await perCall(() => inner(x2, sigma2, context2)),
    note: 'c_in scaling, sigma->t, free UNet, eps->denoised (conditionedDenoiser)',
  });
  rows.push({
    what: 'CFG denoiser call',
    ms: await perCall(() => cfg.denoise(x, sigma)),
    note: 'the above plus cond/uncond row and context assembly and the CFG combine',
  });
  return rows.map((r) => ({ component: r.what, msPerCall: r.ms, vsGoal: r.ms / GOAL_MS, note: r.note }));
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const unet = unetStepFromResults();
  for (const name of samplerNames) {
    const info = samplerByName(name);
    if (!info) throw new DarkroomError('SAMPLER_UNKNOWN', `unknown sampler "${name}"`);
    await samplePass(info); // warm-up: JIT and lazily built tables
    const passes: Array<Awaited<ReturnType<typeof samplePass>>> = [];
    for (let r = 0; r < repeats; r++) passes.push(await samplePass(info));
    const n = passes[0]!.samplerSteps;
    const perStep = (f: (p: (typeof passes)[number]) => number): number => median(passes.map(f)) / n;
    const total = perStep((p) => p.totalMs);
    const calls = passes[0]!.split.calls;
    rows.push({
      sampler: name,
      steps: n,
      callsPerStep: calls / n,
      msPerStep: total,
      msPerCall: (total * n) / calls,
      denoiserMs: perStep((p) => p.split.denoiseMs),
      noiseMs: perStep((p) => p.split.noiseMs),
      samplerMathMs: perStep((p) => p.totalMs - p.split.denoiseMs - p.split.noiseMs),
      vsGoal: total / GOAL_MS,
      ofH100Step: total / H100_CUDA_STEP_MS,
      // A second-order step makes two UNet calls: compare with the UNet time of the same step.
      ofUnetStep: unet ? total / (unet.stepMs * (calls / n)) : null,
      meetsGoal: total < GOAL_MS ? 'yes' : 'no',
    });
    console.log(`${name}: ${total.toFixed(3)} ms/step`);
  }
  const machine = machineInfo('cpu');
  const columns: Column[] = [
    { key: 'sampler', label: 'sampler' },
    { key: 'callsPerStep', label: 'calls/step', digits: 2 },
    { key: 'msPerStep', label: 'ms/step', digits: 3 },
    { key: 'denoiserMs', label: 'CFG+denoiser', digits: 3 },
    { key: 'noiseMs', label: 'noise', digits: 3 },
    { key: 'samplerMathMs', label: 'sampler math', digits: 3 },
    { key: 'vsGoal', label: 'x goal 0.1ms', digits: 2 },
    { key: 'ofH100Step', label: 'of 11.5ms H100', digits: 4 },
    { key: 'ofUnetStep', label: 'of CPU UNet step', digits: 6 },
    { key: 'meetsGoal', label: '<0.1ms' },
  ];
  const unetNote = unet
    ? `CPU UNet step ${unet.stepMs.toFixed(0)} ms (SD 1.5, fullsize-unet ${unet.date}${unet.fresh ? ', this run' : ', an EARLIER run'})`
    : 'no fullsize-unet result: run `npm run bench -- fullsize-unet step-overhead` for the CPU UNet fraction';
  printTable(
    `Time outside onnxruntime per sampler step, 1x4x64x64 latent, CFG batch 2x4x64x64, ${steps} steps, ${rng} noise, ` +
      `median of ${repeats} (${machine.cpuModel}, load ${machine.loadAverage1m}); ${unetNote}`,
    columns,
    rows,
  );
  const components = await componentRows();
  printTable(
    'Components of a step on their own (mean ms per call)',
    [
      { key: 'component', label: 'component' },
      { key: 'msPerCall', label: 'ms/call', digits: 3 },
      { key: 'vsGoal', label: 'x goal 0.1ms', digits: 2 },
      { key: 'note', label: 'what' },
    ],
    components,
  );
  const file = writeResult({
    bench: 'step-overhead',
    components,
    date: new Date().toISOString(),
    machine,
    parameters: { steps, repeats, rng, latent: [1, ...LATENT], modelBatch: 2, cfgScale: CFG_SCALE, goalMs: GOAL_MS, h100CudaStepMs: H100_CUDA_STEP_MS },
    unetStep: unet ?? null,
    rows,
    notes: [
      'UNet replaced by a zero-cost stand-in; everything else is the production sampler / noise / CFG / CompVis denoiser code',
      'CFG+denoiser = the pipeline CFG denoiser call (row batching, c_in, sigma->t, eps->denoised, CFG combine); noise = ImageRNG draws and Brownian-tree randn_local; sampler math = the rest',
      'of CPU UNet step divides by the UNet time of the same step (calls/step x the fullsize-unet SD 1.5 plain step)',
    ],
  });
  console.log(`written ${file}`);
}

await main();
