/**
 * parity:model — every case of the model oracle (`cases.json`): CLIP text encoder, UNet, VAE and the two
 * gradient cases, on the tiny SD1/SD2 checkpoints loaded from their single-file checkpoints through
 * `loadModel` (the production path), plus diagnostic graphs for the intermediate outputs the oracle stores
 * (hidden states, timestep embeddings, VAE moments).
 *
 * Tolerances (oracle README): forward outputs elementwise |a-b| <= 5e-5 + 5e-5*|ref|; gradients
 * max|a-b| <= 5e-5 * max|ref| per tensor; losses within 1e-5 relative.
 *
 * `unet-hypernet` cases are run by `./model-hypernet.ts`.
 *
 * A model whose checkpoint or config the folder lacks is one skipped line (its cases are not run), and a case
 * whose files are absent is skipped with the reason; the other models and cases are still checked.
 *
 * `DARKROOM_ATTENTION` builds every graph with that attention variant, the gradient cases included (their
 * backward graphs then go through the chunked forms); see attention-variant.ts.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { DarkroomError } from '../src/errors.js';
import { grad } from '../src/graph/autodiff.js';
import { GraphBuilder, type Value } from '../src/graph/builder.js';
import { createSession } from '../src/runtime/session.js';
import type { Float32Tensor, HostTensor } from '../src/tensor.js';
import { toFloat32 } from '../src/tensor.js';
import { feedForwardChunkBytes, type AttentionBuild } from '../src/planning/attention.js';
import { openCheckpoint, readComponent, readFloat32, type CheckpointSource } from '../src/model-files/checkpoint.js';
import { buildTextEncoder } from '../src/models/clip.js';
import { UNET_PREFIX, VAE_PREFIX, type ModelConfig } from '../src/model-files/config.js';
import { textEncoderModel, unetModel, vaeDecoderModel, vaeEncoderModel } from '../src/models/graphs.js';
import { loadModel, type StableDiffusionModel } from '../src/models/load.js';
import { buildUNet } from '../src/models/unet.js';
import { errorText, missingReason, section, skipped } from './groups.js';
import { attentionFromEnv, type ParityAttention } from './attention-variant.js';
import { runHypernetCase } from './model-hypernet.js';
import { combine, elementwiseClose, scaledClose, type CaseResult, type Closeness } from './report.js';
import type { Suite } from './suites.js';

const ATOL = 5e-5;
const RTOL = 5e-5;
const GRAD_TOL = 5e-5;
const LOSS_RTOL = 1e-5;

export interface CaseSpec {
  readonly id: string;
  readonly model: string;
  readonly config: string;
  readonly checkpoint: string;
  readonly kind: string;
  readonly file: string;
  readonly inputs: Readonly<Record<string, { shape: number[]; dtype: string }>>;
  readonly outputs: Readonly<Record<string, { shape: number[]; dtype: string }>>;
  readonly meta?: Readonly<Record<string, unknown>>;
}

/** Everything a case handler needs: the case, its tensors, the loaded model and its checkpoint. */
export interface CaseContext {
  readonly folder: string;
  readonly spec: CaseSpec;
  readonly tensors: ReadonlyMap<string, HostTensor>;
  readonly model: StableDiffusionModel;
  readonly config: ModelConfig;
  readonly checkpoint: CheckpointSource;
  /** The reference output as float32. */
  ref(name: string): Float32Tensor;
  /** Elementwise forward tolerance. */
  close(actual: HostTensor, name: string): Closeness;
  /** The attention variant under test, when not the default graphs. */
  readonly attention?: ParityAttention;
}

export type ModelCaseHandler = (ctx: CaseContext) => Promise<CaseResult>;

async function runGraph(model: Parameters<typeof createSession>[0], feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const s = await createSession(model, { threads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

function f32(t: HostTensor | undefined, what: string): Float32Tensor {
  if (!t) throw new DarkroomError('PARITY_MISSING_TENSOR', `missing tensor ${what}`, { tensor: what });
  return toFloat32(t);
}

/** Token embedding lookup as the host does it (A1111 splices TI vectors into this). */
function lookup(table: Float32Tensor, ids: HostTensor): Float32Tensor {
  const d = table.shape[1]!;
  const n = ids.data.length;
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const id = Number((ids.data as BigInt64Array)[i]!);
    out.set(table.data.subarray(id * d, (id + 1) * d), i * d);
  }
  return { dtype: 'float32', shape: [...ids.shape, d], data: out };
}

async function textCase(ctx: CaseContext): Promise<CaseResult> {
  const { model, config, spec } = ctx;
  const checks: [string, Closeness][] = [];
  let embeds: Float32Tensor;
  if (spec.kind === 'text') {
    embeds = lookup(model.textEncoder.tokenEmbedding, ctx.tensors.get('input_ids')!);
    checks.push(['token_embeds', ctx.close(embeds, 'token_embeds')]);
  } else {
    embeds = ctx.ref('inputs_embeds');
  }
  checks.push(['last_hidden_state', ctx.close(await model.textEncoder.encode(embeds, 1), 'last_hidden_state')]);
  checks.push(['penultimate_ln', ctx.close(await model.textEncoder.encode(embeds, 2), 'penultimate_ln')]);
  const hiddenNames = Object.keys(spec.outputs).filter((k) => k.startsWith('hidden_states.'));
  if (hiddenNames.length) {
    const weights = await readComponent(ctx.checkpoint, config.text.prefix);
    const r = await runGraph(textEncoderModel(weights, config.text, { batch: embeds.shape[0]!, exposeHidden: true }), {
      inputs_embeds: embeds,
    });
    for (const name of hiddenNames) checks.push([name, ctx.close(r[`hidden_${name.split('.')[1]}`]!, name)]);
  }
  return combine(spec.id, checks);
}

async function unetCase(ctx: CaseContext): Promise<CaseResult> {
  const { model, config, spec } = ctx;
  const x = ctx.ref('x');
  const t = ctx.ref('t');
  const context = ctx.ref('context');
  const checks: [string, Closeness][] = [['out', ctx.close(await model.unet.run(x, t.data, context), 'out')]];
  const weights = await readComponent(ctx.checkpoint, UNET_PREFIX);
  const [batch, , height, width] = x.shape as [number, number, number, number];
  const graph = unetModel(weights, config.unet, { batch, height, width, contextLength: context.shape[1]!, exposeEmbeddings: true });
  const r = await runGraph(graph, { x, t, context_k: context, context_v: context });
  for (const name of ['t_emb', 'emb']) checks.push([name, ctx.close(r[name]!, name)]);
  return combine(spec.id, checks);
}

async function vaeDecodeCase(ctx: CaseContext): Promise<CaseResult> {
  const { model, config, spec } = ctx;
  const latent = ctx.ref('latent');
  const checks: [string, Closeness][] = [['image', ctx.close(await model.vae.decode(latent), 'image')]];
  const weights = await readComponent(ctx.checkpoint, VAE_PREFIX);
  const [batch, , height, width] = latent.shape as [number, number, number, number];
  const r = await runGraph(vaeDecoderModel(weights, config.vae, { batch, height, width, scaleFactor: config.scaleFactor, expose: true }), {
    latent,
  });
  checks.push(['z', ctx.close(r.z!, 'z')]);
  return combine(spec.id, checks);
}

async function vaeEncodeCase(ctx: CaseContext): Promise<CaseResult> {
  const { model, config, spec } = ctx;
  const image = ctx.ref('image');
  const { mean, std } = await model.vae.encode(image);
  const checks: [string, Closeness][] = [
    ['mean', ctx.close(mean, 'mean')],
    ['std', ctx.close(std, 'std')],
  ];
  const weights = await readComponent(ctx.checkpoint, VAE_PREFIX);
  const [batch, , height, width] = image.shape as [number, number, number, number];
  const r = await runGraph(vaeEncoderModel(weights, config.vae, { batch, height, width, scaleFactor: config.scaleFactor, expose: true }), {
    image,
  });
  for (const name of ['moments', 'logvar']) checks.push([name, ctx.close(r[name]!, name)]);
  return combine(spec.id, checks);
}

/** The UNet build options of an attention variant: its attention form and, outside plain, chunked feed-forwards. */
function unetAttentionOptions(a: ParityAttention): { attention: AttentionBuild; feedForwardChunkBytes?: number } {
  const ff = feedForwardChunkBytes(a.build);
  return { attention: a.build, ...(ff !== undefined ? { feedForwardChunkBytes: ff } : {}) };
}

function mseLoss(b: GraphBuilder, out: Value, target: Value): Value {
  const d = b.sub(out, target);
  return b.reduceMean(b.mul(d, d), out.shape.map((_, i) => i), false);
}

function lossCheck(actual: HostTensor, ref: Float32Tensor): Closeness {
  const a = toFloat32(actual).data[0]!;
  const r = ref.data[0]!;
  const d = Math.abs(a - r);
  const ok = d <= LOSS_RTOL * Math.abs(r);
  return { maxAbs: d, maxRel: Math.abs(r) > 0 ? d / Math.abs(r) : d, failing: ok ? 0 : 1, ok };
}

/** dloss/dcontext_k and dloss/dcontext_v through every cross-attention, loss = mean((out - target)^2). */
async function gradHypernetCase(ctx: CaseContext): Promise<CaseResult> {
  const { config, spec } = ctx;
  const x = ctx.ref('x_t');
  const [batch, , height, width] = x.shape as [number, number, number, number];
  const contextK = ctx.ref('context_k');
  const weights = await readComponent(ctx.checkpoint, UNET_PREFIX);
  const b = new GraphBuilder('unet_grad_context');
  const g = buildUNet(b, weights, config.unet, {
    batch,
    height,
    width,
    contextLength: contextK.shape[1]!,
    ...(ctx.attention ? unetAttentionOptions(ctx.attention) : {}),
  });
  const target = b.input('target', 'float32', g.out.shape);
  const loss = mseLoss(b, g.out, target);
  const [gk, gv] = grad(b, loss, [g.contextK, g.contextV]) as [Value, Value];
  b.output(g.out, 'out');
  b.output(loss, 'loss');
  b.output(gk, 'grad_context_k');
  b.output(gv, 'grad_context_v');
  const r = await runGraph(b.toModel(), { x, t: ctx.ref('t'), context_k: contextK, context_v: ctx.ref('context_v'), target: ctx.ref('target') });
  return combine(spec.id, [
    ['out', ctx.close(r.out!, 'out')],
    ['loss', lossCheck(r.loss!, ctx.ref('loss'))],
    ['grad_context_k', scaledClose(f32(r.grad_context_k, 'grad_context_k').data, ctx.ref('grad_context_k').data, GRAD_TOL)],
    ['grad_context_v', scaledClose(f32(r.grad_context_v, 'grad_context_v').data, ctx.ref('grad_context_v').data, GRAD_TOL)],
  ]);
}

/** ldm p_losses: x_t and the target on the host from the stored schedule buffers, the loss and its gradient in the graph. */
async function gradTiCase(ctx: CaseContext): Promise<CaseResult> {
  const { config, spec } = ctx;
  const embeds = ctx.ref('inputs_embeds');
  const xStart = ctx.ref('x_start');
  const noise = ctx.ref('noise');
  const steps = Array.from(ctx.tensors.get('t')!.data as BigInt64Array, Number);
  const sqrtAcp = (await readFloat32(ctx.checkpoint, 'sqrt_alphas_cumprod')).data;
  const sqrtOneMinus = (await readFloat32(ctx.checkpoint, 'sqrt_one_minus_alphas_cumprod')).data;
  const [batch, , height, width] = xStart.shape as [number, number, number, number];
  const per = xStart.data.length / batch;
  const xt = new Float32Array(xStart.data.length);
  const target = new Float32Array(xStart.data.length);
  const f = Math.fround;
  for (let i = 0; i < xt.length; i++) {
    const n = Math.floor(i / per);
    const a = sqrtAcp[steps[n]!]!;
    const s = sqrtOneMinus[steps[n]!]!;
    xt[i] = f(f(a * xStart.data[i]!) + f(s * noise.data[i]!));
    target[i] = config.parameterization === 'v' ? f(f(a * noise.data[i]!) - f(s * xStart.data[i]!)) : noise.data[i]!;
  }
  const textW = await readComponent(ctx.checkpoint, config.text.prefix);
  const unetW = await readComponent(ctx.checkpoint, UNET_PREFIX);
  const b = new GraphBuilder('ti_grad');
  const text = buildTextEncoder(b, textW, config.text, { batch });
  const context = text.skips[config.text.defaultClipSkip - 1]!;
  const g = buildUNet(b, unetW, config.unet, {
    batch,
    height,
    width,
    contextLength: context.shape[1]!,
    context: { k: context, v: context },
    ...(ctx.attention ? unetAttentionOptions(ctx.attention) : {}),
  });
  const targetIn = b.input('target', 'float32', g.out.shape);
  const loss = mseLoss(b, g.out, targetIn);
  const [ge] = grad(b, loss, [text.inputsEmbeds]) as [Value];
  b.output(context, 'context');
  b.output(g.out, 'out');
  b.output(loss, 'loss');
  b.output(ge, 'grad_inputs_embeds');
  const r = await runGraph(b.toModel(), {
    inputs_embeds: embeds,
    x: { dtype: 'float32', shape: xStart.shape, data: xt },
    t: { dtype: 'float32', shape: [batch], data: Float32Array.from(steps) },
    target: { dtype: 'float32', shape: xStart.shape, data: target },
  });
  return combine(spec.id, [
    ['context', ctx.close(r.context!, 'context')],
    ['x_t', ctx.close({ dtype: 'float32', shape: xStart.shape, data: xt }, 'x_t')],
    ['target', ctx.close({ dtype: 'float32', shape: xStart.shape, data: target }, 'target')],
    ['out', ctx.close(r.out!, 'out')],
    ['loss', lossCheck(r.loss!, ctx.ref('loss'))],
    ['grad_inputs_embeds', scaledClose(f32(r.grad_inputs_embeds, 'grad').data, ctx.ref('grad_inputs_embeds').data, GRAD_TOL)],
  ]);
}

interface LoadedModel {
  readonly model: StableDiffusionModel;
  readonly checkpoint: CheckpointSource;
}

/** The files of the folder a case reads beyond its model: its tensors, and the hypernetworks it applies. */
function caseFiles(spec: CaseSpec): string[] {
  const hypernetworks = (spec.meta?.hypernetworks ?? []) as ReadonlyArray<{ file?: unknown }>;
  return [spec.file, ...hypernetworks.flatMap((h) => (typeof h.file === 'string' ? [h.file] : []))];
}

async function runCase(ctx: CaseContext): Promise<CaseResult> {
  switch (ctx.spec.kind) {
    case 'text':
    case 'text-embeds':
      return textCase(ctx);
    case 'unet':
      return unetCase(ctx);
    case 'vae-decode':
      return vaeDecodeCase(ctx);
    case 'vae-encode':
      return vaeEncodeCase(ctx);
    case 'grad-hypernet':
      return gradHypernetCase(ctx);
    case 'grad-ti':
      return gradTiCase(ctx);
    case 'unet-hypernet':
      return runHypernetCase(ctx);
    default:
      return { name: ctx.spec.id, status: 'skip', detail: `unknown case kind ${ctx.spec.kind}` };
  }
}

export interface ModelRunOptions {
  /** Build every graph with this attention variant (default: the default graphs). */
  readonly attention?: ParityAttention;
  /** Only the cases this accepts (default: all). */
  readonly only?: (spec: CaseSpec) => boolean;
}

/** Every case of a model oracle folder (or those `only` accepts), under the given attention variant. */
export async function* runModelCases(folder: string, opts: ModelRunOptions = {}): AsyncGenerator<CaseResult> {
  const index = JSON.parse(await readFile(join(folder, 'cases.json'), 'utf8')) as Record<string, unknown>;
  const found = section<CaseSpec>(index, 'cases', 'cases.json');
  if ('missing' in found) {
    yield skipped('cases', found.missing);
    return;
  }
  const cases = found.items.filter((c) => !opts.only || opts.only(c));
  const cacheDir = await mkdtemp(join(tmpdir(), 'darkroom-parity-model-'));
  const loaded = new Map<string, LoadedModel>();
  // A model the folder lacks is reported once, where its first case would have been.
  const absentModels = new Set<string>();
  try {
    for (const spec of cases) {
      if (absentModels.has(spec.model)) continue;
      const noModel = missingReason(folder, [spec.checkpoint, spec.config]);
      if (noModel) {
        absentModels.add(spec.model);
        yield skipped(spec.model, noModel);
        continue;
      }
      const noFiles = missingReason(folder, caseFiles(spec));
      if (noFiles) {
        yield skipped(spec.id, noFiles);
        continue;
      }
      try {
        let m = loaded.get(spec.model);
        if (!m) {
          const model = await loadModel({
            checkpoint: join(folder, spec.checkpoint),
            config: join(folder, spec.config),
            cacheDir,
            threads: 1,
            ...(opts.attention?.loadOptions ?? {}),
          });
          m = { model, checkpoint: await openCheckpoint(join(folder, spec.checkpoint)) };
          loaded.set(spec.model, m);
        }
        const tensors = (await readSafetensorsFile(join(folder, spec.file))).tensors;
        const ref = (name: string): Float32Tensor => f32(tensors.get(name), `${spec.file}:${name}`);
        yield await runCase({
          folder,
          spec,
          tensors,
          model: m.model,
          config: m.model.config,
          checkpoint: m.checkpoint,
          ref,
          close: (actual, name) => elementwiseClose(toFloat32(actual).data, ref(name).data, ATOL, RTOL),
          ...(opts.attention ? { attention: opts.attention } : {}),
        });
      } catch (e) {
        yield { name: spec.id, status: 'fail', detail: errorText(e) };
      }
    }
  } finally {
    for (const m of loaded.values()) {
      await m.model.release();
      await m.checkpoint.close();
    }
    await rm(cacheDir, { recursive: true, force: true });
  }
}

export const suite: Suite = {
  name: 'model',
  under: 'model',
  marker: 'cases.json',
  run(folder: string) {
    const attention = attentionFromEnv();
    return runModelCases(folder, attention ? { attention } : {});
  },
};
