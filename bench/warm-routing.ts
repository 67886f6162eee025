/**
 * Warm-model routing against queue order (FIFO by fair share), in one run: the real API and 4 worker processes,
 * 3 demo-size checkpoints in MODELS_DIR (the demo architecture with weights of their own seeds), each worker's
 * engine holding one model at a time (MODEL_CACHE_BYTES), and the same mixed stream of jobs naming them (seeded
 * draw, a fixed arrival interval) run twice: WARM_ROUTING=false, then WARM_ROUTING=true. Reports model loads
 * per 100 jobs (the workers' darkroom_worker_model_loads_total over the stream) and p50/p99 time to start (POST
 * accepted -> the worker that renders it starts it, BullMQ's timestamp -> processedOn), p50/p99 time to done
 * (-> finishedOn: a load shows here, not in the start), and routing's ratios.
 *
 *   npx tsx bench/warm-routing.ts [--jobs 80] [--workers 4] [--interval-ms 250] [--steps 4] [--size 64]
 *                                 [--wait-ms 5000] [--retry-ms 250]
 *
 * Needs Redis at REDIS_URL / 127.0.0.1:6379. Processes are the real services.
 */
import { Queue } from 'bullmq';
import { numberArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Row } from './support/report.js';
import { writeDemoSizeCheckpoint } from '../test/support/checkpoints.js';
import { startFarm, type Farm } from '../test/support/farm.js';

const argv = process.argv.slice(2);
const JOBS = numberArg(argv, 'jobs', 80);
const WORKERS = numberArg(argv, 'workers', 4);
const INTERVAL_MS = numberArg(argv, 'interval-ms', 250);
const STEPS = numberArg(argv, 'steps', 4);
const SIZE = numberArg(argv, 'size', 64);
const WAIT_MS = numberArg(argv, 'wait-ms', 5_000);
const RETRY_MS = numberArg(argv, 'retry-ms', 250);
const CHECKPOINTS = [['ckpt-a', 3101], ['ckpt-b', 3201], ['ckpt-c', 3301]] as const;
/** A demo-size model is held as about 35 MB (three times its file): one fits, a second evicts the first. */
const MODEL_CACHE_BYTES = 50 * 1024 ** 2;

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** The stream's checkpoints: a seeded draw (mulberry32), the same for both runs. */
function stream(n: number, seed: number): string[] {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: n }, () => CHECKPOINTS[Math.floor(next() * CHECKPOINTS.length)]![0]);
}

/**
 * One job; a connection the server closed as the request went out (keep-alive racing the arrival interval) is
 * retried under the same Idempotency-Key, so a request that did arrive is not queued twice.
 */
async function submit(farm: Farm, model: string, seed: number, key: string): Promise<string> {
  const body = { prompt: 'a lighthouse on a cliff', model, steps: STEPS, width: SIZE, height: SIZE, seed };
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await farm.request('POST', '/v1/txt2img', { body, headers: { 'idempotency-key': key } });
      if (r.status !== 202 && r.status !== 200) throw new Error(`submit: ${r.status} ${JSON.stringify(r.json)}`);
      return (r.json as { id: string }).id;
    } catch (e) {
      if (attempt >= 3 || !(e instanceof TypeError)) throw e;
    }
  }
}

async function finished(queue: Queue, ids: readonly string[]): Promise<{ timestamp: number; processedOn: number; finishedOn: number }[]> {
  const deadline = Date.now() + 1_800_000;
  while (Date.now() < deadline) {
    const jobs = await Promise.all(ids.map((id) => queue.getJob(id)));
    // A failed attempt that a retry made good leaves failedReason set on a completed job: only the state says failed.
    for (const j of jobs) if (j?.finishedOn && (await j.getState()) === 'failed') throw new Error(`job ${j.id} failed: ${j.failedReason}`);
    if (jobs.every((j) => j?.finishedOn)) return jobs.map((j) => ({ timestamp: j!.timestamp, processedOn: j!.processedOn!, finishedOn: j!.finishedOn! }));
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timed out waiting for the jobs to finish');
}

async function scrape(farm: Farm): Promise<{ loads: number; routedIdle: number; routedBusy: number }> {
  const out = { loads: 0, routedIdle: 0, routedBusy: 0 };
  for (const w of farm.workers) {
    const text = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
    const num = (re: RegExp): number => Number(re.exec(text)?.[1] ?? 0);
    out.loads += num(/^darkroom_worker_model_loads_total (\d+)/m);
    out.routedIdle += num(/^darkroom_worker_jobs_routed_away_total\{to="idle"\} (\d+)/m);
    out.routedBusy += num(/^darkroom_worker_jobs_routed_away_total\{to="busy"\} (\d+)/m);
  }
  return out;
}

async function run(routing: boolean, models: readonly string[]): Promise<Row> {
  const farm = await startFarm({
    workers: 0,
    env: {
      RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'warn', MODEL_CACHE_BYTES: String(MODEL_CACHE_BYTES),
      WARM_ROUTING: String(routing), WARM_ROUTING_WAIT_MS: String(WAIT_MS), WARM_ROUTING_RETRY_MS: String(RETRY_MS),
    },
  });
  const queue = new Queue('generate', { connection: farm.redis, prefix: farm.prefix });
  try {
    for (const [name, seed] of CHECKPOINTS) await writeDemoSizeCheckpoint(farm.env.MODELS_DIR!, name, seed);
    for (let i = 0; i < WORKERS; i++) await farm.startWorker();
    // Warm-up: every checkpoint's graphs compiled once into the shared cache, so a load is a load, not a compile.
    await finished(queue, await Promise.all(CHECKPOINTS.map(([name]) => submit(farm, name, 1, `warm-up-${name}`))));
    const before = await scrape(farm);
    const t0 = Date.now();
    const ids: string[] = [];
    for (const [i, model] of models.entries()) {
      const due = t0 + i * INTERVAL_MS;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      ids.push(await submit(farm, model, i + 2, `stream-${i}`));
    }
    const jobs = await finished(queue, ids);
    const after = await scrape(farm);
    const wall = (Math.max(...jobs.map((j) => j.finishedOn)) - t0) / 1000;
    const waits = jobs.map((j) => j.processedOn - j.timestamp);
    const loads = after.loads - before.loads;
    return {
      mode: routing ? 'warm routing' : 'FIFO (today)',
      jobs: jobs.length,
      loadsPer100: (loads / jobs.length) * 100,
      startP50: percentile(waits, 50),
      startP99: percentile(waits, 99),
      runMed: percentile(jobs.map((j) => j.finishedOn - j.processedOn), 50),
      doneP50: percentile(jobs.map((j) => j.finishedOn - j.timestamp), 50),
      doneP99: percentile(jobs.map((j) => j.finishedOn - j.timestamp), 99),
      wall,
      handedIdle: after.routedIdle - before.routedIdle,
      handedBusy: after.routedBusy - before.routedBusy,
    };
  } finally {
    await queue.close();
    await farm.stop();
  }
}

const models = stream(JOBS, 42);
const fifo = await run(false, models);
const warm = await run(true, models);
const ratio = (k: string): number => (warm[k] as number) / Math.max(1e-9, fifo[k] as number);
const rows: Row[] = [fifo, warm, {
  mode: 'ratio routing / FIFO', jobs: null, loadsPer100: ratio('loadsPer100'), startP50: ratio('startP50'), startP99: ratio('startP99'),
  runMed: ratio('runMed'), doneP50: ratio('doneP50'), doneP99: ratio('doneP99'), wall: ratio('wall'), handedIdle: null, handedBusy: null,
}];
printTable(
  `Warm routing vs FIFO: ${WORKERS} workers, ${CHECKPOINTS.length} demo-size checkpoints (one held per worker), ${JOBS} jobs every ${INTERVAL_MS} ms, ` +
    `${STEPS} steps ${SIZE}x${SIZE}; times in ms (wall s)`,
  [
    { key: 'mode', label: 'mode' },
    { key: 'jobs', label: 'jobs', digits: 0 },
    { key: 'loadsPer100', label: 'loads / 100 jobs', digits: 2 },
    { key: 'startP50', label: 'start p50', digits: 2 },
    { key: 'startP99', label: 'start p99', digits: 2 },
    { key: 'runMed', label: 'run med', digits: 2 },
    { key: 'doneP50', label: 'done p50', digits: 2 },
    { key: 'doneP99', label: 'done p99', digits: 2 },
    { key: 'wall', label: 'wall', digits: 2 },
    { key: 'handedIdle', label: 'handed to idle', digits: 0 },
    { key: 'handedBusy', label: 'handed while busy', digits: 0 },
  ],
  rows,
);
const file = writeResult({
  bench: 'warm-routing',
  date: new Date().toISOString(),
  machine: machineInfo('cpu'),
  parameters: { jobs: JOBS, workers: WORKERS, intervalMs: INTERVAL_MS, steps: STEPS, size: SIZE, waitMs: WAIT_MS, retryMs: RETRY_MS, modelCacheBytes: MODEL_CACHE_BYTES, checkpoints: CHECKPOINTS.length },
  rows,
  notes: [
    'Both runs get the same stream (seeded draw) on fresh farms, after one warm-up job per checkpoint (graphs compiled once).',
    'loads: jobs whose checkpoint the engine did not hold when the job started (darkroom_worker_model_loads_total).',
    'start: BullMQ timestamp -> processedOn of the claim that rendered it (after any hand-backs); done: timestamp -> finishedOn.',
  ],
});
console.log(`wrote ${file}`);
process.exit(0);
