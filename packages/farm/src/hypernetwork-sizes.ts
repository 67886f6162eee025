import type { ModelConfig } from '@darkroom/core/model-files/config.js';

/**
 * The widths A1111's hypernetwork hook sees on a model: the text context and every attention level's channels.
 * A hypernetwork made without `enable_sizes` gets a module pair for each, wherever it is made (a trainer, or the
 * API for `/sdapi/v1/create/hypernetwork`).
 */
export function attentionWidths(config: ModelConfig): number[] {
  const u = config.unet;
  const widths = new Set<number>([u.contextDim]);
  u.channelMult.forEach((m, level) => {
    if (u.attentionResolutions.includes(2 ** level)) widths.add(u.modelChannels * m);
  });
  return [...widths];
}
