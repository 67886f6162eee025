/**
 * What a training trains, built in the training thread from the job: a new embedding or hypernetwork by A1111's
 * create rules, or the pinned asset `continue_from` named; and, for a training that continues another one, the
 * same subject carrying that training's checkpoint.
 */
import { DarkroomError } from '@darkroom/core/errors.js';
import type { StableDiffusionModel } from '@darkroom/core/models/load.js';
import { createEmbedding } from '@darkroom/core/networks/embeddings/create.js';
import { loadEmbedding } from '@darkroom/core/networks/embeddings/load.js';
import { createHypernetwork } from '@darkroom/core/networks/hypernetworks/create.js';
import { loadHypernetwork } from '@darkroom/core/networks/hypernetworks/hypernetwork.js';
import type { PipelineModel } from '@darkroom/core/pipeline/types.js';
import { float32 } from '@darkroom/core/tensor.js';
import { hypernetworkParams, withParamValues } from '@darkroom/core/training/hypernetwork-params.js';
import { KeyedStream } from '@darkroom/core/training/keyed-random.js';
import type { TrainingSubject } from '@darkroom/core/training/train-job.js';
import type { TrainingCheckpoint } from '@darkroom/core/training/trainer.js';
import { attentionWidths } from '@darkroom/farm/hypernetwork-sizes.js';
import { EmbeddingCreate, HypernetworkCreate, type TrainingRequest } from '@darkroom/farm/training-schemas.js';

export function newSubject(req: TrainingRequest, sd: StableDiffusionModel, model: PipelineModel): TrainingSubject {
  if (req.kind === 'embedding') {
    const c = req.create ?? EmbeddingCreate.parse({});
    const embedding = createEmbedding({
      name: req.name,
      vectors: c.num_vectors_per_token,
      initText: c.init_text,
      tokenizer: model.tokenizer,
      tokenEmbeddings: model.textEncoder.tokenEmbedding,
      truncateInitTokens: sd.kind !== 'sd2',
    });
    return { kind: 'embedding', embedding };
  }
  const c = req.create ?? HypernetworkCreate.parse({});
  const hypernetwork = createHypernetwork({
    name: req.name,
    sizes: c.enable_sizes ?? attentionWidths(sd.config),
    layerStructure: c.layer_structure,
    activationFunc: c.activation_func,
    weightInit: c.weight_initialization,
    addLayerNorm: c.add_layer_norm,
    useDropout: c.use_dropout,
    dropoutStructure: c.dropout_structure,
    activateOutput: c.activate_output,
    // Seeded, so every attempt of the job starts from the same weights.
    random: new KeyedStream(req.seed, 'hypernetwork-init'),
  });
  return { kind: 'hypernetwork', hypernetwork };
}

/** The asset `continue_from` pinned, trained further under the training's own name. */
export async function loadedSubject(req: TrainingRequest, file: { filename: string; bytes: Uint8Array }): Promise<TrainingSubject> {
  if (req.kind === 'embedding') {
    const e = await loadEmbedding(file.bytes, file.filename);
    return { kind: 'embedding', embedding: { ...e, name: req.name } };
  }
  const hn = await loadHypernetwork(file.bytes, file.filename);
  return { kind: 'hypernetwork', hypernetwork: { ...hn, name: req.name } };
}

/** The subject with a checkpoint's parameters and step count: where a continued training starts. */
export function subjectAt(subject: TrainingSubject, c: TrainingCheckpoint): TrainingSubject {
  if (subject.kind === 'embedding') {
    const e = subject.embedding;
    if (c.params.length !== 1 || c.params[0]!.length !== e.vec.data.length) {
      throw new DarkroomError('TRAINING_CHECKPOINT_MISMATCH', `the stored checkpoint does not hold a ${e.vectors}-vector embedding`);
    }
    return { kind: 'embedding', embedding: { ...e, vec: float32(e.vec.shape, c.params[0]!.slice()), step: c.step } };
  }
  const hn = subject.hypernetwork;
  const params = hypernetworkParams(hn);
  if (c.params.length !== params.length) {
    throw new DarkroomError('TRAINING_CHECKPOINT_MISMATCH', 'the stored checkpoint does not hold this hypernetwork\'s tensors');
  }
  return { kind: 'hypernetwork', hypernetwork: { ...withParamValues(hn, params, c.params), step: c.step } };
}
