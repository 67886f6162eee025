/**
 * A1111's schedulers by name (modules/sd_schedulers.py): names, labels, aliases and what `/sdapi/v1/schedulers`
 * reports. Plain data, importing no engine code, so the API and the CLI can validate and list names without
 * loading the sigma functions; sampling/schedules/schedulers.ts attaches those to these entries.
 */

export interface SchedulerEntry {
  readonly name: string;
  readonly label: string;
  readonly aliases: readonly string[];
  /** -1 where the scheduler has no rho. */
  readonly defaultRho: number;
  readonly needInnerModel: boolean;
}

/** A1111's scheduler list, in its order (the order matters for suffix resolution of legacy sampler names). */
export const SCHEDULER_CATALOG: readonly SchedulerEntry[] = [
  { name: 'automatic', label: 'Automatic', aliases: [], defaultRho: -1, needInnerModel: false },
  { name: 'uniform', label: 'Uniform', aliases: [], defaultRho: -1, needInnerModel: true },
  { name: 'karras', label: 'Karras', aliases: [], defaultRho: 7, needInnerModel: false },
  { name: 'exponential', label: 'Exponential', aliases: [], defaultRho: -1, needInnerModel: false },
  { name: 'polyexponential', label: 'Polyexponential', aliases: [], defaultRho: 1, needInnerModel: false },
  { name: 'sgm_uniform', label: 'SGM Uniform', aliases: ['SGMUniform'], defaultRho: -1, needInnerModel: true },
  { name: 'kl_optimal', label: 'KL Optimal', aliases: [], defaultRho: -1, needInnerModel: false },
  { name: 'align_your_steps', label: 'Align Your Steps', aliases: [], defaultRho: -1, needInnerModel: false },
  { name: 'simple', label: 'Simple', aliases: [], defaultRho: -1, needInnerModel: true },
  { name: 'normal', label: 'Normal', aliases: [], defaultRho: -1, needInnerModel: true },
  { name: 'ddim', label: 'DDIM', aliases: [], defaultRho: -1, needInnerModel: true },
  { name: 'beta', label: 'Beta', aliases: [], defaultRho: -1, needInnerModel: true },
];

/** schedulers_map with aliases: by name, label or alias (exact, case-sensitive as A1111). */
export function findSchedulerEntry(nameOrLabel: string): SchedulerEntry | undefined {
  return SCHEDULER_CATALOG.find((s) => s.name === nameOrLabel || s.label === nameOrLabel || s.aliases.includes(nameOrLabel));
}
