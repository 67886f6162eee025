/**
 * ti_steps/ and hn_steps/: replays of A1111's own train_embedding / train_hypernetwork, micro-batch by
 * micro-batch, with the recorded captions, latents, timesteps and noise. For every optimizer step, from the
 * recorded parameters before it: the conditioning (TI), each micro-batch's loss, the accumulated gradient, the
 * clipping, and AdamW. AdamW runs as a chain over the recorded gradients (the oracle's advice, so that our own
 * gradient error does not compound) and is compared with every recorded parameter and the final optimizer state;
 * our own gradients are compared with the recorded ones separately.
 *
 * Tolerances (training README): conditioning and loss 5e-5 relative; gradients max|a-b| <= 1e-4 * max|ref|;
 * parameters after each step from the recorded gradient 1e-6 absolute (the README measured 3e-8); the optimizer
 * moments 1e-6 relative to their largest value.
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { loadModel, type StableDiffusionModel } from '../src/models/load.js';
import type { HypernetworkArchitecture } from '../src/networks/hypernetworks/hypernetwork.js';
import { pipelineModel } from '../src/pipeline/model.js';
import { encodeTexts } from '../src/pipeline/conditioning.js';
import type { PipelineModel } from '../src/pipeline/types.js';
import { toFloat32, type Float32Tensor, type HostTensor } from '../src/tensor.js';
import { parseEmphasisMode } from '../src/text/emphasis.js';
import { ClipTokenizer } from '../src/text/tokenizer.js';
import { adamwStep, newAdamWState, type AdamWState } from '../src/training/adamw.js';
import { clipGradients, type ClipGradMode } from '../src/training/clip-grad.js';
import { planLearnRates } from '../src/training/learn-schedule.js';
import { embeddingBatch, vectorGradient } from '../src/training/embedding-batch.js';
import { hypernetworkParams, paramFeeds, paramGradients, type HypernetworkParam } from '../src/training/hypernetwork-params.js';
import { EmbeddingObjective, HypernetworkObjective, type DiffusionBatch } from '../src/training/objective.js';
import { combine, elementwiseClose, scaledClose, type CaseResult, type Closeness } from './report.js';
import { findCheckpoint, findModelConfig, findVocabulary, type FixtureModel, type TrainingGroup } from './training-support.js';

const COND_RTOL = 5e-5;
const LOSS_RTOL = 5e-5;
const GRAD_TOL = 1e-4;
const PARAM_ATOL = 1e-6;
const STATE_TOL = 1e-6;

interface MicroStep {
  readonly index: number;
  readonly captions: readonly string[];
  readonly t: readonly number[];
  readonly loss: number;
  readonly step: number;
}

interface OptimizerStep {
  readonly step: number;
  readonly lr: number;
  readonly clip: { mode: ClipGradMode; value: number; total_norm?: number } | null;
  readonly micro: readonly number[];
  readonly loss_step: number;
}

interface StepsFixture {
  readonly id: string;
  readonly kind: 'textual_inversion' | 'hypernetwork';
  readonly model: FixtureModel;
  readonly train_args: {
    readonly learn_rate: string;
    readonly clip_grad_value: string;
    readonly steps: number;
    readonly gradient_step: number;
    readonly clip_grad_mode: ClipGradMode;
    readonly use_weight: boolean;
  };
  readonly resume?: { readonly of: string; readonly initial_step: number; readonly optimizer_state_loaded: boolean } | null;
  readonly options: { readonly CLIP_stop_at_last_layers?: number; readonly emphasis?: string; readonly comma_padding_backtrack?: number };
  readonly embedding?: { readonly name: string; readonly num_vectors_per_token: number; readonly initial_step?: number };
  readonly hypernetwork?: Record<string, unknown>;
  readonly dataset: { readonly gradient_step: number };
  readonly optimizer: { readonly lr: number; readonly betas: [number, number]; readonly eps: number; readonly weight_decay: number };
  readonly param_order: readonly string[];
  readonly micro_steps: readonly MicroStep[];
  readonly steps: readonly OptimizerStep[];
}

interface LoadedFixtureModel {
  readonly sd: StableDiffusionModel;
  readonly pipeline: PipelineModel;
}

type Tensors = ReadonlyMap<string, HostTensor>;

function tensor(tensors: Tensors, name: string): Float32Tensor {
  const t = tensors.get(name);
  if (!t) throw new Error(`missing tensor ${name}`);
  return toFloat32(t);
}

function relClose(a: number, ref: number, rtol: number): Closeness {
  const d = Math.abs(a - ref);
  const ok = d <= rtol * Math.abs(ref);
  return { maxAbs: d, maxRel: ref !== 0 ? d / Math.abs(ref) : d, failing: ok ? 0 : 1, ok };
}

/** The worst of several closeness figures under one label. */
function worst(all: readonly Closeness[]): Closeness {
  return all.reduce(
    (acc, c) => ({ maxAbs: Math.max(acc.maxAbs, c.maxAbs), maxRel: Math.max(acc.maxRel, c.maxRel), failing: acc.failing + c.failing, ok: acc.ok && c.ok }),
    { maxAbs: 0, maxRel: 0, failing: 0, ok: true },
  );
}

/** Per-step checks gathered over the run, each reported as the worst over all steps. */
class Checks {
  private readonly by = new Map<string, Closeness[]>();
  add(label: string, c: Closeness): void {
    const list = this.by.get(label) ?? [];
    list.push(c);
    this.by.set(label, list);
  }
  summary(): [string, Closeness][] {
    return [...this.by].map(([label, list]) => [label, worst(list)]);
  }
}

function microBatch(tensors: Tensors, i: number, weighted: boolean): DiffusionBatch {
  const t = tensors.get(`m${i}.t`);
  if (!t) throw new Error(`missing tensor m${i}.t`);
  const steps = Array.from(t.data as BigInt64Array, Number);
  return {
    latents: tensor(tensors, `m${i}.latents`),
    t: steps,
    noise: tensor(tensors, `m${i}.noise`),
    ...(weighted ? { weight: tensor(tensors, `m${i}.weight`) } : {}),
  };
}

/** The AdamW state a run starts from: zero, or (a resumed run) the state loaded from the .optim file. */
function initialState(fx: StepsFixture, tensors: Tensors, sizes: readonly number[], prefix: (name: string) => string): AdamWState {
  const state = newAdamWState(sizes, fx.steps[0]?.lr ?? fx.optimizer.lr, fx.optimizer.weight_decay);
  state.betas = [fx.optimizer.betas[0], fx.optimizer.betas[1]];
  state.eps = fx.optimizer.eps;
  fx.param_order.forEach((name, k) => {
    const m = tensors.get(`init.exp_avg${prefix(name)}`);
    if (!m) return;
    const p = state.params[k]!;
    p.expAvg = toFloat32(m).data.slice();
    p.expAvgSq = tensor(tensors, `init.exp_avg_sq${prefix(name)}`).data.slice();
    p.step = tensor(tensors, `init.optim_step${prefix(name)}`).data[0]!;
  });
  return state;
}

/**
 * The learn rate and clip value of every optimizer step, and how many steps run, from the schedule texts alone.
 * A resumed run whose optimizer state was loaded starts at the rate saved with that state: the previous run's
 * final rate, read from its fixture in the same folder.
 */
async function scheduleCheck(fx: StepsFixture, groupFolder: string): Promise<Closeness> {
  const clipping = fx.train_args.clip_grad_mode !== 'disabled';
  let optimizerLr: number | undefined;
  if (fx.resume?.optimizer_state_loaded) {
    const previous = JSON.parse(await readFile(join(groupFolder, `${fx.resume.of}.json`), 'utf8')) as StepsFixture;
    optimizerLr = previous.optimizer.lr;
  }
  const plan = planLearnRates({
    learnRate: fx.train_args.learn_rate,
    ...(clipping ? { clipGradValue: fx.train_args.clip_grad_value } : {}),
    maxSteps: fx.train_args.steps,
    curStep: fx.resume?.initial_step ?? fx.embedding?.initial_step ?? 0,
    gradientStep: fx.dataset.gradient_step,
    ...(optimizerLr !== undefined ? { optimizerLr } : {}),
  });
  let off = plan.optimizerSteps === fx.steps.length ? 0 : 1;
  let maxAbs = 0;
  fx.steps.forEach((s, k) => {
    const p = plan.steps[k];
    const d = p ? Math.abs(p.lr - s.lr) + (s.clip && p.clip ? Math.abs(p.clip.value - s.clip.value) : 0) : Infinity;
    if (p && p.step !== s.step) off++;
    if (d !== 0) off++;
    maxAbs = Math.max(maxAbs, d);
  });
  return { maxAbs, maxRel: maxAbs, failing: off, ok: off === 0 };
}

/** Steps shared by both kinds: gradient checks, clipping, AdamW over recorded gradients, final state. */
async function replay(
  fx: StepsFixture,
  groupFolder: string,
  tensors: Tensors,
  prefix: (name: string) => string,
  microGradients: (before: Float32Array[], micro: MicroStep, checks: Checks) => Promise<{ loss: number; grads: Float32Array[] }>,
): Promise<CaseResult> {
  const checks = new Checks();
  checks.add('schedule', await scheduleCheck(fx, groupFolder));
  const names = fx.param_order;
  // The parameters before training are always `init.<name>` (`init.vec` for an embedding); later tensors use the prefix.
  const init = names.map((n) => tensor(tensors, `init.${n}`).data);
  const state = initialState(fx, tensors, init.map((p) => p.length), prefix);
  const gs = fx.dataset.gradient_step;
  const f = Math.fround;
  const numericallyZero = new Set<string>();
  // Tensors are named by the optimizer step's absolute number (a resumed run starts past 0).
  for (const [index, step] of fx.steps.entries()) {
    const k = step.step;
    const previous = fx.steps[index - 1]?.step;
    const before = previous === undefined ? init.map((p) => p.slice()) : names.map((n) => tensor(tensors, `s${previous}.param${prefix(n)}`).data.slice());
    const acc = before.map((p) => new Float32Array(p.length));
    let lossStep = 0;
    for (const mi of step.micro) {
      const micro = fx.micro_steps[mi]!;
      const r = await microGradients(before, micro, checks);
      checks.add('loss', relClose(r.loss, micro.loss, LOSS_RTOL));
      lossStep = f(lossStep + f(r.loss / gs));
      r.grads.forEach((g, j) => {
        const a = acc[j]!;
        for (let i = 0; i < a.length; i++) a[i] = a[i]! + f(g[i]! / gs);
      });
    }
    checks.add('loss_step', relClose(lossStep, step.loss_step, LOSS_RTOL));
    const recordedPre = names.map((n) => tensors.get(`s${k}.grad_pre_clip${prefix(n)}`));
    const recorded = names.map((n) => tensor(tensors, `s${k}.grad${prefix(n)}`).data);
    const pre = recordedPre.every((t) => t) ? recordedPre.map((t) => toFloat32(t!).data) : recorded;
    const stepMax = Math.max(...pre.map(maxAbs));
    acc.forEach((a, j) => {
      // A tensor whose true gradient is zero (a key bias: softmax ignores a shift shared by all keys) carries only
      // rounding noise in both implementations; it is held to the step's gradient scale instead of its own.
      const own = maxAbs(pre[j]!);
      if (own < GRAD_TOL * stepMax) {
        numericallyZero.add(names[j]!);
        checks.add('grad', elementwiseClose(a, pre[j]!, GRAD_TOL * stepMax, 0));
      } else checks.add('grad', scaledClose(a, pre[j]!, GRAD_TOL));
    });
    if (step.clip) {
      const clipped = pre.map((g) => g.slice());
      const total = clipGradients(clipped, step.clip.mode, step.clip.value);
      if (step.clip.total_norm !== undefined && total !== undefined) checks.add('clip_norm', relClose(total, step.clip.total_norm, 1e-5));
      clipped.forEach((g, j) => checks.add('grad_clipped', scaledClose(g, recorded[j]!, 1e-6)));
    }
    state.lr = step.lr;
    const params = before.map((p) => p.slice());
    adamwStep(params, recorded.map((g) => g.slice()), state);
    params.forEach((p, j) => checks.add('param', elementwiseClose(p, tensor(tensors, `s${k}.param${prefix(names[j]!)}`).data, PARAM_ATOL, 0)));
  }
  names.forEach((n, j) => {
    const st = state.params[j]!;
    checks.add('final.exp_avg', scaledClose(st.expAvg, tensor(tensors, `final.exp_avg${prefix(n)}`).data, STATE_TOL));
    checks.add('final.exp_avg_sq', scaledClose(st.expAvgSq, tensor(tensors, `final.exp_avg_sq${prefix(n)}`).data, STATE_TOL));
    checks.add('final.step', relClose(st.step, tensor(tensors, `final.step${prefix(n)}`).data[0]!, 0));
  });
  const zero = numericallyZero.size ? `; gradient numerically zero, held to the step's scale: ${[...numericallyZero].join(', ')}` : '';
  return combine(fx.id, checks.summary(), `${fx.steps.length} steps, ${fx.micro_steps.length} micro-batches${zero}`);
}

async function embeddingCase(fx: StepsFixture, groupFolder: string, tensors: Tensors, m: LoadedFixtureModel): Promise<CaseResult> {
  const emb = fx.embedding!;
  const objective = await EmbeddingObjective.create(m.sd, {
    clipSkip: fx.options.CLIP_stop_at_last_layers ?? 1,
    emphasis: parseEmphasisMode(fx.options.emphasis ?? 'Original'),
    threads: 1,
  });
  const vectors = emb.num_vectors_per_token;
  try {
    return await replay(fx, groupFolder, tensors, () => '', async (before, micro, checks) => {
      const width = m.sd.config.text.width;
      const vec: Float32Tensor = { dtype: 'float32', shape: [vectors, width], data: before[0]! };
      const batch = embeddingBatch(micro.captions, { name: emb.name, vec }, {
        tokenizer: m.pipeline.tokenizer,
        table: m.sd.textEncoder,
        emphasis: parseEmphasisMode(fx.options.emphasis ?? 'Original'),
        commaPaddingBacktrack: fx.options.comma_padding_backtrack ?? 20,
      });
      const r = await objective.evaluate(batch.inputsEmbeds, batch.multipliers, batch.chunks, microBatch(tensors, micro.index, fx.train_args.use_weight));
      checks.add('cond', elementwiseClose(r.cond.data, tensor(tensors, `m${micro.index}.cond`).data, COND_RTOL * maxAbs(tensor(tensors, `m${micro.index}.cond`).data), COND_RTOL));
      return { loss: r.loss, grads: [vectorGradient(r.gradInputsEmbeds, batch, vectors)] };
    });
  } finally {
    await objective.release();
  }
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

async function hypernetworkCase(fx: StepsFixture, groupFolder: string, tensors: Tensors, m: LoadedFixtureModel): Promise<CaseResult> {
  const arch = fixtureArchitecture(fx.hypernetwork!);
  const params = hypernetworkParams(arch);
  const order = params.map((p) => p.name);
  if (order.join(',') !== fx.param_order.join(',')) {
    return { name: fx.id, status: 'fail', detail: `parameter order differs: ours ${order.join(',')}; A1111 ${fx.param_order.join(',')}` };
  }
  const objective = await HypernetworkObjective.create(m.sd, arch, { threads: 1 });
  const ctx = textContext(m, fx);
  const prefix = (n: string): string => `.${n}`;
  try {
    return await replay(fx, groupFolder, tensors, prefix, async (before, micro, checks) => {
      const recordedCond = tensor(tensors, `m${micro.index}.cond`);
      // A1111 encodes each entry's caption on its own when it builds the dataset, so emphasis normalises per caption.
      const perCaption = await Promise.all(micro.captions.map((c) => encodeTexts([c], ctx)));
      const cond = { ...recordedCond, data: Float32Array.from(perCaption.flatMap((c) => Array.from(c.data))) };
      checks.add('cond', elementwiseClose(cond.data, recordedCond.data, COND_RTOL * maxAbs(recordedCond.data), COND_RTOL));
      const r = await objective.evaluate(recordedCond, paramFeeds(params as HypernetworkParam[], before), microBatch(tensors, micro.index, fx.train_args.use_weight));
      return { loss: r.loss, grads: paramGradients(params, r.grads) };
    });
  } finally {
    await objective.release();
  }
}

/** The fixture's `hypernetwork` fields (A1111's create_hypernetwork arguments) as an architecture. */
function fixtureArchitecture(h: Record<string, unknown>): HypernetworkArchitecture {
  const numbers = (v: unknown, what: string): number[] => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number')) throw new Error(`hypernetwork.${what} is not a list of numbers`);
    return v as number[];
  };
  return {
    sizes: numbers(h.sizes, 'sizes'),
    layerStructure: numbers(h.layer_structure, 'layer_structure'),
    activationFunc: typeof h.activation_func === 'string' ? h.activation_func : null,
    addLayerNorm: h.add_layer_norm === true,
    activateOutput: h.activate_output === true,
    dropoutStructure: numbers(h.dropout_structure ?? [], 'dropout_structure'),
  };
}

function textContext(m: LoadedFixtureModel, fx: StepsFixture): Parameters<typeof encodeTexts>[1] {
  return {
    model: m.pipeline,
    tokenizer: m.pipeline.tokenizer,
    clipSkip: fx.options.CLIP_stop_at_last_layers ?? 1,
    emphasis: parseEmphasisMode(fx.options.emphasis ?? 'Original'),
    commaPaddingBacktrack: fx.options.comma_padding_backtrack ?? 20,
    generationParams: new Map(),
  };
}

export const runGroup: TrainingGroup = async function* (groupFolder, trainingFolder) {
  const files = readdirSync(groupFolder).filter((f) => f.endsWith('.json')).sort();
  const models = new Map<string, Promise<LoadedFixtureModel>>();
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-parity-training-'));
  const load = (model: FixtureModel): Promise<LoadedFixtureModel> => {
    let p = models.get(model.checkpoint_sha256);
    if (!p) {
      p = (async () => {
        const checkpoint = await findCheckpoint(trainingFolder, model);
        const config = findModelConfig(checkpoint);
        const sd = await loadModel({ checkpoint, ...(config ? { config } : {}), cacheDir, threads: 1 });
        return { sd, pipeline: pipelineModel(sd, ClipTokenizer.fromDirectory(findVocabulary(trainingFolder, checkpoint))) };
      })();
      models.set(model.checkpoint_sha256, p);
    }
    return p;
  };
  try {
    for (const file of files) {
      const id = file.replace(/\.json$/, '');
      try {
        const fx = JSON.parse(await readFile(join(groupFolder, file), 'utf8')) as StepsFixture;
        const tensors = (await readSafetensorsFile(join(groupFolder, `${id}.safetensors`))).tensors;
        const m = await load(fx.model);
        if (fx.kind === 'textual_inversion') yield await embeddingCase(fx, groupFolder, tensors, m);
        else if (fx.kind === 'hypernetwork') yield await hypernetworkCase(fx, groupFolder, tensors, m);
        else yield { name: id, status: 'skip', detail: `unknown kind ${String(fx.kind)}` };
      } catch (e) {
        yield { name: id, status: 'fail', detail: e instanceof Error ? e.message : String(e) };
      }
    }
  } finally {
    for (const p of models.values()) await (await p.catch(() => undefined))?.sd.release();
    await rm(cacheDir, { recursive: true, force: true });
  }
};
