/**
 * How well an autoencoder keeps what the captions talk about: held-out scenes are rendered, encoded to their
 * posterior mean, decoded, and the detector reads colour, background, position and shape from the round trip.
 * A UNet trained on this VAE's latents cannot draw better than these rates, so they are checked before the UNet
 * is trained; the same detector run on the renders themselves is the ceiling of the check (the detector's own
 * errors).
 */
import { openCheckpoint } from '../../model-files/checkpoint.js';
import { inferVae, VAE_PREFIX, type VaeConfig } from '../../model-files/config.js';
import { vaeDecoderModel, vaeEncoderModel } from '../../models/graphs.js';
import { createSession } from '../../runtime/session.js';
import { float32, toFloat32, type Float32Tensor } from '../../tensor.js';
import { evaluateScene, type SceneMatch } from './detect.js';
import { chwToImage, imageToChw, renderScene } from './render.js';
import type { Scene, Shape } from './scene.js';

export interface ReconstructionReport {
  /** Fraction of scenes whose fact the detector reads right, on the round trip and on the renders. */
  readonly rates: Readonly<Record<keyof SceneMatch, number>>;
  readonly ceiling: Readonly<Record<keyof SceneMatch, number>>;
  /**
   * How many scenes of each first shape there are and in how many the round trip keeps the shape: a UNet cannot
   * draw a shape right more often than its autoencoder keeps it, so this says how far each shape is from its own
   * ceiling (small points and thin rings are the autoencoder's to lose).
   */
  readonly shapeByShape: Readonly<Partial<Record<Shape, { readonly scenes: number; readonly kept: number }>>>;
  /** Mean absolute pixel error of the round trip, in 0-255 units. */
  readonly meanAbsError: number;
  readonly scenes: number;
}

const FACTS: readonly (keyof SceneMatch)[] = ['colour', 'background', 'position', 'shape'];

function rates(matches: readonly SceneMatch[]): Record<keyof SceneMatch, number> {
  const out = { colour: 0, background: 0, position: 0, shape: 0 };
  for (const k of FACTS) out[k] = matches.filter((m) => m[k]).length / Math.max(1, matches.length);
  return out;
}

/** A checkpoint's autoencoder: its config, from the weights' shapes, and its tensors keyed without `first_stage_model.`. */
export async function readAutoencoder(checkpoint: string): Promise<{ vae: VaeConfig; weights: Map<string, Float32Tensor> }> {
  const source = await openCheckpoint(checkpoint);
  try {
    const weights = new Map<string, Float32Tensor>();
    for (const key of source.index.keys()) {
      if (key.startsWith(VAE_PREFIX)) weights.set(key.slice(VAE_PREFIX.length), toFloat32(await source.read(key)));
    }
    return { vae: inferVae(source.index), weights };
  } finally {
    await source.close();
  }
}

/** `weights` are the VAE's own tensors (checkpoint keys without `first_stage_model.`). */
export async function evaluateReconstruction(
  weights: ReadonlyMap<string, Float32Tensor>,
  vae: VaeConfig,
  scenes: readonly Scene[],
  opts: { readonly resolution: number; readonly batch?: number; readonly threads?: number },
): Promise<ReconstructionReport> {
  const res = opts.resolution;
  const batch = Math.max(1, Math.min(opts.batch ?? 8, scenes.length));
  const w = new Map(weights);
  // Scale factor 1 both ways: the decoder takes the encoder's mean as it comes. The encoder's graph is sized by
  // the image, the decoder's by the latent.
  const lat = res / 2 ** (vae.chMult.length - 1);
  const encoder = await createSession(vaeEncoderModel(w, vae, { batch, height: res, width: res, scaleFactor: 1 }), { threads: opts.threads ?? 2 });
  const decoder = await createSession(vaeDecoderModel(w, vae, { batch, height: lat, width: lat, scaleFactor: 1 }), { threads: opts.threads ?? 2 });
  const plane = 3 * res * res;
  const round: SceneMatch[] = [];
  const truth: SceneMatch[] = [];
  let absError = 0;
  try {
    for (let first = 0; first < scenes.length; first += batch) {
      const part = scenes.slice(first, first + batch);
      const images = part.map((s) => renderScene(s, res, res));
      const input = new Float32Array(batch * plane);
      images.forEach((im, i) => input.set(imageToChw(im), i * plane));
      const { mean } = await encoder.run({ image: float32([batch, 3, res, res], input) });
      const { image } = await decoder.run({ latent: mean! });
      const out = image!.data as Float32Array;
      for (const [i, scene] of part.entries()) {
        const decoded = chwToImage(out.subarray(i * plane, (i + 1) * plane), res, res);
        const original = images[i]!;
        for (let p = 0; p < original.data.length; p++) absError += Math.abs(original.data[p]! - decoded.data[p]!);
        round.push(evaluateScene(decoded, scene));
        truth.push(evaluateScene(original, scene));
      }
    }
  } finally {
    await encoder.release();
    await decoder.release();
  }
  const shapeByShape: Partial<Record<Shape, { scenes: number; kept: number }>> = {};
  for (const [i, scene] of scenes.entries()) {
    const counts = (shapeByShape[scene.objects[0]!.shape] ??= { scenes: 0, kept: 0 });
    counts.scenes++;
    if (round[i]!.shape) counts.kept++;
  }
  return { rates: rates(round), ceiling: rates(truth), shapeByShape, meanAbsError: absError / (scenes.length * plane), scenes: scenes.length };
}
