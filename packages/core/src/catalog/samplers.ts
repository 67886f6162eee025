/**
 * A1111's sampler table by name: display names, aliases, family and the options A1111 attaches to each
 * (default scheduler, second order, ENSD, Brownian noise, discard-penultimate, eta, extra parameters), and
 * A1111's name resolution (`get_sampler_and_scheduler`, legacy "DPM++ 2M Karras" style names included).
 * Plain data, importing no engine code: the API, the CLI and the farm resolve and list samplers here, and
 * sampling/samplers.ts attaches each entry's implementation.
 */
import { SCHEDULER_CATALOG } from './schedulers.js';

/** Which model interface a sampler drives. */
export type SamplerFamily =
  /** k-diffusion: calls the denoiser D(x, sigma) and starts from noise * sigmas[0]. */
  | 'kdiffusion'
  /** A1111's timestep samplers (DDIM, DDIM CFG++, PLMS, UniPC): call the eps model on the VP latent. */
  | 'timestep'
  /** LCM: k-diffusion-style loop over LCM's own denoiser (see sampling/compvis/). */
  | 'lcm';

export interface SamplerEntry {
  /** Display name, as A1111 lists it and writes it to the infotext. */
  readonly name: string;
  readonly aliases: readonly string[];
  readonly family: SamplerFamily;
  /** The upstream function (k-diffusion `sample_*`, or A1111's module function). */
  readonly upstream: string;
  /** Scheduler name "Automatic" resolves to; undefined = the model's discrete schedule (uniform). */
  readonly defaultScheduler?: string;
  readonly discardPenultimate: boolean;
  /** Two model calls per step: A1111 builds prompt-editing schedules over steps * 2. */
  readonly secondOrder: boolean;
  /** Only decides whether ENSD goes into the infotext; the reseed itself always happens. */
  readonly usesEnsd: boolean;
  /** Noise from per-image Brownian trees (seeded from the image seeds, ignoring ENSD). */
  readonly brownianNoise: boolean;
  /** The function takes `eta` (A1111 passes `eta_ancestral`, default 1; "Eta" in the infotext when != 1). */
  readonly takesEta: boolean;
  /** A1111's `sampler_extra_params`: option names copied from the settings. */
  readonly extraParams: readonly string[];
  /** Fixed keyword arguments A1111 adds (solver_type 'heun'). */
  readonly fixedOptions: Readonly<Record<string, string>>;
  /** DPM fast / adaptive: given the model's sigma range (and n = steps) instead of the schedule. */
  readonly usesModelSigmaRange: boolean;
}

const CHURN = ['s_churn', 's_tmin', 's_tmax', 's_noise'] as const;
const S_NOISE = ['s_noise'] as const;

interface Row {
  name: string;
  upstream: string;
  aliases: string[];
  family?: SamplerFamily;
  scheduler?: string;
  discard?: boolean;
  secondOrder?: boolean;
  usesEnsd?: boolean;
  brownian?: boolean;
  eta?: boolean;
  extra?: readonly string[];
  fixed?: Record<string, string>;
  modelRange?: boolean;
}

// Order matters: the first entry is A1111's default sampler.
const ROWS: Row[] = [
  { name: 'DPM++ 2M', upstream: 'sample_dpmpp_2m', aliases: ['k_dpmpp_2m'], scheduler: 'karras' },
  {
    name: 'DPM++ SDE',
    upstream: 'sample_dpmpp_sde',
    aliases: ['k_dpmpp_sde'],
    scheduler: 'karras',
    secondOrder: true,
    brownian: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'DPM++ 2M SDE',
    upstream: 'sample_dpmpp_2m_sde',
    aliases: ['k_dpmpp_2m_sde'],
    scheduler: 'exponential',
    brownian: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'DPM++ 2M SDE Heun',
    upstream: 'sample_dpmpp_2m_sde',
    aliases: ['k_dpmpp_2m_sde_heun'],
    scheduler: 'exponential',
    brownian: true,
    eta: true,
    extra: S_NOISE,
    fixed: { solver_type: 'heun' },
  },
  {
    name: 'DPM++ 2S a',
    upstream: 'sample_dpmpp_2s_ancestral',
    aliases: ['k_dpmpp_2s_a'],
    scheduler: 'karras',
    usesEnsd: true,
    secondOrder: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'DPM++ 3M SDE',
    upstream: 'sample_dpmpp_3m_sde',
    aliases: ['k_dpmpp_3m_sde'],
    scheduler: 'exponential',
    discard: true,
    brownian: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'Euler a',
    upstream: 'sample_euler_ancestral',
    aliases: ['k_euler_a', 'k_euler_ancestral'],
    usesEnsd: true,
    eta: true,
  },
  { name: 'Euler', upstream: 'sample_euler', aliases: ['k_euler'], extra: CHURN },
  { name: 'LMS', upstream: 'sample_lms', aliases: ['k_lms'] },
  { name: 'Heun', upstream: 'sample_heun', aliases: ['k_heun'], secondOrder: true, extra: CHURN },
  {
    name: 'DPM2',
    upstream: 'sample_dpm_2',
    aliases: ['k_dpm_2'],
    scheduler: 'karras',
    discard: true,
    secondOrder: true,
    extra: CHURN,
  },
  {
    name: 'DPM2 a',
    upstream: 'sample_dpm_2_ancestral',
    aliases: ['k_dpm_2_a'],
    scheduler: 'karras',
    discard: true,
    usesEnsd: true,
    secondOrder: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'DPM fast',
    upstream: 'sample_dpm_fast',
    aliases: ['k_dpm_fast'],
    usesEnsd: true,
    eta: true,
    extra: S_NOISE,
    modelRange: true,
  },
  {
    name: 'DPM adaptive',
    upstream: 'sample_dpm_adaptive',
    aliases: ['k_dpm_ad'],
    usesEnsd: true,
    eta: true,
    modelRange: true,
  },
  {
    name: 'Restart',
    upstream: 'modules.sd_samplers_extra.restart_sampler',
    aliases: ['restart'],
    scheduler: 'karras',
    secondOrder: true,
  },
  { name: 'DDIM', upstream: 'modules.sd_samplers_timesteps_impl.ddim', aliases: ['ddim'], family: 'timestep' },
  {
    name: 'DDIM CFG++',
    upstream: 'modules.sd_samplers_timesteps_impl.ddim_cfgpp',
    aliases: ['ddim_cfgpp'],
    family: 'timestep',
  },
  { name: 'PLMS', upstream: 'modules.sd_samplers_timesteps_impl.plms', aliases: ['plms'], family: 'timestep' },
  { name: 'UniPC', upstream: 'modules.sd_samplers_timesteps_impl.unipc', aliases: ['unipc'], family: 'timestep' },
  { name: 'LCM', upstream: 'modules.sd_samplers_lcm.sample_lcm', aliases: ['k_lcm'], family: 'lcm' },
];

export const SAMPLER_CATALOG: readonly SamplerEntry[] = ROWS.map((r) => ({
  name: r.name,
  aliases: r.aliases,
  family: r.family ?? 'kdiffusion',
  upstream: r.upstream,
  ...(r.scheduler ? { defaultScheduler: r.scheduler } : {}),
  discardPenultimate: r.discard ?? false,
  secondOrder: r.secondOrder ?? false,
  usesEnsd: r.usesEnsd ?? false,
  brownianNoise: r.brownian ?? false,
  takesEta: r.eta ?? false,
  extraParams: r.extra ?? [],
  fixedOptions: r.fixed ?? {},
  usesModelSigmaRange: r.modelRange ?? false,
}));

export const DEFAULT_SAMPLER_ENTRY: SamplerEntry = SAMPLER_CATALOG[0]!;

const BY_NAME = new Map(SAMPLER_CATALOG.map((s) => [s.name, s]));
const BY_ALIAS_LOWER = new Map<string, SamplerEntry>();
for (const s of SAMPLER_CATALOG) {
  BY_ALIAS_LOWER.set(s.name.toLowerCase(), s);
  for (const a of s.aliases) BY_ALIAS_LOWER.set(a.toLowerCase(), s);
}

/** Exact display-name lookup (A1111's all_samplers_map). */
export function samplerEntryByName(name: string): SamplerEntry | undefined {
  return BY_NAME.get(name);
}

/** Case-insensitive lookup by display name or alias (A1111's samplers_map: "k_euler_a" -> Euler a). */
export function samplerEntryByAlias(name: string): SamplerEntry | undefined {
  return BY_ALIAS_LOWER.get(name.toLowerCase());
}

export interface ResolvedSamplerEntry {
  readonly sampler: SamplerEntry;
  /** Scheduler label ("Automatic", "Karras", ...). */
  readonly scheduler: string;
  /** True when the name (after any scheduler suffix) was no sampler's display name and the default took its place. */
  readonly fallback: boolean;
}

/**
 * A1111 `get_sampler_and_scheduler(sampler_name, scheduler_name)`: a trailing " <scheduler label|name|alias>"
 * is split off the sampler name (every scheduler is tried in order, so "Euler SGM Uniform" loses " Uniform"
 * and then is no sampler at all); unknown sampler names become the default sampler (DPM++ 2M); with
 * `convertAutomatic` a scheduler equal to the sampler's own default is reported as Automatic.
 */
export function resolveSamplerEntry(
  samplerName: string | undefined | null,
  schedulerName?: string | null,
  convertAutomatic = true,
): ResolvedSamplerEntry {
  // A1111's schedulers_map: names and labels (not aliases).
  const byKey = (key: string | undefined | null) =>
    key == null ? undefined : SCHEDULER_CATALOG.find((s) => s.name === key || s.label === key);
  let scheduler = byKey(schedulerName) ?? SCHEDULER_CATALOG[0]!;
  let name = samplerName || DEFAULT_SAMPLER_ENTRY.name;
  for (const s of SCHEDULER_CATALOG) {
    for (const option of [s.label, s.name, ...s.aliases]) {
      if (name.endsWith(` ${option}`)) {
        scheduler = s;
        name = name.slice(0, -(option.length + 1));
        break;
      }
    }
  }
  const named = BY_NAME.get(name);
  const sampler = named ?? DEFAULT_SAMPLER_ENTRY;
  if (convertAutomatic && sampler.defaultScheduler === scheduler.name) scheduler = SCHEDULER_CATALOG[0]!;
  return { sampler, scheduler: scheduler.label, fallback: named === undefined };
}

/** The scheduler name a (sampler, scheduler label) pair runs: "Automatic" becomes the sampler's default. */
export function effectiveScheduler(sampler: SamplerEntry, schedulerLabel: string): string {
  const s = SCHEDULER_CATALOG.find((x) => x.label === schedulerLabel || x.name === schedulerLabel);
  if (!s || s.name === 'automatic') return sampler.defaultScheduler ?? 'uniform';
  return s.name;
}
