/**
 * Teaching the text encoder to carry each fact a scene caption states to the tokens after the caption.
 *
 * Why: trained only through the UNet, the scene model's text encoder learned to spread the colour and background
 * words over the end-of-text tokens that fill the rest of the 77 (where most of the UNet's cross-attention goes)
 * but left the shape and position words where they stand, barely changed from one word to another: in the shipped
 * model "on the left" and "on the right" give conditionings 0.011 apart (root mean square) over those tokens,
 * "red" and "green" 0.33. A UNet cannot follow a word its conditioning does not carry. Here linear heads read
 * every padding token and are trained, with the encoder, to name the object's shape, colour and position and the
 * background colour (softmax cross-entropy per fact), so each fact is present wherever the UNet looks.
 *
 * The heads are training-only weights, never saved; the encoder's weights (token embedding included) are the
 * checkpoint's.
 */
import { DarkroomError } from '../errors.js';
import { GraphBuilder, type Value } from '../graph/builder.js';
import type { ModelConfig } from '../model-files/config.js';
import { buildTextEncoder } from '../models/clip.js';
import { float32, type Float32Tensor } from '../tensor.js';
import type { EngineSession } from '../runtime/session.js';
import { type FlatParameters, gatherWeights, graphLayout, scatterGradient, type GraphWeightLayout } from './flat-parameters.js';
import type { RuntimeOptions } from './objective.js';
import { COLOURS, POSITIONS, SHAPES, backgroundColours, type Scene } from './scenes/scene.js';
import { addTokenEmbeddingGradient, scalarOut, tensorOut, tokenEmbeddings, trainingSession } from './whole-model.js';

/** The facts the heads name, each a choice among its values; a fact's logits are one segment of the heads' output. */
export const CAPTION_FACTS = [
  { name: 'shape', values: SHAPES },
  { name: 'colour', values: COLOURS },
  { name: 'position', values: POSITIONS },
  { name: 'background', values: COLOURS },
] as const;

const FACT_WIDTH = CAPTION_FACTS.reduce((n, f) => n + f.values.length, 0);

/**
 * The index of each fact's value for a one-object scene (the background's first colour for a two-tone one), or
 * null for a scene these facts do not describe (two objects).
 */
export function captionFacts(scene: Scene): number[] | null {
  const [o, second] = scene.objects;
  if (!o || second) return null;
  const bg = backgroundColours(scene.background)[0]!;
  return [SHAPES.indexOf(o.shape), COLOURS.indexOf(o.colour), POSITIONS.indexOf(o.position), COLOURS.indexOf(bg)];
}

export interface CaptionFactsOptions extends RuntimeOptions {
  readonly batch: number;
  /** The first token the heads read (default 32: past any caption the scenes make, so end-of-text padding). */
  readonly fromToken?: number;
  /** A1111's CLIP skip the encoder is read at, as the UNet reads it (default 1). */
  readonly clipSkip?: number;
}

export interface CaptionFactsResult {
  readonly loss: number;
  /** Fraction of (sample, token, fact) choices the heads get right: how readable the facts are. */
  readonly accuracy: number;
  /** d loss / d every flat weight (the text encoder's; zero elsewhere). */
  readonly grad: Float32Array;
  /** d loss / d the heads (`CaptionFactsObjective.heads`). */
  readonly headGrad: Float32Array;
}

/** Log-softmax over the last axis, shifted by the maximum so that no exp overflows and no log sees 0. */
function logSoftmax(b: GraphBuilder, x: Value): Value {
  const axis = x.shape.length - 1;
  const shifted = b.sub(x, b.reduceMax(x, [axis]));
  return b.sub(shifted, b.log(b.reduceSum(b.exp(shifted), [axis])));
}

export class CaptionFactsObjective {
  private constructor(
    private readonly params: FlatParameters,
    private readonly config: ModelConfig,
    private readonly layout: readonly GraphWeightLayout[],
    private readonly session: EngineSession,
    private readonly batch: number,
    /** The heads' weights, (D x F) then F biases, F the total count of fact values; zeros at first. */
    readonly heads: Float32Array,
  ) {}

  static async create(params: FlatParameters, config: ModelConfig, opts: CaptionFactsOptions): Promise<CaptionFactsObjective> {
    const n = config.text.maxPositions;
    const from = opts.fromToken ?? 32;
    if (!Number.isInteger(from) || from < 1 || from >= n) throw new DarkroomError('TRAINING_BAD_PARAMETER', `fromToken: from 1 to ${n - 1}, got ${from}`);
    const clipSkip = opts.clipSkip ?? 1;
    const d = config.text.width;
    const build = (text: Map<string, Float32Tensor>): { b: GraphBuilder; loss: Value; extraWrt: Array<{ value: Value; name: string }> } => {
      const b = new GraphBuilder('train_caption_facts');
      const enc = buildTextEncoder(b, text, config.text, { batch: opts.batch });
      const cond = enc.skips[clipSkip - 1];
      if (!cond) throw new DarkroomError('TRAINING_BAD_PARAMETER', `clip skip ${clipSkip} is outside 1..${config.text.layers + 1}`, { field: 'clip_skip' });
      const tail = b.slice(cond, [from], [n], [1]);
      const w = b.input('heads_w', 'float32', [d, FACT_WIDTH]);
      const bias = b.input('heads_b', 'float32', [FACT_WIDTH]);
      const logits = b.add(b.matmul(tail, w), bias);
      const truth = b.input('facts', 'float32', [opts.batch, 1, FACT_WIDTH]);
      let total: Value | null = null;
      let correct: Value | null = null;
      let at = 0;
      for (const fact of CAPTION_FACTS) {
        const k = fact.values.length;
        const seg = b.slice(logits, [at], [at + k], [2]);
        const oneHot = b.slice(truth, [at], [at + k], [2]);
        const logLikelihood = b.reduceSum(b.mul(logSoftmax(b, seg), oneHot), [2]);
        total = total ? b.add(total, logLikelihood) : logLikelihood;
        // Right when the true value's logit is the segment's largest (a tie counts: only the untrained heads tie).
        const hit = b.cast(b.greater(b.reduceSum(b.mul(seg, oneHot), [2]), b.sub(b.reduceMax(seg, [2]), 1e-6)), 'float32');
        correct = correct ? b.add(correct, hit) : hit;
        at += k;
      }
      b.output(b.div(b.reduceMean(correct!, [0, 1, 2], false), CAPTION_FACTS.length), 'accuracy');
      const loss = b.div(b.neg(b.reduceMean(total!, [0, 1, 2], false)), CAPTION_FACTS.length);
      return { b, loss, extraWrt: [{ value: enc.inputsEmbeds, name: 'inputs_embeds' }, { value: w, name: 'heads_w' }, { value: bias, name: 'heads_b' }] };
    };
    const trained = (name: string): boolean => name.startsWith('text.');
    const prefix = config.text.prefix;
    const layout = graphLayout(() => build(params.probeComponent(prefix)).b, trained);
    const s = await trainingSession(() => build(params.component(prefix)), trained, opts);
    return new CaptionFactsObjective(params, config, layout, s, opts.batch, new Float32Array(d * FACT_WIDTH + FACT_WIDTH));
  }

  /** `ids`: each caption's 77 token ids; `facts`: each caption's fact indices (captionFacts). */
  async evaluate(ids: readonly (readonly number[])[], facts: readonly (readonly number[])[]): Promise<CaptionFactsResult> {
    if (ids.length !== this.batch || facts.length !== this.batch) throw new DarkroomError('TRAINING_BAD_BATCH', `${ids.length} captions and ${facts.length} fact rows for a batch of ${this.batch}`);
    const truth = new Float32Array(this.batch * FACT_WIDTH);
    facts.forEach((row, s) => {
      let at = 0;
      CAPTION_FACTS.forEach((fact, f) => {
        const v = row[f];
        if (v === undefined || !Number.isInteger(v) || v < 0 || v >= fact.values.length) throw new DarkroomError('TRAINING_BAD_BATCH', `fact ${fact.name}: ${v} is not one of its ${fact.values.length} values`);
        truth[s * FACT_WIDTH + at + v] = 1;
        at += fact.values.length;
      });
    });
    const d = this.config.text.width;
    const r = await this.session.run({
      inputs_embeds: tokenEmbeddings(this.params, this.config, ids),
      heads_w: float32([d, FACT_WIDTH], this.heads.slice(0, d * FACT_WIDTH)),
      heads_b: float32([FACT_WIDTH], this.heads.slice(d * FACT_WIDTH)),
      facts: float32([this.batch, 1, FACT_WIDTH], truth),
      ...gatherWeights(this.layout, this.params.data),
    });
    const g = new Float32Array(this.params.size);
    for (const l of this.layout) scatterGradient(l, tensorOut(r, `grad:${l.name}`).data, g);
    addTokenEmbeddingGradient(this.params, this.config, ids, tensorOut(r, 'grad:inputs_embeds').data, g);
    const headGrad = new Float32Array(this.heads.length);
    headGrad.set(tensorOut(r, 'grad:heads_w').data, 0);
    headGrad.set(tensorOut(r, 'grad:heads_b').data, d * FACT_WIDTH);
    return { loss: scalarOut(r, 'loss'), accuracy: scalarOut(r, 'accuracy'), grad: g, headGrad };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
