/**
 * A1111's `/sdapi/v1/png-info` answer from a PNG's text chunks: the one reader behind the API's endpoint, the
 * engine and the command line, so that all three apply the same checks and inflation ceilings.
 */
import { parseGenerationParameters, type ParsedInfotextValue } from './infotext.js';
import { readPngText } from './png.js';

export interface PngInfo {
  /** The `parameters` infotext, or '' when the PNG has none. */
  readonly info: string;
  /** Every other text chunk. */
  readonly items: Record<string, string>;
  /** parse_generation_parameters of `info`. */
  readonly parameters: Record<string, ParsedInfotextValue>;
}

/**
 * Reads the infotext and other text chunks of a PNG. Throws DarkroomError (PNG_BAD_SIGNATURE, PNG_TRUNCATED,
 * PNG_BAD_CRC, PNG_BAD_TEXT, PNG_TEXT_TOO_LARGE) for bytes that are not a readable PNG.
 */
export function pngInfo(bytes: Uint8Array): PngInfo {
  const items: Record<string, string> = {};
  let info = '';
  for (const [key, text] of Object.entries(readPngText(bytes))) {
    if (key === 'parameters') info = text;
    else items[key] = text;
  }
  const parameters = info ? Object.fromEntries(parseGenerationParameters(info)) : {};
  return { info, items, parameters };
}
