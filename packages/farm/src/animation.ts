/**
 * Animated images from rendered frames (seed travel's video): animated WebP or GIF through sharp (libvips), the
 * frames stacked as pages of one tall raw image. MP4 is not written: no H.264 encoder for Node is on npm as
 * JavaScript or WebAssembly under a permissive licence (the wasm builds carry x264 or ffmpeg under the GPL, and the
 * pure TypeScript muxers need the browser's WebCodecs to encode).
 */
import sharp from 'sharp';
import { FarmError } from './errors.js';

/** An 8-bit RGB frame, rows top to bottom. */
export interface RgbFrame {
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
  readonly data: Uint8Array;
}

export type AnimationFormat = 'webp' | 'gif';

export interface AnimationOptions {
  readonly format: AnimationFormat;
  /** Frames per second; each frame shows round(1000 / fps) ms (GIF stores hundredths, so it rounds to 10 ms). */
  readonly fps: number;
  /** Milliseconds each frame shows, one per frame, in place of 1000 / fps (a video's own timing). */
  readonly delays?: readonly number[];
  /** Times to play; 0 (the default) loops for ever. */
  readonly loop?: number;
  /** WebP only: lossless frames (the default) or lossy at `quality`. */
  readonly lossless?: boolean;
  readonly quality?: number;
}

/** libvips keeps an image under 2^31 pixel rows times width; a travel of thousands of large frames is refused early. */
const MAX_TOTAL_PIXELS = 1 << 30;

/** Milliseconds each frame shows at `fps`. */
export function frameDelayMs(fps: number): number {
  return Math.max(1, Math.round(1000 / fps));
}

/** The frames as one animated image (every frame the same size). */
export async function encodeAnimation(frames: readonly RgbFrame[], opts: AnimationOptions): Promise<Uint8Array> {
  if (frames.length === 0) throw new FarmError('ANIMATION_INVALID', 400, 'an animation needs at least one frame', 'frames');
  if (!Number.isFinite(opts.fps) || opts.fps <= 0 || opts.fps > 240) throw new FarmError('ANIMATION_INVALID', 400, 'fps must be above 0 and at most 240', 'fps');
  const { width, height } = frames[0]!;
  frames.forEach((f, i) => {
    if (f.width !== width || f.height !== height || f.channels !== 3 || f.data.length !== width * height * 3) {
      throw new FarmError('ANIMATION_INVALID', 400, `frame ${i} is ${f.width}x${f.height}x${f.channels}, the first ${width}x${height}x3`, `frames[${i}]`);
    }
  });
  if (width * height * frames.length > MAX_TOTAL_PIXELS) {
    throw new FarmError('ANIMATION_TOO_LARGE', 413, `${frames.length} frames of ${width}x${height} are more pixels than an animation may hold`, 'frames');
  }
  const stacked = Buffer.allocUnsafe(width * height * 3 * frames.length);
  frames.forEach((f, i) => stacked.set(f.data, i * width * height * 3));
  const image = sharp(stacked, { raw: { width, height: height * frames.length, channels: 3, pageHeight: height } });
  if (opts.delays && (opts.delays.length !== frames.length || opts.delays.some((d) => !Number.isInteger(d) || d < 1 || d > 65535))) {
    throw new FarmError('ANIMATION_INVALID', 400, `delays must be ${frames.length} whole milliseconds from 1 to 65535, one per frame`, 'delays');
  }
  const delay = opts.delays ? [...opts.delays] : new Array<number>(frames.length).fill(frameDelayMs(opts.fps));
  const loop = opts.loop ?? 0;
  const out =
    opts.format === 'webp'
      ? await image.webp({ loop, delay, lossless: opts.lossless ?? true, quality: opts.quality ?? 90, effort: 4 }).toBuffer()
      : await image.gif({ loop, delay, effort: 7 }).toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** An animation read back: its frames (RGB) and per-frame delays, for checks and previews. */
export async function decodeAnimation(bytes: Uint8Array): Promise<{ frames: RgbFrame[]; delay: number[]; loop: number }> {
  const img = sharp(bytes, { pages: -1 });
  const meta = await img.metadata();
  const pages = meta.pages ?? 1;
  const { data, info } = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const pageHeight = meta.pageHeight ?? info.height / pages;
  const per = info.width * pageHeight * 3;
  const frames = Array.from({ length: pages }, (_, i): RgbFrame => ({
    width: info.width,
    height: pageHeight,
    channels: 3,
    data: new Uint8Array(data.buffer, data.byteOffset + i * per, per),
  }));
  return { frames, delay: meta.delay ?? [], loop: meta.loop ?? 0 };
}
