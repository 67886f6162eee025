import { createHash } from 'node:crypto';
import type { FarmConfig } from './config.js';
import { FarmError } from './errors.js';
import { pngDecoderRefusal, pngStructureProblem, readPngHeader, sniffImageFormat } from './png-header.js';

/**
 * The rules a training dataset upload must pass, as pure functions over names, sizes and bytes: the API stages
 * files locally, runs these, and writes to storage only when every file passed.
 */

export interface DatasetLimits {
  /** Images and captions kept. */
  maxFiles: number;
  /** Archive entries or form parts, ignored ones included (they still cost a directory walk). */
  maxEntries: number;
  /** Uncompressed bytes of all kept files. */
  maxBytes: number;
  maxFileBytes: number;
  maxImageSide: number;
  maxImagePixels: number;
}

export function datasetLimits(cfg: Pick<FarmConfig,
  'datasetMaxFiles' | 'datasetMaxEntries' | 'datasetMaxBytes' | 'datasetMaxFileBytes' | 'datasetMaxImageSide' | 'datasetMaxImagePixels'>): DatasetLimits {
  return {
    maxFiles: cfg.datasetMaxFiles,
    maxEntries: cfg.datasetMaxEntries,
    maxBytes: cfg.datasetMaxBytes,
    maxFileBytes: cfg.datasetMaxFileBytes,
    maxImageSide: cfg.datasetMaxImageSide,
    maxImagePixels: cfg.datasetMaxImagePixels,
  };
}

/** Only PNG has a decoder in the engine; the rest are refused by name so the client knows to convert them. */
export const DATASET_IMAGE_EXTENSIONS: readonly string[] = ['.png'];
export const DATASET_CAPTION_EXTENSION = '.txt';
const UNDECODABLE_IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.jfif', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.avif', '.heic', '.jxl']);

/** The longest file name most filesystems store, so a trainer can write the dataset out under its own names. */
export const MAX_FILE_NAME_BYTES = 255;
export const MAX_DATASET_NAME_LENGTH = 100;

export type DatasetFileKind = 'image' | 'caption';

/** One file as the upload presented it: the form field it came in (`body` for a zip) and its path there. */
export interface UploadEntry {
  field: string;
  path: string;
  /** Uncompressed size, as declared (zip central directory) or as received. */
  size: number;
  symlink?: boolean;
}

export type PathDecision = { keep: true; name: string } | { keep: false; reason: 'directory' | 'metadata' | 'hidden' };

function refuse(code: string, status: number, message: string, entry: Pick<UploadEntry, 'field' | 'path'>): never {
  throw new FarmError(code, status, message, entry.field, entry.path);
}

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot).toLowerCase() : '';
}

export function stemOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

/**
 * Decides what an entry path becomes: refused when it could land outside the dataset on any OS (parent
 * segments, absolute paths, backslashes, drive letters, NUL, symlinks), skipped when it is a folder, macOS
 * metadata or a dotfile, else kept under its last segment (folders are flattened; `planDataset` refuses clashes).
 */
export function classifyUploadPath(entry: UploadEntry): PathDecision {
  const path = entry.path;
  if (entry.symlink) refuse('SYMLINK_NOT_ALLOWED', 400, `"${path}" is a symbolic link`, entry);
  if (path.includes('\\')) refuse('UNSAFE_PATH', 400, `"${path}" contains a backslash`, entry);
  if (path.includes('\0')) refuse('UNSAFE_PATH', 400, `"${path}" contains a NUL character`, entry);
  if (path.startsWith('/')) refuse('UNSAFE_PATH', 400, `"${path}" is an absolute path`, entry);
  if (/^[A-Za-z]:/.test(path)) refuse('UNSAFE_PATH', 400, `"${path}" starts with a drive letter`, entry);
  const segments = path.split('/');
  if (segments.includes('..')) refuse('UNSAFE_PATH', 400, `"${path}" climbs out of the archive with ".."`, entry);
  // "./a.png" and "a//b.png" are harmless spellings; dropping them keeps "." from reading as a dotfile below.
  const parts = segments.filter((s) => s !== '' && s !== '.');
  if (path.endsWith('/')) return { keep: false, reason: 'directory' };
  if (parts[0] === '__MACOSX') return { keep: false, reason: 'metadata' };
  if (parts.some((s) => s.startsWith('.'))) return { keep: false, reason: 'hidden' };
  return { keep: true, name: parts.at(-1) ?? '' };
}

/** Hosts whose zip tools store Unix mode bits in the top half of the external attributes: Unix (3) and macOS (19). */
const UNIX_MODE_HOSTS = new Set([3, 19]);
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** Whether a zip entry is a symbolic link (its data is the link target, which must never be followed or stored). */
export function zipEntryIsSymlink(entry: { versionMadeBy: number; externalAttributes: number }): boolean {
  return UNIX_MODE_HOSTS.has(entry.versionMadeBy >> 8) && ((entry.externalAttributes >>> 16) & S_IFMT) === S_IFLNK;
}

/** File names end up in manifests and, on a trainer, on disk: refused when empty, over-long or unprintable. */
export function checkFileName(name: string, entry: Pick<UploadEntry, 'field' | 'path'>): void {
  if (name === '') refuse('NAME_EMPTY', 400, `"${entry.path}" has an empty file name`, entry);
  if (Buffer.byteLength(name, 'utf8') > MAX_FILE_NAME_BYTES) {
    refuse('NAME_TOO_LONG', 400, `file name "${name.slice(0, 40)}…" is longer than ${MAX_FILE_NAME_BYTES} bytes`, entry);
  }
  // Control characters and ':' (NTFS streams) cannot be written as file names everywhere a trainer may run.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what it refuses
  if (/[\u0000-\u001f\u007f:]/.test(name)) refuse('NAME_INVALID', 400, `file name "${name}" contains a control character or ":"`, entry);
}

/** A dataset's display name: required, letters, digits, spaces and `_.()+-`, not starting with a dot. */
export function parseDatasetName(raw: unknown): string {
  const field = 'name';
  if (raw === undefined || raw === null || raw === '') throw new FarmError('NAME_EMPTY', 400, 'a dataset needs a name (query or form field "name")', field);
  if (typeof raw !== 'string') throw new FarmError('NAME_INVALID', 400, 'give "name" once', field);
  if (raw.length > MAX_DATASET_NAME_LENGTH) throw new FarmError('NAME_TOO_LONG', 400, `name is longer than ${MAX_DATASET_NAME_LENGTH} characters`, field);
  if (!/^[\p{L}\p{N}_. ()+-]+$/u.test(raw) || raw.startsWith('.') || raw.trim() === '') {
    throw new FarmError('NAME_INVALID', 400, 'name may hold letters, digits, spaces and _.()+-, and may not start with "."', field);
  }
  return raw;
}

export interface PlannedFile<T extends UploadEntry> {
  name: string;
  kind: DatasetFileKind;
  entry: T;
  /** An image's caption file (same stem, `.txt`) if the upload has one; a caption's image. */
  partner: string | null;
}

function kindOf(name: string, entry: UploadEntry): DatasetFileKind {
  const ext = extensionOf(name);
  if (DATASET_IMAGE_EXTENSIONS.includes(ext)) return 'image';
  if (ext === DATASET_CAPTION_EXTENSION) return 'caption';
  if (UNDECODABLE_IMAGE_EXTENSIONS.has(ext)) {
    refuse('UNSUPPORTED_IMAGE_FORMAT', 400, `"${entry.path}": ${ext} images cannot be decoded; convert them to PNG`, entry);
  }
  return refuse('UNSUPPORTED_FILE', 400, `"${entry.path}" is neither a PNG image nor a .txt caption`, entry);
}

/**
 * Everything that can be decided from names and declared sizes, before a byte is inflated or stored: unsafe
 * paths refuse the whole upload, then names, kinds, duplicates (case-insensitively: a trainer on macOS or
 * Windows would see one file), counts and sizes. Captions pair with images by stem, as A1111's trainer does.
 */
export function planDataset<T extends UploadEntry>(entries: readonly T[], limits: DatasetLimits, field: string): PlannedFile<T>[] {
  if (entries.length > limits.maxEntries) {
    throw new FarmError('TOO_MANY_ENTRIES', 413, `the upload has ${entries.length} entries; DATASET_MAX_ENTRIES is ${limits.maxEntries}`, field);
  }
  const decisions = entries.map((e) => ({ entry: e, decision: classifyUploadPath(e) }));
  const planned: PlannedFile<T>[] = [];
  const seen = new Map<string, T>();
  let total = 0;
  for (const { entry, decision } of decisions) {
    if (!decision.keep) continue;
    const name = decision.name;
    checkFileName(name, entry);
    const kind = kindOf(name, entry);
    const clash = seen.get(name.toLowerCase());
    if (clash) refuse('DUPLICATE_NAME', 400, `"${entry.path}" and "${clash.path}" would both be named "${name}"`, entry);
    seen.set(name.toLowerCase(), entry);
    if (entry.size > limits.maxFileBytes) {
      refuse('FILE_TOO_LARGE', 413, `"${entry.path}" is ${entry.size} bytes; DATASET_MAX_FILE_BYTES is ${limits.maxFileBytes}`, entry);
    }
    total += entry.size;
    if (total > limits.maxBytes) refuse('DATASET_TOO_LARGE', 413, `the files add up to more than DATASET_MAX_BYTES (${limits.maxBytes})`, entry);
    planned.push({ name, kind, entry, partner: null });
    if (planned.length > limits.maxFiles) refuse('TOO_MANY_FILES', 413, `more than DATASET_MAX_FILES (${limits.maxFiles}) files`, entry);
  }
  const images = planned.filter((p) => p.kind === 'image');
  if (images.length === 0) throw new FarmError('NO_IMAGES', 400, 'the upload holds no PNG images', field);
  const imageByStem = new Map(images.map((p) => [stemOf(p.name), p]));
  for (const c of planned.filter((p) => p.kind === 'caption')) {
    const image = imageByStem.get(stemOf(c.name));
    if (!image) refuse('ORPHAN_CAPTION', 400, `caption "${c.entry.path}" has no image named "${stemOf(c.name)}.png"`, c.entry);
    image.partner = c.name;
    c.partner = image.name;
  }
  return planned.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export interface DatasetImageInfo {
  kind: 'image';
  name: string;
  bytes: number;
  sha256: string;
  width: number;
  height: number;
  caption: string | null;
}

export interface DatasetCaptionInfo {
  kind: 'caption';
  name: string;
  bytes: number;
  sha256: string;
  image: string;
}

export type DatasetFileInfo = DatasetImageInfo | DatasetCaptionInfo;

/** Size and decodability of an image from its header and chunk framing; pixels are never inflated here. */
export function inspectImage(data: Uint8Array, entry: Pick<UploadEntry, 'field' | 'path'>, limits: DatasetLimits): { width: number; height: number } {
  const format = sniffImageFormat(data);
  if (format !== 'png' && format !== 'unknown') {
    refuse('UNSUPPORTED_IMAGE_FORMAT', 400, `"${entry.path}" holds ${format.toUpperCase()} data; only PNG can be decoded`, entry);
  }
  const read = readPngHeader(data);
  if (!read.ok) refuse('INVALID_IMAGE', 400, `"${entry.path}" is not a valid PNG: ${read.reason}`, entry);
  const { width, height } = read.header;
  if (width > limits.maxImageSide || height > limits.maxImageSide || width * height > limits.maxImagePixels) {
    refuse('IMAGE_TOO_LARGE', 400,
      `"${entry.path}" is ${width}x${height}; the limits are ${limits.maxImageSide} pixels a side (DATASET_MAX_IMAGE_SIDE) and ${limits.maxImagePixels} pixels (DATASET_MAX_IMAGE_PIXELS)`, entry);
  }
  const refusal = pngDecoderRefusal(read.header);
  if (refusal) refuse('UNSUPPORTED_IMAGE', 400, `"${entry.path}": ${refusal}`, entry);
  const damage = pngStructureProblem(data, read.header.colorType);
  if (damage) refuse('INVALID_IMAGE', 400, `"${entry.path}" is damaged: ${damage}`, entry);
  return { width, height };
}

/** Captions are prompts: UTF-8 text (a leading BOM is allowed, as Windows editors write one). */
export function checkCaption(data: Uint8Array, entry: Pick<UploadEntry, 'field' | 'path'>): void {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    refuse('INVALID_CAPTION', 400, `caption "${entry.path}" is not UTF-8 text`, entry);
  }
  if (data.includes(0)) refuse('INVALID_CAPTION', 400, `caption "${entry.path}" contains NUL bytes; is it really text?`, entry);
}

/** The manifest record of one planned file once its bytes are in hand, after the content checks above. */
export function describeFile<T extends UploadEntry>(file: PlannedFile<T>, data: Uint8Array, limits: DatasetLimits): DatasetFileInfo {
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (file.kind === 'caption') {
    checkCaption(data, file.entry);
    return { kind: 'caption', name: file.name, bytes: data.length, sha256, image: file.partner ?? '' };
  }
  const { width, height } = inspectImage(data, file.entry, limits);
  return { kind: 'image', name: file.name, bytes: data.length, sha256, width, height, caption: file.partner };
}
