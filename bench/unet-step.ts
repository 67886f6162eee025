/**
 * Full-size UNet step time on the CPU provider: SD 1.5 (and SD 2.1 with --model sd21) built from the real
 * configs with random weights, 512x512 (latent 64x64), batch 2 (a CFG pair), 77-token context.
 *
 *   npx tsx bench/unet-step.ts [--model sd15|sd21|both] [--steps 2] [--threads N] [--fused]
 *
 * --fused builds the attention as com.microsoft MultiHeadAttention instead of the plain MatMul/Softmax form.
 *
 * Reports the build time, session creation time, and per step: the whole step as EngineSession.run does it
 * (host tensors to ORT tensors, run, back) beside the time inside onnxruntime's InferenceSession.run.
 * Peak resident memory is about 9 GB per model (3.4 GB of float32 weights in JS while building, then ORT's copy).
 * Writes bench/results/unet-step-<timestamp>.json.
 */
import ort from 'onnxruntime-node';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { oracleRoot } from '../packages/core/parity/oracle.js';
import { CompileCache } from '../packages/core/src/models/cache.js';
import { inferModelConfig, overridesFromJson, UNET_PREFIX, type TensorIndex } from '../packages/core/src/models/config.js';
import { unetModel } from '../packages/core/src/models/graphs.js';
import { fromOrtTensor, toOrtTensor } from '../packages/core/src/runtime/session.js';
import type { DType, Float32Tensor } from '../packages/core/src/tensor.js';

interface Args {
  models: string[];
  steps: number;
  threads: number | undefined;
  fused: boolean;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const model = get('--model') ?? 'sd15';
  return {
    models: model === 'both' ? ['sd15', 'sd21'] : [model],
    steps: Number(get('--steps') ?? 2),
    threads: get('--threads') ? Number(get('--threads')) : undefined,
    fused: argv.includes('--fused'),
  };
}

/** xorshift32 uniform in [-1, 1): fast, deterministic, good enough for timing. */
function randomFill(out: Float32Array, scale: number, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 31 - 1) * scale;
  }
}

/** UNet weights with the real shapes: N-ish(0, 1/fan_in) matrices, unit norm scales, small biases. */
function randomUNetWeights(index: TensorIndex): Map<string, Float32Tensor> {
  const out = new Map<string, Float32Tensor>();
  let seed = 1;
  for (const [key, info] of index) {
    if (!key.startsWith(UNET_PREFIX)) continue;
    const name = key.slice(UNET_PREFIX.length);
    const n = info.shape.reduce((a, d) => a * d, 1);
    const data = new Float32Array(n);
    if (info.shape.length === 1) {
      if (/norm\d?\.weight$|in_layers\.0\.weight$|out_layers\.0\.weight$|out\.0\.weight$/.test(name)) data.fill(1);
      else randomFill(data, 0.05, seed++);
    } else {
      const fanIn = n / info.shape[0]!;
      randomFill(data, Math.sqrt(3 / fanIn), seed++);
    }
    out.set(name, { dtype: 'float32', shape: info.shape, data });
  }
  return out;
}

function keyIndex(file: string): TensorIndex {
  const json = JSON.parse(readFileSync(file, 'utf8')) as { keys: Record<string, { shape: number[]; dtype: string }> };
  const dtypes: Record<string, DType> = { F32: 'float32', F16: 'float16', I64: 'int64' };
  return new Map(Object.entries(json.keys).map(([k, v]) => [k, { dtype: dtypes[v.dtype] ?? 'float32', shape: v.shape }]));
}

function randomInput(shape: number[], seed: number): Float32Tensor {
  const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
  randomFill(data, 1, seed);
  return { dtype: 'float32', shape, data };
}

interface Result {
  model: string;
  params: number;
  batch: number;
  latent: [number, number];
  contextLength: number;
  threads: number | 'default';
  attention: 'plain' | 'fused';
  buildMs: number;
  writeMs: number;
  sessionCreateMs: number;
  stepMs: number[];
  ortRunMs: number[];
}

async function benchModel(model: string, args: Args, folder: string): Promise<Result> {
  const index = keyIndex(join(folder, `${model}-keys.json`));
  const config = inferModelConfig(index, overridesFromJson(JSON.parse(readFileSync(join(folder, `${model}-config.json`), 'utf8'))));
  const batch = 2;
  const [height, width] = [64, 64];
  const contextLength = 77;
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-bench-unet-'));
  try {
    const cache = new CompileCache(cacheDir);
    let params = 0;
    let buildMs = 0;
    const t0 = performance.now();
    const { path } = await cache.getOrBuild({ weights: `random-${model}`, component: 'unet', options: { batch, height, width, fused: args.fused } }, () => {
      const weights = randomUNetWeights(index);
      for (const t of weights.values()) params += t.data.length;
      const built = unetModel(weights, config.unet, { batch, height, width, contextLength, fusedAttention: args.fused });
      buildMs = performance.now() - t0;
      return built;
    });
    const writeMs = performance.now() - t0 - buildMs;
    console.log(`${model}: ${(params / 1e6).toFixed(1)}M parameters, graph built in ${(buildMs / 1000).toFixed(1)} s, written in ${(writeMs / 1000).toFixed(1)} s`);

    const x = randomInput([batch, 4, height, width], 11);
    const t: Float32Tensor = { dtype: 'float32', shape: [batch], data: Float32Array.of(999, 500) };
    const ctx = randomInput([batch, contextLength, config.unet.contextDim], 12);
    const feeds = { x, t, context_k: ctx, context_v: ctx };

    // One session; each step is timed whole (host tensors -> ORT tensors, run, back: what EngineSession.run
    // does for unet.run) and inside onnxruntime's InferenceSession.run alone.
    const t1 = performance.now();
    const session = await ort.InferenceSession.create(path, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      ...(args.threads !== undefined ? { intraOpNumThreads: args.threads } : {}),
    });
    const sessionCreateMs = performance.now() - t1;
    console.log(`${model}: session created in ${(sessionCreateMs / 1000).toFixed(1)} s`);
    const stepMs: number[] = [];
    const ortRunMs: number[] = [];
    for (let i = 0; i <= args.steps; i++) {
      const s0 = performance.now();
      const ortFeeds = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrtTensor(v)]));
      const r0 = performance.now();
      const result = await session.run(ortFeeds);
      const r1 = performance.now();
      const out = fromOrtTensor(result.out!);
      const s1 = performance.now();
      if (out.data.length !== x.data.length) throw new Error('unexpected UNet output size');
      if (i === 0) continue; // warm-up
      stepMs.push(s1 - s0);
      ortRunMs.push(r1 - r0);
      console.log(`${model}: step ${i}: ${(s1 - s0).toFixed(1)} ms, inside InferenceSession.run ${(r1 - r0).toFixed(1)} ms`);
    }
    await session.release();
    return {
      model,
      params,
      batch,
      latent: [height, width],
      contextLength,
      threads: args.threads ?? 'default',
      attention: args.fused ? 'fused' : 'plain',
      buildMs,
      writeMs,
      sessionCreateMs,
      stepMs,
      ortRunMs,
    };
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}

const min = (xs: number[]): number => Math.min(...xs);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const folder = join(oracleRoot(), 'model');
  const results: Result[] = [];
  for (const m of args.models) results.push(await benchModel(m, args, folder));

  console.log('\nUNet step, CPU provider, 512x512 (latent 64x64), batch 2, 77 tokens, float32');
  console.log('(best of the timed steps; the machine is shared, so look at the spread in the JSON too)');
  console.log('model  attention  params   build s  session s  step ms  inside InferenceSession.run ms');
  for (const r of results) {
    console.log(
      `${r.model.padEnd(6)} ${r.attention.padEnd(9)}  ${(r.params / 1e6).toFixed(1).padStart(6)}M ${(r.buildMs / 1000).toFixed(1).padStart(8)} ${(r.sessionCreateMs / 1000)
        .toFixed(1)
        .padStart(10)} ${min(r.stepMs).toFixed(0).padStart(8)} ${min(r.ortRunMs).toFixed(0).padStart(31)}`,
    );
  }
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `unet-step-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ bench: 'unet-step', date: new Date().toISOString(), provider: 'cpu', results }, null, 2));
  console.log(`\nwritten ${file}`);
}

await main();
