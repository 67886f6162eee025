/**
 * Seconds per training step and peak memory of textual inversion (TI) and hypernetwork (HN) training.
 *
 * tiny: Darkroom's demo model, trained end to end by the production code (`prepareTraining`, `TrainingRun`:
 * captions, embedding splice or cached conditioning, the objective graph, gradient assembly, AdamW), batch 1,
 * 64x64 (latent 8x8), many steps; the median step after the first.
 * sd15: the full-size SD 1.5 training graphs (`EmbeddingObjective`: CLIP ViT-L/14 text tower -> UNet -> loss and
 * d loss / d token embeddings; `HypernetworkObjective`: UNet with the hypernetwork MLPs in every attention ->
 * loss and d loss / d MLP weights) with the real config and seeded random weights, batch 1, 512x512 (latent
 * 64x64, `--latent` to change), on BENCH_PROVIDER (default cpu). A step is one objective evaluation plus the
 * host work training adds around it (gradient rows summed onto the vectors or transposed back, AdamW). Each
 * graph is built, opened, timed and released before the next, so one model lives at a time.
 *
 * The first step of each row builds its graph: it is split into graph build (construction with autodiff and
 * seeded weights, and serialization), session creation, and the rest (the first run). The tiny TI row is the
 * baseline (always measured) that the other rows are compared with, because the host is shared and noisy.
 *
 *   npm run bench -- training-step
 *   npx tsx bench/training-step.ts [--models tiny,sd15] [--kinds ti,hn] [--runs N] [--threads N] [--latent 64]
 *
 * --runs: the steps in the median. tiny (default 50): the steps after the first, whose one-off work (first-run
 * allocations, JIT) is a large share of a 20 ms step. sd15 (default 1): the first step's run (its graph build and
 * session creation taken out) and runs-1 more steps; each further step can take more memory (see
 * `estimatedPeakGiB`).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../packages/core/parity/oracle.js';
import { DarkroomError } from '../packages/core/src/errors.js';
import { encodePng } from '../packages/core/src/formats/png.js';
import type { ModelConfig } from '../packages/core/src/model-files/config.js';
import { loadModel } from '../packages/core/src/models/load.js';
import { createEmbedding } from '../packages/core/src/networks/embeddings/create.js';
import { createHypernetwork } from '../packages/core/src/networks/hypernetworks/create.js';
import { ensureDemoModel } from '../packages/core/src/pipeline/demo-model.js';
import { pipelineModel } from '../packages/core/src/pipeline/model.js';
import { createSession } from '../packages/core/src/runtime/session.js';
import { GraphBuilder } from '../packages/core/src/graph/builder.js';
import { float32, type Float32Tensor } from '../packages/core/src/tensor.js';
import { adamwStep, newAdamWState } from '../packages/core/src/training/adamw.js';
import type { DatasetFile } from '../packages/core/src/training/dataset.js';
import { hypernetworkParams, paramFeeds, paramGradients, paramValues } from '../packages/core/src/training/hypernetwork-params.js';
import { KeyedStream, keyedNormals } from '../packages/core/src/training/keyed-random.js';
import { EmbeddingObjective, HypernetworkObjective, type DiffusionBatch, type RuntimeOptions } from '../packages/core/src/training/objective.js';
import { EMBEDDING_WEIGHT_DECAY, HYPERNETWORK_WEIGHT_DECAY } from '../packages/core/src/training/targets.js';
import { prepareTraining, type TrainingJobOptions, type TrainingSubject } from '../packages/core/src/training/train-job.js';
import { listArg, numberArg, stringArg } from './support/args.js';
import { fullsizeSd15Trainable } from './support/fullsize-trainable.js';
import { graphPhaseLog, type GraphPhaseLog } from './support/graph-phases.js';
import { machineInfo } from './support/machine.js';
import { availableBytes, GiB, HeapPeaks, MemoryWatchdog, peakRssBytes, resetPeakRss } from './support/memory.js';
import { ortRunTimer, type OrtRunTimer } from './support/ort-run-timer.js';
import { benchProvider } from './support/provider.js';
import { printTable, writeResult, type Column, type Row } from './support/report.js';
import { median, min, nowMs } from './support/stats.js';

type ModelName = 'tiny' | 'sd15';
type Kind = 'ti' | 'hn';
const MODELS: readonly ModelName[] = ['tiny', 'sd15'];
const KINDS: readonly Kind[] = ['ti', 'hn'];

const argv = process.argv.slice(2);
const models = listArg(argv, 'models', ['tiny']);
const kinds = listArg(argv, 'kinds', ['ti', 'hn']);
const runsArg = stringArg(argv, 'runs', '');
const threadsArg = stringArg(argv, 'threads', '');
const latent = numberArg(argv, 'latent', 64);
const provider = benchProvider();

for (const m of models) if (!MODELS.includes(m as ModelName)) throw new DarkroomError('BENCH_UNKNOWN_MODEL', `model must be one of ${MODELS.join(', ')}, got ${m}`);
for (const k of kinds) if (!KINDS.includes(k as Kind)) throw new DarkroomError('BENCH_BAD_ARG', `kind must be one of ${KINDS.join(', ')}, got ${k}`);
if (!Number.isInteger(latent) || latent < 8 || latent % 8 !== 0) throw new DarkroomError('BENCH_BAD_ARG', `--latent must be a multiple of 8, got ${latent}`);
const runsFor = (m: ModelName): number => (runsArg ? Number(runsArg) : m === 'tiny' ? 50 : 1);
for (const m of MODELS) if (!Number.isInteger(runsFor(m)) || runsFor(m) < 1) throw new DarkroomError('BENCH_BAD_ARG', `--runs must be a positive integer, got ${runsArg}`);
const runtime: RuntimeOptions = { provider, ...(threadsArg ? { threads: Number(threadsArg) } : {}) };

const TINY_SIZE = 64; // the demo model's native size: its tests and pipeline-stages render 64x64 (latent 8x8)
const SEED = 7;
const gc = (globalThis as { gc?: () => void }).gc;
const isTrainingGraph = (name: string): boolean => name.startsWith('train_');

/** Every width a hypernetwork module can see: the context width and each attention level's channels (A1111's default set for SD1). */
function attentionWidths(config: ModelConfig): number[] {
  const u = config.unet;
  const widths = new Set<number>([u.contextDim, u.modelChannels * u.channelMult[u.channelMult.length - 1]!]);
  u.channelMult.forEach((m, level) => {
    if (u.attentionResolutions.includes(2 ** level)) widths.add(u.modelChannels * m);
  });
  return [...widths].sort((a, b) => a - b);
}

/** A1111's default new hypernetwork (layer structure 1,2,1, relu, Normal init, no layer norm, no dropout). */
function newHypernetwork(config: ModelConfig) {
  return createHypernetwork({
    name: 'benchnet',
    sizes: attentionWidths(config),
    layerStructure: [1, 2, 1],
    activationFunc: 'relu',
    weightInit: 'Normal',
    addLayerNorm: false,
    useDropout: false,
    random: new KeyedStream(SEED, 'hn-init'),
  });
}

interface Measured {
  readonly buildS: number;
  readonly sessionS: number;
  readonly firstStepS: number;
  readonly stepsMs: readonly number[];
  readonly ortMs: readonly number[];
  readonly optimizerMs?: readonly number[];
  readonly modelGB: number;
  readonly peakRssBuiltGB: number;
  readonly peakRssSessionGB: number;
  readonly rssSessionGB: number;
  /** Peak of the first run (from the session's creation to the end of the first step). */
  readonly peakRssFirstGB: number;
  /** RSS after the first step once garbage is collected: what the open session holds. */
  readonly rssSteadyGB: number;
  /** Peak of the timed steps. */
  readonly peakRssStepsGB: number;
  readonly peakHeapGB: number;
  readonly peakBuffersGB: number;
  readonly lastLoss: number;
}

/**
 * Called right after the first step: its peak (the weights copy the graph builder made may still be uncollected
 * garbage while the first run allocates its activations), then what stays once that garbage is gone, and a new
 * peak measurement for the steady steps.
 */
function firstStepMemory(): { first: number; steady: number } {
  const first = peakRssBytes() / GiB;
  gc?.();
  const steady = process.memoryUsage().rss / GiB;
  resetPeakRss();
  return { first, steady };
}

/** Splits a first step into graph build, session creation and the rest, from the phases recorded during it. */
function firstStepParts(
  phases: GraphPhaseLog,
  since: number,
  firstStepMs: number,
): { buildS: number; sessionS: number; firstStepS: number; modelGB: number; peakRssBuiltGB: number; peakRssSessionGB: number; rssSessionGB: number } {
  const ps = phases.since(since).filter((p) => isTrainingGraph(p.graph));
  if (ps.length !== 1) throw new DarkroomError('BENCH_INTERNAL', `expected one training graph built in the first step, saw ${ps.length}`);
  const p = ps[0]!;
  const buildMs = p.serializeEnd - p.buildStart;
  const sessionMs = p.createStart !== undefined && p.createEnd !== undefined ? p.createEnd - p.createStart : 0;
  return {
    buildS: buildMs / 1000,
    sessionS: sessionMs / 1000,
    firstStepS: (firstStepMs - buildMs - sessionMs) / 1000,
    modelGB: p.modelBytes / 1e9,
    peakRssBuiltGB: p.peakRssAfterSerialize / GiB,
    peakRssSessionGB: (p.peakRssAfterCreate ?? Number.NaN) / GiB,
    rssSessionGB: (p.rssAfterCreate ?? Number.NaN) / GiB,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// tiny: the demo model through the production training loop

/** 64x64 pictures of a red disc on blue at a few positions, half with a caption file (as the training tests). */
function discDataset(n: number): DatasetFile[] {
  return Array.from({ length: n }).flatMap((_, i) => {
    const data = new Uint8Array(TINY_SIZE * TINY_SIZE * 3);
    const cx = 16 + ((i * 11) % 32);
    const cy = 20 + ((i * 7) % 24);
    for (let y = 0; y < TINY_SIZE; y++) {
      for (let x = 0; x < TINY_SIZE; x++) data.set((x - cx) ** 2 + (y - cy) ** 2 < 100 ? [220, 30, 30] : [20, 40, 200], (y * TINY_SIZE + x) * 3);
    }
    const image = { name: `${i}-disc.png`, bytes: encodePng({ width: TINY_SIZE, height: TINY_SIZE, channels: 3, data }) };
    return i % 2 ? [image, { name: `${i}-disc.txt`, bytes: new TextEncoder().encode('a red disc, blue background') }] : [image];
  });
}

function tinyOptions(kind: Kind, steps: number): TrainingJobOptions {
  return {
    // A1111's default rates; batch 1, no accumulation, no clipping, no intermediate saves.
    settings: { learnRate: kind === 'ti' ? '0.005' : '0.00001', clipGradMode: 'disabled', clipGradValue: '0.1', maxSteps: steps, batchSize: 1, gradientStep: 1, seed: SEED, saveEvery: 0 },
    dataset: {
      width: TINY_SIZE,
      height: TINY_SIZE,
      template: 'a photo of [name]\n[filewords], [name]\n',
      wordRegex: '',
      joinString: ' ',
      latentSampling: 'once',
      useWeight: false,
      shuffleTags: false,
      tagDropOut: 0,
    },
    text: { clipSkip: 1, emphasis: 'Original', commaPaddingBacktrack: 20 },
    runtime,
  };
}

async function tinyRows(wanted: readonly Kind[], timer: OrtRunTimer, phases: GraphPhaseLog): Promise<Row[]> {
  const runs = runsFor('tiny');
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-bench-train-'));
  const demo = await ensureDemoModel(repoRoot);
  // A fresh graph cache, so every run compiles the inference graphs (VAE, text) the same way.
  const sd = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir: join(dir, 'cache'), ...(runtime.threads !== undefined ? { threads: runtime.threads } : {}) });
  const pipeline = pipelineModel(sd, demo.tokenizer);
  const rows: Row[] = [];
  try {
    for (const kind of wanted) {
      const subject: TrainingSubject =
        kind === 'ti'
          ? { kind: 'embedding', embedding: createEmbedding({ name: 'benchstyle', vectors: 2, initText: 'thing', tokenizer: pipeline.tokenizer, tokenEmbeddings: sd.textEncoder.tokenEmbedding }) }
          : { kind: 'hypernetwork', hypernetwork: newHypernetwork(sd.config) };
      gc?.();
      resetPeakRss();
      const heap = new HeapPeaks().start();
      const prepared = await prepareTraining(sd, pipeline, subject, discDataset(4), tinyOptions(kind, runs + 1));
      try {
        const stepMs: number[] = [];
        const ortMs: number[] = [];
        const rss = { first: 0, steady: 0 };
        const t0 = nowMs();
        let start = t0;
        let ortStart = timer.totalMs;
        const result = await prepared.run.run(prepared.start(), {
          onStep: () => {
            stepMs.push(nowMs() - start);
            ortMs.push(timer.totalMs - ortStart);
            heap.sample();
            // Between steps, outside the timed spans: the first step's memory split from the steady steps'.
            if (stepMs.length === 1) Object.assign(rss, firstStepMemory());
            start = nowMs();
            ortStart = timer.totalMs;
          },
        });
        heap.stop();
        const parts = firstStepParts(phases, t0, stepMs[0]!);
        const log = result.checkpoint.lossLog;
        rows.push(
          rowOf('tiny', kind, `${TINY_SIZE}x${TINY_SIZE} (latent ${TINY_SIZE / 8}x${TINY_SIZE / 8})`, trainedCount(subject), {
            ...parts,
            stepsMs: stepMs.slice(1),
            ortMs: ortMs.slice(1),
            peakRssFirstGB: rss.first,
            rssSteadyGB: rss.steady,
            peakRssStepsGB: peakRssBytes() / GiB,
            peakHeapGB: heap.heapUsed / GiB,
            peakBuffersGB: heap.arrayBuffers / GiB,
            lastLoss: log[log.length - 1]?.loss ?? Number.NaN,
          }),
        );
        console.log(`tiny ${kind}: ${runs + 1} steps, median ${median(stepMs.slice(1)).toFixed(1)} ms`);
      } finally {
        await prepared.release();
      }
    }
  } finally {
    await sd.release();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

function trainedCount(subject: TrainingSubject): number {
  if (subject.kind === 'embedding') return subject.embedding.vec.data.length;
  return hypernetworkParams(subject.hypernetwork).reduce((s, p) => s + p.shape.reduce((a, d) => a * d, 1), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// sd15: the full-size training graphs with random weights

/**
 * Peak resident memory of one full-size row, GiB, fitted to this bench's measurements on the CPU provider
 * (onnxruntime 1.30, float32, batch 1, latents 16, 32, 48 and 64; see bench/README.md). The constant is the
 * weights held about three times over while the session is created (our copy, onnxruntime's, its prepacked
 * forms); the activations the backward pass keeps grow with the latent's area (convolutions, projections) and
 * with its square (the self-attention probabilities). A second step needs more than the first (onnxruntime's
 * arena grows again), so rows with more than one step get the larger figure; for HN at latent 64 that figure
 * is a lower bound (the measurement was stopped by the watchdog above it).
 */
export function estimatedPeakGiB(kind: Kind, latentSide: number, steps: number): number {
  const a = (latentSide / 64) ** 2;
  if (steps <= 1) return kind === 'ti' ? 11.3 + 2.2 * a + 3.3 * a * a : 10.6 + 2.1 * a + 4.1 * a * a;
  return kind === 'ti' ? 11.3 + 0.9 * a + 7.5 * a * a : 10.6 + 0.8 * a + 9.6 * a * a;
}

/** Available memory kept free for everyone else on the host while a full-size row runs. */
const RESERVE_GIB = 2;
/** The watchdog's floor: below this the bench stops itself. */
const FLOOR_GIB = 1.5;

function memoryShortMessage(kind: Kind, need: number, available: number): string {
  return (
    `the full-size ${kind.toUpperCase()} training graph at latent ${latent}x${latent} needs about ${need.toFixed(1)} GiB and ` +
    `${RESERVE_GIB} GiB must stay free for the rest of the host, but only ${available.toFixed(1)} GiB is available: free memory, ` +
    `or measure a smaller latent (--latent 32 needs about ${estimatedPeakGiB(kind, 32, runsFor('sd15')).toFixed(1)} GiB)`
  );
}

/** Refuses before building anything when the host cannot hold the row. */
function checkMemory(kind: Kind): void {
  const need = estimatedPeakGiB(kind, latent, runsFor('sd15'));
  const available = availableBytes() / GiB;
  console.log(`sd15 ${kind}: about ${need.toFixed(1)} GiB needed at latent ${latent}x${latent}, ${available.toFixed(1)} GiB available`);
  if (need + RESERVE_GIB > available) {
    throw new DarkroomError('BENCH_MEMORY_SHORT', memoryShortMessage(kind, need, available), { kind, latent, needGiB: need, availableGiB: available });
  }
}

/** Deterministic values in [-scale, scale), for the host-side inputs of a full-size step. */
function uniform(n: number, scale: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 31 - 1) * scale;
  }
  return out;
}

/** One micro-batch as the trainer makes it: latents, a keyed timestep and keyed noise for step `i`. */
function fullsizeBatch(i: number): DiffusionBatch {
  const n = 4 * latent * latent;
  const latents = float32([1, 4, latent, latent], keyedNormals(n, SEED, 'bench-latents', 0));
  return { latents, t: [new KeyedStream(SEED, 't', i).below(1000)], noise: float32([1, 4, latent, latent], keyedNormals(n, SEED, 'noise', i)) };
}

interface StepResult {
  readonly loss: number;
  /** Gradient assembly (rows summed onto the vectors, or transposed back to A1111's layout) and AdamW. */
  readonly optimizerMs: number;
}

interface FullsizeStep {
  readonly trained: number;
  step(i: number): Promise<StepResult>;
  release(): Promise<void>;
}

async function fullsizeTi(): Promise<FullsizeStep> {
  const { model, checkedAgainst } = fullsizeSd15Trainable(SEED);
  console.log(`sd15 ti: SD 1.5 config and text encoder keys checked against the ${checkedAgainst}`);
  const { width, maxPositions: tokens } = model.config.text;
  const objective = await EmbeddingObjective.create(model, { clipSkip: 1, emphasis: 'Original', ...runtime });
  // "a photo of <2-vector embedding>" padded to 77 tokens: token embeddings at CLIP's scale, the vectors after BOS.
  const base = uniform(tokens * width, 0.03, SEED);
  const rows = [4, 5];
  const vec = uniform(rows.length * width, 0.03, SEED + 1);
  const multipliers = new Float32Array(tokens).fill(1);
  const optimizer = newAdamWState([vec.length], 0.005, EMBEDDING_WEIGHT_DECAY);
  return {
    trained: vec.length,
    async step(i) {
      const embeds = base.slice();
      rows.forEach((row, k) => embeds.set(vec.subarray(k * width, (k + 1) * width), row * width));
      const r = await objective.evaluate(float32([1, tokens, width], embeds), multipliers, 1, fullsizeBatch(i));
      const t0 = nowMs();
      const grad = new Float32Array(vec.length);
      rows.forEach((row, k) => {
        for (let j = 0; j < width; j++) grad[k * width + j] = r.gradInputsEmbeds.data[row * width + j]!;
      });
      adamwStep([vec], [grad], optimizer);
      return { loss: r.loss, optimizerMs: nowMs() - t0 };
    },
    release: () => objective.release(),
  };
}

async function fullsizeHn(): Promise<FullsizeStep> {
  const { model, checkedAgainst } = fullsizeSd15Trainable(SEED);
  console.log(`sd15 hn: SD 1.5 config checked against the ${checkedAgainst}`);
  const hn = newHypernetwork(model.config);
  const params = hypernetworkParams(hn);
  const values = paramValues(hn, params);
  const objective = await HypernetworkObjective.create(model, hn, runtime);
  const { width, maxPositions: tokens } = model.config.text;
  // The conditioning A1111 computes once per dataset entry, at the text encoder's output scale.
  const cond: Float32Tensor = float32([1, tokens, width], uniform(tokens * width, 1, SEED + 2));
  const optimizer = newAdamWState(values.map((v) => v.length), 0.00001, HYPERNETWORK_WEIGHT_DECAY);
  return {
    trained: values.reduce((s, v) => s + v.length, 0),
    async step(i) {
      const r = await objective.evaluate(cond, paramFeeds(params, values), fullsizeBatch(i));
      const t0 = nowMs();
      adamwStep(values, paramGradients(params, r.grads), optimizer);
      return { loss: r.loss, optimizerMs: nowMs() - t0 };
    },
    release: () => objective.release(),
  };
}

/** One full-size row, in a process of its own (see `spawnFullsizeRow`). */
async function fullsizeRow(kind: Kind, timer: OrtRunTimer, phases: GraphPhaseLog): Promise<Row> {
  const runs = runsFor('sd15');
  checkMemory(kind);
  const watchdog = new MemoryWatchdog(`training-step sd15 ${kind}`, FLOOR_GIB * GiB);
  const heap = new HeapPeaks().start();
  const label = `sd15 ${kind}`;
  try {
    // Host-side setup (a new hypernetwork's 22M initial weights take seconds to draw) is not part of a step.
    const setupStart = nowMs();
    const s = kind === 'ti' ? await fullsizeTi() : await fullsizeHn();
    const setupS = (nowMs() - setupStart) / 1000;
    try {
      const t0 = nowMs();
      const first = await timer.measure(() => s.step(0));
      const firstMs = nowMs() - t0;
      heap.sample();
      const parts = firstStepParts(phases, t0, firstMs);
      const rss = firstStepMemory();
      console.log(
        `${label}: set up in ${setupS.toFixed(1)} s; graph ${parts.modelGB.toFixed(2)} GB built in ${parts.buildS.toFixed(1)} s (peak RSS ${(parts.peakRssBuiltGB).toFixed(2)} GiB), ` +
          `session ${parts.sessionS.toFixed(1)} s (peak RSS ${parts.peakRssSessionGB.toFixed(2)} GiB), first run ${parts.firstStepS.toFixed(1)} s, ` +
          `RSS ${parts.rssSessionGB.toFixed(2)} GiB after it, loss ${first.value.loss.toFixed(5)}; peak RSS of the first run ${rss.first.toFixed(2)} GiB, ` +
          `${rss.steady.toFixed(2)} GiB held after it`,
      );
      // The first step's run counts as a step (its graph build and session creation are taken out): one step is
      // enough at full size, and every further one can take more memory.
      const firstRunMs = parts.firstStepS * 1000;
      const stepsMs: number[] = [firstRunMs];
      const ortMs: number[] = [first.ortMs];
      const optimizerMs: number[] = [first.value.optimizerMs];
      let lastLoss = first.value.loss;
      for (let i = 1; i < runs; i++) {
        const r = await timer.measure(() => s.step(i));
        heap.sample();
        stepsMs.push(r.wallMs);
        ortMs.push(r.ortMs);
        optimizerMs.push(r.value.optimizerMs);
        lastLoss = r.value.loss;
        console.log(
          `${label}: step ${i + 1}: ${(r.wallMs / 1000).toFixed(2)} s (onnxruntime run ${(r.ortMs / 1000).toFixed(2)} s, ` +
            `gradients and AdamW ${r.value.optimizerMs.toFixed(0)} ms), loss ${r.value.loss.toFixed(5)}`,
        );
      }
      heap.stop();
      return rowOf('sd15', kind, `${latent * 8}x${latent * 8} (latent ${latent}x${latent})`, s.trained, {
        ...parts,
        stepsMs,
        ortMs,
        optimizerMs,
        peakRssFirstGB: rss.first,
        rssSteadyGB: rss.steady,
        peakRssStepsGB: runs > 1 ? peakRssBytes() / GiB : Number.NaN,
        peakHeapGB: heap.heapUsed / GiB,
        peakBuffersGB: heap.arrayBuffers / GiB,
        lastLoss,
      });
    } finally {
      await s.release();
    }
  } finally {
    heap.stop();
    await watchdog.stop();
  }
}

/**
 * Runs one full-size row in a fresh process: its peak RSS is then that row's alone (nothing left over from the
 * previous one: allocator caches, a collected-later builder), and everything it held goes back to the host when
 * it exits. Returns the row, or a failed row that says why.
 */
async function spawnFullsizeRow(kind: Kind): Promise<Row> {
  const need = estimatedPeakGiB(kind, latent, runsFor('sd15'));
  const available = availableBytes() / GiB;
  if (need + RESERVE_GIB > available) {
    const message = memoryShortMessage(kind, need, available);
    console.error(`sd15 ${kind}: refused: ${message}`);
    return failedRow(kind, `refused: ${message}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-bench-row-'));
  const out = join(dir, 'row.json');
  try {
    const args = ['--child', `sd15:${kind}`, '--row-out', out, '--latent', String(latent), '--runs', String(runsFor('sd15'))];
    if (threadsArg) args.push('--threads', threadsArg);
    // Same flags as bench/run.ts gives every bench.
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...args], { stdio: 'inherit', env: process.env });
      child.on('error', () => resolve(127));
      child.on('exit', (c, signal) => resolve(c ?? (signal === 'SIGTERM' ? 143 : 128)));
    });
    let written: { row?: Row; error?: string } = {};
    try {
      written = JSON.parse(await readFile(out, 'utf8')) as { row?: Row; error?: string };
    } catch {
      // Nothing written: the process was killed (the watchdog's message is on stderr) or crashed.
    }
    if (code === 0 && written.row) return written.row;
    return failedRow(kind, written.error ?? `the row's process ended with exit ${code}${code === 143 ? ' (stopped by the memory watchdog)' : ''}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function failedRow(kind: Kind, status: string): Row {
  return { model: 'SD 1.5', kind: kind.toUpperCase(), size: `${latent * 8}x${latent * 8} (latent ${latent}x${latent})`, status };
}

// ---------------------------------------------------------------------------------------------------------------

function rowOf(model: ModelName, kind: Kind, size: string, trained: number, m: Measured): Row {
  const step = median(m.stepsMs);
  const ort = median(m.ortMs);
  const ours = median(m.stepsMs.map((s, i) => s - m.ortMs[i]!));
  return {
    model: model === 'tiny' ? 'tiny demo' : 'SD 1.5',
    kind: kind.toUpperCase(),
    size,
    trained,
    modelGB: m.modelGB,
    buildS: m.buildS,
    sessionS: m.sessionS,
    firstStepS: m.firstStepS,
    stepS: step / 1000,
    stepMinS: min(m.stepsMs) / 1000,
    ortRunS: ort / 1000,
    ortShare: ort / step,
    oursMs: ours,
    optimizerMs: m.optimizerMs ? median(m.optimizerMs) : null,
    peakRssBuiltGB: m.peakRssBuiltGB,
    peakRssSessionGB: m.peakRssSessionGB,
    rssSessionGB: m.rssSessionGB,
    peakRssFirstGB: m.peakRssFirstGB,
    rssSteadyGB: m.rssSteadyGB,
    peakRssStepsGB: Number.isNaN(m.peakRssStepsGB) ? null : m.peakRssStepsGB,
    peakRssGB: Math.max(m.peakRssSessionGB, m.peakRssFirstGB, Number.isNaN(m.peakRssStepsGB) ? 0 : m.peakRssStepsGB),
    peakHeapGB: m.peakHeapGB,
    peakBuffersGB: m.peakBuffersGB,
    lossFinite: Number.isFinite(m.lastLoss) ? 'yes' : 'NO',
    runs: m.stepsMs.length,
    status: 'ok',
  };
}

/** Fails in a second, not after a 4 GB build, when the provider's libraries do not load. */
async function checkProvider(): Promise<void> {
  const g = new GraphBuilder('provider_check');
  g.output(g.input('x', 'float32', [1]), 'y');
  await (await createSession(g.toModel(), { provider })).release();
}

/** `--child sd15:<kind> --row-out <file>`: one full-size row, its result written to the file. */
async function childMain(spec: string): Promise<void> {
  const out = stringArg(argv, 'row-out', '');
  const kind = spec.replace(/^sd15:/, '') as Kind;
  if (!KINDS.includes(kind) || !out) throw new DarkroomError('BENCH_BAD_ARG', `bad child row ${spec}`);
  try {
    await checkProvider();
    const row = await fullsizeRow(kind, await ortRunTimer(), graphPhaseLog(isTrainingGraph, { splitPeak: true }));
    await writeFile(out, JSON.stringify({ row }));
  } catch (e) {
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    await writeFile(out, JSON.stringify({ error: message }));
    throw e;
  }
}

async function main(): Promise<void> {
  await checkProvider();
  const timer = await ortRunTimer();
  const phases = graphPhaseLog(isTrainingGraph, { splitPeak: true });
  const wantedKinds = KINDS.filter((k) => kinds.includes(k));
  // The tiny TI row is the baseline of every run, asked for or not.
  const tinyKinds = models.includes('tiny') ? wantedKinds : [];
  const rows: Row[] = await tinyRows(tinyKinds.includes('ti') ? tinyKinds : ['ti', ...tinyKinds], timer, phases);
  if (models.includes('sd15')) for (const k of wantedKinds) rows.push(await spawnFullsizeRow(k));

  const baseline = rows.find((r) => r.model === 'tiny demo' && r.kind === 'TI');
  const withRatio = rows.map((r) => ({
    ...r,
    vsTinyTi: baseline && typeof baseline.stepS === 'number' && typeof r.stepS === 'number' ? r.stepS / baseline.stepS : null,
  }));
  const columns: Column[] = [
    { key: 'model', label: 'model' },
    { key: 'kind', label: 'kind' },
    { key: 'size', label: 'size' },
    { key: 'trained', label: 'trained', digits: 0 },
    { key: 'buildS', label: 'build s', digits: 2 },
    { key: 'sessionS', label: 'session s', digits: 2 },
    { key: 'firstStepS', label: '1st step s', digits: 3 },
    { key: 'stepS', label: 'step s (median)', digits: 3 },
    // On a shared host other work only ever adds time: the fastest step is the least disturbed.
    { key: 'stepMinS', label: 'step s (min)', digits: 3 },
    { key: 'ortRunS', label: 'ORT run() s', digits: 3 },
    { key: 'ortShare', label: 'ORT share', digits: 4 },
    { key: 'oursMs', label: 'ours ms', digits: 1 },
    { key: 'optimizerMs', label: 'grads+AdamW ms', digits: 1 },
    { key: 'peakRssBuiltGB', label: 'RSS GiB built', digits: 2 },
    { key: 'peakRssSessionGB', label: 'RSS GiB session', digits: 2 },
    { key: 'peakRssFirstGB', label: 'RSS GiB 1st step', digits: 2 },
    { key: 'rssSteadyGB', label: 'RSS GiB held', digits: 2 },
    { key: 'peakRssStepsGB', label: 'RSS GiB steps', digits: 2 },
    { key: 'peakRssGB', label: 'peak RSS GiB', digits: 2 },
    { key: 'peakHeapGB', label: 'peak heap GiB', digits: 3 },
    { key: 'peakBuffersGB', label: 'peak buffers GiB', digits: 2 },
    { key: 'vsTinyTi', label: 'vs tiny TI', digits: 1 },
    { key: 'lossFinite', label: 'finite' },
    { key: 'status', label: 'status' },
  ];
  const machine = machineInfo(provider);
  const fullsize = models.includes('sd15') ? `; sd15: median of ${runsFor('sd15')} (the first step's run and the steps after it)` : '';
  printTable(
    `Training step, ${provider} provider, batch 1, float32; tiny: median of ${runsFor('tiny')} steps after the first${fullsize} ` +
      `(${machine.cpuModel}, ${machine.cores} cores, load ${machine.loadAverage1m})`,
    columns,
    withRatio,
  );
  const file = writeResult({
    bench: 'training-step',
    date: new Date().toISOString(),
    machine,
    parameters: { models, kinds: wantedKinds, runsTiny: runsFor('tiny'), runsSd15: runsFor('sd15'), latent, threads: threadsArg || 'default', batch: 1, seed: SEED },
    rows: withRatio,
    notes: [
      'tiny: the production loop (prepareTraining, TrainingRun) on the demo model; sd15: the objective graph with seeded random weights plus gradient assembly and AdamW, one process per row',
      'build s = graph construction (autodiff and weight generation included) and serialization; session s = InferenceSession.create; 1st step s = the rest of the first step',
      'ORT run() = time inside onnxruntime InferenceSession.run; ours = step - ORT run(); grads+AdamW = gradient assembly and the optimizer step (sd15 rows)',
      'RSS GiB built / session = the peak resident set size (VmHWM) when the graph was serialized / the session created; 1st step = the peak from then to the end of the first step; held = the RSS after it once garbage is collected; steps = the peak of the timed steps; peak RSS = the row peak; heap = V8 heapUsed; buffers = ArrayBuffers held by JS',
    ],
  });
  console.log(`written ${file}`);
  if (rows.some((r) => r.status !== 'ok')) process.exitCode = 1;
}

const child = stringArg(argv, 'child', '');
await (child ? childMain(child) : main());
