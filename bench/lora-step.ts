/**
 * LoRA per job: what it costs a UNet step and a switch of networks, on the full-size SD 1.5 UNet (seeded random
 * weights, real config, 512x512, batch 2, float32) and on the demo model.
 *
 * Rows, per model: the plain graph (weights as initializers, what a job without LoRA runs), and the weight-input
 * graph that LoRA jobs run (networks/lora/runner.ts) fed the merged weights of one and of three rank-32 kohya
 * LoRAs on every attention, feed-forward and projection linear. `switch s` is what a job pays when its
 * networks differ from the previous job's, as the runner does it: the merge of the targeted layers
 * (mergeLoras) plus the feeds of the changed tensors derived through the feed plan recorded once per graph;
 * `merge s` and `feeds s` split it, and `rebuild s` is what deriving the feeds by a recording builder run over
 * the merged weights (the earlier way) costs in the same run, for the ratio. Step times are medians of `--runs`,
 * the graphs run in turn within each round (the host is shared), and ratios against the plain graph of the same
 * run. `--switch-only` measures the switch alone (no sessions, no steps). The full-size run holds the weights,
 * the plan's transposed copies, the merged layers and, without `--switch-only`, the plain session's copy: some
 * 12 GB.
 *
 *   npx tsx bench/lora-step.ts [--models sd15,demo] [--runs 3] [--threads N] [--switch-only]
 */
import { repoRoot } from '../packages/core/parity/oracle.js';
import { UNET_PREFIX, type TensorIndex, type UNetConfig } from '../packages/core/src/model-files/config.js';
import { readComponent, openCheckpoint } from '../packages/core/src/model-files/checkpoint.js';
import { inferModelConfig, overridesFromJson } from '../packages/core/src/model-files/config.js';
import { unetBuilder } from '../packages/core/src/models/graphs.js';
import { bindLora, F64Scratch, loadLoraFile, loraModuleTable, mergeLoras, type LoraApplication, type LoraModuleTable } from '../packages/core/src/networks/lora/index.js';
import { buildUnet, feedPlan, planFeeds, WeightInputBuilder } from '../packages/core/src/networks/lora/runner.js';
import { writeSafetensors } from '../packages/core/src/formats/safetensors.js';
import { ensureDemoModel } from '../packages/core/src/pipeline/demo-model.js';
import { createSession, type EngineSession } from '../packages/core/src/runtime/session.js';
import { float32, type Float32Tensor, type HostTensor } from '../packages/core/src/tensor.js';
import { listArg, numberArg } from './support/args.js';
import { fullsizeSpec, RandomWeights } from './support/fullsize-model.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Row } from './support/report.js';
import { median, nowMs } from './support/stats.js';

const argv = process.argv.slice(2);
const models = listArg(argv, 'models', ['sd15', 'demo']);
const runs = numberArg(argv, 'runs', 3);
const threads = numberArg(argv, 'threads', 0);
const switchOnly = argv.includes('--switch-only');

interface Subject {
  readonly name: string;
  readonly unet: UNetConfig;
  /** UNet tensor names (checkpoint keys) and shapes. */
  readonly index: TensorIndex;
  /** The UNet weights by checkpoint key (held, as a LoRA runner holds them). */
  readonly weights: ReadonlyMap<string, Float32Tensor>;
  readonly shape: { batch: number; height: number; width: number; contextLength: number };
  readonly contextDim: number;
}

/** The weights by the relative keys the builders take, with `patched` tensors (checkpoint keys) in place. */
function relative(weights: ReadonlyMap<string, Float32Tensor>, patched: ReadonlyMap<string, Float32Tensor> = new Map()): Map<string, Float32Tensor> {
  const out = new Map<string, Float32Tensor>();
  for (const [k, t] of weights) out.set(k.slice(UNET_PREFIX.length), patched.get(k) ?? t);
  return out;
}

/** Checkpoint keys to the relative keys the plan goes by (it was recorded with the builder's names). */
function relativeKeys(m: ReadonlyMap<string, Float32Tensor>): Map<string, Float32Tensor> {
  return new Map([...m].map(([k, t]) => [k.slice(UNET_PREFIX.length), t]));
}

/** A rank-`rank` kohya LoRA on every attention, feed-forward and projection linear of the UNet. */
async function kohyaLora(table: LoraModuleTable, rank: number, seed: number): Promise<LoraApplication> {
  let s = seed >>> 0;
  const rnd = (): number => ((s = (Math.imul(1664525, s) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.02;
  const tensors = new Map<string, HostTensor>();
  for (const t of table.targets.values()) {
    if (t.component !== 'unet' || !t.shape || !/(attn[12]_to_(q|k|v|out_0)|ff_net_(0_proj|2)|proj_(in|out))$/.test(t.key)) continue;
    const [out, inp] = t.shape as [number, number];
    const key = `lora_unet_${t.key.slice('diffusion_model_'.length)}`;
    tensors.set(`${key}.lora_down.weight`, float32(t.shape.length === 4 ? [rank, inp, 1, 1] : [rank, inp], Float32Array.from({ length: rank * inp }, rnd)));
    tensors.set(`${key}.lora_up.weight`, float32(t.shape.length === 4 ? [out, rank, 1, 1] : [out, rank], Float32Array.from({ length: rank * out }, rnd)));
    tensors.set(`${key}.alpha`, float32([], Float32Array.of(rank / 2)));
  }
  const file = await loadLoraFile(writeSafetensors(tensors), `bench${seed}.safetensors`);
  return { name: file.name, network: bindLora(file, table), te: 1, unet: 0.8, dyn: null };
}

async function openSession(model: Parameters<typeof createSession>[0]): Promise<{ session: EngineSession; sessionS: number }> {
  const t0 = nowMs();
  const session = await createSession(model, threads ? { threads } : {});
  return { session, sessionS: (nowMs() - t0) / 1000 };
}

/**
 * Median ms per run of each (session, feeds) pair, the pairs taken in turn within every round so that the load
 * other processes put on the host weighs on all of them alike; one warm-up round first.
 */
async function interleavedMs(pairs: ReadonlyArray<readonly [EngineSession, Record<string, HostTensor>]>): Promise<number[]> {
  for (const [s, f] of pairs) await s.run(f);
  const times = pairs.map((): number[] => []);
  for (let i = 0; i < runs; i++) {
    for (const [j, [s, f]] of pairs.entries()) {
      const t = nowMs();
      await s.run(f);
      times[j]!.push(nowMs() - t);
    }
  }
  return times.map(median);
}

async function subjects(): Promise<Subject[]> {
  const out: Subject[] = [];
  const shape = { batch: 2, height: 64, width: 64, contextLength: 77 };
  for (const m of models) {
    if (m === 'sd15') {
      const spec = fullsizeSpec('sd15');
      const rw = new RandomWeights(spec.tensors, 1);
      const index: TensorIndex = new Map(spec.tensors.map(([k, sh]) => [UNET_PREFIX + k, { dtype: 'float32' as const, shape: sh }]));
      const weights = new Map(spec.tensors.map(([k]) => [UNET_PREFIX + k, rw.get(k)!]));
      out.push({ name: 'SD 1.5 (full size)', unet: spec.unet, index, weights, shape, contextDim: spec.unet.contextDim });
    } else if (m === 'demo') {
      const demo = await ensureDemoModel(repoRoot);
      const src = await openCheckpoint(demo.checkpoint);
      try {
        const config = inferModelConfig(src.index, overridesFromJson(demo.config));
        const weights = await readComponent(src, UNET_PREFIX);
        const index: TensorIndex = new Map([...weights].map(([k, t]) => [UNET_PREFIX + k, { dtype: 'float32' as const, shape: t.shape }]));
        const full = new Map([...weights].map(([k, t]) => [UNET_PREFIX + k, t]));
        out.push({ name: 'demo', unet: config.unet, index, weights: full, shape, contextDim: config.unet.contextDim });
      } finally {
        await src.close();
      }
    }
  }
  return out;
}

const rows: Row[] = [];
for (const sub of await subjects()) {
  const table = loraModuleTable(sub.index, 'sd1');
  const { batch, height, width, contextLength } = sub.shape;
  const inputs: Record<string, HostTensor> = {
    x: float32([batch, sub.unet.inChannels, height, width], Float32Array.from({ length: batch * sub.unet.inChannels * height * width }, (_, i) => Math.sin(i))),
    t: float32([batch], Float32Array.from({ length: batch }, () => 500)),
    context_k: float32([batch, contextLength, sub.contextDim], Float32Array.from({ length: batch * contextLength * sub.contextDim }, (_, i) => Math.cos(i) * 0.5)),
  };
  inputs.context_v = inputs.context_k!;

  const lora1 = await kohyaLora(table, 32, 1);
  const sets = [[lora1], [lora1, await kohyaLora(table, 32, 2), await kohyaLora(table, 32, 3)]];
  // Once per graph: the recording run over the checkpoint's own weights gives the graph and its feed plan.
  let t0 = nowMs();
  const recorder = new WeightInputBuilder('unet_lora');
  buildUnet(recorder, relative(sub.weights), sub.unet, sub.shape);
  const plan = feedPlan(recorder, '');
  const planS = (nowMs() - t0) / 1000;
  const feeds: Array<{ count: number; mergeS: number; feedsS: number; rebuildS: number; feeds: Record<string, HostTensor> }> = [];
  const scratch = new F64Scratch(); // kept from one switch to the next, as the runner keeps it
  for (const apps of sets) {
    t0 = nowMs();
    const merged = mergeLoras(sub.weights, table, apps, scratch);
    const mergeS = (nowMs() - t0) / 1000;
    t0 = nowMs();
    const derived = planFeeds(plan, relativeKeys(merged.weights));
    const feedsS = (nowMs() - t0) / 1000;
    // The earlier way, for the ratio: a builder run over the whole merged model.
    t0 = nowMs();
    const rebuilt = new WeightInputBuilder('unet_lora');
    buildUnet(rebuilt, relative(sub.weights, merged.weights), sub.unet, sub.shape);
    const rebuildS = (nowMs() - t0) / 1000;
    feeds.push({ count: apps.length, mergeS, feedsS, rebuildS, feeds: { ...Object.fromEntries(derived), ...inputs } });
  }
  const switchRow = (f: (typeof feeds)[number]): Row => ({
    model: sub.name,
    graph: 'weight inputs (LoRA)',
    networks: f.count,
    'plan s': planS,
    'merge s': f.mergeS,
    'feeds s': f.feedsS,
    'switch s': f.mergeS + f.feedsS,
    'rebuild s': f.rebuildS,
    'switch vs before': (f.mergeS + f.feedsS) / (f.mergeS + f.rebuildS),
  });
  if (switchOnly) {
    for (const f of feeds) rows.push(switchRow(f));
    continue;
  }
  const plain = await openSession(unetBuilder(relative(sub.weights), sub.unet, { ...sub.shape }).toModel({ externalDataAboveBytes: 64 * 1024 }));
  const lora = await openSession(recorder.toModel({ externalDataAboveBytes: 64 * 1024 }));
  try {
    const [plainMs, ...loraMs] = await interleavedMs([[plain.session, inputs], ...feeds.map((f) => [lora.session, f.feeds] as const)]);
    rows.push({ model: sub.name, graph: 'plain (no LoRA)', networks: 0, 'session s': plain.sessionS, 'step ms': plainMs!, 'vs plain': 1 });
    feeds.forEach((f, i) => rows.push({ ...switchRow(f), 'session s': lora.sessionS, 'step ms': loraMs[i]!, 'vs plain': loraMs[i]! / plainMs! }));
  } finally {
    await plain.session.release();
    await lora.session.release();
  }
}

const columns = [
  { key: 'model', label: 'model' },
  { key: 'graph', label: 'graph' },
  { key: 'networks', label: 'rank-32 LoRAs', digits: 0 },
  { key: 'plan s', label: 'plan s (once)', digits: 2 },
  { key: 'merge s', label: 'merge s', digits: 2 },
  { key: 'feeds s', label: 'feeds s', digits: 2 },
  { key: 'switch s', label: 'switch s', digits: 2 },
  { key: 'rebuild s', label: 'rebuild s (before)', digits: 2 },
  { key: 'switch vs before', label: 'switch vs before', digits: 3 },
  { key: 'session s', label: 'session s', digits: 2 },
  { key: 'step ms', label: 'step ms', digits: 1 },
  { key: 'vs plain', label: 'vs plain', digits: 3 },
];
printTable('LoRA: UNet step and switch cost', columns, rows);
writeResult({ bench: 'lora-step', date: new Date().toISOString(), machine: machineInfo('cpu'), parameters: { models, runs, threads, switchOnly }, rows });
