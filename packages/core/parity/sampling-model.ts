/**
 * The model a samplers folder was recorded with, read from that folder: the analytic eps's coefficients
 * (`trajectories.json` → `coeffs`) and the discrete schedule its denoisers convert sigmas with
 * (`sigma_table.safetensors` → `alphas_cumprod_f32`). Other folders in this format use other coefficients, so
 * nothing here falls back to the public ones: a folder without usable coeffs cannot be replayed.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DarkroomError } from '../src/errors.js';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { DiscreteSchedule, sdDiscreteSchedule } from '../src/sampling/schedules/discrete.js';
import { lcmAlphasCumprod } from '../src/sampling/schedules/lcm.js';
import { coeffsFromJson, type AnalyticCoeffs } from './analytic-model.js';

/** The A1111 option defaults the recording ran with (`options_defaults`), where a case states none of its own. */
export interface RecordedDefaults {
  readonly etaAncestral: number;
  readonly etaDdim: number;
  readonly sChurn: number;
}

export interface ReplayModel {
  readonly coeffs: AnalyticCoeffs;
  readonly defaults: RecordedDefaults;
  /** CompVisDenoiser's schedule: sigma <-> t, and the table ends DPM fast/adaptive are given. */
  readonly schedule: DiscreteSchedule;
  /** LCMCompVisDenoiser's 50-entry table, taken from the same alphas_cumprod. */
  readonly lcmSchedule: DiscreteSchedule;
}

/**
 * The schedule of the folder's sigma table. Without the table the README's model (SD v1's scaled-linear
 * schedule, the engine's own) stands in: the table is a check of that schedule, not a second model.
 */
export async function samplersSchedule(samplersFolder: string): Promise<DiscreteSchedule> {
  const file = join(samplersFolder, 'sigma_table.safetensors');
  if (!existsSync(file)) return sdDiscreteSchedule();
  const acp = (await readSafetensorsFile(file)).tensors.get('alphas_cumprod_f32');
  if (!acp || !(acp.data instanceof Float32Array)) {
    throw new DarkroomError('PARITY_MISSING_TENSOR', `${file} has no float32 alphas_cumprod_f32`, { file });
  }
  return new DiscreteSchedule(acp.data);
}

/** A1111's own option defaults (shared_options.py) stand in for any the index does not record. */
function recordedDefaults(index: Readonly<Record<string, unknown>>): RecordedDefaults {
  const o = (index.options_defaults ?? {}) as Record<string, unknown>;
  const num = (key: string, fallback: number): number => (typeof o[key] === 'number' ? o[key] : fallback);
  return { etaAncestral: num('eta_ancestral', 1), etaDdim: num('eta_ddim', 0), sChurn: num('s_churn', 0) };
}

/** The replay model from a parsed trajectories.json (its `coeffs`, `options_defaults`) and the folder's sigma table. */
export async function replayModelFrom(samplersFolder: string, index: Readonly<Record<string, unknown>>): Promise<ReplayModel> {
  const coeffs = coeffsFromJson(index.coeffs, join(samplersFolder, 'trajectories.json'));
  const schedule = await samplersSchedule(samplersFolder);
  return {
    coeffs,
    defaults: recordedDefaults(index),
    schedule,
    lcmSchedule: new DiscreteSchedule(lcmAlphasCumprod(schedule.alphasCumprod)),
  };
}

/** The replay model of a samplers folder, reading its trajectories.json. */
export async function replayModel(samplersFolder: string): Promise<ReplayModel> {
  const index = JSON.parse(await readFile(join(samplersFolder, 'trajectories.json'), 'utf8')) as Record<string, unknown>;
  return replayModelFrom(samplersFolder, index);
}
