/**
 * The caption text of A1111's training dataset (`PersonalizedBase` in modules/textual_inversion/dataset.py):
 * the words a file name or its `.txt` gives, the template lines, and the caption made from one line.
 */
import { DarkroomError, isDarkroomError } from '../errors.js';
import { PY_SPACE } from '../text/python-compat.js';
import { compilePyRegex, type PyRegex } from './python-regex.js';

export interface FilenameWordOptions {
  /** The `dataset_filename_word_regex` option, a Python pattern; empty keeps the name whole. */
  readonly wordRegex: string;
  /** The `dataset_filename_join_string` option (A1111 default " "; unset joins with nothing). */
  readonly joinString?: string | null;
}

export interface CaptionOptions {
  readonly shuffleTags?: boolean;
  readonly tagDropOut?: number;
  /** Uniform in [0, 1); needed only when tags are shuffled or dropped. */
  readonly random?: () => number;
}

// Leading digits and dashes, then whitespace: the numbering many tools prefix to file names.
const NUMBERS_AT_START = new RegExp(`^[-\\p{Nd}]+[${PY_SPACE}]*`, 'u');
const STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');

const compiled = new Map<string, PyRegex>();

function wordRegex(pattern: string): PyRegex {
  let re = compiled.get(pattern);
  if (re) return re;
  try {
    re = compilePyRegex(pattern);
  } catch (e) {
    if (!isDarkroomError(e, 'PY_REGEX_ERROR')) throw e;
    throw new DarkroomError('TRAINING_WORD_REGEX_INVALID', `the filename word regex ${JSON.stringify(pattern)} does not compile: ${e.message}`, {
      field: 'dataset_filename_word_regex',
      pattern,
      cause: e.details.cause,
    });
  }
  compiled.set(pattern, re);
  return re;
}

/** Text as Python reads a file opened in text mode: `\r\n` and lone `\r` become `\n`. */
export function universalNewlines(text: string): string {
  return text.replace(/\r\n?/g, '\n');
}

/** Python's `os.path.splitext` of a base name: the last extension, where leading dots do not start one. */
export function splitExtension(name: string): [root: string, ext: string] {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || /^\.+$/.test(name.slice(0, dot))) return [name, ''];
  return [name.slice(0, dot), name.slice(dot)];
}

/** The caption file A1111 looks for beside an image: the image's path with its extension replaced by `.txt`. */
export function captionFileName(imageFileName: string): string {
  return splitExtension(imageFileName)[0] + '.txt';
}

/**
 * `filename_text` of one image: its caption file's whole content when there is one (not stripped, a trailing
 * newline stays), else the file name without its extension and leading numbering, reduced to the word
 * regex's matches joined by the join string.
 */
export function filenameText(fileName: string, captionTxt: string | null, opts: FilenameWordOptions): string {
  if (captionTxt !== null) return universalNewlines(captionTxt);
  const text = splitExtension(fileName)[0].replace(NUMBERS_AT_START, '');
  if (!opts.wordRegex) return text;
  const tokens = wordRegex(opts.wordRegex).findall(text);
  if (tokens.some((t) => typeof t !== 'string')) {
    // A pattern with several groups gives tuples, which Python's str.join refuses.
    throw new DarkroomError(
      'TRAINING_WORD_REGEX_INVALID',
      `the filename word regex ${JSON.stringify(opts.wordRegex)} has several groups: sequence item 0: expected str instance, tuple found`,
      { field: 'dataset_filename_word_regex', pattern: opts.wordRegex },
    );
  }
  return tokens.join(opts.joinString ?? '');
}

/** `[x.strip() for x in file.readlines()]`: one entry per line, a blank line is an empty template. */
export function templateLines(fileText: string): string[] {
  const text = universalNewlines(fileText);
  const lines = text.split('\n');
  // readlines() yields no entry after a final newline.
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => line.replace(STRIP, ''));
}

/** `random.choice(lines)` with the caller's random source. */
export function chooseTemplateLine(lines: readonly string[], random: () => number): string {
  if (lines.length === 0) throw new DarkroomError('TRAINING_TEMPLATE_EMPTY', 'the prompt template file has no lines', { field: 'template_file' });
  return lines[Math.min(lines.length - 1, Math.floor(random() * lines.length))]!;
}

/**
 * `create_text` for a chosen template line: the comma-separated tags (dropped and shuffled when asked) go in
 * for `[filewords]`, then `[name]` becomes the placeholder, so a `[name]` inside a caption is replaced too.
 */
export function createText(templateLine: string, filenameText: string, placeholder: string, opts: CaptionOptions = {}): string {
  let tags = filenameText.split(',');
  const dropOut = opts.tagDropOut ?? 0;
  if ((dropOut !== 0 || opts.shuffleTags) && !opts.random) {
    throw new DarkroomError('BAD_PARAMS', 'tag shuffling and tag drop-out need a random source');
  }
  if (dropOut !== 0) tags = tags.filter(() => opts.random!() > dropOut);
  if (opts.shuffleTags) tags = shuffled(tags, opts.random!);
  return templateLine.split('[filewords]').join(tags.join(',')).split('[name]').join(placeholder);
}

/** Python's `random.shuffle` order of swaps (Fisher-Yates from the end). */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
