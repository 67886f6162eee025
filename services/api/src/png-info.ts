import { isDarkroomError } from '@darkroom/core/errors.js';
import { pngInfo, type PngInfo } from '@darkroom/core/formats/png-info.js';
import { FarmError } from '@darkroom/farm';

/**
 * `/sdapi/v1/png-info` on the client's bytes. Every way the bytes can fail to be a readable PNG (truncated, bad
 * CRC, a JPEG, text that inflates past the ceiling) is the client's: a 4xx naming `image`, with the reader's code.
 */
export function readPngInfo(bytes: Uint8Array): PngInfo {
  try {
    return pngInfo(bytes);
  } catch (e) {
    if (!isDarkroomError(e)) throw e;
    const status = e.code === 'PNG_TEXT_TOO_LARGE' ? 413 : 400;
    throw new FarmError(e.code, status, `image: ${e.message}`, 'image');
  }
}
