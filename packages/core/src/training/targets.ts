/**
 * The two things A1111 trains, as `TrainingTarget`s of the shared loop: a textual-inversion embedding (its
 * vectors, through the text encoder, per micro-batch of captions) and a hypernetwork (its MLP weights, on
 * conditioning computed once per image without the hypernetwork, as A1111 builds its dataset).
 */
import { encodeTexts, type TextContext } from '../pipeline/conditioning.js';
import type { PipelineModel } from '../pipeline/types.js';
import type { HypernetworkArchitecture } from '../networks/hypernetworks/hypernetwork.js';
import { float32, type Float32Tensor } from '../tensor.js';
import type { EmphasisMode } from '../text/chunking.js';
import { embeddingBatch, vectorGradient } from './embedding-batch.js';
import { hypernetworkParams, paramFeeds, paramGradients } from './hypernetwork-params.js';
import { EmbeddingObjective, HypernetworkObjective, type RuntimeOptions, type TrainableModel } from './objective.js';
import type { TargetBatch, TrainingTarget } from './trainer.js';

/** A1111's text settings that shape the conditioning during training. */
export interface TextSettings {
  readonly clipSkip: number;
  readonly emphasis: EmphasisMode;
  readonly commaPaddingBacktrack: number;
}

export interface ReleasableTarget extends TrainingTarget {
  release(): Promise<void>;
}

/** AdamW weight decay A1111 uses for an embedding (it passes 0 explicitly). */
export const EMBEDDING_WEIGHT_DECAY = 0;
/** AdamW weight decay for a hypernetwork (A1111 passes none: torch's default). */
export const HYPERNETWORK_WEIGHT_DECAY = 0.01;

export async function embeddingTarget(
  model: TrainableModel,
  pipeline: PipelineModel,
  embedding: { readonly name: string; readonly vectors: number },
  text: TextSettings,
  runtime: RuntimeOptions = {},
): Promise<ReleasableTarget> {
  const objective = await EmbeddingObjective.create(model, { clipSkip: text.clipSkip, emphasis: text.emphasis, ...runtime });
  const width = pipeline.textEncoder.width;
  return {
    sizes: [embedding.vectors * width],
    weightDecay: EMBEDDING_WEIGHT_DECAY,
    async gradients(params, batch) {
      const vec = float32([embedding.vectors, width], params[0]!);
      const prepared = embeddingBatch(batch.captions, { name: embedding.name, vec }, {
        tokenizer: pipeline.tokenizer,
        table: pipeline.textEncoder,
        emphasis: text.emphasis,
        commaPaddingBacktrack: text.commaPaddingBacktrack,
      });
      const r = await objective.evaluate(prepared.inputsEmbeds, prepared.multipliers, prepared.chunks, batch);
      return { loss: r.loss, grads: [vectorGradient(r.gradInputsEmbeds, prepared, embedding.vectors)] };
    },
    release: () => objective.release(),
  };
}

/** A1111's `stack_conds`: conditionings of different lengths padded by repeating their last token row. */
export function stackConds(conds: readonly Float32Tensor[]): Float32Tensor {
  const width = conds[0]!.shape[1]!;
  const tokens = Math.max(...conds.map((c) => c.shape[0]!));
  const out = new Float32Array(conds.length * tokens * width);
  conds.forEach((c, i) => {
    const n = c.shape[0]!;
    out.set(c.data, i * tokens * width);
    const last = c.data.subarray((n - 1) * width, n * width);
    for (let r = n; r < tokens; r++) out.set(last, (i * tokens + r) * width);
  });
  return float32([conds.length, tokens, width], out);
}

export async function hypernetworkTarget(
  model: TrainableModel,
  pipeline: PipelineModel,
  arch: HypernetworkArchitecture,
  text: TextSettings,
  runtime: RuntimeOptions = {},
): Promise<ReleasableTarget> {
  const objective = await HypernetworkObjective.create(model, arch, runtime);
  const params = hypernetworkParams(arch);
  const ctx: TextContext = {
    model: pipeline,
    tokenizer: pipeline.tokenizer,
    clipSkip: text.clipSkip,
    emphasis: text.emphasis,
    commaPaddingBacktrack: text.commaPaddingBacktrack,
    generationParams: new Map(),
  };
  // Each caption is encoded on its own, as A1111 does when it builds the dataset (emphasis normalises per caption).
  const cache = new Map<string, Float32Tensor>();
  const condOf = async (caption: string): Promise<Float32Tensor> => {
    let c = cache.get(caption);
    if (!c) {
      const z = await encodeTexts([caption], ctx);
      c = float32([z.shape[1]!, z.shape[2]!], z.data);
      cache.set(caption, c);
    }
    return c;
  };
  return {
    sizes: params.map((p) => p.shape.reduce((a, b) => a * b, 1)),
    weightDecay: HYPERNETWORK_WEIGHT_DECAY,
    async gradients(values, batch: TargetBatch) {
      const conds = [];
      for (const caption of batch.captions) conds.push(await condOf(caption));
      const r = await objective.evaluate(stackConds(conds), paramFeeds(params, values), batch);
      return { loss: r.loss, grads: paramGradients(params, r.grads) };
    },
    release: () => objective.release(),
  };
}
