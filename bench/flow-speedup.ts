/**
 * Fan-out speed-up: the wall time of one 4x4 X/Y plot (16 cells of 20 sampler steps each, seeds x CFG scales) run
 * as a flow through the real API, Redis and worker processes, with 1, 2 and 4 workers, and its speed-up over one
 * worker (the goal is at least 0.9·N where the host has the cores for N workers).
 *
 *   npm run bench -- flow-speedup -- --workers 1,2,4 --steps 20 --size 64 [--threads-per-worker default,1]
 *
 * Needs Redis at REDIS_URL / 127.0.0.1:6379 (scripts/ensure-redis.sh). Each worker process runs the tiny demo model
 * on its own onnxruntime session, so the figure says how well cells spread; on a host with fewer cores than
 * workers they contend for the same cores and the speed-up is bounded by the cores, not by the farm.
 *
 * --threads-per-worker sets each worker's ORT_INTRA_OP_THREADS ("default": onnxruntime's own, one thread per
 * physical core). By default every worker uses every core, so one worker already has the whole CPU and a second
 * one only contends; with 1 thread each, N workers on N cores stand for N devices. Each setting is measured with
 * every worker count, and its speed-up is against its own 1-worker run in the same invocation.
 */
import { cpus } from 'node:os';
import { listArg, numberArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Row } from './support/report.js';
import { startFarm, waitFor, type Farm } from '../test/support/farm.js';

const argv = process.argv.slice(2);
const WORKERS = listArg(argv, 'workers', ['1', '2', '4']).map(Number);
const STEPS = numberArg(argv, 'steps', 20);
const SIZE = numberArg(argv, 'size', 64);
const THREADS = listArg(argv, 'threads-per-worker', ['default']).map((t) => (t === 'default' ? null : Number(t)));
for (const t of THREADS) if (t !== null && !(Number.isInteger(t) && t >= 1)) throw new RangeError(`--threads-per-worker takes "default" or integers of at least 1, got ${t}`);
const BASE = { prompt: 'a lighthouse on a cliff, stormy sky', steps: STEPS, width: SIZE, height: SIZE, sampler_name: 'Euler a', seed: 1 };
// X: four seeds, Y: four CFG scales (A1111's script_args order: type, values, dropdown for x, y, z, ...).
const PLOT = { name: 'x/y/z plot', args: ['Seed', '1-4', [], 'CFG Scale', '4,6,8,10', []] };

interface FlowJson {
  state: string;
  created_at: string;
  finished_at: string | null;
  children: { started_at: string | null; finished_at: string | null }[];
  error: unknown;
}

async function runFlow(farm: Farm, body: object): Promise<FlowJson> {
  const r = await farm.request('POST', '/v1/flows', { body });
  if (r.status !== 202) throw new Error(`submit: ${r.status} ${JSON.stringify(r.json)}`);
  const id = (r.json as { id: string }).id;
  const done = await waitFor(`flow ${id}`, async () => {
    const v = (await farm.request('GET', `/v1/flows/${id}`)).json as FlowJson;
    return v.state === 'completed' || v.state === 'failed' || v.state === 'cancelled' ? v : null;
  }, 3_600_000, 50);
  if (done.state !== 'completed') throw new Error(`flow ${id} ${done.state}: ${JSON.stringify(done.error)}`);
  return done;
}

async function measure(workers: number, threads: number | null): Promise<Row> {
  const env: Record<string, string> = { RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'warn', ...(threads !== null ? { ORT_INTRA_OP_THREADS: String(threads) } : {}) };
  const farm = await startFarm({ workers, env });
  try {
    // Warm-up: enough one-step cells that every worker has loaded the model and built its graphs.
    await runFlow(farm, { children: Array.from({ length: workers * 2 }, (_, i) => ({ ...BASE, steps: 1, seed: i })) });
    const flow = await runFlow(farm, { script: PLOT, base: BASE });
    const wall = (Date.parse(flow.finished_at!) - Date.parse(flow.created_at)) / 1000;
    const cells = flow.children.map((c) => (Date.parse(c.finished_at!) - Date.parse(c.started_at!)) / 1000);
    return { threads: threads ?? 'default', workers, cells: cells.length, wallS: wall, cellMedS: [...cells].sort((a, b) => a - b)[Math.floor(cells.length / 2)]!, cellSumS: cells.reduce((a, b) => a + b, 0) };
  } finally {
    await farm.stop();
  }
}

const rows: Row[] = [];
for (const threads of THREADS) {
  const measured: Row[] = [];
  for (const n of WORKERS) measured.push(await measure(n, threads));
  // Each thread setting against its own 1-worker run.
  const base = measured.find((r) => r.workers === 1) ?? measured[0]!;
  for (const r of measured) {
    const speedup = Number(base.wallS) / Number(r.wallS);
    rows.push({ ...r, speedup, efficiency: speedup / Number(r.workers) });
  }
}
printTable(`4x4 X/Y plot as a flow (tiny model, ${STEPS} steps, ${SIZE}x${SIZE}, ${cpus().length} cores)`, [
  { key: 'threads', label: 'threads/worker' },
  { key: 'workers', label: 'workers', digits: 0 },
  { key: 'cells', label: 'cells', digits: 0 },
  { key: 'wallS', label: 'wall s', digits: 2 },
  { key: 'cellMedS', label: 'cell med s', digits: 2 },
  { key: 'cellSumS', label: 'cells sum s', digits: 2 },
  { key: 'speedup', label: 'speed-up', digits: 2 },
  { key: 'efficiency', label: 'speed-up/N', digits: 2 },
], rows);
const file = writeResult({
  bench: 'flow-speedup',
  date: new Date().toISOString(),
  machine: machineInfo('cpu'),
  parameters: { workers: WORKERS, steps: STEPS, size: SIZE, threadsPerWorker: THREADS.map((t) => t ?? 'default'), plot: PLOT },
  rows,
  notes: [
    'wall: flow accepted -> flow completed (the parent composed the labelled grid), after a warm-up flow on the same farm.',
    'cell med/sum: a child job from its start to its end on a worker; sum / wall is the parallelism reached.',
    'Worker processes share the host CPU; with more workers than cores they contend and the speed-up is bounded by the cores.',
    'threads/worker: ORT_INTRA_OP_THREADS of each worker (default: onnxruntime\'s, one per physical core); speed-up is against the 1-worker run of the same setting.',
  ],
});
console.log(`wrote ${file}`);
process.exit(0);
