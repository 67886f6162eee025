/**
 * The import graph keeps its layers: core imports no farm, CLI or service file; the farm imports no service;
 * core's catalog (A1111's names and request rules as plain data) loads no engine code; and the API does not load
 * the engine (anything under core's sampling/, models/, graph/ or runtime/), directly or through the farm.
 * Imports are read with the TypeScript parser (test/support/import-graph.ts); type-only imports are erased at run
 * time and do not count.
 *
 * The API still reaches the engine through the imports listed in KNOWN_ENGINE_ENTRIES: an API or farm file that
 * the API loads, importing a core file that is or reaches engine code (model configs for admission and upload
 * checks, the engine itself for a tenant's model, training code). The list may only shrink: any other such import
 * fails, and an entry that no longer exists fails too, so it is taken off when the import is gone. What core does
 * below those entries is core's own business.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { importSpecifiers, reachable, REPO_ROOT, resolveImport } from './support/import-graph.js';

const ENGINE = /^packages\/core\/src\/(sampling|models|graph|runtime)\//;

/** API and farm files the API loads, with the core files (under core/src) they import that are or reach engine code. */
const KNOWN_ENGINE_ENTRIES: Record<string, readonly string[]> = {
  'services/api/src/tenant-model.ts': ['pipeline/engine.ts'],
};

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(join(REPO_ROOT, dir))) {
    const p = join(dir, name);
    if (statSync(join(REPO_ROOT, p)).isDirectory()) tsFiles(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

function importsOf(file: string): string[] {
  return importSpecifiers(readFileSync(join(REPO_ROOT, file), 'utf8'), file)
    .map((s) => resolveImport(file, s))
    .filter((t): t is string => t !== null);
}

function crossings(dir: string, forbidden: RegExp): string[] {
  return tsFiles(dir).flatMap((f) => importsOf(f).filter((t) => forbidden.test(t)).map((t) => `${f} -> ${t}`));
}

test('the scanner sees every runtime import form and skips type-only ones', () => {
  const src = [
    "import a from './a.js';",
    "import { b, type B } from './b.js';",
    "import type { C } from './c.js';",
    "import { type D } from './d.js';",
    "import * as e from './e.js';",
    "import './f.js';",
    "export { g } from './g.js';",
    "export type { H } from './h.js';",
    "export * from './i.js';",
    "const j = await import('./j.js');",
  ].join('\n');
  assert.deepEqual(importSpecifiers(src), ['./a.js', './b.js', './e.js', './f.js', './g.js', './i.js', './j.js']);
});

test('core imports no farm, CLI or service file', () => {
  assert.deepEqual(crossings('packages/core/src', /^(packages\/(farm|cli)|services)\//), []);
});

test('the farm imports no service file', () => {
  assert.deepEqual(crossings('packages/farm/src', /^services\//), []);
});

test("core's catalog loads no engine code", () => {
  const reached = reachable(tsFiles('packages/core/src/catalog'));
  assert.deepEqual([...reached.entries()].filter(([f]) => ENGINE.test(f)).map(([, via]) => via.join(' -> ')), []);
});

test("core's model-files, planning and rng load no engine code", () => {
  const reached = reachable(['model-files', 'planning', 'rng'].flatMap((d) => tsFiles(`packages/core/src/${d}`)));
  assert.deepEqual([...reached.entries()].filter(([f]) => ENGINE.test(f)).map(([, via]) => via.join(' -> ')), []);
});

test('the API loads engine code only through the known entries, which may only shrink', () => {
  const reached = reachable(tsFiles('services/api/src'));
  const reachesEngine = new Map<string, boolean>();
  const engineBehind = (file: string): boolean => {
    let v = reachesEngine.get(file);
    if (v === undefined) {
      v = [...reachable([file]).keys()].some((f) => ENGINE.test(f));
      reachesEngine.set(file, v);
    }
    return v;
  };
  const found = new Set<string>();
  for (const file of reached.keys()) {
    if (!/^(services\/api|packages\/farm)\//.test(file)) continue;
    for (const t of importsOf(file)) if (t.startsWith('packages/core/src/') && engineBehind(t)) found.add(`${file} -> ${t}`);
  }
  const known = new Set(Object.entries(KNOWN_ENGINE_ENTRIES).flatMap(([f, ts]) => ts.map((t) => `${f} -> packages/core/src/${t}`)));
  const added = [...found].filter((e) => !known.has(e)).map((e) => {
    const [from] = e.split(' -> ');
    return `${e}  (the API reaches it by ${reached.get(from!)!.join(' -> ')})`;
  });
  assert.deepEqual(added, [], 'new ways for the API to load engine code');
  assert.deepEqual([...known].filter((e) => !found.has(e)), [], 'entries that are gone: take them off KNOWN_ENGINE_ENTRIES');
});
