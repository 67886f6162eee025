/**
 * A1111's saved prompt styles (modules/styles.py): a styles CSV of `name,prompt,negative_prompt` rows, and how
 * a style's text is merged into a prompt. A style text holding `{prompt}` has the prompt put in its place;
 * any other is appended after ", " (empty parts dropped, both sides stripped). Styles apply in the order named,
 * to the prompt with their `prompt` and to the negative prompt with their `negative_prompt`.
 */
import { DarkroomError } from '../errors.js';

export interface PromptStyle {
  readonly name: string;
  readonly prompt: string;
  readonly negative_prompt: string;
}

/** `merge_prompts`. */
export function mergeStylePrompt(styleText: string, prompt: string): string {
  if (styleText.includes('{prompt}')) return styleText.split('{prompt}').join(prompt);
  return [prompt.trim(), styleText.trim()].filter((p) => p !== '').join(', ');
}

/** `apply_styles_to_prompt` with the styles' texts, in order. */
export function applyStyleTexts(prompt: string, texts: readonly string[]): string {
  return texts.reduce((p, text) => mergeStylePrompt(text, p), prompt);
}

/**
 * Python's csv reader (excel dialect, `skipinitialspace=True`) over the text: fields split at commas, a field
 * that starts with `"` runs to its closing quote (`""` is a quote, newlines kept), whitespace after a comma
 * skipped. A lone `\r`, `\n` or `\r\n` outside quotes ends a row.
 */
export function readCsvRows(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let atFieldStart = true;
  let quoted = false;
  const endField = (): void => {
    row.push(field);
    field = '';
    atFieldStart = true;
    quoted = false;
  };
  const endRow = (): void => {
    endField();
    rows.push(row);
    row = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (atFieldStart && c === ' ') {
      i++;
      continue;
    }
    if (atFieldStart && c === '"') {
      quoted = true;
      atFieldStart = false;
      i++;
      continue;
    }
    atFieldStart = false;
    if (c === ',') {
      endField();
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') {
      endRow();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      continue;
    }
    field += c;
    i++;
  }
  if (quoted) throw new DarkroomError('STYLES_BAD_CSV', 'a quoted field is not closed before the end of the file');
  if (field !== '' || row.length > 0) endRow();
  // Python's reader yields [] for a blank line; DictReader skips those
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/**
 * A styles CSV as A1111 loads it: a header row naming the columns (`name`, `prompt` — or the old `text` — and
 * `negative_prompt`), rows whose name starts with `#` skipped, a later row of the same name replacing an earlier
 * one. A UTF-8 byte order mark is dropped first (A1111 opens the file as utf-8-sig).
 */
export function parseStylesCsv(text: string): PromptStyle[] {
  const rows = readCsvRows(text.replace(/^\uFEFF/, ''));
  const header = rows.shift();
  if (!header?.includes('name')) {
    throw new DarkroomError('STYLES_BAD_CSV', 'the first row must name the columns: name,prompt,negative_prompt');
  }
  const column = (row: readonly string[], name: string): string | undefined => {
    const at = header.indexOf(name);
    return at < 0 ? undefined : row[at];
  };
  const styles = new Map<string, PromptStyle>();
  for (const row of rows) {
    const name = column(row, 'name') ?? '';
    if (name.startsWith('#')) continue;
    const prompt = column(row, 'prompt') ?? column(row, 'text') ?? '';
    styles.set(name, { name, prompt, negative_prompt: column(row, 'negative_prompt') ?? '' });
  }
  return [...styles.values()];
}
