/**
 * Peak memory (RSS) and time of one UNet step under each attention mode, beside today's plain graph: the demo
 * model at 512, 1024 and 2048 pixels and the full-size SD 1.5 UNet (seeded random weights, real config) at 512
 * and 1024; plus the demo VAE decoding 2048x2048 tiled and untiled, and how far the tiled decode and encode are
 * from the untiled ones. A step is one UNet call with cond and uncond in one batch of 2 and a 77-token context,
 * on a graph opened from disk as a worker opens its compile cache.
 *
 * Memory modes (A1111's --medvram and --lowvram, models/memory-mode.ts) change how one UNet step runs: medvram opens
 * its sessions without onnxruntime's CPU arena, lowvram runs the UNet in three parts opened one at a time. Each
 * memory mode other than normal is measured with the attention modes in --memory-mode-attentions (default auto,
 * the worker's default), every attention mode with normal.
 *
 * Every configuration runs in a child process of its own (bench/support/attention-step.ts): one to build the
 * graph into `.darkroom/bench-attention` (kept between runs; weights shared on disk), one to open it and run the
 * step, so the peak is that of a worker holding just this session. A configuration whose estimated need is above
 * the host's available memory (less a floor) is skipped with the estimate as the reason; a child that brings
 * the host below the floor stops itself.
 *
 *   npm run bench -- attention-memory
 *   npx tsx bench/attention-memory.ts [--models demo,sd15] [--modes plain,split,subquad,fused,auto]
 *                                     [--memory-modes normal,medvram,lowvram] [--memory-mode-attentions auto]
 *                                     [--demo-sizes 512,1024,2048] [--sd15-sizes 512,1024] [--runs 1]
 *                                     [--chunk-mib 256] [--threads N] [--vae-size 2048] [--seam-sizes 1024,2048]
 *                                     [--floor-gib 1.5] [--no-vae] [--tag name]
 *                                     [--skip model:size:attention[:memory],...]   (listed as skipped, for time)
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DarkroomError } from '../packages/core/src/errors.js';
import { ATTENTION_MODES, parseAttentionMode } from '../packages/core/src/planning/attention.js';
import { parseMemoryMode, type MemoryMode } from '../packages/core/src/models/memory-mode.js';
import { listArg, numberArg, stringArg } from './support/args.js';
import type { BenchModel, StepJob, VaeJob } from './support/attention-step.js';
import { machineInfo } from './support/machine.js';
import { availableBytes, GiB } from './support/memory.js';
import { benchProvider } from './support/provider.js';
import { printTable, writeResult, type Column, type Row } from './support/report.js';

const argv = process.argv.slice(2);
const models = listArg(argv, 'models', ['demo', 'sd15']) as BenchModel[];
const modes = listArg(argv, 'modes', [...ATTENTION_MODES.filter((m) => m !== 'auto'), 'auto']);
const memoryModes = listArg(argv, 'memory-modes', ['normal']).map(parseMemoryMode);
const memoryModeAttentions = listArg(argv, 'memory-mode-attentions', ['auto']);
/** Configurations left out of a run on purpose (each still gets a row saying so). */
const skipped = new Set(listArg(argv, 'skip', []));
const sizes: Record<BenchModel, number[]> = {
  demo: listArg(argv, 'demo-sizes', ['512', '1024', '2048']).map(Number),
  sd15: listArg(argv, 'sd15-sizes', ['512', '1024']).map(Number),
};
const runs = numberArg(argv, 'runs', 1);
const chunkBytes = numberArg(argv, 'chunk-mib', 256) * 1024 ** 2;
const threadsArg = stringArg(argv, 'threads', '');
const vaeSize = numberArg(argv, 'vae-size', 2048);
const seamSizes = listArg(argv, 'seam-sizes', ['1024', '2048']).map(Number);
const floorBytes = numberArg(argv, 'floor-gib', 1.5) * GiB;
const withVae = !argv.includes('--no-vae');
/** A partial or repeated run writes `attention-memory-<tag>.json` and leaves the full run's result alone. */
const tag = stringArg(argv, 'tag', '');
const provider = benchProvider();
const threads = threadsArg ? Number(threadsArg) : undefined;

for (const m of models) if (m !== 'demo' && m !== 'sd15') throw new DarkroomError('BENCH_BAD_ARG', `--models takes demo and sd15, got ${m}`);
for (const m of modes) parseAttentionMode(m);

/** Goals from the issue: 1024x1024 on full-size SD 1.5 within 6 GB, 2048x2048 on the demo model within 2 GB. */
const GOALS: ReadonlyArray<{ model: BenchModel; size: number; bytes: number; label: string }> = [
  { model: 'sd15', size: 1024, bytes: 6e9, label: 'SD 1.5 1024x1024 within 6 GB' },
  { model: 'demo', size: 2048, bytes: 2e9, label: 'demo 2048x2048 within 2 GB' },
];

interface ModelFacts {
  readonly label: string;
  readonly weightBytes: number;
  readonly channels: number;
  readonly heads: number;
}

const FACTS: Record<BenchModel, ModelFacts> = {
  demo: { label: 'demo', weightBytes: 0.05 * GiB, channels: 32, heads: 4 },
  sd15: { label: 'SD 1.5', weightBytes: 3.44e9, channels: 320, heads: 8 },
};
/** The node process with onnxruntime loaded, before any session. */
const RUNTIME_BYTES = 0.15 * GiB;
/**
 * Activations per channel-token of the first level (convolution buffers, GEGLU, skips): measured 276 bytes on the
 * full-size UNet at 512 with fused attention and unchunked feed-forwards; the estimate only decides what to skip.
 */
const ACTIVATION_BYTES_PER_CHANNEL_TOKEN = 300;
/** Plain attention's scores are held about three times (q k^T, scaled, softmax). */
const PLAIN_SCORE_COPIES = 3;

function estimate(model: BenchModel, size: number, mode: string): { bytes: number; why: string } {
  const f = FACTS[model];
  const tokens = (size / 8) ** 2;
  const activations = ACTIVATION_BYTES_PER_CHANNEL_TOKEN * 2 * f.channels * tokens;
  const scores = 2 * f.heads * tokens * tokens * 4;
  const attention = mode === 'plain' ? PLAIN_SCORE_COPIES * scores : 2 * chunkBytes;
  const bytes = RUNTIME_BYTES + f.weightBytes + activations + attention;
  const why = mode === 'plain' ? `${gib(PLAIN_SCORE_COPIES * scores)} GiB of plain scores` : `${gib(activations)} GiB of activations`;
  return { bytes, why };
}

function gib(bytes: number): string {
  return (bytes / GiB).toFixed(2);
}

interface ChildOutcome {
  readonly code: number;
  readonly result?: Record<string, unknown>;
  readonly seconds: number;
}

async function runChild(role: string, job: object): Promise<ChildOutcome> {
  const script = fileURLToPath(new URL('./support/attention-step.ts', import.meta.url));
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', script, role, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', () => resolve({ code: 127, seconds: (Date.now() - t0) / 1000 }));
    child.on('exit', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      const result = line ? (JSON.parse(line.slice(7)) as Record<string, unknown>) : undefined;
      resolve({ code: code ?? (signal === 'SIGTERM' ? 143 : 128), ...(result ? { result } : {}), seconds: (Date.now() - t0) / 1000 });
    });
  });
}

function num(r: Record<string, unknown> | undefined, key: string): number {
  const v = r?.[key];
  return typeof v === 'number' ? v : Number.NaN;
}

function stepRowBase(model: BenchModel, size: number, mode: string, memoryMode: MemoryMode): Record<string, string | number | null> {
  return { model: FACTS[model].label, size: `${size}x${size}`, attention: mode, memory: memoryMode };
}

async function stepRow(model: BenchModel, size: number, mode: string, memoryMode: MemoryMode): Promise<Row> {
  const base = stepRowBase(model, size, mode, memoryMode);
  const label = `${model} ${size} ${mode} ${memoryMode}`;
  if (skipped.has(`${model}:${size}:${mode}`) || skipped.has(`${model}:${size}:${mode}:${memoryMode}`)) {
    console.log(`${label}: skipped (--skip)`);
    return { ...base, status: 'skipped', note: 'not run in this invocation (--skip), for time' };
  }
  const need = estimate(model, size, mode);
  const available = availableBytes();
  if (need.bytes > available - floorBytes) {
    const reason = `needs about ${gib(need.bytes)} GiB (${need.why}); ${gib(available)} GiB available, ${gib(floorBytes)} GiB kept free`;
    console.log(`${label}: skipped, ${reason}`);
    return { ...base, status: 'skipped', note: reason };
  }
  const job: StepJob = { model, size, mode, memoryMode, chunkBytes, provider, runs, floorBytes, ...(threads ? { threads } : {}) };
  console.log(`${label}: building (estimated need ${gib(need.bytes)} GiB)`);
  const prepared = await runChild('prepare', job);
  if (prepared.code !== 0 || !prepared.result) return { ...base, status: 'failed', note: `graph build exited with ${prepared.code}` };
  console.log(`${label}: ${prepared.result.built ? `built in ${prepared.seconds.toFixed(0)} s` : 'graph cached'}; running`);
  const ran = await runChild('step', job);
  if (ran.code !== 0 || !ran.result) {
    const why = ran.code === 143 ? 'stopped: the host ran low on memory' : `exited with ${ran.code}`;
    return { ...base, status: 'failed', note: why };
  }
  const r = ran.result;
  const runMs = (r.runMs as number[] | undefined) ?? [];
  const row = {
    ...base,
    status: 'ok',
    peakGiB: num(r, 'peakRssBytes') / GiB,
    sessionGiB: num(r, 'sessionRssBytes') / GiB,
    overSessionGiB: (num(r, 'peakRssBytes') - num(r, 'sessionRssBytes')) / GiB,
    sessionS: num(r, 'sessionMs') / 1000,
    stepS: (runMs[0] ?? Number.NaN) / 1000,
    lastStepS: (runMs[runMs.length - 1] ?? Number.NaN) / 1000,
    finite: r.finite === true ? 'yes' : 'NO',
    note: '',
  };
  console.log(`${label}: peak ${row.peakGiB.toFixed(2)} GiB, step ${row.stepS.toFixed(1)} s`);
  return row;
}

/** Ratios against the plain graph of the same model and size in the normal memory mode, measured in this run. */
function withRatios(rows: Row[]): Row[] {
  return rows.map((r) => {
    const plain = rows.find((p) => p.model === r.model && p.size === r.size && p.attention === 'plain' && p.memory === 'normal' && p.status === 'ok');
    if (!plain || r.status !== 'ok') return { ...r, peakVsPlain: null, stepVsPlain: null };
    return { ...r, peakVsPlain: (r.peakGiB as number) / (plain.peakGiB as number), stepVsPlain: (r.stepS as number) / (plain.stepS as number) };
  });
}

async function vaeRow(direction: 'decode' | 'encode', size: number, tiled: boolean): Promise<Row> {
  const base = { model: 'demo VAE', size: `${size}x${size}`, attention: `auto, ${direction}${tiled ? ' tiled' : ' untiled'}` };
  // Untiled, every full-resolution activation is 32 channels of the whole image: about 17 of them at the peak.
  const need = RUNTIME_BYTES + (tiled ? 0.5 * GiB : 17 * 32 * size * size * 4);
  const available = availableBytes();
  if (need > available - floorBytes) {
    return { ...base, status: 'skipped', note: `needs about ${gib(need)} GiB untiled; ${gib(available)} GiB available` };
  }
  const job: VaeJob = { size, direction, tiled, mode: 'auto', floorBytes, ...(threads ? { threads } : {}) };
  // A first child compiles the graphs; the measured one finds them in the cache, as a warm worker does.
  await runChild('vae', job);
  const ran = await runChild('vae', job);
  if (ran.code !== 0 || !ran.result) return { ...base, status: 'failed', note: ran.code === 143 ? 'stopped: the host ran low on memory' : `exited with ${ran.code}` };
  const runMs = (ran.result.runMs as number[] | undefined) ?? [];
  return {
    ...base,
    status: 'ok',
    peakGiB: num(ran.result, 'peakRssBytes') / GiB,
    stepS: (runMs[0] ?? Number.NaN) / 1000,
    finite: ran.result.finite === true ? 'yes' : 'NO',
    note: tiled ? 'tiles of 64 latent pixels (512 px), overlap 16' : '',
  };
}

interface SeamResult {
  readonly size: number;
  readonly status: string;
  readonly result?: Record<string, unknown>;
  readonly note?: string;
}

async function seamRow(size: number): Promise<SeamResult> {
  const need = RUNTIME_BYTES + 17 * 32 * size * size * 4 + 0.5 * GiB;
  const available = availableBytes();
  if (need > available - floorBytes) return { size, status: 'skipped', note: `the untiled decode needs about ${gib(need)} GiB; ${gib(available)} GiB available` };
  const ran = await runChild('seams', { size, mode: 'auto', floorBytes, ...(threads ? { threads } : {}) });
  if (ran.code !== 0 || !ran.result) return { size, status: 'failed', note: `exited with ${ran.code}` };
  return { size, status: 'ok', result: ran.result };
}

function seamRows(seams: readonly SeamResult[]): Row[] {
  const rows: Row[] = [];
  for (const s of seams) {
    if (s.status !== 'ok' || !s.result) {
      rows.push({ size: `${s.size}x${s.size}`, what: '-', status: s.status, note: s.note ?? '' });
      continue;
    }
    for (const [what, v] of Object.entries(s.result)) {
      const d = v as { max: number; mean: number; max8: number; mean8: number; meanAbsRef: number };
      rows.push({
        size: `${s.size}x${s.size}`,
        what: what.replace('_', ' '),
        status: 'ok',
        max: d.max,
        mean: d.mean,
        meanRel: d.mean / d.meanAbsRef,
        max8: what.startsWith('decode') ? d.max8 : null,
        mean8: what.startsWith('decode') ? d.mean8 : null,
        note: '',
      });
    }
  }
  return rows;
}

const STEP_COLUMNS: Column[] = [
  { key: 'model', label: 'model' },
  { key: 'size', label: 'size' },
  { key: 'attention', label: 'attention' },
  { key: 'memory', label: 'memory mode' },
  { key: 'status', label: 'status' },
  { key: 'peakGiB', label: 'peak GiB', digits: 2 },
  { key: 'sessionGiB', label: 'session GiB', digits: 2 },
  { key: 'overSessionGiB', label: 'step adds GiB', digits: 2 },
  { key: 'peakVsPlain', label: 'peak vs plain', digits: 2 },
  { key: 'sessionS', label: 'open s', digits: 1 },
  { key: 'stepS', label: 'step s', digits: 1 },
  { key: 'stepVsPlain', label: 'step vs plain', digits: 2 },
  { key: 'finite', label: 'finite' },
  { key: 'note', label: 'note' },
];

const SEAM_COLUMNS: Column[] = [
  { key: 'size', label: 'size' },
  { key: 'what', label: 'tiled vs untiled' },
  { key: 'status', label: 'status' },
  { key: 'max', label: 'max |diff|', digits: 4 },
  { key: 'mean', label: 'mean |diff|', digits: 5 },
  { key: 'meanRel', label: 'mean / mean |ref|', digits: 4 },
  { key: 'max8', label: 'max 8-bit', digits: 0 },
  { key: 'mean8', label: 'mean 8-bit', digits: 3 },
  { key: 'note', label: 'note' },
];

async function main(): Promise<void> {
  const machine = machineInfo(provider);
  console.log(`attention-memory: ${machine.cpuModel}, ${machine.cores} cores, ${gib(availableBytes())} GiB available, chunk target ${chunkBytes / 1024 ** 2} MiB`);
  const stepRows: Row[] = [];
  for (const model of models) {
    for (const size of sizes[model]) {
      for (const mode of modes) {
        for (const memoryMode of memoryModes) {
          if (memoryMode !== 'normal' && !memoryModeAttentions.includes(mode)) continue;
          stepRows.push(await stepRow(model, size, mode, memoryMode));
        }
      }
    }
  }
  const vaeRows: Row[] = [];
  const seams: SeamResult[] = [];
  if (withVae) {
    vaeRows.push(await vaeRow('decode', vaeSize, true), await vaeRow('decode', vaeSize, false), await vaeRow('encode', vaeSize, true));
    for (const s of seamSizes) seams.push(await seamRow(s));
  }
  const rows = withRatios(stepRows);
  // each goal for the best configuration measured and for the worker's default (auto attention, normal memory)
  const goals = GOALS.filter((g) => models.includes(g.model) && sizes[g.model].includes(g.size)).flatMap((g) => {
    const measured = rows.filter((r) => r.model === FACTS[g.model].label && r.size === `${g.size}x${g.size}` && r.status === 'ok');
    const best = measured.reduce<Row | undefined>((a, r) => (!a || (r.peakGiB as number) < (a.peakGiB as number) ? r : a), undefined);
    const byDefault = measured.find((r) => r.attention === 'auto' && r.memory === 'normal');
    return [['best', best], ['default', byDefault]].flatMap(([which, row]) => {
      if (!row || typeof row === 'string') return [];
      const peakBytes = (row.peakGiB as number) * GiB;
      return [{ goal: g.label, which, met: peakBytes <= g.bytes, attention: row.attention, memory: row.memory, peakGB: peakBytes / 1e9, peakGiB: peakBytes / GiB }];
    });
  });
  printTable(`One UNet step (batch 2, 77 tokens, ${provider}, float32, chunk target ${chunkBytes / 1024 ** 2} MiB; peak RSS of a process holding only this session)`, STEP_COLUMNS, [...rows, ...vaeRows]);
  if (seams.length) printTable('Tiled VAE against the untiled pass (demo model; tiles of 64 latent pixels, overlap 16)', SEAM_COLUMNS, seamRows(seams));
  for (const g of goals) {
    console.log(`goal ${g.goal}, ${g.which}: ${g.met ? 'met' : 'NOT met'} (${g.attention} ${g.memory}: ${g.peakGB.toFixed(2)} GB = ${g.peakGiB.toFixed(2)} GiB)`);
  }
  const file = writeResult({
    bench: tag ? `attention-memory-${tag}` : 'attention-memory',
    date: new Date().toISOString(),
    machine,
    parameters: { models, modes, memoryModes, memoryModeAttentions, sizes, runs, chunkBytes, threads: threads ?? null, vaeSize, seamSizes, floorBytes },
    rows: [...rows, ...vaeRows],
    seams: seamRows(seams),
    goals,
  });
  console.log(`wrote ${file}`);
}

await main();
