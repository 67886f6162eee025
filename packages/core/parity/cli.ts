/**
 * npm run parity:<suite> -- <folder>   checks one folder in that suite's format;
 * npm run parity -- <root>             runs every suite found under a root shaped like ../shared/oracle.
 * DARKROOM_ATTENTION=<mode>            builds the model and pipeline suites' graphs with that attention variant
 *                                      (auto, plain, split, subquad, fused); see attention-variant.ts.
 * One line per case; exit status 1 when any case fails.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { attentionFromEnv, describeAttention } from './attention-variant.js';
import { oracleRoot } from './oracle.js';
import { formatCase, type CaseResult } from './report.js';
import { suiteLoaders, type Suite } from './suites.js';

async function runSuite(suite: Suite, folder: string): Promise<{ pass: number; fail: number; skip: number }> {
  const counts = { pass: 0, fail: 0, skip: 0 };
  console.log(`# ${suite.name}: ${folder}`);
  try {
    for await (const r of suite.run(folder)) {
      counts[r.status]++;
      console.log(formatCase(suite.name, r));
    }
  } catch (e) {
    const r: CaseResult = { name: '(suite)', status: 'fail', detail: e instanceof Error ? e.message : String(e) };
    counts.fail++;
    console.log(formatCase(suite.name, r));
  }
  return counts;
}

async function main(): Promise<number> {
  const [which, folderArg] = process.argv.slice(2);
  if (!which) {
    console.error('usage: parity <model|text|sampling|networks|pipeline|training|lora|all> [folder]');
    return 2;
  }
  const names = which === 'all' ? Object.keys(suiteLoaders) : [which];
  const attention = attentionFromEnv();
  // The model and pipeline suites build their graphs with this variant.
  if (attention) console.log(`# ${describeAttention(attention)}`);
  const total = { pass: 0, fail: 0, skip: 0 };
  for (const name of names) {
    const load = suiteLoaders[name];
    if (!load) {
      console.error(`unknown suite "${name}"; known: ${Object.keys(suiteLoaders).join(', ')}`);
      return 2;
    }
    const suite = await load();
    const base = folderArg ? resolve(folderArg) : which === 'all' ? oracleRoot() : join(oracleRoot(), suite.under);
    const folder = which === 'all' ? join(base, suite.under) : base;
    if (!existsSync(join(folder, suite.marker))) {
      if (which === 'all') {
        console.log(`# ${name}: no ${suite.marker} under ${folder}, suite not run`);
        continue;
      }
      console.error(`${folder} is not a ${name} oracle folder (no ${suite.marker})`);
      return 2;
    }
    const c = await runSuite(suite, folder);
    total.pass += c.pass;
    total.fail += c.fail;
    total.skip += c.skip;
  }
  console.log(`${total.pass} passed, ${total.fail} failed, ${total.skip} skipped`);
  return total.fail > 0 ? 1 : 0;
}

process.exitCode = await main();
