/**
 * A1111's scan of a training folder (`PersonalizedBase`): every file that opens as an image is a dataset
 * entry with its caption words; anything else, the caption `.txt` files included, is passed over.
 */
import { DarkroomError } from '../errors.js';
import { decodePng, type RasterImage } from '../formats/png.js';
import { captionFileName, filenameText, type FilenameWordOptions } from './captions.js';

export interface DatasetFile {
  /** The base name inside the folder. */
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface DatasetImage {
  readonly file: string;
  readonly image: RasterImage;
  readonly filenameText: string;
}

export interface SkippedFile {
  readonly file: string;
  /** Why it did not open as an image (A1111 skips such files without a word). */
  readonly reason: string;
}

export interface DatasetScan {
  readonly images: readonly DatasetImage[];
  readonly skipped: readonly SkippedFile[];
}

export interface ScanOptions extends FilenameWordOptions {
  /** Decodes one file to pixels or throws; PNG by default. */
  readonly decode?: (bytes: Uint8Array) => RasterImage;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A caption file as `open(path, "r", encoding="utf8").read()` gives it: a BOM stays, newlines become `\n`. */
export function readCaptionFile(name: string, bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes).replace(/\r\n?/g, '\n');
  } catch {
    throw new DarkroomError('TRAINING_CAPTION_UNREADABLE', `caption file ${name} is not valid UTF-8`, { file: name });
  }
}

/** Python's sort order of file names: by code point (JavaScript's default compares UTF-16 units). */
function byCodePoint(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * The dataset entries of a folder, in file-name order (A1111 takes the file system's listing order, which
 * only the batch shuffling sees).
 */
export function scanDatasetFiles(files: readonly DatasetFile[], opts: ScanOptions): DatasetScan {
  const decode = opts.decode ?? decodePng;
  const byName = new Map(files.map((f) => [f.name, f]));
  const images: DatasetImage[] = [];
  const skipped: SkippedFile[] = [];
  for (const f of [...files].sort((a, b) => byCodePoint(a.name, b.name))) {
    let image: RasterImage;
    try {
      image = decode(f.bytes);
    } catch (e) {
      skipped.push({ file: f.name, reason: e instanceof Error ? e.message : String(e) });
      continue;
    }
    const caption = byName.get(captionFileName(f.name));
    const text = filenameText(f.name, caption ? readCaptionFile(caption.name, caption.bytes) : null, opts);
    images.push({ file: f.name, image, filenameText: text });
  }
  return { images, skipped };
}
