/**
 * parity:training — every group of a folder shaped like the training oracle: learn-rate schedules
 * (`lr_schedule/`), datasets (`dataset/`), step-by-step replays of A1111's textual-inversion and hypernetwork
 * training (`ti_steps/`, `hn_steps/`) and the files A1111 saves (`save/`). A group the folder lacks is reported
 * as skipped with the reason; a group whose module cannot run is a failure.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CaseResult } from './report.js';
import type { Suite } from './suites.js';
import type { TrainingGroup } from './training-support.js';

interface GroupSpec {
  readonly folder: string;
  readonly load: () => Promise<TrainingGroup>;
}

/** Each group's module exports `runGroup`; it is imported lazily so that one group's failure to load is reported, not fatal. */
async function importGroup(specifier: string): Promise<TrainingGroup> {
  const mod = (await import(specifier)) as { runGroup?: TrainingGroup };
  if (typeof mod.runGroup !== 'function') throw new Error(`${specifier} exports no runGroup`);
  return mod.runGroup;
}

const GROUPS: readonly GroupSpec[] = [
  { folder: 'lr_schedule', load: () => importGroup('./training-schedule.js') },
  { folder: 'dataset', load: () => importGroup('./training-dataset.js') },
  { folder: 'ti_steps', load: () => importGroup('./training-steps.js') },
  { folder: 'hn_steps', load: () => importGroup('./training-steps.js') },
  { folder: 'save', load: () => importGroup('./training-save.js') },
];

export const suite: Suite = {
  name: 'training',
  under: 'training',
  marker: '.',
  async *run(folder: string): AsyncIterable<CaseResult> {
    for (const g of GROUPS) {
      const groupFolder = join(folder, g.folder);
      if (!existsSync(groupFolder)) {
        yield { name: g.folder, status: 'skip', detail: `the folder has no ${g.folder}/` };
        continue;
      }
      let run: TrainingGroup;
      try {
        run = await g.load();
      } catch (e) {
        yield { name: g.folder, status: 'fail', detail: `cannot run this group: ${e instanceof Error ? e.message : String(e)}` };
        continue;
      }
      try {
        for await (const r of run(groupFolder, folder)) yield { ...r, name: `${g.folder}/${r.name}` };
      } catch (e) {
        yield { name: g.folder, status: 'fail', detail: e instanceof Error ? e.message : String(e) };
      }
    }
  },
};
