import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { formatCase } from '../../parity/report.js';
import { trajectoryCases } from '../../parity/sampling-trajectories.js';

test('every oracle sampler trajectory replays with the real noise sources', async (t) => {
  const root = oracleRoot();
  if (!existsSync(join(root, 'samplers', 'trajectories.json'))) {
    t.skip(`oracle data not found at ${join(root, 'samplers')} (set DARKROOM_ORACLE)`);
    return;
  }
  let cases = 0;
  for await (const r of trajectoryCases(root)) {
    cases++;
    await t.test(r.name, () => {
      assert.equal(r.status, 'pass', formatCase('sampling', r));
    });
  }
  assert.equal(cases, 106, 'the oracle lists 106 trajectories');
});
