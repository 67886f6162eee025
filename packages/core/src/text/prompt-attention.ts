/**
 * A1111 `prompt_parser.parse_prompt_attention`: `(x)` x1.1, `[x]` /1.1, `(x:1.3)`, `\(` escapes, BREAK markers.
 * The multiplications happen in the same order as upstream so the float64 weights match bit for bit.
 */
import { DarkroomError, isDarkroomError } from '../errors.js';
import { PY_SPACE, parsePyFloat, pyWholeWord } from './python-compat.js';

/** One fragment of a parsed prompt: its text and weight. `['BREAK', -1]` marks a chunk break. */
export type AttentionFragment = [text: string, weight: number];

const ATTENTION_RE = new RegExp(
  [
    '\\\\\\(',
    '\\\\\\)',
    '\\\\\\[',
    '\\\\\\]',
    '\\\\\\\\',
    '\\\\',
    '\\(',
    '\\[',
    `:[${PY_SPACE}]*([+-]?[.\\p{Nd}]+)[${PY_SPACE}]*\\)`,
    '\\)',
    '\\]',
    '[^\\\\()\\[\\]:]+',
    ':',
  ].join('|'),
  'gu',
);

const BREAK_RE = new RegExp(`[${PY_SPACE}]*${pyWholeWord('BREAK')}[${PY_SPACE}]*`, 'u');

export const ROUND_BRACKET_MULTIPLIER = 1.1;
export const SQUARE_BRACKET_MULTIPLIER = 1 / 1.1;

function weightValue(text: string): number {
  try {
    return parsePyFloat(text);
  } catch (e) {
    if (!isDarkroomError(e)) throw e;
    // A1111 fails the whole generation with Python's ValueError here; keep its message, give it a prompt code.
    throw new DarkroomError('PROMPT_BAD_WEIGHT', e.message, { pythonType: 'ValueError', weight: text });
  }
}

/** Parses emphasis. Throws DarkroomError('PROMPT_BAD_WEIGHT') for a malformed weight such as `(a:1.2.3)`. */
export function parsePromptAttention(text: string): AttentionFragment[] {
  const res: AttentionFragment[] = [];
  const round: number[] = [];
  const square: number[] = [];
  const multiplyRange = (start: number, multiplier: number): void => {
    for (let p = start; p < res.length; p++) res[p]![1] *= multiplier;
  };

  for (const m of text.matchAll(ATTENTION_RE)) {
    const tok = m[0];
    const weight = m[1];
    if (tok.startsWith('\\')) {
      res.push([tok.slice(1), 1.0]);
    } else if (tok === '(') {
      round.push(res.length);
    } else if (tok === '[') {
      square.push(res.length);
    } else if (weight !== undefined && round.length > 0) {
      multiplyRange(round.pop()!, weightValue(weight));
    } else if (tok === ')' && round.length > 0) {
      multiplyRange(round.pop()!, ROUND_BRACKET_MULTIPLIER);
    } else if (tok === ']' && square.length > 0) {
      multiplyRange(square.pop()!, SQUARE_BRACKET_MULTIPLIER);
    } else {
      tok.split(BREAK_RE).forEach((part, i) => {
        if (i > 0) res.push(['BREAK', -1]);
        res.push([part, 1.0]);
      });
    }
  }
  for (const pos of round) multiplyRange(pos, ROUND_BRACKET_MULTIPLIER);
  for (const pos of square) multiplyRange(pos, SQUARE_BRACKET_MULTIPLIER);

  if (res.length === 0) res.push(['', 1.0]);

  let i = 0;
  while (i + 1 < res.length) {
    if (res[i]![1] === res[i + 1]![1]) {
      res[i]![0] += res[i + 1]![0];
      res.splice(i + 1, 1);
    } else {
      i++;
    }
  }
  return res;
}

/** Whether a fragment is the chunk-break marker (exactly `['BREAK', -1]`). */
export function isBreakMarker([text, weight]: AttentionFragment): boolean {
  return text === 'BREAK' && weight === -1;
}
