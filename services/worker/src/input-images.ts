/**
 * Init images and masks as the engine takes them. PNGs go to the engine as bytes (its own decoder, the one the
 * parity suites check); JPEG, WebP, GIF, BMP and interlaced PNGs are decoded here by libvips (sharp), as A1111
 * takes any image PIL opens. Like PIL's open, nothing is rotated by EXIF orientation and the image keeps its
 * channels (gray, RGB, RGBA): the engine flattens an init image onto the background and takes a mask from its
 * alpha or its luminance as it does for a PNG of the same mode.
 *
 * The declared size is checked against MAX_INPUT_PIXELS from the header before any decoder runs (the API checked
 * it at submission; a job queued before a lower limit, or a file changed in storage, is refused here too).
 */
import sharp from 'sharp';
import { DarkroomError } from '@darkroom/core/errors.js';
import type { InitImage } from '@darkroom/core/pipeline/params.js';
import { inputImageProblem, readImageSize } from '@darkroom/farm/image-size.js';
import { readPngHeader } from '@darkroom/farm/png-header.js';

export async function decodeInputImage(bytes: Uint8Array, field: string, maxPixels: number): Promise<InitImage> {
  const problem = inputImageProblem(bytes, maxPixels);
  if (problem) throw new DarkroomError(problem.code, `${field}: ${problem.message}`, { field });
  const size = readImageSize(bytes);
  if (size.ok && size.format === 'png') {
    const head = readPngHeader(bytes);
    if (head.ok && head.header.interlace === 0) return bytes;
  }
  try {
    // limitInputPixels repeats the header check inside libvips; animated: false reads the first frame, as PIL does.
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, animated: false, failOn: 'error' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels < 1 || info.channels > 4) throw new Error(`${info.channels} channels`);
    return { width: info.width, height: info.height, channels: info.channels as 1 | 2 | 3 | 4, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    throw new DarkroomError('INVALID_IMAGE', `${field}: the image cannot be decoded: ${(e as Error).message}`, { field });
  }
}
