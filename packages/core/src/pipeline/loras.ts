/**
 * LoRA / LyCORIS for one job, as A1111 activates them before a generation: the first prompt's `<lora:...>` /
 * `<lyco:...>` tags (the one extra-networks parser) give the networks and multipliers, the available files are
 * looked up by name and alias, and the job gets a model whose text encoder and UNet run with the merged
 * weights through the LoRA graphs (networks/lora/runner.ts). A prompt without LoRA tags gets the model as it
 * was: the plain graphs, nothing else changed. What A1111 adds to the infotext (`Lora hashes`, `Lora not
 * found`, `Networks with errors`) comes back as data.
 */
import { DarkroomError } from '../errors.js';
import { activateLoras, loraComments, type LoraLibrary } from '../networks/lora/activate.js';
import { LORA_HASHES_KEY } from '../networks/lora/hashes.js';
import { applicationsKey, type LoraRunner, type LoraWeights } from '../networks/lora/runner.js';
import { loraUses, parseBatchExtraNetworks } from './extra-networks.js';
import type { PipelineModel } from './types.js';

/** A model whose text encoder and UNet use `weights` (the merged weights of a set of networks). */
export function loraPipelineModel(base: PipelineModel, runner: LoraRunner, weights: LoraWeights): PipelineModel {
  const { withCircularPadding: _circular, ...rest } = base;
  return {
    ...rest,
    textEncoder: {
      width: base.textEncoder.width,
      padTokenId: base.textEncoder.padTokenId,
      tokenEmbedding: base.textEncoder.tokenEmbedding,
      ...(base.textEncoder.defaultClipSkip !== undefined ? { defaultClipSkip: base.textEncoder.defaultClipSkip } : {}),
      encode: (embeds, clipSkip) => runner.encode(weights, embeds, clipSkip),
    },
    unet: {
      run(x, t, contextK, contextV, variant) {
        if (variant) {
          throw new DarkroomError('LORA_WITH_HYPERNETWORK', 'LoRA and hypernetworks in the same job are not supported yet');
        }
        return runner.run(weights, x, t, contextK, contextV);
      },
    },
  };
}

export interface LoraJob {
  /** The model the job runs with: `base` itself when the prompt names no network that loads. */
  readonly model: PipelineModel;
  /** Infotext fields A1111 adds (`Lora hashes`), in order. */
  readonly generationParams: ReadonlyMap<string, string>;
  /** Infotext comments A1111 adds (`Lora not found: ...`, `Networks with errors: ...`). */
  readonly comments: readonly string[];
  /** Why the tags' values were refused (A1111 then loads no network at all), if they were. */
  readonly activationError?: string;
}

/**
 * Activates the LoRAs of a batch's prompts (only the first prompt's tags count, as in A1111) against the
 * `library` of files the job may use.
 */
export async function prepareLoraJob(base: PipelineModel, prompts: readonly string[], library: LoraLibrary, runner: LoraRunner): Promise<LoraJob> {
  const { calls } = parseBatchExtraNetworks(prompts);
  const { uses, error } = loraUses(calls);
  if (uses.length === 0) return { model: base, generationParams: new Map(), comments: [], ...(error ? { activationError: error } : {}) };
  const { table } = await runner.base();
  const act = activateLoras(uses, library, table);
  const generationParams = new Map<string, string>();
  if (act.hashes) generationParams.set(LORA_HASHES_KEY, act.hashes);
  if (act.applications.length === 0) return { model: base, generationParams, comments: loraComments(act.notFound, new Map()) };
  const weights = await runner.weightsFor(act.applications, applicationsKey(act.applications, act.files.map((f) => f.sha256)));
  return {
    model: loraPipelineModel(base, runner, weights),
    generationParams,
    comments: loraComments(act.notFound, weights.merge.errors),
  };
}
