/**
 * The import graph keeps its layers: core imports no farm, CLI or service file; the farm imports no service;
 * core's catalog (A1111's names and request rules as plain data) loads no engine code, nor do core's model-files/
 * (what a model file says), planning/ (attention and VAE-tiling plans) and rng/ (the pure generators); and the API
 * does not load the engine (anything under core's sampling/, models/, graph/ or runtime/), directly or through the
 * farm: it checks uploads, sizes jobs and reads a checkpoint's vocabulary through those pure modules.
 * Imports are read with the TypeScript parser (test/support/import-graph.ts); type-only imports are erased at run
 * time and do not count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { importSpecifiers, reachable, REPO_ROOT, resolveImport } from './support/import-graph.js';

const ENGINE = /^packages\/core\/src\/(sampling|models|graph|runtime)\//;

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

/** Each engine file the entries reach, as the chain of imports that first reached it. */
function engineReachedFrom(entries: readonly string[]): string[] {
  return [...reachable(entries).entries()].filter(([f]) => ENGINE.test(f)).map(([, via]) => via.join(' -> '));
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
  assert.deepEqual(engineReachedFrom(tsFiles('packages/core/src/catalog')), []);
});

test("core's model-files, planning and rng load no engine code", () => {
  assert.deepEqual(engineReachedFrom(['model-files', 'planning', 'rng'].flatMap((d) => tsFiles(`packages/core/src/${d}`))), []);
});

test('the API loads no engine code, directly or through the farm', () => {
  assert.deepEqual(engineReachedFrom(tsFiles('services/api/src')), []);
});

test("core's package exports name its public modules one by one, each a file that exists", () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/core/package.json'), 'utf8')) as { exports: Record<string, string> };
  const entries = Object.entries(pkg.exports);
  // No pattern export: a module becomes importable from outside core only by being listed here.
  assert.deepEqual(entries.filter(([k, v]) => k.includes('*') || v.includes('*')), []);
  const missing = entries.filter(([, target]) => !existsSync(join(REPO_ROOT, 'packages/core', target.replace(/\.js$/, '.ts'))));
  assert.deepEqual(missing, []);
});
