/**
 * How often a model draws what held-out captions say: each held-out scene's full caption is rendered by the
 * Engine at the model's resolution, and the detector checks colour, background, position and shape. The `seen`
 * split measures the same on combinations training shows (seenScenes), to tell a fact the model has not learnt
 * from one it does not carry to new combinations. The `varied` phrasing renders the captions as people write
 * them (any template, size and position stated or not) and checks only what each one says.
 */
import { decodePng } from '../../formats/png.js';
import type { Engine } from '../../pipeline/engine.js';
import { captionScene } from './captions.js';
import { evaluateScene, type SceneMatch } from './detect.js';
import type { RgbImage } from './render.js';
import { heldOutScenes, seenScenes, type Scene } from './scene.js';

/** Which scenes are rendered: the held-out combinations, or as many trained ones with the same shapes. */
export const SCENE_SPLITS = ['held-out', 'seen'] as const;
export type SceneSplit = (typeof SCENE_SPLITS)[number];

/** How each scene is captioned: every fact in one template, or the training captions' varied phrasings. */
export const CAPTION_PHRASINGS = ['full', 'varied'] as const;
export type CaptionPhrasing = (typeof CAPTION_PHRASINGS)[number];

export interface HeldOutOptions {
  readonly checkpoint: string;
  readonly resolution: number;
  /** Evaluate the first `limit` held-out scenes (default all). */
  readonly limit?: number;
  readonly steps?: number;
  readonly sampler?: string;
  readonly cfgScale?: number;
  readonly seed?: number;
  /** Default `held-out`. */
  readonly split?: SceneSplit;
  /** Default `full`. */
  readonly phrasing?: CaptionPhrasing;
}

export interface HeldOutCase {
  readonly scene: Scene;
  readonly prompt: string;
  readonly image: RgbImage;
  readonly match: SceneMatch;
}

export interface HeldOutReport {
  readonly cases: readonly HeldOutCase[];
  /** Fraction of cases right, per fact. */
  readonly rates: Readonly<Record<keyof SceneMatch, number>>;
}

/** The scenes an evaluation seed renders: held-out combinations, or as many that training shows; the first `limit`. */
export function evaluationScenes(split: SceneSplit, seed: number, limit?: number): Scene[] {
  return (split === 'seen' ? seenScenes : heldOutScenes)(seed).slice(0, limit);
}

export async function evaluateHeldOut(engine: Engine, opts: HeldOutOptions, onCase: (c: HeldOutCase, i: number, n: number) => void = () => {}): Promise<HeldOutReport> {
  const scenes = evaluationScenes(opts.split ?? 'held-out', opts.seed ?? 1, opts.limit);
  const cases: HeldOutCase[] = [];
  for (const [i, scene] of scenes.entries()) {
    const caption = captionScene(scene, opts.seed ?? 1, i, opts.phrasing !== 'varied');
    const prompt = caption.text;
    const r = await engine.txt2img(
      {
        prompt,
        negative_prompt: '',
        steps: opts.steps ?? 20,
        sampler_name: opts.sampler ?? 'DPM++ 2M',
        cfg_scale: opts.cfgScale ?? 5,
        seed: (opts.seed ?? 1) * 1000 + i,
        width: opts.resolution,
        height: opts.resolution,
      },
      { checkpoint: opts.checkpoint },
    );
    const image = pngToRgb(r.images[0]!);
    const c: HeldOutCase = { scene, prompt, image, match: evaluateScene(image, scene, { statesPosition: caption.statesPosition }) };
    cases.push(c);
    onCase(c, i, scenes.length);
  }
  return { cases, rates: matchRates(cases) };
}

/** A rendered PNG's colour channels, as the detector reads them. */
export function pngToRgb(bytes: Uint8Array): RgbImage {
  const png = decodePng(bytes);
  const rgb = new Uint8Array(png.width * png.height * 3);
  for (let p = 0; p < png.width * png.height; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = png.data[p * png.channels + c]!;
  return { width: png.width, height: png.height, data: rgb };
}

/** Fraction of `cases` right, per fact (0 for none). */
export function matchRates(cases: readonly HeldOutCase[]): HeldOutReport['rates'] {
  const rate = (k: keyof SceneMatch): number => cases.filter((c) => c.match[k]).length / Math.max(1, cases.length);
  return { colour: rate('colour'), background: rate('background'), position: rate('position'), shape: rate('shape') };
}
