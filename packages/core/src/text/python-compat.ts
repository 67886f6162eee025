/**
 * The few pieces of Python semantics that A1111's text code leans on and JavaScript spells differently:
 * Unicode-aware `\s`, `\w` and `\b` of Python's `re`, `float()` and `int()` of a string, `repr()` of a str and of a float.
 */
import { DarkroomError } from '../errors.js';

/** Python `str.isspace()` / `re` `\s` on str patterns (JS `\s` differs: it has U+FEFF and lacks U+001C..U+001F, U+0085). */
export const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** The `regex` module's `\s` (Unicode White_Space), used by the CLIP tokenizer. */
export const REGEX_SPACE = '\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** Python `re` `\w` on str patterns: letters, numbers and the underscore. */
export const PY_WORD = '\\p{L}\\p{N}_';

/** A regex source matching `word` as a whole word the way Python's Unicode `\bword\b` does. */
export function pyWholeWord(word: string): string {
  return `(?<![${PY_WORD}])${word}(?![${PY_WORD}])`;
}

function decimalDigitValue(ch: string): number {
  // Unicode decimal digits come in contiguous runs that start at a zero.
  let cp = ch.codePointAt(0)!;
  let steps = 0;
  while (/\p{Nd}/u.test(String.fromCodePoint(cp - 1)) && steps < 64) {
    cp--;
    steps++;
  }
  return steps % 10;
}

const PY_FLOAT_RE = /^[+-]?(?:(?:\d+(?:_\d+)*)?\.?\d+(?:_\d+)*(?:[eE][+-]?\d+(?:_\d+)*)?|\d+(?:_\d+)*\.(?:[eE][+-]?\d+(?:_\d+)*)?|inf|infinity|nan)$/i;

/** Python `float(s)`: accepts Unicode digits and surrounding whitespace; throws ValueError-like errors. */
export function parsePyFloat(text: string): number {
  const ascii = text.replace(/\p{Nd}/gu, (d) => String(decimalDigitValue(d)));
  const trimmed = ascii.replace(new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu'), '');
  if (!PY_FLOAT_RE.test(trimmed)) {
    throw new DarkroomError('PY_VALUE_ERROR', `could not convert string to float: ${pyStrRepr(text)}`, {
      pythonType: 'ValueError',
    });
  }
  const t = trimmed.toLowerCase().replace(/_/g, '');
  const sign = t.startsWith('-') ? -1 : 1;
  const body = t.replace(/^[+-]/, '');
  if (body === 'inf' || body === 'infinity') return sign * Infinity;
  if (body === 'nan') return NaN;
  return Number(t);
}

/** Python `repr()` of a str: its quote choice, and the escapes it uses for characters `str.isprintable()` rejects. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === ' ' || !PY_NON_PRINTABLE.test(ch)) out += ch;
    else if (cp < 0x100) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if (cp < 0x10000) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + quote;
}

// Python's Py_UNICODE_ISPRINTABLE: everything but the "Other" and "Separator" categories (the space aside).
const PY_NON_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

const PY_INT_RE = /^[+-]?\d+(?:_\d+)*$/;

/**
 * Python `int(s)` (base 10) of a str: surrounding whitespace, a sign, Unicode digits, leading zeros and single
 * underscores between digits are accepted; a point or an exponent is not. The error carries Python's wording,
 * whose repr of the text is cut at 200 characters.
 */
export function parsePyInt(text: string): number {
  const ascii = text.replace(/\p{Nd}/gu, (d) => String(decimalDigitValue(d)));
  const trimmed = ascii.replace(new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu'), '');
  if (!PY_INT_RE.test(trimmed)) {
    throw new DarkroomError('PY_VALUE_ERROR', `invalid literal for int() with base 10: ${Array.from(pyStrRepr(text)).slice(0, 200).join('')}`, {
      pythonType: 'ValueError',
    });
  }
  return Number(trimmed.replace(/_/g, ''));
}

/** Python `repr(float)` / `str(float)`: shortest round-trip digits, `7.0`, `1e-05`, `1e+16`, `inf`, `nan`. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, expText] = x.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  const sign = negative ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/**
 * Python's `json.dumps` of a string. With `ensureAscii` (json's default) every character outside printable ASCII
 * is a `\uXXXX` escape, characters beyond the BMP as a surrogate pair; without it (`ensure_ascii=False`, as A1111
 * writes infotext values) only control characters are escaped.
 */
export function pyJsonString(text: string, opts: { readonly ensureAscii: boolean }): string {
  const hex4 = (n: number): string => `\\u${n.toString(16).padStart(4, '0')}`;
  let out = '"';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (cp < 0x20) out += hex4(cp);
    else if (!opts.ensureAscii || cp < 0x7f) out += ch;
    else if (cp <= 0xffff) out += hex4(cp);
    else out += hex4(0xd800 + ((cp - 0x10000) >> 10)) + hex4(0xdc00 + ((cp - 0x10000) & 0x3ff));
  }
  return `${out}"`;
}
