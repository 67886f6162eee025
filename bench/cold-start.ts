/**
 * Cold start, phase by phase: from a checkpoint file through loadModel (as the engine loads one for a worker) to
 * the end of the first UNet step of a txt2img at each size (the prompt and the negative prompt through the text
 * encoder, then one UNet call on the cond+uncond batch), then the VAE decode that ends a render. Each case runs in
 * a child process of its own:
 *
 *   first    the first load ever: an empty compile cache (the file is hashed, every graph built and written)
 *   warm     a new process meeting the cache the first case left on disk
 *   warm-unoptimized  the same, with every session opened from the cached graph itself rather than onnxruntime's
 *            saved optimized form (loadModel optimizedSessions: false): the warm start before that change
 *   newsize  the cache of the previous size only (the checkpoint hashed and compiled, but not at this size)
 *
 * Beside them, in the same run, a child reads the checkpoint file alone (4 MiB reads, nothing kept: what `cat`
 * does) and every figure is also given as a ratio to that read. Before each child the bench records how much of
 * the checkpoint and of the cache folder is in the page cache; `--page-cache drop` asks the kernel to drop both
 * first (posix_fadvise DONTNEED through `dd iflag=nocache`), so the reads come from the disk.
 *
 * The full-size case (`--model sd15`, the default) loads a random-weight SD 1.5 checkpoint in SD 1.5's real layout,
 * float16 as the released half-precision files are (2.1 GB, written once to .darkroom/bench-cold-start/ and reused);
 * it needs SD 1.5's key list from the model oracle and about 8-10 GiB of memory. `--model demo` runs the same cases
 * on the tiny demo model in seconds.
 *
 *   npx tsx bench/cold-start.ts [--model sd15|demo] [--sizes 512,768] [--cases first,warm]
 *                               [--page-cache keep|drop] [--optimized-sessions on|off] [--threads N] [--keep-cache]
 *
 * `--optimized-sessions off` opens every session from the cached graph as before onnxruntime's optimized form was
 * kept (models/optimized-sessions.ts): the before of that change, measured in the same way.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../packages/core/src/models/load.js';
import type { LoadPhase, LoadPhaseTiming } from '../packages/core/src/model-files/load-phases.js';
import { ensureDemoModel } from '../packages/core/src/pipeline/demo-model.js';
import { float32, type Float32Tensor } from '../packages/core/src/tensor.js';
import { sd15KeysAvailable, SD15_KEYS_FILE, writeSd15Checkpoint } from '../test/support/sd15-checkpoint.js';
import { listArg, numberArg, stringArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { availableBytes, GiB, MemoryWatchdog } from './support/memory.js';
import { printTable, writeResult, type Column, type Row } from './support/report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORK = join(ROOT, '.darkroom', 'bench-cold-start');
const SD15_FILE = join(WORK, 'sd15-random.safetensors');

type CaseName = 'first' | 'warm' | 'warm-unoptimized' | 'newsize';
const CASES: readonly CaseName[] = ['first', 'warm', 'warm-unoptimized', 'newsize'];

interface ChildArgs {
  readonly checkpoint: string;
  readonly config?: object;
  readonly cacheDir: string;
  readonly size: number;
  readonly threads?: number;
  readonly optimizedSessions: boolean;
}

interface ChildResult {
  /** Milliseconds from the process's start to the bench's first line (node, tsx, module loading). */
  readonly startupMs: number;
  readonly loadMs: number;
  readonly textMs: number;
  /** The first UNet call (graph, session and run). */
  readonly unetMs: number;
  /** From the process's start to the end of the first UNet step. */
  readonly firstStepMs: number;
  /** The VAE decode after it (graph, session and run). */
  readonly vaeMs: number;
  readonly phases: LoadPhaseTiming[];
  readonly peakAfterStepMiB: number;
  /** Resident memory after the first step: anonymous (copies) and file-backed (mapped files, the cache's weights). */
  readonly rssAnonMiB: number;
  readonly rssFileMiB: number;
  readonly peakMiB: number;
  readonly builds: number;
}

function statusMiB(field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** One case: load, the first txt2img step at `size`, then the VAE decode; prints the result as JSON. */
async function child(a: ChildArgs): Promise<void> {
  const startupMs = performance.now();
  // a full-size first load holds several GB: stop this case rather than push a shared host into the OOM killer
  const watchdog = new MemoryWatchdog('cold-start', 1 * GiB);
  const phases: LoadPhaseTiming[] = [];
  const t0 = performance.now();
  const sd = await loadModel({
    checkpoint: a.checkpoint,
    ...(a.config ? { config: a.config } : {}),
    cacheDir: a.cacheDir,
    ...(a.threads !== undefined ? { threads: a.threads } : {}),
    optimizedSessions: a.optimizedSessions,
    onPhase: (p) => phases.push(p),
  });
  const t1 = performance.now();
  // the prompt and the negative prompt, one 77-token chunk each, as the pipeline encodes them
  const width = sd.textEncoder.width;
  const embeds = (ids: number[]): Float32Tensor => {
    const data = new Float32Array(77 * width);
    for (let i = 0; i < 77; i++) data.set(sd.textEncoder.tokenEmbedding.data.subarray(ids[i % ids.length]! * width, (ids[i % ids.length]! + 1) * width), i * width);
    return float32([1, 77, width], data);
  };
  const vocab = sd.textEncoder.tokenEmbedding.shape[0]!;
  const cond = await sd.textEncoder.encode(embeds([vocab - 2, 320 % vocab, 1000 % vocab, vocab - 1]), sd.textEncoder.defaultClipSkip);
  const uncond = await sd.textEncoder.encode(embeds([vocab - 2, vocab - 1]), sd.textEncoder.defaultClipSkip);
  const t2 = performance.now();
  const h = a.size / 8;
  const channels = sd.config.unet.inChannels;
  const x = float32([2, channels, h, h], Float32Array.from({ length: 2 * channels * h * h }, (_, i) => Math.sin(i * 0.37)));
  const context = float32([2, 77, width], new Float32Array(2 * 77 * width));
  context.data.set(cond.data, 0);
  context.data.set(uncond.data, 77 * width);
  const out = await sd.unet.run(x, Float32Array.of(999, 999), context);
  const t3 = performance.now();
  if (!out.data.every(Number.isFinite)) throw new Error('the UNet gave non-finite values');
  const peakAfterStepMiB = statusMiB('VmHWM');
  const rssAnonMiB = statusMiB('RssAnon');
  const rssFileMiB = statusMiB('RssFile');
  const latent = float32([1, sd.config.vae.embedDim, h, h], out.data.slice(0, sd.config.vae.embedDim * h * h));
  await sd.vae.decode(latent);
  const t4 = performance.now();
  const result: ChildResult = {
    startupMs,
    loadMs: t1 - t0,
    textMs: t2 - t1,
    unetMs: t3 - t2,
    firstStepMs: t3,
    vaeMs: t4 - t3,
    phases,
    peakAfterStepMiB,
    rssAnonMiB,
    rssFileMiB,
    peakMiB: statusMiB('VmHWM'),
    builds: sd.buildCount,
  };
  await sd.release();
  await watchdog.stop();
  console.log(JSON.stringify(result));
}

/** The checkpoint's read alone, 4 MiB at a time into one buffer (what `cat file > /dev/null` costs). */
function readFileAlone(path: string): number {
  const buf = Buffer.allocUnsafe(4 << 20);
  const fd = openSync(path, 'r');
  const t0 = performance.now();
  try {
    while (readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    closeSync(fd);
  }
  return performance.now() - t0;
}

/** Every regular file under `dir` (hard links counted once, by inode). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const seen = new Set<number>();
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const ino = statSync(p).ino;
        if (!seen.has(ino)) {
          seen.add(ino);
          out.push(p);
        }
      }
    }
  };
  walk(dir);
  return out;
}

/** Bytes of `files` resident in the page cache and their total size (util-linux fincore), or null without it. */
function residency(files: readonly string[]): { resident: number; size: number } | null {
  if (files.length === 0) return { resident: 0, size: 0 };
  let resident = 0;
  let size = 0;
  for (let i = 0; i < files.length; i += 200) {
    const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES,SIZE', ...files.slice(i, i + 200)], { encoding: 'utf8' });
    if (r.status !== 0) return null;
    for (const line of r.stdout.trim().split('\n')) {
      const [res, sz] = line.trim().split(/\s+/).map(Number);
      resident += res ?? 0;
      size += sz ?? 0;
    }
  }
  return { resident, size };
}

/** Asks the kernel to drop the files' clean pages (posix_fadvise DONTNEED; needs no privilege). */
function dropFromPageCache(files: readonly string[]): void {
  for (const f of files) spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
}

function share(r: { resident: number; size: number } | null): number | null {
  return r === null || r.size === 0 ? null : r.resident / r.size;
}

function runChild(args: readonly string[]): string {
  const run = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], {
    cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20,
  });
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  if (run.status !== 0 || !line.startsWith('{')) throw new Error(`child ${args[0]} failed (status ${run.status}, signal ${run.signal})`);
  return line;
}

/** Sum of the phase's milliseconds, over the components that match. */
function phaseMs(phases: readonly LoadPhaseTiming[], phase: LoadPhase, component?: (c: string) => boolean): number {
  return phases.filter((p) => p.phase === phase && (!component || component(p.component))).reduce((s, p) => s + p.ms, 0);
}

async function checkpointFor(model: string): Promise<{ path: string; config?: object }> {
  if (model === 'demo') {
    const demo = await ensureDemoModel(ROOT);
    return { path: demo.checkpoint, config: demo.config };
  }
  if (model !== 'sd15') throw new Error(`--model must be sd15 or demo, got ${model}`);
  if (!existsSync(SD15_FILE)) {
    if (!sd15KeysAvailable()) throw new Error(`the SD 1.5 checkpoint needs the oracle's key list (${SD15_KEYS_FILE})`);
    mkdirSync(WORK, { recursive: true });
    console.error(`writing ${SD15_FILE} (random weights, SD 1.5 layout, float16) ...`);
    const partial = `${SD15_FILE}.partial`;
    await writeSd15Checkpoint(partial);
    renameSync(partial, SD15_FILE);
  }
  return { path: SD15_FILE };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    await child(JSON.parse(argv[1]!) as ChildArgs);
    return;
  }
  if (argv[0] === '--read') {
    console.log(JSON.stringify({ readMs: readFileAlone(argv[1]!) }));
    return;
  }
  const model = stringArg(argv, 'model', 'sd15');
  const sizes = listArg(argv, 'sizes', ['512', '768']).map(Number);
  const cases = listArg(argv, 'cases', [...CASES]) as CaseName[];
  for (const c of cases) if (!CASES.includes(c)) throw new Error(`unknown case ${c} (have ${CASES.join(', ')})`);
  const pageCache = stringArg(argv, 'page-cache', 'keep');
  if (pageCache !== 'keep' && pageCache !== 'drop') throw new Error(`--page-cache must be keep or drop, got ${pageCache}`);
  const threads = numberArg(argv, 'threads', 0);
  const keepCache = argv.includes('--keep-cache');
  const optimized = stringArg(argv, 'optimized-sessions', 'on');
  if (optimized !== 'on' && optimized !== 'off') throw new Error(`--optimized-sessions must be on or off, got ${optimized}`);
  if (model === 'sd15' && availableBytes() < 10 * GiB) {
    throw new Error(`the full-size cases need about 10 GiB of memory; the host has ${(availableBytes() / GiB).toFixed(1)} GiB available`);
  }
  const ckpt = await checkpointFor(model);
  const fileBytes = statSync(ckpt.path).size;

  const columns: Column[] = [
    { key: 'size', label: 'size' },
    { key: 'case', label: 'case' },
    { key: 'fileInCache', label: 'file cached', digits: 2 },
    { key: 'cacheInCache', label: 'graphs cached', digits: 2 },
    { key: 'readS', label: 'file read s', digits: 2 },
    { key: 'startupS', label: 'startup', digits: 2 },
    { key: 'openHashS', label: 'open+hash', digits: 2 },
    { key: 'tensorReadS', label: 'read', digits: 2 },
    { key: 'convertS', label: 'f16->f32', digits: 2 },
    { key: 'buildS', label: 'build', digits: 2 },
    { key: 'serializeS', label: 'serialize', digits: 2 },
    { key: 'writeS', label: 'cache write', digits: 2 },
    { key: 'sessionTextS', label: 'sess text', digits: 2 },
    { key: 'sessionUnetS', label: 'sess unet', digits: 2 },
    { key: 'runTextS', label: 'run text', digits: 2 },
    { key: 'runUnetS', label: 'run unet', digits: 2 },
    { key: 'firstStepS', label: 'to 1st step s', digits: 2 },
    { key: 'firstStepX', label: 'x read', digits: 1 },
    { key: 'readyS', label: 'less step s', digits: 2 },
    { key: 'readyX', label: 'x read', digits: 1 },
    { key: 'sessionVaeS', label: 'sess vae', digits: 2 },
    { key: 'vaeS', label: 'vae total', digits: 2 },
    { key: 'peakAfterStepGiB', label: 'peak at step GiB', digits: 2 },
    { key: 'anonGiB', label: 'anon GiB', digits: 2 },
    { key: 'mappedGiB', label: 'mapped GiB', digits: 2 },
    { key: 'peakGiB', label: 'peak GiB', digits: 2 },
    { key: 'cacheGB', label: 'cache GB', digits: 2 },
    { key: 'note', label: 'note' },
  ];

  const rows: Row[] = [];
  const details: Record<string, unknown>[] = [];
  /** Writes the rows so far (after every case, so a run cut short keeps what it measured) and prints them at the end. */
  const save = (print: boolean): string => {
    const machine = machineInfo('cpu');
    if (print) printTable(
      `cold start, ${model} (${(fileBytes / 1e9).toFixed(2)} GB file), seconds by phase; page cache ${pageCache}; optimized sessions ${optimized}; ` +
        `"x read" = ratio to the file read alone (${machine.cpuModel}, ${machine.cores} cores, load ${machine.loadAverage1m})`,
      columns,
      rows,
    );
    return writeResult({
      bench: `cold-start${model === 'demo' ? '-demo' : ''}${optimized === 'off' ? '-unoptimized' : ''}`,
      date: new Date().toISOString(),
      machine,
      parameters: { model, sizes, cases, pageCache, optimizedSessions: optimized, threads: threads || 'default', fileBytes, checkpoint: resolve(ckpt.path) },
      rows,
      details,
      notes: [
        'to 1st step = process start to the end of the first UNet call (batch 2: cond+uncond) after the text encoder ran on the prompt and the negative prompt',
        'less step = the same without the UNet run itself: loading, building, sessions, the text encoder',
        'file read = the checkpoint read alone in a child process, 4 MiB reads; "file cached" = its share in the page cache before that read',
        'the VAE decode (graph, session, run) comes after the first step and is reported apart',
        'cache GB = the compile cache on disk after the case (hard links counted once)',
        'anon / mapped = resident memory after the first step that is anonymous (copies) or file-backed (mapped weights)',
      ],
    });
  };

  const runCase = (size: number, c: CaseName, cacheDir: string): void => {
    if (pageCache === 'drop') dropFromPageCache([ckpt.path, ...filesUnder(cacheDir)]);
    const fileBefore = residency([ckpt.path]);
    const { readMs } = JSON.parse(runChild(['--read', ckpt.path])) as { readMs: number };
    if (pageCache === 'drop') dropFromPageCache([ckpt.path]);
    const cacheResident = residency(filesUnder(cacheDir));
    const args: ChildArgs = {
      checkpoint: ckpt.path, ...(ckpt.config ? { config: ckpt.config } : {}), cacheDir, size, ...(threads ? { threads } : {}),
      optimizedSessions: optimized === 'on' && c !== 'warm-unoptimized',
    };
    console.error(`${model} ${size}x${size} ${c}: file read ${(readMs / 1000).toFixed(2)} s; running ...`);
    let r: ChildResult;
    try {
      r = JSON.parse(runChild(['--child', JSON.stringify(args)])) as ChildResult;
    } catch (e) {
      // one case failing (the host out of memory) leaves the others to run
      rows.push({ size: `${size}`, case: c, readS: readMs / 1000, note: (e as Error).message });
      save(false);
      return;
    }
    const cacheBytes = filesUnder(cacheDir).reduce((sum, f) => sum + statSync(f).size, 0);
    const p = r.phases;
    const isVae = (x: string) => x.startsWith('vae');
    const isUnet = (x: string) => x.startsWith('unet');
    const unetRun = phaseMs(p, 'run', isUnet);
    const row: Row = {
      size: `${size}`,
      case: c,
      fileInCache: share(fileBefore),
      cacheInCache: share(cacheResident),
      readS: readMs / 1000,
      startupS: r.startupMs / 1000,
      openHashS: (phaseMs(p, 'open') + phaseMs(p, 'hash')) / 1000,
      tensorReadS: phaseMs(p, 'read') / 1000,
      convertS: phaseMs(p, 'convert') / 1000,
      buildS: phaseMs(p, 'build') / 1000,
      serializeS: phaseMs(p, 'serialize') / 1000,
      writeS: phaseMs(p, 'write') / 1000,
      sessionTextS: phaseMs(p, 'session', (x) => x === 'text') / 1000,
      sessionUnetS: phaseMs(p, 'session', isUnet) / 1000,
      sessionVaeS: phaseMs(p, 'session', isVae) / 1000,
      runTextS: phaseMs(p, 'run', (x) => x === 'text') / 1000,
      runUnetS: unetRun / 1000,
      runVaeS: phaseMs(p, 'run', isVae) / 1000,
      firstStepS: r.firstStepMs / 1000,
      firstStepX: r.firstStepMs / readMs,
      // up to the first step less the step's own compute: what a faster provider would still pay
      readyS: (r.firstStepMs - unetRun) / 1000,
      readyX: (r.firstStepMs - unetRun) / readMs,
      vaeS: r.vaeMs / 1000,
      peakAfterStepGiB: r.peakAfterStepMiB / 1024,
      anonGiB: r.rssAnonMiB / 1024,
      mappedGiB: r.rssFileMiB / 1024,
      peakGiB: r.peakMiB / 1024,
      builds: r.builds,
      cacheGB: cacheBytes / 1e9,
    };
    rows.push(row);
    details.push({ size, case: c, result: r });
    console.error(JSON.stringify(row));
    save(false);
  };

  // Each size gets a fresh cache; `newsize` runs a size on a (hard-linked) copy of the previous size's cache: the
  // same checkpoint already compiled, only not at this size.
  let previous: string | undefined;
  try {
    for (const size of sizes) {
      const cacheDir = join(WORK, `cache-${model}-${size}-${process.pid}`);
      rmSync(cacheDir, { recursive: true, force: true });
      if (cases.includes('newsize') && previous) {
        const linked = `${cacheDir}-newsize`;
        spawnSync('cp', ['-al', previous, linked]);
        try {
          runCase(size, 'newsize', linked);
        } finally {
          rmSync(linked, { recursive: true, force: true });
        }
      }
      for (const c of cases) if (c !== 'newsize') runCase(size, c, cacheDir);
      if (previous && !keepCache) rmSync(previous, { recursive: true, force: true });
      previous = cacheDir;
    }
  } finally {
    if (previous && !keepCache) rmSync(previous, { recursive: true, force: true });
  }

  const file = save(true);
  console.log(`wrote ${file}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
