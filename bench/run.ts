/**
 * `npm run bench`: runs every bench module in bench/ (each a script, in its own process, so one bench's
 * memory never weighs on the next), or only those named.
 *
 *   npm run bench                                  # all of them
 *   npm run bench -- fullsize-unet step-overhead   # these, in dependency order
 *   npm run bench -- step-overhead -- --steps 30   # arguments after a second `--` go to every bench run
 *   npm run bench -- --list
 *
 * BENCH_PROVIDER=cpu|cuda|webgpu picks the execution provider of the benches that run a model (default cpu).
 * Results: each bench prints its table and writes bench/results/<name>.json.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable, type Row } from './support/report.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const NOT_BENCHES = new Set(['run']);

/** Benches that read another's result of the same run: that one goes first when both are asked for. */
const READS_RESULT_OF: Readonly<Record<string, readonly string[]>> = {
  'step-overhead': ['fullsize-unet'],
};

export function discoverBenches(dir = BENCH_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => e.name.slice(0, -'.ts'.length))
    .filter((n) => !NOT_BENCHES.has(n))
    .sort();
}

/** `names` with every bench after the ones whose results it reads (stable otherwise). */
export function runOrder(names: readonly string[]): string[] {
  const out: string[] = [];
  const visit = (n: string): void => {
    if (out.includes(n)) return;
    for (const dep of READS_RESULT_OF[n] ?? []) if (names.includes(dep)) visit(dep);
    out.push(n);
  };
  names.forEach(visit);
  return out;
}

function runBench(name: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    // --expose-gc lets the full-size benches drop a 3.4 GB model before building the next.
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(BENCH_DIR, `${name}.ts`), ...args], {
      stdio: 'inherit',
      env,
    });
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const split = argv.indexOf('--');
  const ours = split >= 0 ? argv.slice(0, split) : argv;
  const passOn = split >= 0 ? argv.slice(split + 1) : [];
  const available = discoverBenches();
  if (ours.includes('--list')) {
    console.log(available.join('\n'));
    return;
  }
  const asked = ours.filter((a) => !a.startsWith('--')).map((a) => a.replace(/\.ts$/, '').replace(/^bench\//, ''));
  const unknown = asked.filter((a) => !available.includes(a));
  if (unknown.length) {
    console.error(`unknown bench${unknown.length > 1 ? 'es' : ''}: ${unknown.join(', ')}\navailable: ${available.join(', ')}`);
    process.exitCode = 2;
    return;
  }
  const order = runOrder(asked.length ? asked : available);
  const env = { ...process.env, BENCH_RUN_STARTED: new Date().toISOString() };
  const rows: Row[] = [];
  for (const name of order) {
    console.log(`\n=== bench ${name} ===`);
    const t0 = performance.now();
    const code = await runBench(name, passOn, env);
    rows.push({ bench: name, status: code === 0 ? 'ok' : `failed (exit ${code})`, seconds: (performance.now() - t0) / 1000 });
  }
  console.log(
    '\n' +
      formatTable('bench run', [{ key: 'bench', label: 'bench' }, { key: 'status', label: 'status' }, { key: 'seconds', label: 'seconds' }], rows),
  );
  if (rows.some((r) => r.status !== 'ok')) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
