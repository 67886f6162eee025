/**
 * Dynamic batching: throughput of N compatible txt2img requests (same settings, their own prompts and seeds)
 * rendered one by one (batch 1, the baseline) and as UNet batches of 2 and 4 through the production path
 * (pipeline/request-batch.ts renderBatch -> Engine -> txt2img), on Darkroom's demo model, in one process and one
 * run, so the ratios compare like with like. Also checks each batched image against the same request's solo
 * render (max |difference| of 8-bit pixels).
 *
 *   npx tsx bench/batching.ts [--sizes 256,512] [--steps 20] [--requests 4] [--batches 1,2,4] [--rounds 1]
 *                             [--sampler "Euler a"] [--threads N]
 */
import { repoRoot } from '../packages/core/parity/oracle.js';
import { Engine } from '../packages/core/src/pipeline/engine.js';
import { renderBatch } from '../packages/core/src/pipeline/request-batch.js';
import type { GenerationResult } from '../packages/core/src/pipeline/job.js';
import type { Txt2ImgParams } from '../packages/core/src/pipeline/params.js';
import { decodePng } from '../packages/core/src/formats/png.js';
import { listArg, numberArg, stringArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { benchProvider } from './support/provider.js';
import { printTable, writeResult, type Row } from './support/report.js';
import { median, nowMs } from './support/stats.js';

const argv = process.argv.slice(2);
const sizes = listArg(argv, 'sizes', ['256', '512']).map(Number);
const steps = numberArg(argv, 'steps', 20);
const count = numberArg(argv, 'requests', 4);
const batches = listArg(argv, 'batches', ['1', '2', '4']).map(Number);
const rounds = numberArg(argv, 'rounds', 1);
const sampler = stringArg(argv, 'sampler', 'Euler a');
const threadsArg = numberArg(argv, 'threads', 0);
const provider = benchProvider();

const PROMPTS = ['a castle on a hill', 'a lighthouse at dusk', 'two cats on a sofa', 'a (red:1.2) boat [at sea:in fog:5]'];

function requests(size: number): Txt2ImgParams[] {
  return Array.from({ length: count }, (_, i) => ({
    prompt: PROMPTS[i % PROMPTS.length]!,
    negative_prompt: 'grainy',
    steps,
    sampler_name: sampler,
    cfg_scale: 7,
    seed: 1000 + i,
    width: size,
    height: size,
  }));
}

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  const x = decodePng(a).data;
  const y = decodePng(b).data;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** All requests in consecutive batches of `batch` (the last one smaller when it does not divide). */
async function renderAll(engine: Engine, reqs: readonly Txt2ImgParams[], batch: number): Promise<{ ms: number; results: GenerationResult[] }> {
  const results: GenerationResult[] = [];
  const t0 = nowMs();
  for (let i = 0; i < reqs.length; i += batch) results.push(...(await renderBatch(engine, reqs.slice(i, i + batch))));
  return { ms: nowMs() - t0, results };
}

async function main(): Promise<void> {
  const engine = new Engine({ root: repoRoot, provider, ...(threadsArg > 0 ? { threads: threadsArg } : {}) });
  const rows: Row[] = [];
  try {
    for (const size of sizes) {
      const reqs = requests(size);
      // compiles the graphs and sizes the arenas for every batch shape before anything is timed
      for (const b of batches) await renderBatch(engine, reqs.slice(0, Math.min(b, reqs.length)).map((r) => ({ ...r, steps: 1 })));
      const times = new Map<number, number[]>(batches.map((b) => [b, []]));
      const images = new Map<number, GenerationResult[]>();
      // rounds alternate the order of the batch sizes, so a drift in the host's load does not favour one
      for (let r = 0; r < rounds; r++) {
        for (const b of r % 2 === 0 ? batches : [...batches].reverse()) {
          const { ms, results } = await renderAll(engine, reqs, b);
          times.get(b)!.push(ms);
          images.set(b, results);
        }
      }
      const solo = images.get(1) ?? (await renderAll(engine, reqs, 1)).results;
      const base = batches.includes(1) ? median(times.get(1)!) : Number.NaN;
      for (const b of batches) {
        const ms = median(times.get(b)!);
        const diff = Math.max(...images.get(b)!.map((g, i) => maxPixelDiff(g.images[0]!, solo[i]!.images[0]!)));
        const sameInfotext = images.get(b)!.every((g, i) => g.infotexts[0] === solo[i]!.infotexts[0]);
        rows.push({
          size: `${size}x${size}`,
          batch: b,
          images: reqs.length,
          seconds: ms / 1000,
          imagesPerSecond: (reqs.length * 1000) / ms,
          perImage: ms / 1000 / reqs.length,
          vsBatch1: base / ms,
          maxDiff: diff,
          infotext: sameInfotext ? 'same' : 'DIFFERS',
        });
      }
    }
  } finally {
    await engine.close();
  }
  printTable(
    `dynamic batching, demo model, ${steps} steps ${sampler}, ${count} requests, median of ${rounds} round(s), provider ${provider}`,
    [
      { key: 'size', label: 'size' },
      { key: 'batch', label: 'batch', digits: 0 },
      { key: 'images', label: 'images', digits: 0 },
      { key: 'seconds', label: 'total s', digits: 2 },
      { key: 'perImage', label: 's/image', digits: 2 },
      { key: 'imagesPerSecond', label: 'images/s', digits: 3 },
      { key: 'vsBatch1', label: 'vs batch 1', digits: 2 },
      { key: 'maxDiff', label: 'max |px - solo|', digits: 0 },
      { key: 'infotext', label: 'infotext vs solo' },
    ],
    rows,
  );
  const file = writeResult({
    bench: 'batching',
    date: new Date().toISOString(),
    machine: machineInfo(provider),
    parameters: { sizes, steps, requests: count, batches, rounds, sampler, threads: threadsArg || null },
    rows,
    notes: ['batch 1 renders the requests one by one (renderBatch of one request is Engine.txt2img); vs batch 1 = batch-1 time / this time'],
  });
  console.log(`wrote ${file}`);
}

await main();
