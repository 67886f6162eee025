/**
 * LoRA per job: what it costs a UNet step and a switch of networks, on the full-size SD 1.5 UNet (seeded random
 * weights, real config, 512x512, batch 2, float32) and on the demo model.
 *
 * Rows, per model: the plain graph (weights as initializers, what a job without LoRA runs), and the weight-input
 * graph that LoRA jobs run (networks/lora/runner.ts) fed the merged weights of one and of three rank-32 kohya
 * LoRAs on every attention, feed-forward and projection linear. `switch s` is what a job pays when its
 * networks differ from the previous job's: the merge (mergeLoras) plus the recording build that derives the
 * feeds. Step times are medians of `--runs`, the graphs run in turn within each round (the host is shared), and
 * ratios against the plain graph of the same run. Both sessions are open at once: the full-size run holds about
 * three copies of the 3.4 GB of weights (plain session, LoRA feeds, builder), so it needs some 12 GB free.
 *
 *   npx tsx bench/lora-step.ts [--models sd15,demo] [--runs 3] [--threads N]
 */
import { repoRoot } from '../packages/core/parity/oracle.js';
import { UNET_PREFIX, type TensorIndex, type UNetConfig } from '../packages/core/src/models/config.js';
import { readComponent, openCheckpoint } from '../packages/core/src/models/checkpoint.js';
import { inferModelConfig, overridesFromJson } from '../packages/core/src/models/config.js';
import { unetBuilder } from '../packages/core/src/models/graphs.js';
import { bindLora, loadLoraFile, loraModuleTable, mergeLoras, type LoraApplication, type LoraModuleTable } from '../packages/core/src/networks/lora/index.js';
import { buildUnet, WeightInputBuilder } from '../packages/core/src/networks/lora/runner.js';
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

interface Subject {
  readonly name: string;
  readonly unet: UNetConfig;
  /** UNet tensor names (checkpoint keys) and shapes. */
  readonly index: TensorIndex;
  /** A UNet weight by its name relative to the UNet prefix (generated on demand for the full-size model). */
  readonly weight: (relative: string) => Float32Tensor | undefined;
  readonly shape: { batch: number; height: number; width: number; contextLength: number };
  readonly contextDim: number;
}

/**
 * A read-only map over a subject's weights, by checkpoint key (`prefix` = UNET_PREFIX) or by the relative key
 * the builders take (`prefix` = ''), with `patched` tensors (checkpoint keys) in place of the originals.
 */
class WeightView implements ReadonlyMap<string, Float32Tensor> {
  constructor(
    private readonly sub: Subject,
    private readonly prefix: string,
    private readonly patched: ReadonlyMap<string, Float32Tensor> = new Map(),
  ) {}
  private full(k: string): string {
    return this.prefix ? k : UNET_PREFIX + k;
  }
  get size(): number {
    return this.sub.index.size;
  }
  has(k: string): boolean {
    return this.sub.index.has(this.full(k));
  }
  get(k: string): Float32Tensor | undefined {
    const key = this.full(k);
    if (!this.sub.index.has(key)) return undefined;
    return this.patched.get(key) ?? this.sub.weight(key.slice(UNET_PREFIX.length));
  }
  *keys(): MapIterator<string> {
    for (const k of this.sub.index.keys()) yield this.prefix ? k : k.slice(UNET_PREFIX.length);
  }
  *entries(): MapIterator<[string, Float32Tensor]> {
    for (const k of this.keys()) yield [k, this.get(k)!];
  }
  *values(): MapIterator<Float32Tensor> {
    for (const k of this.keys()) yield this.get(k)!;
  }
  [Symbol.iterator](): MapIterator<[string, Float32Tensor]> {
    return this.entries();
  }
  forEach(fn: (v: Float32Tensor, k: string, m: ReadonlyMap<string, Float32Tensor>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
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
      out.push({ name: 'SD 1.5 (full size)', unet: spec.unet, index, weight: (k) => rw.get(k), shape, contextDim: spec.unet.contextDim });
    } else if (m === 'demo') {
      const demo = await ensureDemoModel(repoRoot);
      const src = await openCheckpoint(demo.checkpoint);
      try {
        const config = inferModelConfig(src.index, overridesFromJson(demo.config));
        const weights = await readComponent(src, UNET_PREFIX);
        const index: TensorIndex = new Map([...weights].map(([k, t]) => [UNET_PREFIX + k, { dtype: 'float32' as const, shape: t.shape }]));
        out.push({ name: 'demo', unet: config.unet, index, weight: (k) => weights.get(k), shape, contextDim: config.unet.contextDim });
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

  const plain = await openSession(unetBuilder(new WeightView(sub, ''), sub.unet, { ...sub.shape }).toModel({ externalDataAboveBytes: 64 * 1024 }));
  const lora1 = await kohyaLora(table, 32, 1);
  const sets = [[lora1], [lora1, await kohyaLora(table, 32, 2), await kohyaLora(table, 32, 3)]];
  let graph: ReturnType<WeightInputBuilder['toModel']> | undefined;
  const feeds: Array<{ count: number; switchS: number; feeds: Record<string, HostTensor> }> = [];
  for (const apps of sets) {
    const t0 = nowMs();
    const merged = mergeLoras(new WeightView(sub, UNET_PREFIX), table, apps);
    const b = new WeightInputBuilder('unet_lora');
    buildUnet(b, new WeightView(sub, '', merged.weights), sub.unet, sub.shape);
    const switchS = (nowMs() - t0) / 1000;
    graph ??= b.toModel({ externalDataAboveBytes: 64 * 1024 });
    feeds.push({ count: apps.length, switchS, feeds: { ...Object.fromEntries(b.captured), ...inputs } });
  }
  const lora = await openSession(graph!);
  try {
    const [plainMs, ...loraMs] = await interleavedMs([[plain.session, inputs], ...feeds.map((f) => [lora.session, f.feeds] as const)]);
    rows.push({ model: sub.name, graph: 'plain (no LoRA)', networks: 0, 'switch s': null, 'session s': plain.sessionS, 'step ms': plainMs!, 'vs plain': 1 });
    feeds.forEach((f, i) =>
      rows.push({
        model: sub.name,
        graph: 'weight inputs (LoRA)',
        networks: f.count,
        'switch s': f.switchS,
        'session s': lora.sessionS,
        'step ms': loraMs[i]!,
        'vs plain': loraMs[i]! / plainMs!,
      }),
    );
  } finally {
    await plain.session.release();
    await lora.session.release();
  }
}

const columns = [
  { key: 'model', label: 'model' },
  { key: 'graph', label: 'graph' },
  { key: 'networks', label: 'rank-32 LoRAs', digits: 0 },
  { key: 'switch s', label: 'switch s', digits: 2 },
  { key: 'session s', label: 'session s', digits: 2 },
  { key: 'step ms', label: 'step ms', digits: 1 },
  { key: 'vs plain', label: 'vs plain', digits: 3 },
];
printTable('LoRA: UNet step and switch cost', columns, rows);
writeResult({ bench: 'lora-step', date: new Date().toISOString(), machine: machineInfo('cpu'), parameters: { models, runs, threads }, rows });
