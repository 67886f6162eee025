/**
 * parity:sampling — the folder is an oracle root holding `rng/` and `samplers/`:
 *   rng: every tensor of the three noise files plus the 4x96x64 summaries (sampling-rng.ts);
 *   schedules: every scheduler x steps, sampler "Automatic" schedules, names, sigma table and conversions
 *   (sampling-schedules.ts);
 *   trajectories: the k-diffusion replays (sampling-trajectories.ts), with the CompVis/LCM cases replayed by
 *   sampling-compvis.ts wherever that module leaves them skipped.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CaseResult } from './report.js';
import type { Suite } from './suites.js';
import { rngCases } from './sampling-rng.js';
import { scheduleCases } from './sampling-schedules.js';
import { compVisCaseIndex, replayCompVisCase } from './sampling-compvis.js';

type TrajectoryCases = (folder: string) => AsyncGenerator<CaseResult>;

async function loadTrajectoryCases(): Promise<TrajectoryCases | string> {
  try {
    const mod = (await import('./sampling-trajectories.js')) as { trajectoryCases?: TrajectoryCases };
    return mod.trajectoryCases ?? 'sampling-trajectories.ts has no trajectoryCases export';
  } catch (e) {
    return `sampling-trajectories.ts not loadable: ${e instanceof Error ? e.message : String(e)}`;
  }
}

async function* run(folder: string): AsyncGenerator<CaseResult> {
  const rngFolder = join(folder, 'rng');
  if (existsSync(join(rngFolder, 'rng.json'))) yield* rngCases(rngFolder);
  else yield { name: 'rng', status: 'skip', detail: `no rng oracle at ${rngFolder}` };

  const samplersFolder = join(folder, 'samplers');
  yield* scheduleCases(samplersFolder);

  const compVis = await compVisCaseIndex(folder);
  const replayed = new Set<string>();
  const trajectories = await loadTrajectoryCases();
  if (typeof trajectories === 'string') {
    yield { name: 'trajectories/k-diffusion', status: 'skip', detail: trajectories };
  } else {
    for await (const r of trajectories(folder)) {
      const mine = compVis.get(r.name);
      if (mine && r.status === 'skip') {
        replayed.add(r.name);
        yield await replayCompVisCase(samplersFolder, mine);
      } else {
        if (mine) replayed.add(r.name);
        yield r;
      }
    }
  }
  for (const [id, c] of compVis) if (!replayed.has(id)) yield await replayCompVisCase(samplersFolder, c);
}

export const suite: Suite = {
  name: 'sampling',
  under: '',
  marker: 'samplers/trajectories.json',
  run,
};
