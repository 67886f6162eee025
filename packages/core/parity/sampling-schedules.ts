/**
 * Parity of the sigma schedules against a samplers folder: every scheduler x step count (plain and with
 * discard-penultimate), every sampler's "Automatic" schedule or timesteps, LCM's schedules, display-name
 * resolution (schedules.json), the model sigma table (sigma_table.safetensors) and the sigma <-> t conversions
 * (sigma_t_conversions.json). A section schedules.json lacks is one skipped line.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DarkroomError } from '../src/errors.js';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { alphasCumprodF32, DiscreteSchedule } from '../src/sampling/schedules/discrete.js';
import { lcmAlphasCumprod } from '../src/sampling/schedules/lcm.js';
import { betaV1101, discreteSigmaModel, lcmSigmaModel, type SigmaModel } from '../src/sampling/schedules/schedulers.js';
import {
  compVisTimesteps,
  discardPenultimate,
  samplerScheduleConfig,
  samplerSigmas,
  type ScheduleOptions,
} from '../src/sampling/schedules/sampler-schedules.js';
import { resolveSamplerEntry, samplerEntryByAlias } from '../src/catalog/samplers.js';
import { elementwiseClose, fmt, type CaseResult, type Closeness } from './report.js';
import { samplersSchedule } from './sampling-model.js';

/** Schedules must match A1111 to 1e-6 relative (the samplers README: rtol 1e-6 on sigmas). */
const SIGMA_RTOL = 1e-6;
/** t values: atol 1e-3 per the README; the recorded ones are float32 of the same arithmetic. */
const T_ATOL = 1e-3;

interface SigmaList {
  sigmas: number[];
}
/** The A1111 options the schedules were recorded with (schedules.json `options`; 0 = the scheduler's default). */
interface RecordedOptions {
  sigma_min?: number;
  sigma_max?: number;
  rho?: number;
  beta_dist_alpha?: number;
  beta_dist_beta?: number;
  use_old_karras_scheduler_sigmas?: boolean;
}

interface SchedulesJson {
  options?: RecordedOptions;
  schedulers?: Record<string, { by_steps: Record<string, { plain: SigmaList; discard_penultimate: SigmaList }> }>;
  samplers?: Record<
    string,
    {
      automatic?: Record<string, SigmaList>;
      timesteps?: Record<string, number[]>;
      by_scheduler?: Record<string, Record<string, SigmaList>>;
    }
  >;
  sampler_display_name_resolution?: {
    names: Record<string, { sampler: string; scheduler: string; scheduler_after_convert_automatic: string }>;
  };
  sampler_alias_map_lowercase?: Record<string, string>;
}

const absent = (key: string): CaseResult => ({ name: `schedules.json/${key}`, status: 'skip', detail: `schedules.json has no "${key}" section` });

function relClose(actual: ArrayLike<number>, ref: ArrayLike<number>): Closeness {
  return elementwiseClose(actual, ref, 0, SIGMA_RTOL);
}

/** The folder's model (its sigma table) and recorded options, as the schedule functions take them. */
interface Recording {
  readonly options: ScheduleOptions;
  readonly schedule: DiscreteSchedule;
  /** The model a sampler's schedule is computed on: LCM's own table for LCM, the discrete schedule otherwise. */
  modelFor(family: string): SigmaModel;
}

async function recording(folder: string, json: SchedulesJson): Promise<Recording> {
  const o = json.options ?? {};
  const options: ScheduleOptions = {
    ...(o.sigma_min ? { sigmaMin: o.sigma_min } : {}),
    ...(o.sigma_max ? { sigmaMax: o.sigma_max } : {}),
    ...(o.rho ? { rho: o.rho } : {}),
    ...(typeof o.beta_dist_alpha === 'number' ? { betaAlpha: o.beta_dist_alpha } : {}),
    ...(typeof o.beta_dist_beta === 'number' ? { betaBeta: o.beta_dist_beta } : {}),
    ...(o.use_old_karras_scheduler_sigmas ? { useOldKarrasSchedulerSigmas: true } : {}),
  };
  const schedule = await samplersSchedule(folder);
  const discrete = discreteSigmaModel(schedule);
  const lcm = lcmSigmaModel(new DiscreteSchedule(lcmAlphasCumprod(schedule.alphasCumprod)));
  return { options, schedule, modelFor: (family) => (family === 'lcm' ? lcm : discrete) };
}

/** One scheduler's sigmas as the oracle's "Euler with p.scheduler = name" recorded them. */
function schedulerSigmas(rec: Recording, name: string, steps: number, discard: boolean): Float32Array {
  const opts: ScheduleOptions = { ...rec.options, alwaysDiscardNextToLastSigma: discard };
  const model = rec.modelFor('kdiffusion');
  if (name === 'align_your_steps_sdxl') return samplerSigmas('Euler', 'align_your_steps', steps, { ...opts, sdxl: true }, model).sigmas;
  if (name === 'beta_v1_10_1') {
    const s = betaV1101(steps + (discard ? 1 : 0), {
      sigmaMin: rec.schedule.sigmaMin,
      sigmaMax: rec.schedule.sigmaMax,
      model,
      ...(opts.betaAlpha !== undefined ? { betaAlpha: opts.betaAlpha } : {}),
      ...(opts.betaBeta !== undefined ? { betaBeta: opts.betaBeta } : {}),
    });
    return discard ? discardPenultimate(s) : s;
  }
  return samplerSigmas('Euler', name, steps, opts, model).sigmas;
}

function itemised(name: string, failures: string[], checks: Closeness[], extra?: string): CaseResult {
  const maxAbs = Math.max(0, ...checks.map((c) => c.maxAbs));
  const maxRel = Math.max(0, ...checks.map((c) => c.maxRel));
  const detail = [failures.slice(0, 6).join('; ') + (failures.length > 6 ? `; +${failures.length - 6} more` : ''), extra]
    .filter(Boolean)
    .join('; ');
  return { name, status: failures.length ? 'fail' : 'pass', maxAbs, maxRel, ...(detail ? { detail } : {}) };
}

/** Worst relative error per element, for the report (elementwiseClose's maxRel is scaled by max|ref|). */
function worstElementRel(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  let w = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const d = Math.abs(actual[i]! - r);
    w = Math.max(w, r === 0 ? d : d / Math.abs(r));
  }
  return w;
}

/** `folder` is the samplers folder; one line per scheduler, per sampler, and one for the names. */
export async function* scheduleCases(folder: string): AsyncGenerator<CaseResult> {
  const json = JSON.parse(await readFile(join(folder, 'schedules.json'), 'utf8')) as SchedulesJson;
  const rec = await recording(folder, json);

  if (!json.schedulers) yield absent('schedulers');
  for (const [name, entry] of Object.entries(json.schedulers ?? {})) {
    const failures: string[] = [];
    const checks: Closeness[] = [];
    let worst = 0;
    for (const [steps, kinds] of Object.entries(entry.by_steps)) {
      for (const kind of ['plain', 'discard_penultimate'] as const) {
        let got: Float32Array;
        try {
          got = schedulerSigmas(rec, name, Number(steps), kind !== 'plain');
        } catch (e) {
          failures.push(`${steps}/${kind}: ${e instanceof Error ? e.message : String(e)}`);
          continue;
        }
        const ref = kinds[kind].sigmas;
        const c = relClose(got, ref);
        checks.push(c);
        if (got.length === ref.length) worst = Math.max(worst, worstElementRel(got, ref));
        if (!c.ok) failures.push(`${steps}/${kind}: ${got.length === ref.length ? `${c.failing} off` : `length ${got.length} vs ${ref.length}`}`);
      }
    }
    yield itemised(`schedules/${name}`, failures, checks, `worst element rel ${fmt(worst)}`);
  }

  if (!json.samplers) yield absent('samplers');
  for (const [sampler, entry] of Object.entries(json.samplers ?? {})) {
    const failures: string[] = [];
    const checks: Closeness[] = [];
    const family = samplerScheduleConfig(sampler).family;
    for (const [steps, list] of Object.entries(entry.automatic ?? {})) {
      const got = samplerSigmas(sampler, 'Automatic', Number(steps), rec.options, rec.modelFor(family)).sigmas;
      const c = relClose(got, list.sigmas);
      checks.push(c);
      if (!c.ok) failures.push(`automatic ${steps}: ${c.failing} off (len ${got.length}/${list.sigmas.length})`);
    }
    for (const [steps, ts] of Object.entries(entry.timesteps ?? {})) {
      const got = compVisTimesteps(Number(steps));
      const c = elementwiseClose(got, ts, 0, 0);
      checks.push(c);
      if (!c.ok) failures.push(`timesteps ${steps}: ${c.failing} off (len ${got.length}/${ts.length})`);
    }
    for (const [scheduler, bySteps] of Object.entries(entry.by_scheduler ?? {})) {
      for (const [steps, list] of Object.entries(bySteps)) {
        const got = samplerSigmas(sampler, scheduler, Number(steps), rec.options, rec.modelFor(family)).sigmas;
        const c = relClose(got, list.sigmas);
        checks.push(c);
        if (!c.ok) failures.push(`${scheduler} ${steps}: ${c.failing} off (len ${got.length}/${list.sigmas.length})`);
      }
    }
    yield itemised(`sampler-schedules/${sampler}`, failures, checks, family);
  }

  const names = json.sampler_display_name_resolution?.names;
  const aliases = json.sampler_alias_map_lowercase;
  if (!names && !aliases) yield absent('sampler_display_name_resolution');
  else {
    const failures: string[] = [];
    for (const [name, want] of Object.entries(names ?? {})) {
      const raw = resolveSamplerEntry(name, undefined, false);
      const conv = resolveSamplerEntry(name, undefined, true);
      if (raw.sampler.name !== want.sampler || raw.scheduler !== want.scheduler || conv.scheduler !== want.scheduler_after_convert_automatic) {
        failures.push(`"${name}" -> ${raw.sampler.name}/${raw.scheduler}/${conv.scheduler}`);
      }
    }
    for (const [alias, want] of Object.entries(aliases ?? {})) {
      const got = samplerEntryByAlias(alias)?.name;
      if (got !== want) failures.push(`alias "${alias}" -> ${got ?? 'none'}`);
    }
    const partial = !names ? 'no display-name section' : !aliases ? 'no alias section' : undefined;
    yield itemised('names/display-and-aliases', failures, [], partial);
  }
}

interface ConversionsJson {
  sigma_in_f32: number[];
  sigma_to_t: number[];
  sigma_to_t_quantized: number[];
  t_in_f32: number[];
  t_to_sigma: number[];
  round_trip_t_to_sigma_to_t: number[];
  sigma_min_f32: number;
  sigma_max_f32: number;
}

/**
 * The engine's schedule arithmetic against `sigma_table.safetensors` of the samplers folder: alphas_cumprod from
 * the folder's betas (SD's scaled-linear ones where the table has none), sigmas and log sigmas from its
 * alphas_cumprod.
 */
export async function sigmaTableCase(folder: string): Promise<CaseResult> {
  const { tensors } = await readSafetensorsFile(join(folder, 'sigma_table.safetensors'));
  const tensor = (key: string): Float32Array | Float64Array => {
    const t = tensors.get(key);
    if (!t || !(t.data instanceof Float32Array || t.data instanceof Float64Array)) {
      throw new DarkroomError('PARITY_MISSING_TENSOR', `sigma_table.safetensors has no float tensor ${key}`, { tensor: key });
    }
    return t.data;
  };
  const acp = Float32Array.from(tensor('alphas_cumprod_f32'));
  const betas = tensors.has('betas_f64') ? Float64Array.from(tensor('betas_f64')) : undefined;
  const table = new DiscreteSchedule(acp);
  const checks: Array<readonly [string, Closeness]> = [
    ['alphas_cumprod_f32', elementwiseClose(alphasCumprodF32(betas), acp, 0, 0)],
    ['sigmas_f32', elementwiseClose(table.sigmas, tensor('sigmas_f32'), 0, 0)],
    ['log_sigmas_f32', elementwiseClose(table.logSigmas, tensor('log_sigmas_f32'), 0, SIGMA_RTOL)],
  ];
  const failed = checks.filter(([, c]) => !c.ok).map(([l, c]) => `${l}: ${c.failing} off`);
  return {
    name: 'sigma-table',
    status: failed.length ? 'fail' : 'pass',
    maxAbs: Math.max(...checks.map(([, c]) => c.maxAbs)),
    maxRel: Math.max(...checks.map(([, c]) => c.maxRel)),
    detail: failed.length ? failed.join('; ') : 'acp and sigmas bit-exact; log sigmas within 1 ulp (torch vectorised log)',
  };
}

/** The engine's sigma <-> t conversions on the folder's schedule against its `sigma_t_conversions.json`. */
export async function conversionCase(folder: string): Promise<CaseResult> {
  const table = await samplersSchedule(folder);
  const conv = JSON.parse(await readFile(join(folder, 'sigma_t_conversions.json'), 'utf8')) as ConversionsJson;
  const s2t = conv.sigma_in_f32.map((s) => table.sigmaToT(s));
  const s2tq = conv.sigma_in_f32.map((s) => table.sigmaToT(s, true));
  const t2s = conv.t_in_f32.map((t) => table.tToSigma(t));
  const rt = conv.t_in_f32.map((t) => table.sigmaToT(table.tToSigma(t)));
  const parts: Array<readonly [string, Closeness]> = [
    ['sigma_to_t', elementwiseClose(s2t, conv.sigma_to_t, T_ATOL, 0)],
    ['sigma_to_t_quantized', elementwiseClose(s2tq, conv.sigma_to_t_quantized, 0, 0)],
    ['t_to_sigma', elementwiseClose(t2s, conv.t_to_sigma, 0, SIGMA_RTOL)],
    ['round_trip', elementwiseClose(rt, conv.round_trip_t_to_sigma_to_t, T_ATOL, 0)],
    ['sigma_min/max', elementwiseClose([table.sigmaMin, table.sigmaMax], [conv.sigma_min_f32, conv.sigma_max_f32], 0, 0)],
  ];
  const bad = parts.filter(([, c]) => !c.ok).map(([l, c]) => `${l}: ${c.failing} off`);
  return {
    name: 'sigma-t-conversions',
    status: bad.length ? 'fail' : 'pass',
    maxAbs: Math.max(...parts.map(([, c]) => c.maxAbs)),
    maxRel: Math.max(...parts.map(([, c]) => c.maxRel)),
    ...(bad.length ? { detail: bad.join('; ') } : {}),
  };
}
