/**
 * LoRA per job without a graph per LoRA: the text encoder and the UNet are compiled once more per input shape
 * in a form whose weights are graph inputs instead of initializers, and a job with networks feeds them the
 * merged weights (mergeLoras). Any network of any type (LoRA, LoHa, LoKr, IA3, OFT, DoRA, full, norm) and any
 * number of them run through the same graph, so switching networks between jobs compiles nothing; a job
 * without networks keeps the model's plain graphs and does not touch this module.
 *
 * The feeds are exactly the tensors the plain graph would have baked in. Once per graph (component and input
 * shape) the graph builder runs over the checkpoint's own weights with every `weight()` recorded as an input
 * together with its origin: the source tensor and the host-side function (transpose, in_proj row slice) that
 * made the input from it. That gives the base feeds and, per checkpoint tensor, the inputs derived from it. A
 * job's feeds are then the base feeds with only the inputs of the tensors its networks changed derived again
 * from the merged tensors, so a switch costs the merge of the targeted layers, never a builder run over the
 * whole model, and the untouched inputs are the base tensors themselves, not copies.
 */
import { createHash } from 'node:crypto';
import { DarkroomError } from '../../errors.js';
import { GraphBuilder, type Value, type WeightOrigin } from '../../graph/builder.js';
import { attentionKey, feedForwardChunkBytes, type AttentionBuild } from '../../planning/attention.js';
import { CompileCache, DEFAULT_CACHE_DIR } from '../../models/cache.js';
import { buildTextEncoder, textOutputName } from '../../models/clip.js';
import { UNET_PREFIX, type ModelConfig, type TensorIndex, type UNetConfig } from '../../model-files/config.js';
import type { StableDiffusionModel } from '../../models/load.js';
import { buildUNet } from '../../models/unet.js';
import { createSession, type EngineSession, type Provider } from '../../runtime/session.js';
import type { Float32Tensor, HostTensor } from '../../tensor.js';
import { loraModuleTable, type LoraModuleTable } from './mapping.js';
import { mergeLoras, type LoraApplication, type LoraMergeResult } from './merge.js';
import { F64Scratch } from './updown.js';

/** A builder whose weights become graph inputs of the same name; `captured` holds what it was given. */
export class WeightInputBuilder extends GraphBuilder {
  readonly captured = new Map<string, HostTensor>();
  /** Each input's origin, where the model builder gave one. */
  readonly origins = new Map<string, WeightOrigin>();

  override weight(name: string, t: HostTensor, origin?: WeightOrigin): Value {
    this.captured.set(name, t);
    if (origin) this.origins.set(name, origin);
    return this.input(name, t.dtype, t.shape);
  }
}

/**
 * How a graph's weight inputs are fed: the base feeds (the checkpoint's own weights in the graph's layouts) and,
 * per checkpoint key, the inputs derived from that tensor and how.
 */
export interface FeedPlan {
  readonly base: ReadonlyMap<string, HostTensor>;
  readonly bySource: ReadonlyMap<string, ReadonlyArray<{ readonly input: string; readonly derive: WeightOrigin['derive'] }>>;
}

/**
 * The plan of a recording builder run over a component's weights (keys relative to `prefix`). Every input must
 * have an origin: an input made some other way could not be derived again from merged tensors.
 */
export function feedPlan(b: WeightInputBuilder, prefix: string): FeedPlan {
  const bySource = new Map<string, Array<{ input: string; derive: WeightOrigin['derive'] }>>();
  for (const input of b.captured.keys()) {
    const origin = b.origins.get(input);
    if (!origin) throw new DarkroomError('LORA_FEED_ORIGIN', `the graph input "${input}" was given without the tensor it comes from`, { input });
    const key = prefix + origin.source;
    let list = bySource.get(key);
    if (!list) bySource.set(key, (list = []));
    list.push({ input, derive: origin.derive });
  }
  return { base: b.captured, bySource };
}

/** The feeds for weights where `changed` (checkpoint keys) replaces some tensors: only their inputs derived again. */
export function planFeeds(plan: FeedPlan, changed: ReadonlyMap<string, Float32Tensor>): Map<string, HostTensor> {
  const feeds = new Map(plan.base);
  for (const [key, t] of changed) for (const { input, derive } of plan.bySource.get(key) ?? []) feeds.set(input, derive(t));
  return feeds;
}

type Component = 'text' | 'unet';

function buildText(b: GraphBuilder, weights: ReadonlyMap<string, Float32Tensor>, config: ModelConfig, batch: number): void {
  const g = buildTextEncoder(b, weights, config.text, { batch });
  g.skips.forEach((v, i) => b.output(v, textOutputName(i + 1)));
}

/** The UNet graph (output `out`) on any builder: the plain graph's layers, whatever the builder does with weights. */
export function buildUnet(
  b: GraphBuilder,
  weights: ReadonlyMap<string, Float32Tensor>,
  config: UNetConfig,
  shape: UNetShape,
  attention?: AttentionBuild,
): void {
  const ff = attention ? feedForwardChunkBytes(attention) : undefined;
  const g = buildUNet(b, weights, config, { ...shape, ...(attention ? { attention } : {}), ...(ff !== undefined ? { feedForwardChunkBytes: ff } : {}) });
  b.output(g.out, 'out');
}

export interface UNetShape {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly contextLength: number;
}

/** The merged weights of a set of applied networks, and the graph feeds derived from them per graph. */
export interface LoraWeights {
  readonly merge: LoraMergeResult;
  /**
   * Feeds by graph (component and shape), derived on first use: the attention form a layer gets may depend on
   * the input shape, and with it the weights the graph takes.
   */
  readonly feeds: Map<string, ReadonlyMap<string, HostTensor>>;
}

export interface LoraRunnerOptions {
  readonly cacheDir?: string;
  readonly threads?: number;
  readonly provider?: Provider;
  /** The UNet attention form the model's own graphs use (see planning/attention.ts); default plain. */
  readonly attention?: AttentionBuild;
}

/**
 * Runs a model's text encoder and UNet with merged network weights. One per loaded model; the sessions and
 * the model's original weights stay in memory while it lives.
 */
export class LoraRunner {
  private readonly cache: CompileCache;
  private readonly sessions = new Map<string, Promise<EngineSession>>();
  private readonly plans = new Map<string, Promise<FeedPlan>>();
  /** The merge's float64 working memory, kept from one switch to the next. */
  private readonly scratch = new F64Scratch();
  private original?: Promise<{ table: LoraModuleTable; weights: Map<string, Float32Tensor> }>;
  private last?: { key: string; weights: LoraWeights };

  constructor(
    private readonly model: StableDiffusionModel,
    private readonly opts: LoraRunnerOptions = {},
  ) {
    this.cache = new CompileCache(opts.cacheDir ?? DEFAULT_CACHE_DIR);
  }

  /** Graphs this runner compiled (cache misses): one per component and input shape, whatever the networks. */
  get buildCount(): number {
    return this.cache.builds;
  }

  /** The model's module table and original text/UNet weights under checkpoint keys (read once). */
  async base(): Promise<{ table: LoraModuleTable; weights: ReadonlyMap<string, Float32Tensor> }> {
    this.original ??= (async () => {
      const weights = new Map<string, Float32Tensor>();
      const prefixes: Array<[Component, string]> = [
        ['text', this.model.config.text.prefix],
        ['unet', UNET_PREFIX],
      ];
      for (const [component, prefix] of prefixes) {
        for (const [k, t] of await this.model.readWeights(component)) weights.set(`${prefix}${k}`, t);
      }
      const index: TensorIndex = new Map([...weights].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]));
      return { table: loraModuleTable(index, this.model.kind), weights };
    })();
    return this.original;
  }

  /**
   * Merges the networks and derives the graph feeds; layer failures are in `merge.errors`. With `key` (see
   * applicationsKey) the last result is reused while consecutive jobs use the same networks and multipliers.
   */
  async weightsFor(applications: readonly LoraApplication[], key?: string): Promise<LoraWeights> {
    if (key !== undefined && this.last?.key === key) return this.last.weights;
    const weights = await this.computeWeights(applications);
    if (key !== undefined) this.last = { key, weights };
    return weights;
  }

  private async computeWeights(applications: readonly LoraApplication[]): Promise<LoraWeights> {
    const { table, weights } = await this.base();
    return { merge: mergeLoras(weights, table, applications, this.scratch), feeds: new Map() };
  }

  /** The graph key of a component at a shape: its session and its feed plan go by it. */
  private static key(component: Component, options: Record<string, unknown>): string {
    return `${component}:${JSON.stringify(options)}`;
  }

  /** The component's weights relative to its prefix, as the builders take them (no tensor copied). */
  private async componentWeights(component: Component): Promise<{ prefix: string; weights: Map<string, Float32Tensor> }> {
    const { weights } = await this.base();
    const prefix = component === 'text' ? this.model.config.text.prefix : UNET_PREFIX;
    const rel = new Map<string, Float32Tensor>();
    for (const [k, t] of weights) if (k.startsWith(prefix)) rel.set(k.slice(prefix.length), t);
    return { prefix, weights: rel };
  }

  /** A recording builder run over the component's own weights: the graph with weights as inputs, and who feeds them. */
  private async record(component: Component, options: Record<string, unknown>): Promise<{ builder: WeightInputBuilder; plan: FeedPlan }> {
    const { prefix, weights } = await this.componentWeights(component);
    const b = new WeightInputBuilder(`${component}_lora`);
    if (component === 'text') buildText(b, weights, this.model.config, options.batch as number);
    else buildUnet(b, weights, this.model.config.unet, options as unknown as UNetShape, this.opts.attention);
    return { builder: b, plan: feedPlan(b, prefix) };
  }

  /** The feed plan of a graph, recorded once per runner. */
  private plan(component: Component, options: Record<string, unknown>): Promise<FeedPlan> {
    const key = LoraRunner.key(component, options);
    let p = this.plans.get(key);
    if (!p) {
      p = this.record(component, options).then((r) => r.plan);
      p.catch(() => this.plans.delete(key));
      this.plans.set(key, p);
    }
    return p;
  }

  /** A job's feeds for a graph: the base feeds with the inputs of the tensors its networks changed derived again. */
  private async feedsFor(w: LoraWeights, component: Component, options: Record<string, unknown>): Promise<ReadonlyMap<string, HostTensor>> {
    const key = LoraRunner.key(component, options);
    let f = w.feeds.get(key);
    if (!f) {
      f = planFeeds(await this.plan(component, options), w.merge.weights);
      w.feeds.set(key, f);
    }
    return f;
  }

  private async session(component: Component, options: Record<string, unknown>): Promise<EngineSession> {
    const key = LoraRunner.key(component, options);
    let s = this.sessions.get(key);
    if (!s) {
      s = (async () => {
        const cfg = this.model.config;
        const entry = await this.cache.getOrBuild(
          {
            weights: `${this.model.sha256}:lora-inputs`,
            component: `${component}_lora`,
            options: { ...options, config: component === 'text' ? cfg.text : cfg.unet, ...(component === 'unet' && this.opts.attention ? { attention: attentionKey(this.opts.attention) } : {}) },
          },
          async () => {
            // The same recording run gives the plan, so a graph compiled here is not recorded again.
            const { builder, plan } = await this.record(component, options);
            if (!this.plans.has(key)) this.plans.set(key, Promise.resolve(plan));
            return builder.toModel({ externalDataAboveBytes: 64 * 1024 });
          },
        );
        return createSession(entry.path, {
          ...(this.opts.threads !== undefined ? { threads: this.opts.threads } : {}),
          ...(this.opts.provider ? { provider: this.opts.provider } : {}),
        });
      })();
      s.catch(() => this.sessions.delete(key));
      this.sessions.set(key, s);
    }
    return s;
  }

  /** final_layer_norm(hidden_states[-clipSkip]) with the networks' text-encoder weights. */
  async encode(w: LoraWeights, inputsEmbeds: Float32Tensor, clipSkip: number): Promise<Float32Tensor> {
    const options = { batch: inputsEmbeds.shape[0]! };
    const s = await this.session('text', options);
    const r = await s.run({ ...Object.fromEntries(await this.feedsFor(w, 'text', options)), inputs_embeds: inputsEmbeds });
    return output(r, textOutputName(clipSkip));
  }

  /** The UNet with the networks' weights. */
  async run(w: LoraWeights, x: Float32Tensor, t: Float32Array, contextK: Float32Tensor, contextV?: Float32Tensor): Promise<Float32Tensor> {
    const [batch, , height, width] = x.shape as [number, number, number, number];
    const ctxV = contextV ?? contextK;
    const options = { batch, height, width, contextLength: contextK.shape[1]! };
    const s = await this.session('unet', options);
    const r = await s.run({
      ...Object.fromEntries(await this.feedsFor(w, 'unet', options)),
      x,
      t: { dtype: 'float32', shape: [batch], data: t },
      context_k: contextK,
      context_v: ctxV,
    });
    return output(r, 'out');
  }

  async release(): Promise<void> {
    this.last = undefined;
    this.plans.clear();
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s.catch(() => undefined))?.release();
  }
}

function output(r: Record<string, HostTensor>, name: string): Float32Tensor {
  const t = r[name];
  if (t?.dtype !== 'float32') throw new DarkroomError('MODEL_BAD_OUTPUT', `graph gave no float32 output "${name}"`);
  return t as Float32Tensor;
}

/** A stable identity of a set of applications (names, file contents, multipliers, dyn), for caching merges. */
export function applicationsKey(applications: readonly LoraApplication[], fileHashes: readonly string[]): string {
  return createHash('sha256')
    .update(JSON.stringify(applications.map((a, i) => [a.name, fileHashes[i], a.te, a.unet, a.dyn])))
    .digest('hex');
}
