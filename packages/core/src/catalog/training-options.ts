/**
 * Training choices a request names, as A1111's train tab offers them. Plain data, importing no engine code, so
 * the farm's training schemas and the CLI check them without loading the trainer.
 */

/** A1111's latent_sampling_method: encode each image once, or per step from the VAE's mean, or sampled. */
export type LatentSampling = 'once' | 'deterministic' | 'random';
export const LATENT_SAMPLING_METHODS: readonly LatentSampling[] = ['once', 'deterministic', 'random'];
