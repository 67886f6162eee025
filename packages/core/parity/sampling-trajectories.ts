/**
 * Parity of the samplers against a samplers folder's trajectories.json: every recorded A1111 sampler run is
 * replayed with that folder's analytic model (its coeffs and sigma table, see sampling-model.ts), the real noise
 * sources (per-image generators with ENSD, the Brownian trees seeded from the image seeds through randn_local)
 * and the recorded schedule, checking every model call (sigma, t, input, output), every noise draw (value and
 * provenance) and the final latent.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { float32, toFloat32, type Float32Tensor, type HostTensor } from '../src/tensor.js';
import { createGenerator, ImageRNG, randnLocal, type NoiseSource } from '../src/sampling/rng/image-rng.js';
import { samplerByName, samplerOptions, type SamplerInfo } from '../src/sampling/samplers.js';
import { BatchedBrownianTree, UPSTREAM_CACHE } from '../src/sampling/kdiffusion/brownian-tree.js';
import type { Denoiser, EpsModel, NoiseSampler, Sampler, SamplerContext } from '../src/sampling/types.js';
import { analyticDenoiser, analyticEps, analyticLcmDenoiser } from './analytic-model.js';
import { replayModelFrom, type ReplayModel } from './sampling-model.js';
import { lcmSigmaToT } from '../src/sampling/denoisers.js';
import { errorText, section, skipped } from './groups.js';
import { combine, elementwiseClose, fmt, type CaseResult, type Closeness } from './report.js';

interface DrawRecord {
  readonly kind: 'initial' | 'step';
  readonly per_item: ReadonlyArray<{ generator_seed: number; draw_index: number }>;
}

interface TrajectoryCase {
  readonly id: string;
  readonly file: string;
  readonly sampler: string;
  readonly scheduler: string;
  readonly steps: number;
  readonly seeds: number[];
  readonly shape: number[];
  readonly source: 'CPU' | 'NV';
  readonly group: string;
  readonly ensd?: number;
  readonly eta?: number;
  readonly function: string;
  readonly n_calls: number;
  readonly n_rng_step_draws: number;
  readonly kwargs_passed: Record<string, unknown>;
  readonly rng_draws: DrawRecord[];
  readonly brownian?: {
    readonly t0_sigma_min: number;
    readonly t1_sigma_max: number;
    readonly seeds: number[];
    readonly queries_sigma_pairs: Array<[number, number]>;
    readonly torchsde_randn_seeds: number[];
  };
  readonly opts?: Record<string, unknown>;
  readonly lcm_sigma_to_t_ties?: number[];
  readonly tie_note?: string;
}


/** README tolerances: latents 2e-5 (1e-4 for DPM adaptive), sigmas rtol 1e-6, t atol 1e-3. */
const LATENT_ATOL = 2e-5;
const ADAPTIVE_ATOL = 1e-4;
const SIGMA_RTOL = 1e-6;
/**
 * DPM adaptive picks its times from an error estimate ||x_low - x_high|| of two nearly equal float32 latents,
 * so last-bit differences upstream of it move later step times by a few 1e-6 (relative). The README widens
 * the latent tolerance for it by 5x; its call sigmas get the same 10x headroom over SIGMA_RTOL.
 */
const ADAPTIVE_SIGMA_RTOL = 1e-5;
const T_ATOL = 1e-3;

function slice(t: Float32Tensor, k: number): Float32Array {
  const per = t.data.length / t.shape[0]!;
  return t.data.subarray(k * per, (k + 1) * per);
}

const noiseSourceOf = (c: TrajectoryCase): NoiseSource => (c.source === 'NV' ? 'nv' : 'cpu');

/** The k-th draw of a fresh generator (what one provenance record names). */
function drawOf(source: NoiseSource, seed: number, index: number, n: number): Float32Array {
  const g = createGenerator(source, seed);
  let out = g.randn(n);
  for (let i = 0; i < index; i++) out = g.randn(n);
  return out;
}

/** Worst-case accumulator over many closeness checks of one kind (call inputs, draws, ...). */
class Worst {
  maxAbs = 0;
  maxRel = 0;
  failing = 0;
  firstBad: number | undefined;
  count = 0;
  add(c: Closeness, index: number): void {
    this.count++;
    this.maxAbs = Number.isNaN(c.maxAbs) ? NaN : Math.max(this.maxAbs, c.maxAbs);
    this.maxRel = Math.max(this.maxRel, c.maxRel);
    if (!c.ok) {
      this.failing += c.failing;
      this.firstBad ??= index;
    }
  }
  closeness(): Closeness {
    return { maxAbs: this.maxAbs, maxRel: this.maxRel, failing: this.failing, ok: this.failing === 0 };
  }
}

/** Checks a tally (call or draw counts) exactly. */
function countCheck(actual: number, expected: number): Closeness {
  const ok = actual === expected;
  return { maxAbs: ok ? 0 : Math.abs(actual - expected), maxRel: 0, failing: ok ? 0 : 1, ok };
}

async function runCase(folder: string, c: TrajectoryCase, info: SamplerInfo, sampler: Sampler, model: ReplayModel): Promise<CaseResult> {
  const timestep = info.family === 'timestep';
  const lcm = info.family === 'lcm';
  const { tensors } = await readSafetensorsFile(join(folder, 'samplers', c.file));
  const get = (k: string): Float32Tensor => toFloat32(tensors.get(k) as HostTensor);
  const has = (k: string): boolean => tensors.has(k);
  const source = noiseSourceOf(c);
  const [, ...itemShape] = c.shape as [number, number, number, number];
  const per = itemShape.reduce((a, b) => a * b, 1);
  const adaptive = info.upstream === 'sample_dpm_adaptive';
  const atol = adaptive ? ADAPTIVE_ATOL : LATENT_ATOL;
  const sigmaRtol = adaptive ? ADAPTIVE_SIGMA_RTOL : SIGMA_RTOL;
  const checks: Array<readonly [string, Closeness]> = [];
  const notes: string[] = [];

  // Initial noise from the per-image generators, then x = noise * sigmas[0] (KDiffusionSampler / LCMSampler);
  // the timestep samplers start from the noise itself.
  const rng = new ImageRNG({ shape: itemShape as [number, number, number], seeds: c.seeds, source, ensd: c.ensd ?? 0 });
  const initial = rng.next();
  checks.push(['x_init_noise', elementwiseClose(initial.data, get('x_init_noise').data, 0, 0)]);
  const sigmas = has('sigmas') ? Float32Array.from(get('sigmas').data) : new Float32Array(c.steps + 1);
  const xStart = timestep ? initial : float32(initial.shape, Float32Array.from(initial.data, (v) => v * sigmas[0]!));
  checks.push(['x_start', elementwiseClose(xStart.data, get('x_start').data, 0, 0)]);

  // Every step draw: value against rng_step_noise, provenance against a fresh generator per record.
  const stepDraws = c.rng_draws.filter((d) => d.kind === 'step');
  const recordedNoise = has('rng_step_noise') ? get('rng_step_noise') : undefined;
  const drawWorst = new Worst();
  const provenanceWorst = new Worst();
  let drawn = 0;
  const noise = (): Float32Tensor => {
    const k = drawn++;
    const t = rng.next();
    if (recordedNoise && k < recordedNoise.shape[0]!) drawWorst.add(elementwiseClose(t.data, slice(recordedNoise, k), 0, 0), k);
    const record = stepDraws[k];
    if (record) {
      record.per_item.forEach((p, b) => {
        const expected = drawOf(source, p.generator_seed, p.draw_index, per);
        provenanceWorst.add(elementwiseClose(t.data.subarray(b * per, (b + 1) * per), expected, 0, 0), k);
      });
    }
    return t;
  };

  // Brownian noise: the real trees (randn_local of the run's source), checked against the recorded queries,
  // returned noise and the sequence of torchsde's internal seeds.
  const bnoise = has('bnoise') ? get('bnoise') : undefined;
  const bpairs = has('bnoise_sigma_pairs') ? get('bnoise_sigma_pairs') : undefined;
  const bWorst = new Worst();
  const pairWorst = new Worst();
  const traced: number[] = [];
  let bq = 0;
  const brownian = (x: Float32Tensor, sigmaMin: number, sigmaMax: number): NoiseSampler => {
    if (c.brownian) {
      checks.push(['brownian interval', elementwiseClose([sigmaMin, sigmaMax], [c.brownian.t0_sigma_min, c.brownian.t1_sigma_max], 0, 0)]);
    }
    const tree = new BatchedBrownianTree(
      x.shape,
      sigmaMin,
      sigmaMax,
      c.seeds,
      (seed, shape) => randnLocal(source, seed, shape),
      (_item, seed) => traced.push(seed),
      // torchsde's own cache, so that the sequence of randn_local seeds can be compared call by call.
      UPSTREAM_CACHE,
    );
    return (sigma, sigmaNext) => {
      const k = bq++;
      const out = tree.noise(sigma, sigmaNext);
      if (bpairs && k < bpairs.shape[0]!) pairWorst.add(elementwiseClose([sigma, sigmaNext], slice(bpairs, k), 0, SIGMA_RTOL), k);
      if (bnoise && k < bnoise.shape[0]!) bWorst.add(elementwiseClose(out.data, slice(bnoise, k), LATENT_ATOL, 0), k);
      return out;
    };
  };

  // The analytic model, with every call checked against the recording: k-diffusion and LCM samplers call a
  // denoiser D(x, sigma) (t derived from sigma), the timestep samplers call eps(x, t) with t = the timestep.
  const schedule = model.schedule;
  const callSigma = get('call_sigma');
  const callT = get('call_t');
  const callX = get('call_x');
  const callOut = get('call_out');
  const sigmaWorst = new Worst();
  const tWorst = new Worst();
  const xWorst = new Worst();
  const outWorst = new Worst();
  const ties = new Set(c.lcm_sigma_to_t_ties ?? []);
  const tieResults: string[] = [];
  let calls = 0;
  const record = (k: number, level: Float32Array, t: Float32Array, x: Float32Tensor, out: Float32Tensor): void => {
    if (k >= c.n_calls) return;
    sigmaWorst.add(elementwiseClose(level, slice(callSigma, k), 0, sigmaRtol), k);
    const tCheck = elementwiseClose(t, slice(callT, k), T_ATOL, 0);
    tWorst.add(tCheck, k);
    if (ties.has(k)) tieResults.push(`#${k} t=${t[0]} (recorded ${slice(callT, k)[0]}${tCheck.ok ? '' : ', flipped'})`);
    xWorst.add(elementwiseClose(x.data, slice(callX, k), atol, 0), k);
    outWorst.add(elementwiseClose(out.data, slice(callOut, k), atol, 0), k);
  };
  const kModel = lcm ? analyticLcmDenoiser(model.coeffs, model.lcmSchedule) : analyticDenoiser(model.coeffs, schedule);
  const denoise: Denoiser = async (x, sigma) => {
    const k = calls++;
    const out = await kModel(x, sigma);
    const t = Float32Array.from(sigma, (s) => (lcm ? lcmSigmaToT(s, model.lcmSchedule) : schedule.sigmaToT(s)));
    record(k, sigma, t, x, out);
    return out;
  };
  const epsModel = analyticEps(model.coeffs);
  const eps: EpsModel = async (x, t) => {
    const k = calls++;
    const out = await epsModel(x, t);
    record(k, t, t, x, out);
    return out;
  };

  // Options exactly as A1111 passes them, checked against the recorded kwargs (k-diffusion); the timestep
  // samplers get their step count and A1111's eta_ddim / UniPC settings.
  let options: Record<string, number | string | boolean>;
  if (info.family === 'kdiffusion') {
    const built = samplerOptions(info, {
      eta: c.eta ?? model.defaults.etaAncestral,
      sChurn: typeof c.kwargs_passed.s_churn === 'number' ? c.kwargs_passed.s_churn : model.defaults.sChurn,
      modelSigmaMin: schedule.sigmaMin,
      modelSigmaMax: schedule.sigmaMax,
      steps: c.steps,
    });
    const kwargs = Object.fromEntries(
      Object.entries(c.kwargs_passed)
        .filter(([k]) => k !== 'noise_sampler')
        .map(([k, v]) => [k, v === 'inf' ? Infinity : v]),
    );
    const sameOptions =
      Object.keys(kwargs).length === Object.keys(built).length && Object.entries(kwargs).every(([k, v]) => built[k] === v);
    if (!sameOptions) notes.push(`options ${JSON.stringify(built)} != kwargs ${JSON.stringify(c.kwargs_passed)}`);
    checks.push(['options', countCheck(sameOptions ? 1 : 0, 1)]);
    options = built;
  } else {
    options = { steps: c.steps };
    if (typeof c.kwargs_passed.eta === 'number') options.eta = c.kwargs_passed.eta;
    const variant = c.opts?.uni_pc_variant;
    if (typeof variant === 'string') options.variant = variant;
  }

  const ctx: SamplerContext = {
    denoise,
    eps,
    sigmas,
    noise,
    seeds: c.seeds,
    brownian,
    options,
  };
  let final: Float32Tensor;
  try {
    final = await sampler(xStart, ctx);
  } catch (e) {
    return { name: c.id, status: 'fail', detail: `threw: ${e instanceof Error ? e.message : String(e)}` };
  }

  const label = (name: string, w: Worst) => (w.firstBad !== undefined ? `${name} (first at #${w.firstBad})` : name);
  checks.push(['model calls', countCheck(calls, c.n_calls)]);
  checks.push([label('call sigma', sigmaWorst), sigmaWorst.closeness()]);
  checks.push([label('call t', tWorst), tWorst.closeness()]);
  checks.push([label('call x', xWorst), xWorst.closeness()]);
  checks.push([label('call out', outWorst), outWorst.closeness()]);
  checks.push(['step draws', countCheck(drawn, c.n_rng_step_draws)]);
  if (drawWorst.count) checks.push([label('draw values', drawWorst), drawWorst.closeness()]);
  if (provenanceWorst.count) checks.push([label('draw provenance', provenanceWorst), provenanceWorst.closeness()]);
  if (c.brownian) {
    checks.push(['brownian queries', countCheck(bq, c.brownian.queries_sigma_pairs.length)]);
    checks.push([label('brownian query sigmas', pairWorst), pairWorst.closeness()]);
    checks.push([label('brownian noise', bWorst), bWorst.closeness()]);
    const ref = c.brownian.torchsde_randn_seeds;
    const sameSeeds = traced.length === ref.length && traced.every((s, i) => s === ref[i]);
    if (!sameSeeds) notes.push(`torchsde seeds: ${traced.length} drawn vs ${ref.length} recorded`);
    checks.push(['torchsde randn_local seeds', countCheck(sameSeeds ? 1 : 0, 1)]);
  }
  const finalCheck = elementwiseClose(final.data, get('x_final').data, atol, 0);
  if (tieResults.length) notes.push(`LCM sigma_to_t ties (README): ${tieResults.join(', ')}`);
  const result = combine(c.id, [...checks, ['x_final', finalCheck]], notes.join('; ') || undefined);
  // The headline figures are the final latent's; per-call worsts are in the detail when something fails.
  const headline = `x_final maxAbs ${fmt(finalCheck.maxAbs)}, calls ${calls}, draws ${drawn}${c.brownian ? `, brownian ${bq}` : ''}`;
  return {
    ...result,
    maxAbs: finalCheck.maxAbs,
    maxRel: finalCheck.maxRel,
    detail: [result.status === 'pass' ? headline : undefined, result.detail].filter(Boolean).join('; '),
  };
}

/**
 * One CaseResult per trajectory in samplers/trajectories.json, each replayed with the coefficients and schedule
 * of that folder. `folder` is the oracle root. A case that cannot be run (a missing tensor file) is one failed
 * line; a folder without usable coeffs throws, since no case can be replayed.
 */
export async function* trajectoryCases(folder: string): AsyncGenerator<CaseResult> {
  const samplers = join(folder, 'samplers');
  const index = JSON.parse(await readFile(join(samplers, 'trajectories.json'), 'utf8')) as Record<string, unknown>;
  const model = await replayModelFrom(samplers, index);
  const cases = section<TrajectoryCase>(index, 'cases', 'samplers/trajectories.json');
  if ('missing' in cases) {
    yield skipped('trajectories', cases.missing);
    return;
  }
  for (const c of cases.items) {
    const info = samplerByName(c.sampler);
    if (!info) {
      yield { name: c.id, status: 'fail', detail: `sampler "${c.sampler}" is not in the registry` };
      continue;
    }
    try {
      yield await runCase(folder, c, info, info.sampler, model);
    } catch (e) {
      yield { name: c.id, status: 'fail', detail: errorText(e) };
    }
  }
}
