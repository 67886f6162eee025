/**
 * The frames of an img2img video upload: a zip of PNG or JPEG frames (in natural name order: frame2 before frame10)
 * or an animated GIF (each frame composited as a viewer shows it, with its own delay). Everything untrusted is
 * bounded before it costs memory: the zip's member count, declared sizes and inflate ratio from its central
 * directory (core's zip reader and limits, as dataset uploads use), each frame's declared size against
 * MAX_INPUT_PIXELS from its header (the input-image check every init image goes through), and a GIF's frame count
 * and decoded size from its metadata before libvips decodes a pixel.
 */
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { checkZipLimits, isZip, memorySource, readZipDirectory, readZipEntry, type ZipEntry } from '@darkroom/core/formats/zip.js';
import { classifyUploadPath, zipEntryIsSymlink } from './dataset-validation.js';
import { FarmError, isFarmError } from './errors.js';
import { inputImageProblem, readImageSize } from './image-size.js';
import { sniffImageFormat } from './png-header.js';

export interface VideoLimits {
  /** Most frames (a flow's child count bounds it). */
  readonly maxFrames: number;
  /** Most pixels of one frame (MAX_INPUT_PIXELS). */
  readonly maxPixels: number;
  /** Most bytes the frames may take decoded, as RGBA, all together. */
  readonly maxDecodedBytes: number;
}

/** Frames decoded as RGBA, all together: 256 frames of 512x512. */
export const VIDEO_MAX_DECODED_BYTES = 256 * 1024 * 1024;

export interface VideoFrames {
  /** Each frame as an image file (PNG or JPEG), in order. */
  readonly frames: Uint8Array[];
  /** Milliseconds each frame shows (an animated GIF's timing), or null (a zip carries none). */
  readonly delaysMs: number[] | null;
}

/** Browsers show a GIF frame that asks for under 20 ms (0 often) for 100 ms; the animation keeps that reading. */
function gifDelay(ms: number | undefined): number {
  return ms === undefined || ms < 20 ? 100 : ms;
}

function tooManyFrames(count: number, limits: VideoLimits, field: string): FarmError {
  return new FarmError('VIDEO_TOO_MANY_FRAMES', 413, `${field}: the video has ${count} frames, more than the ${limits.maxFrames} a flow may render`, field);
}

function checkDecoded(frames: number, width: number, height: number, limits: VideoLimits, field: string): void {
  const bytes = frames * width * height * 4;
  if (bytes > limits.maxDecodedBytes) {
    throw new FarmError('VIDEO_TOO_LARGE', 413, `${field}: ${frames} frames of ${width}x${height} decode to ${bytes} bytes, more than ${limits.maxDecodedBytes}`, field);
  }
}

function frameProblem(bytes: Uint8Array, limits: VideoLimits, field: string, file: string): void {
  const format = sniffImageFormat(bytes);
  if (format !== 'png' && format !== 'jpeg') throw new FarmError('VIDEO_INVALID', 400, `${field}: "${file}" is not a PNG or JPEG frame`, field, file);
  const problem = inputImageProblem(bytes, limits.maxPixels);
  if (problem) throw new FarmError(problem.code, problem.code === 'IMAGE_TOO_LARGE' ? 413 : 400, `${field}: "${file}": ${problem.message}`, field, file);
}

async function zipFrames(bytes: Uint8Array, limits: VideoLimits, field: string): Promise<VideoFrames> {
  const src = memorySource(bytes);
  const source = field;
  let entries: ZipEntry[];
  try {
    // Directories and metadata members count too; the slack lets a folder or two through.
    entries = await readZipDirectory(src, source, { maxEntries: limits.maxFrames + 16 });
  } catch (e) {
    if (isDarkroomError(e) && e.code === 'ZIP_TOO_MANY_ENTRIES') throw tooManyFrames(Number(e.details.count), limits, field);
    if (isDarkroomError(e)) throw new FarmError('VIDEO_INVALID', 400, e.message, field);
    throw e;
  }
  const kept = entries.filter((zip) => classifyUploadPath({ field, path: zip.name, size: zip.size, symlink: zipEntryIsSymlink(zip) }).keep);
  if (kept.length === 0) throw new FarmError('VIDEO_INVALID', 400, `${field}: the zip holds no frames`, field);
  if (kept.length > limits.maxFrames) throw tooManyFrames(kept.length, limits, field);
  // Compressed frames never inflate past their decoded size, so that bound covers the inflated total as well.
  const zipLimits = { maxTotalBytes: limits.maxDecodedBytes, maxRatio: 1100, ratioFloorBytes: 1 << 20 };
  try {
    checkZipLimits(kept, zipLimits, source);
  } catch (e) {
    if (isDarkroomError(e)) throw new FarmError('VIDEO_TOO_LARGE', 413, e.message, field);
    throw e;
  }
  kept.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  const frames: Uint8Array[] = [];
  let decoded = 0;
  for (const zip of kept) {
    if (zip.flags & 1) throw new FarmError('VIDEO_INVALID', 400, `${field}: "${zip.name}" is encrypted`, field, zip.name);
    let data: Uint8Array;
    try {
      data = await readZipEntry(src, zip, source);
    } catch (e) {
      if (isDarkroomError(e)) throw new FarmError('VIDEO_INVALID', 400, e.message, field, zip.name);
      throw e;
    }
    frameProblem(data, limits, field, zip.name);
    const size = readImageSize(data);
    if (size.ok) decoded += size.width * size.height * 4;
    if (decoded > limits.maxDecodedBytes) {
      throw new FarmError('VIDEO_TOO_LARGE', 413, `${field}: the frames up to "${zip.name}" decode to more than ${limits.maxDecodedBytes} bytes`, field, zip.name);
    }
    frames.push(data);
  }
  return { frames, delaysMs: null };
}

async function gifFrames(bytes: Uint8Array, limits: VideoLimits, field: string): Promise<VideoFrames> {
  // The logical screen from the header first: a GIF claiming 30000x30000 is refused before libvips looks at it.
  const problem = inputImageProblem(bytes, limits.maxPixels);
  if (problem) throw new FarmError(problem.code, problem.code === 'IMAGE_TOO_LARGE' ? 413 : 400, `${field}: ${problem.message}`, field);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { animated: true, limitInputPixels: false }).metadata();
  } catch (e) {
    throw new FarmError('VIDEO_INVALID', 400, `${field}: the GIF cannot be read: ${(e as Error).message}`, field);
  }
  const pages = meta.pages ?? 1;
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (pages > limits.maxFrames) throw tooManyFrames(pages, limits, field);
  if (width * height > limits.maxPixels) {
    throw new FarmError('IMAGE_TOO_LARGE', 413, `${field}: frames of ${width}x${height} are more than the ${limits.maxPixels} pixels this farm decodes (MAX_INPUT_PIXELS)`, field);
  }
  checkDecoded(pages, width, height, limits, field);
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await sharp(bytes, { animated: true, limitInputPixels: width * height * pages, failOn: 'error' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new FarmError('VIDEO_INVALID', 400, `${field}: the GIF cannot be decoded: ${(e as Error).message}`, field);
  }
  const per = width * height * 4;
  if (raw.data.length !== per * pages) throw new FarmError('VIDEO_INVALID', 400, `${field}: the GIF decoded to ${raw.data.length} bytes, not ${pages} frames of ${width}x${height}`, field);
  const frames: Uint8Array[] = [];
  for (let p = 0; p < pages; p++) {
    const page = raw.data.subarray(p * per, (p + 1) * per);
    // Opaque frames go out as RGB, so they are the same image as the PNG of the frame a client would send.
    const opaque = page.every((v, i) => (i & 3) !== 3 || v === 255);
    const img = sharp(page, { raw: { width, height, channels: 4 } });
    const png = await (opaque ? img.removeAlpha() : img).png().toBuffer();
    frames.push(new Uint8Array(png.buffer, png.byteOffset, png.length));
  }
  const delays = meta.delay ?? [];
  return { frames, delaysMs: frames.map((_, i) => gifDelay(delays[i])) };
}

/** The frames of `bytes` (a zip of frames or an animated GIF); refusals name `field` (and the zip member). */
export async function readVideoFrames(bytes: Uint8Array, limits: VideoLimits, field: string): Promise<VideoFrames> {
  try {
    if (isZip(bytes.subarray(0, 4))) return await zipFrames(bytes, limits, field);
    if (sniffImageFormat(bytes) === 'gif') return await gifFrames(bytes, limits, field);
  } catch (e) {
    if (isFarmError(e) && e.field !== field) throw new FarmError(e.code, e.status, `${field}: ${e.message}`, field, e.file);
    throw e;
  }
  throw new FarmError('VIDEO_INVALID', 400, `${field}: not a zip of frames or an animated GIF`, field);
}
