import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../parity/oracle.js';
import { formatCase } from '../../parity/report.js';
import { suiteLoaders } from '../../parity/suites.js';

/**
 * Runs a parity suite on the shared oracle as a test: one subtest per case, every case must pass.
 * Where the oracle is absent (a fresh clone without ../shared) the test is skipped with the reason shown.
 */
export function parityTest(suiteName: string, opts: { allowSkips?: boolean } = {}): void {
  test(`parity:${suiteName} on the oracle`, async (t) => {
    const suite = await suiteLoaders[suiteName]!();
    const folder = join(oracleRoot(), suite.under);
    if (!existsSync(join(folder, suite.marker))) {
      t.skip(`oracle data not found at ${folder} (set DARKROOM_ORACLE)`);
      return;
    }
    for await (const r of suite.run(folder)) {
      await t.test(r.name, (st) => {
        if (r.status === 'skip') {
          if (!opts.allowSkips) assert.fail(`skipped: ${r.detail ?? 'no reason'}`);
          st.skip(r.detail ?? 'skipped');
          return;
        }
        assert.equal(r.status, 'pass', formatCase(suiteName, r));
      });
    }
  });
}
