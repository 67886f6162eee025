/**
 * LoRA per job without a graph per LoRA: the text encoder and the UNet are compiled once more per input shape
 * in a form whose weights are graph inputs instead of initializers, and a job with networks feeds them the
 * merged weights (mergeLoras). Any network of any type (LoRA, LoHa, LoKr, IA3, OFT, DoRA, full, norm) and any
 * number of them run through the same graph, so switching networks between jobs compiles nothing; a job
 * without networks keeps the model's plain graphs and does not touch this module.
 *
 * The feeds are exactly the tensors the plain graph would have baked in: the graph builder runs once more over
 * the merged checkpoint weights with every `weight()` recorded instead of stored, so the layouts the builders
 * derive on the host (transposed linears, sliced in_proj blocks) are the same by construction. They are recorded
 * per graph (component and input shape) the first time a set of networks runs it, so a switch costs the merge
 * plus one host-side build per shape; the UNet graph takes the attention form the model's own graphs take.
 */
import { createHash } from 'node:crypto';
import { DarkroomError } from '../../errors.js';
import { GraphBuilder, type Value } from '../../graph/builder.js';
import { attentionKey, feedForwardChunkBytes, type AttentionBuild } from '../../models/attention.js';
import { CompileCache, DEFAULT_CACHE_DIR } from '../../models/cache.js';
import { buildTextEncoder, textOutputName } from '../../models/clip.js';
import { UNET_PREFIX, type ModelConfig, type TensorIndex, type UNetConfig } from '../../models/config.js';
import type { StableDiffusionModel } from '../../models/load.js';
import { buildUNet } from '../../models/unet.js';
import { createSession, type EngineSession, type Provider } from '../../runtime/session.js';
import type { Float32Tensor, HostTensor } from '../../tensor.js';
import { loraModuleTable, type LoraModuleTable } from './mapping.js';
import { mergeLoras, type LoraApplication, type LoraMergeResult } from './merge.js';

/** A builder whose weights become graph inputs of the same name; `captured` holds what it was given. */
export class WeightInputBuilder extends GraphBuilder {
  readonly captured = new Map<string, HostTensor>();

  override weight(name: string, t: HostTensor): Value {
    this.captured.set(name, t);
    return this.input(name, t.dtype, t.shape);
  }
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
  /** Merged text-encoder and UNet weights, by the keys the builders take. */
  readonly text: ReadonlyMap<string, Float32Tensor>;
  readonly unet: ReadonlyMap<string, Float32Tensor>;
  /**
   * Feeds by graph (component and shape), recorded on first use: the attention form a layer gets may depend on
   * the input shape, and with it the weights the graph takes.
   */
  readonly feeds: Map<string, ReadonlyMap<string, HostTensor>>;
}

export interface LoraRunnerOptions {
  readonly cacheDir?: string;
  readonly threads?: number;
  readonly provider?: Provider;
  /** The UNet attention form the model's own graphs use (see models/attention.ts); default plain. */
  readonly attention?: AttentionBuild;
}

/**
 * Runs a model's text encoder and UNet with merged network weights. One per loaded model; the sessions and
 * the model's original weights stay in memory while it lives.
 */
export class LoraRunner {
  private readonly cache: CompileCache;
  private readonly sessions = new Map<string, Promise<EngineSession>>();
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
    const merge = mergeLoras(weights, table, applications);
    const relative = (prefix: string): Map<string, Float32Tensor> => {
      const out = new Map<string, Float32Tensor>();
      for (const [k, t] of weights) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), merge.weights.get(k) ?? t);
      return out;
    };
    return { merge, text: relative(this.model.config.text.prefix), unet: relative(UNET_PREFIX), feeds: new Map() };
  }

  /** The graph key of a component at a shape: its session and its recorded feeds go by it. */
  private static key(component: Component, options: Record<string, unknown>): string {
    return `${component}:${JSON.stringify(options)}`;
  }

  /** The builder run over the merged weights with every weight() recorded: exactly what the graph takes. */
  private feedsFor(w: LoraWeights, component: Component, options: Record<string, unknown>): ReadonlyMap<string, HostTensor> {
    const key = LoraRunner.key(component, options);
    let f = w.feeds.get(key);
    if (!f) {
      const cfg = this.model.config;
      const b = new WeightInputBuilder(`${component}_lora`);
      if (component === 'text') buildText(b, w.text, cfg, options.batch as number);
      else buildUnet(b, w.unet, cfg.unet, options as unknown as UNetShape, this.opts.attention);
      f = b.captured;
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
            const { weights } = await this.base();
            const prefix = component === 'text' ? cfg.text.prefix : UNET_PREFIX;
            const rel = new Map<string, Float32Tensor>();
            for (const [k, t] of weights) if (k.startsWith(prefix)) rel.set(k.slice(prefix.length), t);
            const b = new WeightInputBuilder(`${component}_lora`);
            if (component === 'text') buildText(b, rel, cfg, options.batch as number);
            else buildUnet(b, rel, cfg.unet, options as unknown as UNetShape, this.opts.attention);
            return b.toModel({ externalDataAboveBytes: 64 * 1024 });
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
    const r = await s.run({ ...Object.fromEntries(this.feedsFor(w, 'text', options)), inputs_embeds: inputsEmbeds });
    return output(r, textOutputName(clipSkip));
  }

  /** The UNet with the networks' weights. */
  async run(w: LoraWeights, x: Float32Tensor, t: Float32Array, contextK: Float32Tensor, contextV?: Float32Tensor): Promise<Float32Tensor> {
    const [batch, , height, width] = x.shape as [number, number, number, number];
    const ctxV = contextV ?? contextK;
    const options = { batch, height, width, contextLength: contextK.shape[1]! };
    const s = await this.session('unet', options);
    const r = await s.run({
      ...Object.fromEntries(this.feedsFor(w, 'unet', options)),
      x,
      t: { dtype: 'float32', shape: [batch], data: t },
      context_k: contextK,
      context_v: ctxV,
    });
    return output(r, 'out');
  }

  async release(): Promise<void> {
    this.last = undefined;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s.catch(() => undefined))?.release();
  }
}

function output(r: Record<string, HostTensor>, name: string): Float32Tensor {
  const t = r[name];
  if (!t || t.dtype !== 'float32') throw new DarkroomError('MODEL_BAD_OUTPUT', `graph gave no float32 output "${name}"`);
  return t as Float32Tensor;
}

/** A stable identity of a set of applications (names, file contents, multipliers, dyn), for caching merges. */
export function applicationsKey(applications: readonly LoraApplication[], fileHashes: readonly string[]): string {
  return createHash('sha256')
    .update(JSON.stringify(applications.map((a, i) => [a.name, fileHashes[i], a.te, a.unet, a.dyn])))
    .digest('hex');
}
