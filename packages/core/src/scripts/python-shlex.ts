/**
 * Python's shlex.split(s) (POSIX mode): words split at spaces, tabs and line breaks; '...' keeps everything
 * literally, "..." lets a backslash escape only `"` and `\`, and outside quotes a backslash escapes any
 * character. Quotes join to their neighbours ("a"b is one word ab).
 */
import { DarkroomError } from '../errors.js';

const WHITESPACE = new Set([' ', '\t', '\r', '\n']);

export function shlexSplit(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (chars[i + 1] === '"' || chars[i + 1] === '\\')) word += chars[++i]!;
      else if (c === '\\' && i + 1 >= chars.length) throw new DarkroomError('SHLEX_ERROR', 'No closing quotation');
      else word += c;
      continue;
    }
    if (WHITESPACE.has(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'" || c === '"') quote = c;
    else if (c === '\\') {
      if (i + 1 >= chars.length) throw new DarkroomError('SHLEX_ERROR', 'No escaped character');
      word += chars[++i]!;
    } else word += c;
  }
  if (quote) throw new DarkroomError('SHLEX_ERROR', 'No closing quotation');
  if (inWord) words.push(word);
  return words;
}
