/**
 * A1111's extras upscale (scripts/postprocessing_upscale.py as postprocessing.run_extras drives it for
 * `/sdapi/v1/extra-single-image` and `/extra-batch-images`): the image upscaled by a factor or to a size with
 * `upscaler_1`, optionally blended with `upscaler_2`'s result, optionally cropped to the size, and the
 * `postprocessing` infotext that records what was done. Face restoration is not here: the engine has none.
 */
import { DarkroomError } from '../errors.js';
import { encodePng, type RasterImage } from '../formats/png.js';
import { quoteInfotextValue } from '../formats/infotext.js';
import { pyFloatRepr } from '../text/python-compat.js';
import { resizeImage, resizeNearest, toRgb } from './image.js';
import type { UpscalerLookup } from './types.js';
import { DEFAULT_UPSCALE_TILING, upscaleSteps, upscaleWithModel, type UpscaleTiling } from './upscalers.js';

/** The upscale fields of A1111's ExtrasBaseRequest, as run_extras hands them to the Upscale script. */
export interface PostprocessUpscaleParams {
  /** 0: by `upscaling_resize`; 1: to `upscaling_resize_w` x `upscaling_resize_h`. */
  readonly resize_mode: number;
  readonly upscaling_resize: number;
  readonly upscaling_resize_w: number;
  readonly upscaling_resize_h: number;
  readonly upscaling_crop: boolean;
  readonly upscaler_1: string;
  readonly upscaler_2: string;
  readonly extras_upscaler_2_visibility: number;
}

/** The extras tab's built-in upscalers (shared.sd_upscalers without a model): the latent modes are not among them. */
export const POSTPROCESS_BUILTIN_UPSCALERS: readonly string[] = ['None', 'Lanczos', 'Nearest'];

/** The result of one image: what the script made and its `pp.info`, in insertion order. */
export interface PostprocessResult {
  readonly image: RasterImage;
  readonly info: ReadonlyMap<string, string>;
}

type Step = (img: RasterImage) => Promise<RasterImage> | RasterImage;

/** An upscaler's do_upscale for `scale`: the built-ins resize to int(side * scale), a model runs tiled. */
function stepFor(name: string, scale: number, models: UpscalerLookup | undefined, tiling: UpscaleTiling): Step {
  if (name === 'Lanczos') return (img) => resizeImage(img, Math.trunc(img.width * scale), Math.trunc(img.height * scale));
  if (name === 'Nearest') return (img) => resizeNearest(img, Math.trunc(img.width * scale), Math.trunc(img.height * scale));
  const model = POSTPROCESS_BUILTIN_UPSCALERS.includes(name) ? undefined : models?.(name);
  // The "could not find upscaler" assertion of ScriptPostprocessingUpscale.process
  if (!model) throw new DarkroomError('UPSCALER_NOT_FOUND', `could not find upscaler named ${name}`, { upscaler: name });
  return async (img) => upscaleWithModel(await model, img, tiling);
}

/** Image.new("RGB", (w, h)) with `img` pasted at (w // 2 - img.width // 2, h // 2 - img.height // 2), clipped. */
function cropCentred(img: RasterImage, width: number, height: number): RasterImage {
  const data = new Uint8Array(width * height * 3);
  const ox = Math.floor(width / 2) - Math.floor(img.width / 2);
  const oy = Math.floor(height / 2) - Math.floor(img.height / 2);
  for (let y = Math.max(0, oy); y < Math.min(height, oy + img.height); y++) {
    const sx0 = Math.max(0, -ox);
    const sx1 = Math.min(img.width, width - ox);
    if (sx1 <= sx0) continue;
    const src = ((y - oy) * img.width + sx0) * 3;
    data.set(img.data.subarray(src, src + (sx1 - sx0) * 3), (y * width + sx0 + ox) * 3);
  }
  return { width, height, channels: 3, data };
}

/** PIL's Image.blend for 8-bit bands: in1 + alpha * (in2 - in1) in C float, truncated to a byte. */
export function blendImages(a: RasterImage, b: RasterImage, alpha: number): RasterImage {
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels) {
    throw new DarkroomError('IMAGE_SHAPE', `cannot blend a ${a.width}x${a.height} image with a ${b.width}x${b.height} one`);
  }
  const f = Math.fround;
  const fa = f(alpha);
  const data = new Uint8Array(a.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.trunc(f(a.data[i]! + f(fa * (b.data[i]! - a.data[i]!))));
  return { ...a, data };
}

/**
 * ScriptPostprocessingUpscale.upscale: the factor (mode 1: max of the two ratios to the target size) through
 * Upscaler.upscale, then the centred crop to the target size when asked. Sets the script's info keys.
 */
async function upscaleOnce(
  img: RasterImage, name: string, p: PostprocessUpscaleParams, info: Map<string, string>, models: UpscalerLookup | undefined, tiling: UpscaleTiling,
): Promise<RasterImage> {
  let scale = p.upscaling_resize;
  if (p.resize_mode === 1) {
    scale = Math.max(p.upscaling_resize_w / img.width, p.upscaling_resize_h / img.height);
    info.set('Postprocess upscale to', `${p.upscaling_resize_w}x${p.upscaling_resize_h}`);
  } else {
    info.set('Postprocess upscale by', pyFloatRepr(p.upscaling_resize));
  }
  let out = await upscaleSteps(stepFor(name, scale, models, tiling), img, scale);
  if (p.resize_mode === 1 && p.upscaling_crop) {
    out = cropCentred(out, p.upscaling_resize_w, p.upscaling_resize_h);
    info.set('Postprocess crop to', `${out.width}x${out.height}`);
  }
  return out;
}

/**
 * One image through the extras upscale. A1111 keeps an image's RGBA or RGB mode and converts any other to RGB;
 * here every image is taken as RGB (alpha dropped, as PIL's convert('RGB') does), which is what the model
 * upscalers see in A1111 too. `upscaler_1` "None" leaves the image as it is and records nothing.
 */
export async function postprocessUpscale(
  image: RasterImage, p: PostprocessUpscaleParams, models?: UpscalerLookup, tiling: UpscaleTiling = DEFAULT_UPSCALE_TILING,
): Promise<PostprocessResult> {
  const rgb = toRgb(image);
  const info = new Map<string, string>();
  if (p.upscaler_1 === 'None') return { image: rgb, info };
  let out = await upscaleOnce(rgb, p.upscaler_1, p, info, models, tiling);
  info.set('Postprocess upscaler', p.upscaler_1);
  if (p.upscaler_2 !== 'None' && p.extras_upscaler_2_visibility > 0) {
    const second = await upscaleOnce(rgb, p.upscaler_2, p, info, models, tiling);
    out = blendImages(out, second, p.extras_upscaler_2_visibility);
    info.set('Postprocess upscaler 2', p.upscaler_2);
  } else if (p.upscaler_2 !== 'None') {
    // A1111 looks the second name up even when its visibility is 0, and fails on an unknown one.
    stepFor(p.upscaler_2, 1, models, tiling);
  }
  return { image: out, info };
}

/** run_postprocessing's infotext: `k: v` joined by ', ' (`k` alone where the value equals the key), values quoted as infotexts quote them. */
export function postprocessingInfotext(info: ReadonlyMap<string, string>): string {
  return [...info].map(([k, v]) => (k === v ? k : `${k}: ${quoteInfotextValue(v)}`)).join(', ');
}

/**
 * The PNG an extras call answers with (encode_pil_to_base64 of pp.image): the source image's text chunks carried
 * over (`parameters` last, as read_info_from_image puts it back), then `postprocessing` with the infotext.
 */
export function postprocessedPng(image: RasterImage, sourceText: Readonly<Record<string, string>>, infotext: string): Uint8Array {
  const info = new Map(Object.entries(sourceText).filter(([k]) => k !== 'parameters'));
  if (sourceText.parameters !== undefined) info.set('parameters', sourceText.parameters);
  // An earlier pass's `postprocessing` is replaced where it stood (a dict key set again keeps its place).
  info.set('postprocessing', infotext);
  return encodePng(image, [...info]);
}
