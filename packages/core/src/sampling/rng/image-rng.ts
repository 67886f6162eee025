/**
 * A1111's seeded noise (modules/rng.py): per-image generators, variation seeds (slerp), seed resize, eta noise seed
 * delta (ENSD), and randn_local. Shapes are (C, H, W) latents; ImageRNG stacks one per seed into (B, C, H, W).
 */
import { float32, numel, type Float32Tensor } from '../../tensor.js';
import { DarkroomError } from '../../errors.js';
import { PhiloxGenerator } from './philox.js';
import { TorchCpuGenerator } from '../../rng/torch-cpu.js';
import type { SeedBlendEntry } from '../../catalog/seed-blend.js';

/**
 * Where noise comes from. 'cpu' = torch's CPU generator with the x86 AVX2 kernel (A1111 "CPU" on a PC);
 * 'cpu-portable' = the same generator through torch's portable kernel (A1111 "CPU" on Apple Silicon / non-x86);
 * 'nv' = A1111's Philox "NV" source, which imitates torch.randn on an NVIDIA GPU (A1111 "GPU" on CUDA cards).
 */
export type NoiseSource = 'cpu' | 'cpu-portable' | 'nv';

/** A1111's `randn_source` option ("GPU", "CPU", "NV") to a source. "GPU" is what CUDA gives, which NV imitates. */
export function noiseSourceFromA1111(option: string, opts: { portableCpu?: boolean } = {}): NoiseSource {
  switch (option.toUpperCase()) {
    case 'NV':
    case 'GPU':
      return 'nv';
    case 'CPU':
      return opts.portableCpu ? 'cpu-portable' : 'cpu';
    default:
      throw new DarkroomError('RNG_UNKNOWN_SOURCE', `unknown noise source "${option}" (expected GPU, CPU or NV)`, {
        option,
      });
  }
}

/** A seeded stream of normal draws; each `randn(n)` call is one torch.randn of n elements. */
export interface NoiseGenerator {
  randn(n: number): Float32Array;
  /** Advances the stream exactly as `randn(n)` would, without computing the values. */
  skip(n: number): void;
}

/** create_generator(seed): a fresh generator for the source (seeds may exceed 32 bits, e.g. seed + ENSD). */
export function createGenerator(source: NoiseSource, seed: number | bigint): NoiseGenerator {
  if (source === 'nv') return new PhiloxGenerator(seed);
  return new TorchCpuGenerator(seed, source === 'cpu' ? 'avx2' : 'default');
}

/** rng.randn(seed, shape): the first draw of a fresh generator seeded `seed`. */
export function randn(source: NoiseSource, seed: number | bigint, shape: readonly number[]): Float32Tensor {
  return float32(shape, createGenerator(source, seed).randn(numel(shape)));
}

/** rng.randn_local(seed, shape): the same as randn, without touching any global state (used by the Brownian tree). */
export function randnLocal(source: NoiseSource, seed: number | bigint, shape: readonly number[]): Float32Tensor {
  return randn(source, seed, shape);
}

const f = Math.fround;

/**
 * rng.slerp(val, low, high) on (C, H, W) tensors: norms and dot products over dim 1 (H), one angle per (c, w)
 * column; falls back to `low*val + high*(1-val)` (A1111's swapped weights) when the mean dot exceeds 0.9995.
 */
export function slerp(val: number, low: Float32Tensor, high: Float32Tensor): Float32Tensor {
  const [C, H, W] = low.shape as [number, number, number];
  const out = new Float32Array(low.data.length);
  const at = (c: number, h: number, w: number): number => (c * H + h) * W + w;
  const dots = new Float64Array(C * W);
  const lowNorm = new Float32Array(C * W);
  const highNorm = new Float32Array(C * W);
  let dotSum = 0;
  for (let c = 0; c < C; c++) {
    for (let w = 0; w < W; w++) {
      let nl = 0;
      let nh = 0;
      for (let h = 0; h < H; h++) {
        nl += low.data[at(c, h, w)]! ** 2;
        nh += high.data[at(c, h, w)]! ** 2;
      }
      lowNorm[c * W + w] = Math.sqrt(nl);
      highNorm[c * W + w] = Math.sqrt(nh);
      let dot = 0;
      for (let h = 0; h < H; h++) {
        const a = f(low.data[at(c, h, w)]! / lowNorm[c * W + w]!);
        const b = f(high.data[at(c, h, w)]! / highNorm[c * W + w]!);
        dot += f(a * b);
      }
      dots[c * W + w] = f(dot);
      dotSum += f(dot);
    }
  }
  if (f(dotSum / (C * W)) > 0.9995) {
    for (let i = 0; i < out.length; i++) out[i] = f(low.data[i]! * f(val)) + f(high.data[i]! * f(1 - val));
    return float32(low.shape, out);
  }
  for (let c = 0; c < C; c++) {
    for (let w = 0; w < W; w++) {
      const omega = f(Math.acos(dots[c * W + w]!));
      const so = f(Math.sin(omega));
      const wl = f(f(Math.sin(f(f(1 - val) * omega))) / so);
      const wh = f(f(Math.sin(f(f(val) * omega))) / so);
      for (let h = 0; h < H; h++) {
        const i = at(c, h, w);
        out[i] = f(wl * low.data[i]!) + f(wh * high.data[i]!);
      }
    }
  }
  return float32(low.shape, out);
}

/**
 * "Advanced Seed Blending"'s initial noise of one image (C, H, W), see catalog/seed-blend.ts: while more than one noise is
 * left, the first is slerped into each of the others at w / (w + w_first), which then weigh w * w_first.
 */
export function blendSeedNoise(source: NoiseSource, entries: readonly SeedBlendEntry[], shape: readonly number[]): Float32Tensor {
  let noises = entries.map((e) => ({ noise: randn(source, e.seed, shape), weight: e.weight }));
  while (noises.length > 1) {
    const first = noises[0]!;
    noises = noises.slice(1).map((r) => ({ noise: slerp(r.weight / (r.weight + first.weight), first.noise, r.noise), weight: r.weight * first.weight }));
  }
  return noises[0]!.noise;
}

export interface ImageRngOptions {
  /** Latent shape (C, H, W) of one image. */
  readonly shape: readonly [number, number, number];
  /** One seed per batch item (p.all_seeds slice). */
  readonly seeds: readonly number[];
  /** Variation seeds per item (missing items use subseed 0, as A1111). */
  readonly subseeds?: readonly number[];
  readonly subseedStrength?: number;
  /** "Resize seed from" height/width in pixels; <= 0 is off. */
  readonly seedResizeFromH?: number;
  readonly seedResizeFromW?: number;
  readonly source: NoiseSource;
  /** opts.eta_noise_seed_delta: after the initial noise the generators are re-created from seed + ENSD. */
  readonly ensd?: number;
  /**
   * "Advanced Seed Blending": every item's initial noise is this blend instead of its seed's (variation seeds
   * and seed resize take no part, as the script replaces the whole noise maker); each item's generator still
   * advances past its first draw, so later draws are those of a plain render of its seed.
   */
  readonly seedBlend?: readonly SeedBlendEntry[];
}

/**
 * rng.ImageRNG: `first()` (= the first `next()`) is the initial latent noise (B, C, H, W); every later `next()` is
 * one more draw of the full shape from each item's generator (what k-diffusion's randn_like gets).
 */
export class ImageRNG {
  private generators: NoiseGenerator[];
  private isFirst = true;
  /** Calls of next() and skip() so far; another ImageRNG of the same options replays them (see replayState). */
  private draws = 0;
  /** first() called on its own leaves the generators where no count of next() calls puts them. */
  private firstCalledDirectly = false;

  constructor(readonly opts: ImageRngOptions) {
    this.generators = opts.seeds.map((s) => createGenerator(opts.source, s));
  }

  get batchShape(): number[] {
    return [this.opts.seeds.length, ...this.opts.shape];
  }

  first(): Float32Tensor {
    this.firstCalledDirectly = true;
    return this.firstDraw();
  }

  /**
   * What rebuilds this generator state elsewhere (another thread): the options and the number of next() /
   * skip() calls made, replayed as skips on a new ImageRNG. Undefined after a direct first() call.
   */
  replayState(): { readonly opts: ImageRngOptions; readonly draws: number } | undefined {
    return this.firstCalledDirectly ? undefined : { opts: this.opts, draws: this.draws };
  }

  private firstDraw(): Float32Tensor {
    const { shape, seeds, subseeds, source } = this.opts;
    const strength = this.opts.subseedStrength ?? 0;
    const rh = this.opts.seedResizeFromH ?? 0;
    const rw = this.opts.seedResizeFromW ?? 0;
    const resized = rh > 0 && rw > 0;
    const noiseShape: [number, number, number] = resized ? [shape[0], Math.floor(rh / 8), Math.floor(rw / 8)] : [...shape];
    const sameShape = noiseShape[1] === shape[1] && noiseShape[2] === shape[2];
    const per = numel(shape);
    const out = new Float32Array(seeds.length * per);
    const blend = this.opts.seedBlend;
    const blended = blend && blend.length > 0 ? blendSeedNoise(source, blend, shape) : undefined;
    seeds.forEach((seed, i) => {
      const generator = this.generators[i]!;
      if (blended) {
        generator.skip(per);
        out.set(blended.data, i * per);
        return;
      }
      let subnoise: Float32Tensor | undefined;
      if (subseeds !== undefined && strength !== 0) subnoise = randn(source, subseeds[i] ?? 0, noiseShape);
      let noise = sameShape ? float32(noiseShape, generator.randn(per)) : randn(source, seed, noiseShape);
      if (subnoise) noise = slerp(strength, noise, subnoise);
      if (!sameShape) noise = pasteCentred(noise, float32(shape, generator.randn(per)));
      out.set(noise.data, i * per);
    });
    if (this.opts.ensd) {
      const ensd = this.opts.ensd;
      this.generators = seeds.map((s) => createGenerator(source, BigInt(s) + BigInt(ensd)));
    }
    return float32(this.batchShape, out);
  }

  next(): Float32Tensor {
    this.draws++;
    if (this.isFirst) {
      this.isFirst = false;
      return this.firstDraw();
    }
    const per = numel(this.opts.shape);
    // one image: its draw is the batch, no copy
    if (this.generators.length === 1) return float32(this.batchShape, this.generators[0]!.randn(per));
    const out = new Float32Array(this.generators.length * per);
    this.generators.forEach((g, i) => out.set(g.randn(per), i * per));
    return float32(this.batchShape, out);
  }

  /**
   * Advances every generator exactly as `next()` would, without producing the noise: for steps that draw noise
   * only to keep the generators in step with A1111 (Euler, Heun, DPM2 with s_churn 0).
   */
  skip(): void {
    if (this.isFirst) {
      this.next();
      return;
    }
    this.draws++;
    const per = numel(this.opts.shape);
    for (const g of this.generators) g.skip(per);
  }
}

/** Seed resize: the small noise pasted centred into x (or its centre cropped into x where it is larger). */
function pasteCentred(noise: Float32Tensor, x: Float32Tensor): Float32Tensor {
  const [C, nh, nw] = noise.shape as [number, number, number];
  const [, H, W] = x.shape as [number, number, number];
  let dx = Math.floor((W - nw) / 2);
  let dy = Math.floor((H - nh) / 2);
  const w = dx >= 0 ? nw : nw + 2 * dx;
  const h = dy >= 0 ? nh : nh + 2 * dy;
  const tx = dx < 0 ? 0 : dx;
  const ty = dy < 0 ? 0 : dy;
  dx = Math.max(-dx, 0);
  dy = Math.max(-dy, 0);
  const out = Float32Array.from(x.data);
  for (let c = 0; c < C; c++)
    for (let r = 0; r < h; r++)
      for (let q = 0; q < w; q++) out[(c * H + ty + r) * W + tx + q] = noise.data[(c * nh + dy + r) * nw + dx + q]!;
  return float32(x.shape, out);
}
