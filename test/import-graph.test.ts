/**
 * The import graph keeps its layers: core imports no farm, CLI or service file; the farm imports no service;
 * and the API does not load the engine (anything under core's sampling/, models/, graph/ or runtime/), directly
 * or through the farm or other core modules. Imports are read with the TypeScript parser (test/support/import-graph.ts);
 * type-only imports are erased at run time and do not count.
 *
 * The API still reaches the engine through the places listed in KNOWN_ENGINE_ENTRIES (sampler and scheduler
 * tables, model configs, the engine itself for a tenant's model). The list may only shrink: a new import that
 * brings the API to engine code through any other file fails, and an entry that no longer exists fails too, so
 * it is taken off when the import is gone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { importSpecifiers, reachable, REPO_ROOT, resolveImport } from './support/import-graph.js';

const ENGINE = /^packages\/core\/src\/(sampling|models|graph|runtime)\//;

/** Files (outside the engine folders) the API reaches that import engine files, with those files under core/src. */
const KNOWN_ENGINE_ENTRIES: Record<string, readonly string[]> = {
  'packages/core/src/networks/lora/mapping.ts': ['models/config.ts'],
  'packages/core/src/networks/lora/runner.ts': ['graph/builder.ts', 'models/attention.ts', 'models/cache.ts', 'models/clip.ts', 'models/config.ts', 'models/unet.ts', 'runtime/session.ts'],
  'packages/core/src/pipeline/cfg-denoiser.ts': ['sampling/denoisers.ts'],
  'packages/core/src/pipeline/cfg-simd.ts': ['runtime/wasm-encoding.ts'],
  'packages/core/src/pipeline/engine.ts': ['models/attention.ts', 'models/cache.ts', 'models/load.ts', 'models/vae-tiles.ts', 'models/weights-dtype.ts'],
  'packages/core/src/pipeline/img2img.ts': ['sampling/rng/image-rng.ts'],
  'packages/core/src/pipeline/job.ts': ['sampling/rng/image-rng.ts', 'sampling/samplers.ts'],
  'packages/core/src/pipeline/memory-estimate.ts': ['models/attention.ts', 'models/config.ts', 'models/parameter-count.ts', 'models/vae-tiles.ts'],
  'packages/core/src/pipeline/params.ts': ['sampling/rng/seed-blend.ts'],
  'packages/core/src/pipeline/sample.ts': ['sampling/compvis/index.ts', 'sampling/denoisers.ts', 'sampling/prefetch/noise-prefetch.ts', 'sampling/rng/image-rng.ts', 'sampling/samplers.ts', 'sampling/schedules/discrete.ts', 'sampling/schedules/sampler-schedules.ts', 'sampling/schedules/schedulers.ts'],
  'packages/core/src/pipeline/txt2img.ts': ['sampling/samplers.ts'],
  'packages/core/src/pipeline/upscalers.ts': ['models/rrdbnet.ts', 'models/upscaler-file.ts', 'runtime/session.ts'],
  'packages/core/src/scripts/seed-blending.ts': ['sampling/rng/seed-blend.ts'],
  'packages/core/src/training/keyed-random.ts': ['sampling/rng/mt19937.ts', 'sampling/rng/torch-cpu.ts'],
  'packages/farm/src/admission.ts': ['models/reference-configs.ts'],
  'packages/farm/src/asset-check.ts': ['models/checkpoint.ts', 'models/config.ts', 'models/rrdbnet.ts', 'models/upscaler-file.ts'],
  'packages/farm/src/config.ts': ['models/attention.ts', 'models/memory-mode.ts', 'models/weights-dtype.ts'],
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

test('the API loads no engine file beyond the known entries, which may only shrink', () => {
  const reached = reachable(tsFiles('services/api/src'));
  const found = new Set<string>();
  for (const file of reached.keys()) {
    if (ENGINE.test(file)) continue;
    for (const t of importsOf(file)) if (ENGINE.test(t)) found.add(`${file} -> ${t}`);
  }
  const known = new Set(Object.entries(KNOWN_ENGINE_ENTRIES).flatMap(([f, ts]) => ts.map((t) => `${f} -> packages/core/src/${t}`)));
  const added = [...found].filter((e) => !known.has(e)).map((e) => {
    const [from] = e.split(' -> ');
    return `${e}  (reached by ${reached.get(from!)!.join(' -> ')})`;
  });
  assert.deepEqual(added, [], 'new ways for the API to load engine code');
  assert.deepEqual([...known].filter((e) => !found.has(e)), [], 'entries that are gone: take them off KNOWN_ENGINE_ENTRIES');
});
