/**
 * Peak resident memory of one whole txt2img render (text encoder, sampler, VAE decode, PNG encode) on the demo
 * model, per engine configuration, each in a child process of its own with a fresh graph cache (as a worker meeting
 * the size for the first time). The child reads its kernel high-water mark (VmHWM) at phase boundaries: after the
 * first step (text encoder and one UNet call), after the last step, and at the end (VAE decode and PNG), so the
 * phase that raises the peak is the one that holds the memory.
 *
 *   npx tsx bench/render-memory.ts [--size 2048] [--steps 2]
 *                                  [--configs auto:normal:arena,auto:normal:noarena,split:medvram:noarena]
 *
 * A configuration is attention:memoryMode[:arena|noarena] (arena: onnxruntime's CPU arena and memory pattern;
 * without the third part the engine's default for the memory mode). Slow: a 2048x2048 step of the demo UNet takes
 * minutes on a 2-core host.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../packages/core/src/pipeline/engine.js';
import { parseMemoryMode } from '../packages/core/src/models/memory-mode.js';
import { listArg, numberArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Row } from './support/report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Config {
  readonly name: string;
  readonly attention: string;
  readonly memoryMode: string;
  readonly arena: boolean | undefined;
}

function parseConfig(name: string): Config {
  const [attention, memoryMode = 'normal', arena] = name.split(':');
  if (!attention || (arena !== undefined && arena !== 'arena' && arena !== 'noarena')) throw new Error(`bad configuration "${name}"`);
  parseMemoryMode(memoryMode);
  return { name, attention, memoryMode, arena: arena === undefined ? undefined : arena === 'arena' };
}

function statusMiB(field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
}

interface ChildResult {
  readonly baseline: number;
  readonly firstStep: number;
  readonly lastStep: number;
  readonly peak: number;
  readonly rssAfterSteps: number;
  readonly seconds: number;
}

async function child(c: Config, size: number, steps: number, cacheDir: string): Promise<void> {
  const baseline = statusMiB('VmRSS');
  const engine = new Engine({
    root: ROOT, cacheDir, attention: c.attention, memoryMode: parseMemoryMode(c.memoryMode),
    ...(c.arena !== undefined ? { cpuMemArena: c.arena } : {}),
  });
  let firstStep = 0;
  let lastStep = 0;
  let rssAfterSteps = 0;
  const started = performance.now();
  const r = await engine.txt2img(
    { prompt: 'a lighthouse at dusk', steps, width: size, height: size, seed: 7 },
    {
      onStep: (e) => {
        if (e.step === 1) firstStep = statusMiB('VmHWM');
        if (e.step === e.steps) {
          lastStep = statusMiB('VmHWM');
          rssAfterSteps = statusMiB('VmRSS');
        }
      },
    },
  );
  const seconds = (performance.now() - started) / 1000;
  if (r.images.length !== 1) throw new Error('no image');
  const result: ChildResult = { baseline, firstStep, lastStep, peak: statusMiB('VmHWM'), rssAfterSteps, seconds };
  await engine.close();
  console.log(JSON.stringify(result));
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const size = numberArg(argv, 'size', 2048);
  const steps = numberArg(argv, 'steps', 2);
  if (argv[0] === '--child') {
    await child(parseConfig(argv[1]!), size, steps, argv[2]!);
    return;
  }
  const configs = listArg(argv, 'configs', ['auto:normal:arena', 'auto:normal:noarena', 'split:medvram:noarena']).map(parseConfig);
  const rows: Row[] = [];
  for (const c of configs) {
    const cacheDir = mkdtempSync(join(tmpdir(), 'darkroom-render-memory-'));
    try {
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', c.name, cacheDir, '--size', String(size), '--steps', String(steps)],
        { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const line = run.stdout.trim().split('\n').at(-1) ?? '';
      if (run.status !== 0 || !line.startsWith('{')) {
        rows.push({ config: c.name, note: `failed (status ${run.status}, signal ${run.signal})` });
        continue;
      }
      const r = JSON.parse(line) as ChildResult;
      const row: Row = {
        config: c.name, baseline_mib: r.baseline, first_step_hwm_mib: r.firstStep, last_step_hwm_mib: r.lastStep,
        rss_after_steps_mib: r.rssAfterSteps, peak_mib: r.peak, peak_gib: r.peak / 1024, seconds: r.seconds,
      };
      rows.push(row);
      console.error(JSON.stringify(row));
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  }
  const columns = [
    { key: 'config', label: 'attention:mode:arena' }, { key: 'baseline_mib', label: 'baseline MiB' },
    { key: 'first_step_hwm_mib', label: 'peak after step 1' }, { key: 'last_step_hwm_mib', label: 'peak after last step' },
    { key: 'rss_after_steps_mib', label: 'RSS after steps' }, { key: 'peak_mib', label: 'peak RSS MiB (whole render)' },
    { key: 'peak_gib', label: 'GiB' }, { key: 'seconds', label: 's' }, { key: 'note', label: 'note' },
  ];
  printTable(`whole txt2img render ${size}x${size}, demo model, ${steps} steps, peak RSS per configuration`, columns, rows);
  writeResult({
    bench: 'render-memory', date: new Date().toISOString(), machine: machineInfo('cpu'),
    parameters: { size, steps, configs: configs.map((c) => c.name) }, rows,
  });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
