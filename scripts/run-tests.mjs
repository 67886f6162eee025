#!/usr/bin/env node
// Runs every *.test.ts under the workspaces and test/ with node's test runner (TypeScript through tsx).
// Node 20's --test takes no globs, so the files are listed here. Optional arguments narrow to path prefixes.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const roots = ['packages', 'services', 'test'];

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

const filters = process.argv.slice(2);
const files = roots
  .flatMap((r) => walk(join(root, r), []))
  .filter((f) => filters.length === 0 || filters.some((p) => f.startsWith(p)))
  .sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
// A test that never settles fails after ten minutes, and a file whose tests are done ends even if a handle it
// leaked (a Redis connection, a server) would keep its process alive: either would otherwise stall the whole run
// with no message. Both flags are newer than Node 20.0, so they are passed only where this Node's help lists them.
const nodeHelp = spawnSync(process.execPath, ['--help'], { encoding: 'utf8' }).stdout ?? '';
const guards = [
  ['--test-timeout', '--test-timeout=600000'],
  ['--test-force-exit', '--test-force-exit'],
]
  .filter(([flag]) => nodeHelp.includes(flag))
  .map(([, arg]) => arg);
const res = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...guards, ...files],
  { cwd: root, stdio: 'inherit' },
);
process.exit(res.status ?? 1);
