/**
 * parity:sampling — the folder is an oracle root holding `rng/` and `samplers/`:
 *   rng: every tensor of the three noise files plus the summaries (sampling-rng.ts);
 *   schedules: every scheduler x steps, sampler "Automatic" schedules, names (sampling-schedules.ts);
 *   sigma-table and sigma-t-conversions: the engine's model schedule against the folder's;
 *   trajectories: every recorded sampler run replayed with the folder's analytic model
 *   (sampling-trajectories.ts, sampling-model.ts).
 * A group the folder lacks is one skipped line; the others are still checked.
 */
import { join } from 'node:path';
import type { CaseResult } from './report.js';
import type { Suite } from './suites.js';
import { runGroups } from './groups.js';
import { rngCases } from './sampling-rng.js';
import { conversionCase, scheduleCases, sigmaTableCase } from './sampling-schedules.js';
import { trajectoryCases } from './sampling-trajectories.js';

async function* one(result: Promise<CaseResult>): AsyncGenerator<CaseResult> {
  yield await result;
}

function run(folder: string): AsyncIterable<CaseResult> {
  const samplers = join(folder, 'samplers');
  return runGroups(folder, [
    { name: 'rng', needs: ['rng/rng.json'], run: () => rngCases(join(folder, 'rng')) },
    { name: 'schedules', needs: ['samplers/schedules.json'], run: () => scheduleCases(samplers) },
    { name: 'sigma-table', needs: ['samplers/sigma_table.safetensors'], run: () => one(sigmaTableCase(samplers)) },
    { name: 'sigma-t-conversions', needs: ['samplers/sigma_t_conversions.json'], run: () => one(conversionCase(samplers)) },
    { name: 'trajectories', needs: ['samplers/trajectories.json'], run: () => trajectoryCases(folder) },
  ]);
}

export const suite: Suite = {
  name: 'sampling',
  under: '',
  marker: 'samplers/trajectories.json',
  run,
};
