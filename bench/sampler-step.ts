/**
 * TypeScript time per sampler step — everything except the model's own run — for every sampler, through the
 * production txt2img sampling pass (`pipeline/sample.ts` `sampleTxt2Img`: schedule, start latent, CFG denoiser,
 * CompVis denoiser, the sampler, per-image noise and Brownian trees), at 512x512 with CFG (a 1x4x64x64 latent,
 * model batches of 2x4x64x64). Goal: under 0.1 ms per step.
 *
 * The UNet is a stand-in that blocks the JavaScript thread for `--model-ms` per call (default 11.5, about what
 * onnxruntime's CUDA provider takes per SD 1.5 step on an H100) and answers a fixed eps. onnxruntime-node's
 * `run()` is a synchronous native call on the calling thread, so it blocks the same way (`--model-wait`: spinning
 * on its core by default, as CUDA's synchronisation does, or asleep). The other cores are free for noise threads.
 * TS ms/step = (pass wall time - time blocked in the stand-in) / steps.
 *
 * Main CPU ms/step is the main thread's own CPU time (Linux schedstat; less the stand-in's spinning), which a
 * loaded host inflates less than wall time; noise threads are not in it (waiting for them is in the wall figure). The output hash (FNV-1a of the
 * final latent) must be the same in every pass.
 *
 * `--baseline-ref <git ref>` measures the same bench against the production modules of that commit (a
 * `git worktree` under .darkroom/bench-baselines/, reused between runs) and then against this tree, one child
 * process each, alternating `--rounds` times, and prints both with the ratios, the goal line and whether the
 * final latents are the same bits. DARKROOM_NOISE_THREADS=0 measures this tree without noise threads.
 *
 *   npx tsx bench/sampler-step.ts [--steps 20] [--repeats 3] [--model-ms 11.5] [--model-wait spin|sleep] [--rng nv|cpu]
 *                                 [--samplers "Euler a,DPM++ 2M SDE"] [--baseline-ref HEAD~3 [--rounds 2]]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { listArg, numberArg, stringArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Column, type Row } from './support/report.js';
import { median, nowMs } from './support/stats.js';
import type { PipelineModel, PipelineUNet } from '../packages/core/src/pipeline/types.js';
import type { Float32Tensor } from '../packages/core/src/tensor.js';

type SampleModule = typeof import('../packages/core/src/pipeline/sample.js');
type RngModule = typeof import('../packages/core/src/sampling/rng/image-rng.js');
type SamplersModule = typeof import('../packages/core/src/sampling/samplers.js');
type ParamsModule = typeof import('../packages/core/src/pipeline/params.js');
type DiscreteModule = typeof import('../packages/core/src/sampling/schedules/discrete.js');

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const argv = process.argv.slice(2);
const steps = numberArg(argv, 'steps', 20);
const repeats = numberArg(argv, 'repeats', 3);
const modelMs = numberArg(argv, 'model-ms', 11.5);
const waitRaw = stringArg(argv, 'model-wait', 'spin');
if (waitRaw !== 'spin' && waitRaw !== 'sleep') throw new RangeError(`--model-wait must be spin or sleep, got ${waitRaw}`);
const modelWait: 'spin' | 'sleep' = waitRaw;
const rngRaw = stringArg(argv, 'rng', 'nv');
if (rngRaw !== 'nv' && rngRaw !== 'cpu') throw new RangeError(`--rng must be nv or cpu, got ${rngRaw}`);
const rngArg: 'nv' | 'cpu' = rngRaw;
const root = resolve(stringArg(argv, 'root', REPO));
const jsonOut = stringArg(argv, 'json-out', '');
const baselineRef = stringArg(argv, 'baseline-ref', '');
const rounds = numberArg(argv, 'rounds', 1);
/** Default: every sampler of the registry (A1111's list), read from the tree measured. */
const samplerArg = listArg(argv, 'samplers', []);
const GOAL_MS = 0.1;
const SEED = 4077357776;

/** Per sampler: TS ms per step (median over the repeats) and the model calls per step. */
interface Measured {
  readonly sampler: string;
  readonly steps: number;
  readonly callsPerStep: number;
  readonly tsMsPerStep: number;
  readonly minTsMsPerStep: number;
  /** Main-thread CPU ms per step (median), or null where the platform does not tell. */
  readonly cpuMsPerStep: number | null;
  /** FNV-1a of the final latent's bytes: the same in every pass, and the same before and after a change. */
  readonly outputHash: string;
}

function fnv1a(data: Float32Array): string {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

const importFrom = async <T>(rel: string): Promise<T> => (await import(pathToFileURL(join(root, rel)).href)) as T;

/**
 * CPU time this process's main thread has run, in ms (Linux schedstat, nanoseconds); undefined elsewhere. On a
 * loaded host wall time also counts the waits for a core, this counts only what the thread itself ran.
 */
function mainThreadCpuMs(): number | undefined {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return undefined;
  }
}

/**
 * Blocks this thread for `ms`: `spin` keeps it on its core (CUDA's default synchronisation spins while the GPU
 * works), `sleep` gives the core up (Atomics.wait on a private word that nobody notifies; a blocking sync, or the
 * CPU provider's thread pool). A thread woken from sleep starts on cold caches, and on a virtual machine after a
 * descheduled vCPU: several tenths of a millisecond per model call on the hosts these figures come from.
 */
const blocker = new Int32Array(new SharedArrayBuffer(4));
function blockFor(ms: number): void {
  if (ms <= 0) return;
  if (modelWait === 'sleep') {
    Atomics.wait(blocker, 0, 0, ms);
    return;
  }
  const end = nowMs() + ms;
  while (nowMs() < end) {
    // spinning, as a CUDA stream synchronisation does by default
  }
}

/** The stand-in UNet: blocks for the model time, answers a fixed eps of the input's shape, times the block. */
class BlockingUNet implements PipelineUNet {
  blockedMs = 0;
  /** CPU time of this thread inside the stand-in (spinning), kept out of the CPU column. */
  blockedCpuMs = 0;
  calls = 0;
  private readonly outputs = new Map<string, Float32Tensor>();

  async run(x: Float32Tensor): Promise<Float32Tensor> {
    const c0 = mainThreadCpuMs();
    const t0 = nowMs();
    blockFor(modelMs);
    this.blockedMs += nowMs() - t0;
    const c1 = mainThreadCpuMs();
    if (c0 !== undefined && c1 !== undefined) this.blockedCpuMs += c1 - c0;
    this.calls++;
    const key = x.shape.join('x');
    let out = this.outputs.get(key);
    if (!out) {
      const data = new Float32Array(x.data.length);
      for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.001) * 0.5;
      out = { dtype: 'float32', shape: [...x.shape], data };
      this.outputs.set(key, out);
    }
    return out;
  }
}

function conditioning(seed: number): Float32Tensor {
  const data = new Float32Array(77 * 768);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return { dtype: 'float32', shape: [1, 77, 768], data };
}

/** This process's measurement, with the production modules of `root`. */
async function measure(): Promise<Measured[]> {
  const sample = await importFrom<SampleModule>('packages/core/src/pipeline/sample.ts');
  const rngModule = await importFrom<RngModule>('packages/core/src/sampling/rng/image-rng.ts');
  const samplers = await importFrom<SamplersModule>('packages/core/src/sampling/samplers.ts');
  const params = await importFrom<ParamsModule>('packages/core/src/pipeline/params.ts');
  const discrete = await importFrom<DiscreteModule>('packages/core/src/sampling/schedules/discrete.ts');
  const unet = new BlockingUNet();
  const model: PipelineModel = {
    kind: 'sd1',
    name: 'bench',
    sha256: '0'.repeat(64),
    parameterization: 'eps',
    alphasCumprod: discrete.sdDiscreteSchedule().alphasCumprod,
    scaleFactor: 0.18215,
    unet,
    textEncoder: { width: 768, padTokenId: 0, defaultClipSkip: 1, tokenEmbedding: { dtype: 'float32', shape: [0, 0], data: new Float32Array(0) }, encode: () => Promise.reject(new Error('unused')) },
    vae: { decode: () => Promise.reject(new Error('unused')), encode: () => Promise.reject(new Error('unused')) },
    tokenizer: { bosId: 49406, eosId: 49407, commaId: undefined, encode: () => { throw new Error('unused'); } },
  } as PipelineModel;
  const forever = Number.MAX_SAFE_INTEGER;
  const cond = conditioning(1);
  const uncond = conditioning(2);
  const out: Measured[] = [];
  const names = samplerArg.length > 0 ? samplerArg : samplers.SAMPLERS.map((s) => s.name);
  for (const name of names) if (!samplers.samplerByName(name)) throw new RangeError(`unknown sampler "${name}"`);
  const passOf = (name: string) => async (): Promise<{ tsMs: number; cpuMs: number | undefined; calls: number; hash: string }> => {
      const rng = new rngModule.ImageRNG({ shape: [4, 64, 64], seeds: [SEED], source: rngArg });
      const noise = rng.next();
      unet.blockedMs = 0;
      unet.blockedCpuMs = 0;
      unet.calls = 0;
      const cpu0 = mainThreadCpuMs();
      const t0 = nowMs();
      const latent = await sample.sampleTxt2Img(
        {
          model,
          samplerName: name,
          scheduler: 'Automatic',
          settings: params.DEFAULT_SETTINGS,
          eta: undefined,
          conds: [{ parts: [{ weight: 1, schedule: [{ endAtStep: forever, cond }] }] }],
          unconds: [[{ endAtStep: forever, cond: uncond }]],
          cfgScale: 7,
          rng,
          noiseSource: rngArg,
          seeds: [SEED],
          extra: new Map(),
          isHrPass: false,
          pass: 'first',
          iteration: 0,
        },
        steps,
        noise,
      );
      const tsMs = nowMs() - t0 - unet.blockedMs;
      const cpu1 = mainThreadCpuMs();
      return { tsMs, cpuMs: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 - unet.blockedCpuMs : undefined, calls: unet.calls, hash: fnv1a(latent.data) };
    };
  // one pass of every sampler first, so the code they share is compiled before the first one is measured
  for (const name of names) await passOf(name)();
  for (const name of names) {
    const pass = passOf(name);
    await pass(); // warm-up: JIT, lazily built tables, threads started on first use
    const runs: Array<{ tsMs: number; cpuMs: number | undefined; calls: number; hash: string }> = [];
    for (let r = 0; r < repeats; r++) runs.push(await pass());
    const hashes = new Set(runs.map((r) => r.hash));
    out.push({
      sampler: name,
      steps,
      callsPerStep: runs[0]!.calls / steps,
      tsMsPerStep: median(runs.map((r) => r.tsMs)) / steps,
      minTsMsPerStep: Math.min(...runs.map((r) => r.tsMs)) / steps,
      cpuMsPerStep: runs.every((r) => r.cpuMs !== undefined) ? median(runs.map((r) => r.cpuMs!)) / steps : null,
      outputHash: hashes.size === 1 ? runs[0]!.hash : `differs between passes: ${[...hashes].join(' ')}`,
    });
    process.stderr.write(`${name}: ${out[out.length - 1]!.tsMsPerStep.toFixed(3)} ms/step (${root === REPO ? 'this tree' : root})\n`);
  }
  return out;
}

/**
 * A worktree of `ref` under .darkroom/bench-baselines (git-ignored, outside what tsc checks; its imports of
 * packages resolve to this checkout's node_modules), created once per commit.
 */
function baselineTree(ref: string): { dir: string; commit: string } {
  const commit = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: REPO, encoding: 'utf8' }).trim();
  const dir = join(REPO, '.darkroom', 'bench-baselines', commit.slice(0, 12));
  if (!existsSync(join(dir, 'packages'))) {
    execFileSync('git', ['worktree', 'add', '--detach', dir, commit], { cwd: REPO, stdio: 'ignore' });
  }
  return { dir, commit };
}

/** Per sampler, the lowest of each figure over the rounds (the output hash must agree between rounds). */
function bestOf(rounds: Measured[][]): Measured[] {
  return rounds[0]!.map((first) => {
    const all = rounds.map((r) => r.find((m) => m.sampler === first.sampler)!);
    const cpu = all.map((m) => m.cpuMsPerStep);
    const hashes = new Set(all.map((m) => m.outputHash));
    return {
      ...first,
      tsMsPerStep: Math.min(...all.map((m) => m.tsMsPerStep)),
      minTsMsPerStep: Math.min(...all.map((m) => m.minTsMsPerStep)),
      cpuMsPerStep: cpu.every((c) => c !== null) ? Math.min(...(cpu as number[])) : null,
      outputHash: hashes.size === 1 ? first.outputHash : `differs between rounds: ${[...hashes].join(' ')}`,
    };
  });
}

/** Runs this script in a child process against the modules under `treeRoot`; returns its rows. */
function runChild(treeRoot: string): Measured[] {
  const tmp = mkdtempSync(join(tmpdir(), 'sampler-step-'));
  const file = join(tmp, 'rows.json');
  const passOn = ['--steps', String(steps), '--repeats', String(repeats), '--model-ms', String(modelMs), '--model-wait', modelWait, '--rng', rngArg, ...(samplerArg.length > 0 ? ['--samplers', samplerArg.join(',')] : [])];
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...passOn, '--root', treeRoot, '--json-out', file], {
    cwd: REPO,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`bench child for ${treeRoot} exited with ${r.status}`);
  const rows = JSON.parse(readFileSync(file, 'utf8')) as Measured[];
  rmSync(tmp, { recursive: true, force: true });
  return rows;
}

async function main(): Promise<void> {
  if (jsonOut) {
    const rows = await measure();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(jsonOut, JSON.stringify(rows));
    process.exit(0); // threads the production code keeps warm do not hold the child open
  }
  const machine = machineInfo('cpu');
  const title = `TS time per sampler step (not the model), 1x4x64x64 latent, CFG batch 2x4x64x64, ${steps} steps, ${rngArg} noise, model stand-in ${modelMs} ms/call (${modelWait}), median of ${repeats} (${machine.cpuModel}, ${machine.cores} cores, load ${machine.loadAverage1m})`;
  if (!baselineRef) {
    const rows = await measure();
    const table: Row[] = rows.map((r) => ({ ...r, vsGoal: r.tsMsPerStep / GOAL_MS, meetsGoal: r.tsMsPerStep < GOAL_MS ? 'yes' : 'no' }));
    printTable(title, [
      { key: 'sampler', label: 'sampler' },
      { key: 'callsPerStep', label: 'calls/step', digits: 2 },
      { key: 'tsMsPerStep', label: 'TS ms/step', digits: 3 },
      { key: 'minTsMsPerStep', label: 'min', digits: 3 },
      { key: 'cpuMsPerStep', label: 'main CPU ms/step', digits: 3 },
      { key: 'vsGoal', label: 'x goal 0.1ms', digits: 2 },
      { key: 'meetsGoal', label: '<0.1ms' },
      { key: 'outputHash', label: 'output hash' },
    ], table);
    console.log(`written ${writeResult({ bench: 'sampler-step', date: new Date().toISOString(), machine, parameters: { steps, repeats, modelMs, modelWait, rng: rngArg, goalMs: GOAL_MS }, rows: table })}`);
    process.exit(0);
  }
  const base = baselineTree(baselineRef);
  // before and after alternate, `--rounds` times: each sampler keeps its best round (the host is shared)
  const beforeRounds: Measured[][] = [];
  const afterRounds: Measured[][] = [];
  for (let r = 0; r < rounds; r++) {
    beforeRounds.push(runChild(base.dir));
    afterRounds.push(runChild(REPO));
  }
  const before = bestOf(beforeRounds);
  const after = bestOf(afterRounds);
  const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  const table: Row[] = after.map((a) => {
    const b = before.find((r) => r.sampler === a.sampler);
    if (!b) throw new Error(`the baseline has no sampler "${a.sampler}": pass --samplers`);
    return {
      sampler: a.sampler,
      callsPerStep: a.callsPerStep,
      beforeMs: b.tsMsPerStep,
      afterMs: a.tsMsPerStep,
      beforeMinMs: b.minTsMsPerStep,
      afterMinMs: a.minTsMsPerStep,
      beforeCpuMs: b.cpuMsPerStep,
      afterCpuMs: a.cpuMsPerStep,
      cpuRatio: a.cpuMsPerStep !== null && b.cpuMsPerStep !== null ? a.cpuMsPerStep / b.cpuMsPerStep : null,
      ratio: a.tsMsPerStep / b.tsMsPerStep,
      speedup: b.tsMsPerStep / a.tsMsPerStep,
      vsGoal: a.tsMsPerStep / GOAL_MS,
      meetsGoal: a.tsMsPerStep < GOAL_MS ? 'yes' : 'no',
      sameOutput: a.outputHash === b.outputHash ? 'yes' : `NO (${b.outputHash} -> ${a.outputHash})`,
    };
  });
  const columns: Column[] = [
    { key: 'sampler', label: 'sampler' },
    { key: 'callsPerStep', label: 'calls/step', digits: 2 },
    { key: 'beforeMs', label: `before ${base.commit.slice(0, 7)} ms`, digits: 3 },
    { key: 'afterMs', label: 'after ms', digits: 3 },
    { key: 'ratio', label: 'after/before', digits: 3 },
    { key: 'speedup', label: 'speed-up', digits: 1 },
    { key: 'beforeMinMs', label: 'before min', digits: 3 },
    { key: 'afterMinMs', label: 'after min', digits: 3 },
    { key: 'beforeCpuMs', label: 'before CPU', digits: 3 },
    { key: 'afterCpuMs', label: 'after CPU', digits: 3 },
    { key: 'cpuRatio', label: 'CPU after/before', digits: 3 },
    { key: 'vsGoal', label: 'after x goal', digits: 2 },
    { key: 'meetsGoal', label: '<0.1ms' },
    { key: 'sameOutput', label: 'same bits' },
  ];
  printTable(`${title}; best of ${rounds} alternating round(s); before = ${baselineRef} (${base.commit.slice(0, 12)}), after = this tree (HEAD ${head} + working changes); goal line 0.1 ms`, columns, table);
  console.log(`written ${writeResult({ bench: 'sampler-step', date: new Date().toISOString(), machine, parameters: { steps, repeats, rounds, modelMs, modelWait, rng: rngArg, goalMs: GOAL_MS, noiseThreads: process.env.DARKROOM_NOISE_THREADS ?? 'default', baselineRef, baselineCommit: base.commit, head }, rows: table })}`);
}

await main();
