/**
 * Replay of the CompVis-family trajectories (DDIM, DDIM CFG++, PLMS, UniPC, LCM) of a samplers folder's
 * trajectories.json through the production samplers (compvis/index.ts) with that folder's analytic model
 * (sampling-model.ts) and the real noise sources: every model call (timestep or sigma, t, input, output), every
 * noise draw (value and provenance) and the final latent.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { float32, toFloat32, type Float32Tensor, type HostTensor } from '../src/tensor.js';
import { createGenerator, ImageRNG, type NoiseSource } from '../src/sampling/rng/image-rng.js';
import { compVisSamplers } from '../src/sampling/compvis/index.js';
import { compVisTimesteps } from '../src/sampling/schedules/sampler-schedules.js';
import { lcmSigmaToT } from '../src/sampling/denoisers.js';
import type { Denoiser, EpsModel, SamplerContext } from '../src/sampling/types.js';
import { analyticEps, analyticLcmDenoiser } from './analytic-model.js';
import { replayModel, type ReplayModel } from './sampling-model.js';
import { combine, elementwiseClose, fmt, type CaseResult, type Closeness } from './report.js';

const LATENT_ATOL = 2e-5;
const SIGMA_RTOL = 1e-6;
const T_ATOL = 1e-3;

interface CompVisCase {
  readonly id: string;
  readonly file: string;
  readonly sampler: string;
  readonly steps: number;
  readonly seeds: number[];
  readonly shape: number[];
  readonly source: 'CPU' | 'NV';
  readonly ensd?: number;
  readonly eta?: number;
  readonly n_calls: number;
  readonly n_rng_step_draws: number;
  readonly sampler_options?: Record<string, unknown>;
  readonly kwargs_passed?: Record<string, unknown>;
  readonly effective_params?: Record<string, unknown>;
  readonly rng_draws: ReadonlyArray<{ kind: string; per_item: ReadonlyArray<{ generator_seed: number; draw_index: number }> }>;
  readonly lcm_sigma_to_t_ties?: number[];
  /** A1111 settings the case changed (uni_pc_variant, ...). */
  readonly opts?: Record<string, unknown>;
  readonly a1111_options_used?: Record<string, unknown>;
}

export const COMPVIS_SAMPLERS: ReadonlySet<string> = new Set(Object.keys(compVisSamplers));

class Worst {
  maxAbs = 0;
  maxRel = 0;
  failing = 0;
  firstBad: number | undefined;
  add(c: Closeness, index: number): void {
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

const count = (actual: number, expected: number): Closeness => ({
  maxAbs: Math.abs(actual - expected),
  maxRel: 0,
  failing: actual === expected ? 0 : 1,
  ok: actual === expected,
});

function slice(t: Float32Tensor, k: number): Float32Array {
  const per = t.data.length / t.shape[0]!;
  return t.data.subarray(k * per, (k + 1) * per);
}

function drawOf(source: NoiseSource, seed: number, index: number, n: number): Float32Array {
  const g = createGenerator(source, seed);
  let out = g.randn(n);
  for (let i = 0; i < index; i++) out = g.randn(n);
  return out;
}

/**
 * Runs one recorded CompVis/LCM case and compares it call by call, with `model` or else the one the folder's
 * trajectories.json and sigma table give.
 */
export async function replayCompVisCase(samplersFolder: string, c: CompVisCase, model?: ReplayModel): Promise<CaseResult> {
  const recording = model ?? (await replayModel(samplersFolder));
  const sampler = compVisSamplers[c.sampler];
  if (!sampler) return { name: c.id, status: 'fail', detail: `no CompVis sampler ${c.sampler}` };
  const { tensors } = await readSafetensorsFile(join(samplersFolder, c.file));
  const get = (k: string): Float32Tensor => toFloat32(tensors.get(k) as HostTensor);
  const source: NoiseSource = c.source === 'NV' ? 'nv' : 'cpu';
  const [, ...item] = c.shape as [number, number, number, number];
  const per = item[0]! * item[1]! * item[2]!;
  const isLcm = c.sampler === 'LCM';
  const checks: Array<readonly [string, Closeness]> = [];

  const rng = new ImageRNG({ shape: item as [number, number, number], seeds: c.seeds, source, ensd: c.ensd ?? 0 });
  const initial = rng.next();
  checks.push(['x_init_noise', elementwiseClose(initial.data, get('x_init_noise').data, 0, 0)]);

  let sigmas = new Float32Array(0);
  let xStart: Float32Tensor;
  if (isLcm) {
    sigmas = Float32Array.from(get('sigmas').data);
    xStart = float32(initial.shape, Float32Array.from(initial.data, (v) => v * sigmas[0]!));
  } else {
    const recorded = tensors.get('timesteps')!;
    const ts = Array.from(recorded.data as BigInt64Array, Number);
    checks.push(['timesteps', elementwiseClose(compVisTimesteps(c.steps), ts, 0, 0)]);
    xStart = initial;
  }
  checks.push(['x_start', elementwiseClose(xStart.data, get('x_start').data, 0, 0)]);

  const stepDraws = c.rng_draws.filter((d) => d.kind === 'step');
  const recordedNoise = tensors.has('rng_step_noise') ? get('rng_step_noise') : undefined;
  const drawWorst = new Worst();
  const provenance = new Worst();
  let drawn = 0;
  const noise = (): Float32Tensor => {
    const k = drawn++;
    const t = rng.next();
    if (recordedNoise && k < recordedNoise.shape[0]!) drawWorst.add(elementwiseClose(t.data, slice(recordedNoise, k), 0, 0), k);
    stepDraws[k]?.per_item.forEach((p, b) =>
      provenance.add(elementwiseClose(t.data.subarray(b * per, (b + 1) * per), drawOf(source, p.generator_seed, p.draw_index, per), 0, 0), k),
    );
    return t;
  };

  const callSigma = get('call_sigma');
  const callT = get('call_t');
  const callX = get('call_x');
  const callOut = get('call_out');
  const ties = new Set(c.lcm_sigma_to_t_ties ?? []);
  const w = { sigma: new Worst(), t: new Worst(), x: new Worst(), out: new Worst() };
  let calls = 0;
  const record = (k: number, level: Float32Array, t: Float32Array, x: Float32Tensor, out: Float32Tensor): void => {
    if (k >= c.n_calls) return;
    w.sigma.add(elementwiseClose(level, slice(callSigma, k), isLcm ? 0 : T_ATOL, isLcm ? SIGMA_RTOL : 0), k);
    w.t.add(elementwiseClose(t, slice(callT, k), T_ATOL, 0), k);
    w.x.add(elementwiseClose(x.data, slice(callX, k), LATENT_ATOL, 0), k);
    w.out.add(elementwiseClose(out.data, slice(callOut, k), LATENT_ATOL, 0), k);
  };
  const epsModel = analyticEps(recording.coeffs);
  const eps: EpsModel = async (x, t) => {
    const out = await epsModel(x, t);
    record(calls++, t, t, x, out);
    return out;
  };
  const lcmModel = analyticLcmDenoiser(recording.coeffs, recording.lcmSchedule);
  const denoise: Denoiser = async (x, sigma) => {
    const out = await lcmModel(x, sigma);
    record(calls++, sigma, Float32Array.from(sigma, (s) => lcmSigmaToT(s, recording.lcmSchedule)), x, out);
    return out;
  };

  const eta = typeof c.kwargs_passed?.eta === 'number' ? c.kwargs_passed.eta : (c.eta ?? recording.defaults.etaDdim);
  const used = { ...c.a1111_options_used, ...c.opts };
  const variant = used.uni_pc_variant;
  const order = used.uni_pc_order;
  const lowerOrderFinal = used.uni_pc_lower_order_final;
  const ctx: SamplerContext = {
    denoise,
    eps,
    sigmas,
    noise,
    seeds: c.seeds,
    options: {
      steps: c.steps,
      eta,
      ...(typeof variant === 'string' ? { variant } : {}),
      ...(typeof order === 'number' ? { order } : {}),
      ...(typeof lowerOrderFinal === 'boolean' ? { lowerOrderFinal } : {}),
    },
  };
  let final: Float32Tensor;
  try {
    final = await sampler(xStart, ctx);
  } catch (e) {
    return { name: c.id, status: 'fail', detail: `threw: ${e instanceof Error ? e.message : String(e)}` };
  }
  const label = (name: string, x: Worst) => (x.firstBad !== undefined ? `${name} (first at #${x.firstBad})` : name);
  checks.push(['model calls', count(calls, c.n_calls)]);
  checks.push([label(isLcm ? 'call sigma' : 'call timestep', w.sigma), w.sigma.closeness()]);
  checks.push([label('call t', w.t), w.t.closeness()]);
  checks.push([label('call x', w.x), w.x.closeness()]);
  checks.push([label('call out', w.out), w.out.closeness()]);
  checks.push(['step draws', count(drawn, c.n_rng_step_draws)]);
  if (recordedNoise) checks.push([label('draw values', drawWorst), drawWorst.closeness()]);
  if (stepDraws.length) checks.push([label('draw provenance', provenance), provenance.closeness()]);
  const fin = elementwiseClose(final.data, get('x_final').data, LATENT_ATOL, 0);
  const result = combine(c.id, [...checks, ['x_final', fin]], ties.size ? `LCM ties at calls [${[...ties].join(', ')}] emulated in float32` : undefined);
  const headline = `x_final maxAbs ${fmt(fin.maxAbs)}, calls ${calls}, draws ${drawn}`;
  return {
    ...result,
    maxAbs: fin.maxAbs,
    maxRel: fin.maxRel,
    detail: [result.detail, result.status === 'pass' ? headline : undefined].filter(Boolean).join('; '),
  };
}

/** Every CompVis/LCM case of trajectories.json, by id. `folder` is the oracle root (holding samplers/). */
export async function compVisCaseIndex(folder: string): Promise<Map<string, CompVisCase>> {
  const index = JSON.parse(await readFile(join(folder, 'samplers', 'trajectories.json'), 'utf8')) as { cases: CompVisCase[] };
  return new Map(index.cases.filter((c) => COMPVIS_SAMPLERS.has(c.sampler)).map((c) => [c.id, c]));
}

/** One CaseResult per CompVis/LCM trajectory, all with the folder's model. */
export async function* compVisTrajectoryCases(folder: string): AsyncGenerator<CaseResult> {
  const samplers = join(folder, 'samplers');
  const model = await replayModel(samplers);
  for (const c of (await compVisCaseIndex(folder)).values()) yield await replayCompVisCase(samplers, c, model);
}
