/**
 * The child processes of bench/attention-memory.ts, one job each so that no two peaks mix:
 *
 *   prepare <json>   build one UNet graph (demo or full-size SD 1.5 with seeded random weights) with an attention
 *                    mode and store it in the bench's compile cache (weights shared between entries on disk)
 *   step <json>      open that graph as a worker would (from disk) and run one UNet call (cond and uncond in one
 *                    batch of 2, a 77-token context) the way the job's memory mode runs it: normal (onnxruntime's
 *                    CPU arena on), medvram (arena off, as the engine opens medvram's sessions), lowvram (the UNet
 *                    in three consecutive parts opened one at a time, arena off); report the process's peak RSS
 *                    and the times
 *   vae <json>       decode (or encode) one demo-model image at a size, tiled or not, through loadModel
 *   seams <json>     decode and encode the same demo-model inputs tiled and untiled and report the differences
 *
 * Each prints one line `RESULT <json>` for the parent.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DarkroomError } from '../../packages/core/src/errors.js';
import { attentionBuild, attentionKey, feedForwardChunkBytes, parseAttentionMode } from '../../packages/core/src/planning/attention.js';
import { CompileCache, type GraphKey } from '../../packages/core/src/models/cache.js';
import { openCheckpoint, readComponent, sha256File } from '../../packages/core/src/model-files/checkpoint.js';
import { inferModelConfig, overridesFromJson, UNET_PREFIX } from '../../packages/core/src/model-files/config.js';
import { unetBuilder, unetModel } from '../../packages/core/src/models/graphs.js';
import { sessionArena, unetParts, type MemoryMode } from '../../packages/core/src/models/memory-mode.js';
import type { BuiltModel } from '../../packages/core/src/graph/builder.js';
import { loadModel } from '../../packages/core/src/models/load.js';
import { ensureDemoModel } from '../../packages/core/src/pipeline/demo-model.js';
import { createSession, type Provider } from '../../packages/core/src/runtime/session.js';
import type { Float32Tensor, HostTensor } from '../../packages/core/src/tensor.js';
import { buildFullsizeUNet, buildFullsizeUNetParts, fullsizeSpec } from './fullsize-model.js';
import { GiB, MemoryWatchdog } from './memory.js';
import { nowMs } from './stats.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BENCH_CACHE = join(ROOT, '.darkroom', 'bench-attention');
const BATCH = 2;
const TOKENS = 77;

export type BenchModel = 'demo' | 'sd15';

export interface StepJob {
  readonly model: BenchModel;
  /** Image side in pixels (the latent is an eighth). */
  readonly size: number;
  readonly mode: string;
  /** How the engine would run the UNet under A1111's memory modes (default normal). */
  readonly memoryMode?: MemoryMode;
  readonly chunkBytes: number;
  readonly provider: Provider;
  readonly threads?: number;
  readonly runs: number;
  /** The child stops itself when the host's available memory falls below this. */
  readonly floorBytes: number;
}

export interface VaeJob {
  readonly size: number;
  readonly direction: 'decode' | 'encode';
  readonly tiled: boolean;
  readonly mode: string;
  readonly threads?: number;
  readonly floorBytes: number;
}

function status(field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

/** Smooth structure plus noise, so neighbouring tiles see different statistics as in a real latent. */
export function benchLatent(shape: readonly number[], seed: number, smooth = 1.5, noise = 0.3): Float32Tensor {
  const [b, c, h, w] = shape as [number, number, number, number];
  const data = new Float32Array(b * c * h * w);
  let s = seed >>> 0 || 1;
  const uniform = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  for (let i = 0; i < data.length; i++) {
    const ch = Math.floor(i / (h * w)) % c;
    const y = Math.floor(i / w) % h;
    const x = i % w;
    const gauss = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
    data[i] = smooth * Math.sin(x / 9 + ch) * Math.cos(y / 13 - ch) + noise * gauss;
  }
  return { dtype: 'float32', shape: [b, c, h, w], data };
}

async function demoUNet(): Promise<{ weights: Map<string, Float32Tensor>; config: ReturnType<typeof inferModelConfig>; id: string }> {
  const demo = await ensureDemoModel(ROOT);
  const source = await openCheckpoint(demo.checkpoint);
  try {
    const config = inferModelConfig(source.index, overridesFromJson(demo.config));
    return { weights: await readComponent(source, UNET_PREFIX), config, id: 'demo' };
  } finally {
    await source.close();
  }
}

const EXTERNAL_DATA_ABOVE_BYTES = 64 * 1024;

/** The cache key of the whole graph, or of one of lowvram's parts. */
async function graphKey(job: StepJob, part?: { part: number; parts: number }): Promise<GraphKey> {
  const latent = job.size / 8;
  const attention = attentionBuild(parseAttentionMode(job.mode), job.provider, job.chunkBytes);
  return {
    weights: job.model === 'demo' ? await sha256File((await ensureDemoModel(ROOT)).checkpoint) : 'random-sd15-seed1',
    component: 'unet',
    options: { batch: BATCH, height: latent, width: latent, contextLength: TOKENS, attention: attentionKey(attention), ...(part ?? {}) },
  };
}

/** Builds the job's graph (or lowvram's parts of it) into the bench cache (nothing when it is there already). */
async function prepare(job: StepJob): Promise<Record<string, unknown>> {
  const latent = job.size / 8;
  const attention = attentionBuild(parseAttentionMode(job.mode), job.provider, job.chunkBytes);
  const ff = feedForwardChunkBytes(attention);
  const shape = { batch: BATCH, height: latent, width: latent, contextLength: TOKENS };
  const graphOptions = { attention, ...(ff !== undefined ? { feedForwardChunkBytes: ff } : {}) };
  const parts = unetParts(job.memoryMode ?? 'normal');
  const cache = new CompileCache(BENCH_CACHE);
  const t0 = nowMs();
  if (parts === 1) {
    const entry = await cache.getOrBuild(await graphKey(job), async () => {
      if (job.model === 'sd15') return buildFullsizeUNet(fullsizeSpec('sd15'), shape, { fusedAttention: false, ...graphOptions }).model;
      const { weights, config } = await demoUNet();
      return unetModel(weights, config.unet, { ...shape, ...graphOptions, externalDataAboveBytes: EXTERNAL_DATA_ABOVE_BYTES });
    });
    return { path: entry.path, built: entry.built, buildMs: nowMs() - t0, peakRssBytes: status('VmHWM') };
  }
  // one build gives every part; the cache asks for them one at a time
  let built: Promise<BuiltModel[]> | undefined;
  const allParts = (): Promise<BuiltModel[]> =>
    (built ??= (async () => {
      if (job.model === 'sd15') return buildFullsizeUNetParts(fullsizeSpec('sd15'), shape, { fusedAttention: false, ...graphOptions }, parts, EXTERNAL_DATA_ABOVE_BYTES);
      const { weights, config } = await demoUNet();
      return unetBuilder(weights, config.unet, { ...shape, ...graphOptions }).toModelParts(parts, { externalDataAboveBytes: EXTERNAL_DATA_ABOVE_BYTES });
    })());
  let anyBuilt = false;
  for (let part = 0; part < parts; part++) {
    const entry = await cache.getOrBuild(await graphKey(job, { part, parts }), async () => (await allParts())[part]!);
    anyBuilt ||= entry.built;
  }
  return { built: anyBuilt, buildMs: nowMs() - t0, peakRssBytes: status('VmHWM') };
}

function contextDim(model: BenchModel): number {
  return model === 'sd15' ? 768 : 32;
}

function stepFeeds(job: StepJob): Record<string, HostTensor> {
  const latent = job.size / 8;
  const dim = contextDim(job.model);
  const context: Float32Tensor = { dtype: 'float32', shape: [BATCH, TOKENS, dim], data: Float32Array.from({ length: BATCH * TOKENS * dim }, (_, i) => Math.sin(i * 0.7)) };
  return {
    x: benchLatent([BATCH, 4, latent, latent], 11),
    t: { dtype: 'float32', shape: [BATCH], data: Float32Array.of(999, 999) },
    context_k: context,
    context_v: context,
  };
}

/**
 * lowvram: each call opens the parts in turn, one resident at a time, each fed the graph's inputs and what the
 * earlier parts gave, as the engine does (models/load.ts). The "session" figures are those of the first part.
 */
async function stepInParts(job: StepJob, memoryMode: MemoryMode): Promise<Record<string, unknown>> {
  const baseline = status('VmRSS');
  const parts = unetParts(memoryMode);
  const cache = new CompileCache(BENCH_CACHE);
  const paths: string[] = [];
  for (let part = 0; part < parts; part++) paths.push(cache.pathFor(await graphKey(job, { part, parts })));
  const runMs: number[] = [];
  let sessionMs = 0;
  let afterSession = Number.NaN;
  let finite = true;
  for (let i = 0; i < job.runs; i++) {
    const feeds = stepFeeds(job);
    const t1 = nowMs();
    for (const path of paths) {
      const t0 = nowMs();
      const session = await createSession(path, { provider: job.provider, cpuMemArena: sessionArena(memoryMode), ...(job.threads ? { threads: job.threads } : {}) });
      sessionMs += nowMs() - t0;
      if (Number.isNaN(afterSession)) afterSession = status('VmRSS');
      try {
        Object.assign(feeds, await session.run(feeds));
      } finally {
        await session.release();
      }
    }
    runMs.push(nowMs() - t1);
    finite &&= (feeds.out as Float32Tensor).data.every(Number.isFinite);
  }
  return { baselineRssBytes: baseline, sessionRssBytes: afterSession, peakRssBytes: status('VmHWM'), sessionMs: sessionMs / job.runs, runMs, finite };
}

/** One UNet call on the graph stored by `prepare`, in a process that holds nothing else. */
async function step(job: StepJob): Promise<Record<string, unknown>> {
  const memoryMode = job.memoryMode ?? 'normal';
  if (unetParts(memoryMode) > 1) return stepInParts(job, memoryMode);
  const baseline = status('VmRSS');
  const path = new CompileCache(BENCH_CACHE).pathFor(await graphKey(job));
  const t0 = nowMs();
  const session = await createSession(path, { provider: job.provider, cpuMemArena: sessionArena(memoryMode), ...(job.threads ? { threads: job.threads } : {}) });
  const sessionMs = nowMs() - t0;
  const afterSession = status('VmRSS');
  const feeds = stepFeeds(job);
  const runMs: number[] = [];
  let finite = true;
  try {
    for (let i = 0; i < job.runs; i++) {
      const t1 = nowMs();
      const out = (await session.run(feeds)).out as Float32Tensor;
      runMs.push(nowMs() - t1);
      finite &&= out.data.every(Number.isFinite);
    }
  } finally {
    await session.release();
  }
  return { baselineRssBytes: baseline, sessionRssBytes: afterSession, peakRssBytes: status('VmHWM'), sessionMs, runMs, finite };
}

async function vae(job: VaeJob): Promise<Record<string, unknown>> {
  const baseline = status('VmRSS');
  const demo = await ensureDemoModel(ROOT);
  const model = await loadModel({
    checkpoint: demo.checkpoint,
    config: demo.config,
    cacheDir: join(BENCH_CACHE, 'vae'),
    attention: job.mode,
    vaeTiling: job.tiled ? 'always' : 'never',
    ...(job.threads ? { threads: job.threads } : {}),
  });
  try {
    const latent = job.size / 8;
    const t0 = nowMs();
    let finite: boolean;
    if (job.direction === 'decode') {
      const image = await model.vae.decode(benchLatent([1, 4, latent, latent], 21));
      finite = image.data.every(Number.isFinite);
    } else {
      const image = benchLatent([1, 3, job.size, job.size], 22, 0.6, 0.2);
      finite = (await model.vae.encode(image)).mean.data.every(Number.isFinite);
    }
    return { baselineRssBytes: baseline, peakRssBytes: status('VmHWM'), runMs: [nowMs() - t0], finite };
  } finally {
    await model.release();
  }
}

function differences(a: Float32Tensor, b: Float32Tensor): { max: number; mean: number; max8: number; mean8: number; meanAbsRef: number } {
  const to8 = (v: number): number => Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
  let max = 0;
  let sum = 0;
  let max8 = 0;
  let sum8 = 0;
  let ref = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i]! - b.data[i]!);
    const d8 = Math.abs(to8(a.data[i]!) - to8(b.data[i]!));
    max = Math.max(max, d);
    sum += d;
    max8 = Math.max(max8, d8);
    sum8 += d8;
    ref += Math.abs(a.data[i]!);
  }
  const n = a.data.length;
  return { max, mean: sum / n, max8, mean8: sum8 / n, meanAbsRef: ref / n };
}

/** Tiled against untiled on the same inputs: the decoded image (float and 8-bit) and the encoded latent mean. */
async function seams(job: { size: number; mode: string; threads?: number }): Promise<Record<string, unknown>> {
  const demo = await ensureDemoModel(ROOT);
  const open = (tiled: boolean): ReturnType<typeof loadModel> =>
    loadModel({
      checkpoint: demo.checkpoint,
      config: demo.config,
      cacheDir: join(BENCH_CACHE, 'vae'),
      attention: job.mode,
      vaeTiling: tiled ? 'always' : 'never',
      ...(job.threads ? { threads: job.threads } : {}),
    });
  const whole = await open(false);
  const tiled = await open(true);
  try {
    const latent = job.size / 8;
    const out: Record<string, unknown> = {};
    for (const [name, input] of [
      ['structured', benchLatent([1, 4, latent, latent], 31)],
      ['noise', benchLatent([1, 4, latent, latent], 32, 0, 1)],
    ] as const) {
      const a = await whole.vae.decode(input);
      const b = await tiled.vae.decode(input);
      out[`decode_${name}`] = differences(a, b);
      const ea = await whole.vae.encode(a);
      const eb = await tiled.vae.encode(a);
      out[`encode_${name}`] = differences(ea.mean, eb.mean);
    }
    return out;
  } finally {
    await whole.release();
    await tiled.release();
  }
}

async function main(): Promise<void> {
  const [role, raw] = process.argv.slice(2);
  if (!role || !raw) throw new DarkroomError('BENCH_BAD_ARG', 'usage: attention-step.ts prepare|step|vae|seams <json>');
  const job = JSON.parse(raw) as StepJob & VaeJob;
  const watchdog = new MemoryWatchdog(`attention-memory ${role} ${job.model ?? 'demo'} ${job.size} ${job.mode}`, job.floorBytes ?? GiB);
  try {
    const result =
      role === 'prepare' ? await prepare(job)
      : role === 'step' ? await step(job)
      : role === 'vae' ? await vae(job)
      : role === 'seams' ? await seams(job)
      : undefined;
    if (!result) throw new DarkroomError('BENCH_BAD_ARG', `unknown role ${role}`);
    console.log(`RESULT ${JSON.stringify(result)}`);
  } finally {
    await watchdog.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
