/**
 * A Python `re` pattern run by the JavaScript engine with Python's meaning: Unicode `\w`, `\d`, `\s`, `\b`,
 * `.` that stops only at `\n`, `$` that also matches before a final newline, Python's escapes, quantifier
 * and group syntax, and `findall` with Python's rules for empty matches. Used for user-supplied patterns
 * (the dataset's filename word regex), so what cannot be carried over exactly is refused, not approximated.
 */
import { DarkroomError } from '../errors.js';
import { PY_SPACE, PY_WORD } from '../text/python-compat.js';

export interface PyRegex {
  readonly pattern: string;
  /** Capturing groups, which decide what `findall` returns. */
  readonly groups: number;
  /** `re.findall`: whole matches without groups, group 1 with one, a tuple of all groups with several. */
  findall(text: string): Array<string | string[]>;
}

interface Flags {
  ascii: boolean;
  ignoreCase: boolean;
  multiline: boolean;
  dotAll: boolean;
  verbose: boolean;
}

class PatternError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
  }
}

const OCT = /[0-7]/;
const DIGIT = /[0-9]/;
const HEX = /^[0-9a-fA-F]+$/;
const ASCII_ALNUM = /[A-Za-z0-9]/;
// What a `v`-mode pattern lets (or makes) a backslash escape: syntax characters outside a class, and inside
// one also the class-set punctuators, whose doubles are reserved there.
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/'.split(''));
const JS_CLASS_PUNCT = new Set('^$\\.*+?()[]{}|/&-!#%,:;<=>@`~'.split(''));

/** A piece of a pattern: one character, or JavaScript text for a class escape or an assertion. */
type Element = { readonly cp: number } | { readonly js: string };

/** The class body (no brackets) of `\d`, `\w`, `\s` under the pattern's flags. */
function classBody(letter: 'd' | 'w' | 's', ascii: boolean): string {
  if (letter === 'd') return ascii ? '0-9' : '\\p{Nd}';
  if (letter === 'w') return ascii ? 'a-zA-Z0-9_' : PY_WORD;
  return ascii ? ' \\t\\n\\r\\f\\v' : PY_SPACE;
}

function literal(cp: number, inClass: boolean): string {
  const ch = String.fromCodePoint(cp);
  if ((inClass ? JS_CLASS_PUNCT : JS_SYNTAX).has(ch)) return '\\' + ch;
  if (cp < 0x20 || cp === 0x7f) return `\\u{${cp.toString(16)}}`;
  return ch;
}

// Entries of the open-group stack that are not capture group numbers.
const NON_CAPTURING = -1;
const LOOKAROUND = -2;

/** Translates one Python pattern into a JavaScript source; `groupShift` renumbers backreferences. */
class Translator {
  private i = 0;
  /** Whether the last atom was an anchor or word boundary, which Python refuses to repeat. */
  private assertion = false;
  private groups = 0;
  private readonly open: number[] = [];
  private readonly closed = new Set<number>();
  private readonly names = new Map<string, number>();
  readonly flags: Flags = { ascii: false, ignoreCase: false, multiline: false, dotAll: false, verbose: false };

  constructor(
    private readonly src: string,
    private readonly groupShift: number,
  ) {}

  get groupCount(): number {
    return this.groups;
  }

  private error(message: string, at = this.i): never {
    throw new PatternError(message, at);
  }

  private peek(offset = 0): string | undefined {
    return this.src[this.i + offset];
  }

  translate(): string {
    this.leadingFlags();
    let out = '';
    while (this.i < this.src.length) out += this.item();
    if (this.open.length) this.error('missing ), unterminated subpattern', this.open[this.open.length - 1]);
    return out;
  }

  /** Global inline flags: Python requires them at the very start. */
  private leadingFlags(): void {
    let m: RegExpExecArray | null;
    const re = /\(\?([aiLmsux]+)\)/y;
    re.lastIndex = this.i;
    while ((m = re.exec(this.src))) {
      for (const f of m[1]!) {
        if (f === 'L') this.error('bad inline flag: cannot use \'L\' flag with a str pattern');
        if (f === 'a') this.flags.ascii = true;
        if (f === 'i') this.flags.ignoreCase = true;
        if (f === 'm') this.flags.multiline = true;
        if (f === 's') this.flags.dotAll = true;
        if (f === 'x') this.flags.verbose = true;
      }
      if (m[1]!.includes('a') && m[1]!.includes('u')) this.error("bad inline flag: flags 'a' and 'u' are incompatible");
      this.i = re.lastIndex;
    }
  }

  private item(): string {
    const out = this.atom();
    const follows = this.peek();
    if (this.assertion && (follows === '*' || follows === '+' || follows === '?' || (follows === '{' && this.quantifierBrace()))) {
      if (out !== '') this.error('nothing to repeat');
    }
    return out;
  }

  private atom(): string {
    const ch = this.src[this.i]!;
    this.assertion = ch === '^' || ch === '$' || (ch === '\\' && /[bBAZ]/.test(this.peek(1) ?? ''));
    if (this.flags.verbose && /[ \t\n\r\f\v]/.test(ch)) {
      this.i++;
      return '';
    }
    if (this.flags.verbose && ch === '#') {
      while (this.i < this.src.length && this.src[this.i] !== '\n') this.i++;
      return '';
    }
    switch (ch) {
      case '\\': {
        const el = this.escape(false);
        return 'cp' in el ? literal(el.cp, false) : el.js;
      }
      case '[':
        return this.charClass();
      case '(':
        return this.groupOpen();
      case ')':
        return this.groupClose();
      case '.':
        this.i++;
        return this.flags.dotAll ? '[\\s\\S]' : '[^\\n]';
      case '^':
        this.i++;
        return this.flags.multiline ? '(?<![^\\n])' : '^';
      case '$':
        this.i++;
        return this.flags.multiline ? '(?![^\\n])' : '(?=\\n?$)';
      case '{':
        return this.brace();
      case '*':
      case '+':
      case '?':
        this.i++;
        return ch + this.afterQuantifier();
      case '|':
        this.i++;
        return '|';
      default: {
        const cp = this.src.codePointAt(this.i)!;
        this.i += cp > 0xffff ? 2 : 1;
        return literal(cp, false);
      }
    }
  }

  private afterQuantifier(): string {
    if (this.peek() === '?') {
      this.i++;
      return '?';
    }
    if (this.peek() === '*' || this.peek() === '+' || this.peek() === '{') {
      // Possessive quantifiers and stacked repeats have no JavaScript form (and older Pythons reject them).
      if (this.peek() !== '{' || this.quantifierBrace()) this.error('multiple repeat');
    }
    return '';
  }

  /** `{m}`, `{m,}`, `{,n}`, `{m,n}`, `{,}`: Python's quantifier shapes at the cursor (`{}` is a literal). */
  private quantifierBrace(): RegExpExecArray | undefined {
    const m = /^\{(\d*)(?:(,)(\d*))?\}/.exec(this.src.slice(this.i));
    return m && !(m[1] === '' && m[2] === undefined) ? m : undefined;
  }

  /** A brace that is not a quantifier is a literal. */
  private brace(): string {
    const m = this.quantifierBrace();
    if (!m) {
      this.i++;
      return '\\{';
    }
    this.i += m[0].length;
    const lo = m[1] === '' ? '0' : m[1]!;
    const hi = m[2] === undefined ? lo : m[3]!;
    if (hi !== '' && Number(hi) < Number(lo)) this.error('min repeat greater than max repeat');
    const q = m[2] === undefined ? `{${lo}}` : `{${lo},${hi}}`;
    return q + this.afterQuantifier();
  }

  private groupOpen(): string {
    const start = this.i;
    this.i++;
    if (this.peek() !== '?') return this.capture('(');
    this.i++;
    const rest = this.src.slice(this.i);
    if (rest.startsWith(':')) return this.plainGroup(1, '(?:');
    // Lookarounds go inside a group of their own: Python lets them be repeated, JavaScript does not.
    if (rest.startsWith('=') || rest.startsWith('!')) return this.plainGroup(1, '(?:(?' + rest[0], LOOKAROUND);
    if (rest.startsWith('<=') || rest.startsWith('<!')) return this.plainGroup(2, '(?:(?' + rest.slice(0, 2), LOOKAROUND);
    if (rest.startsWith('#')) {
      const end = this.src.indexOf(')', this.i);
      if (end < 0) this.error('missing ), unterminated comment', start);
      this.i = end + 1;
      return '';
    }
    const named = /^P<([^>]*)>/.exec(rest);
    if (named) {
      const name = named[1]!;
      if (!/^[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*$/u.test(name)) this.error(`bad character in group name '${name}'`, this.i + 2);
      if (this.names.has(name)) this.error(`redefinition of group name '${name}' as group ${this.groups + 1}`, this.i + 2);
      this.i += named[0].length;
      this.names.set(name, this.groups + 1);
      return this.capture(`(?<${name}>`);
    }
    const ref = /^P=([^)]*)\)/.exec(rest);
    if (ref) {
      const n = this.names.get(ref[1]!);
      if (n === undefined) this.error(`unknown group name '${ref[1]}'`, this.i + 2);
      if (!this.closed.has(n)) this.error('cannot refer to an open group', start);
      this.i += ref[0].length;
      return `(?:\\${n + this.groupShift})`;
    }
    if (/^[aiLmsux]+\)/.test(rest)) this.error('global flags not at the start of the expression', start);
    return this.error('unsupported group syntax (scoped flags, conditionals and atomic groups have no JavaScript equivalent)', start);
  }

  private plainGroup(skip: number, open: string, kind = NON_CAPTURING): string {
    this.i += skip;
    this.open.push(kind);
    return open;
  }

  private capture(open: string): string {
    this.groups++;
    this.open.push(this.groups);
    return open;
  }

  private groupClose(): string {
    const g = this.open.pop();
    if (g === undefined) this.error('unbalanced parenthesis');
    if (g > 0) this.closed.add(g);
    this.i++;
    return g === LOOKAROUND ? '))' : ')';
  }

  /** A backslash sequence, inside a class (`inClass`) or not. */
  private escape(inClass: boolean): Element {
    const start = this.i;
    this.i++;
    const c = this.src[this.i];
    if (c === undefined) this.error('bad escape (end of pattern)', start);
    const cp = this.src.codePointAt(this.i)!;
    this.i += cp > 0xffff ? 2 : 1;
    const lower = c.toLowerCase();
    if (lower === 'd' || lower === 'w' || lower === 's') {
      const body = classBody(lower, this.flags.ascii);
      const negated = c !== lower;
      // Inside a class a plain escape joins the enclosing set; a negated one is a nested set (`v` mode).
      return { js: inClass && !negated ? body : `[${negated ? '^' : ''}${body}]` };
    }
    if (!inClass && (c === 'b' || c === 'B')) {
      const w = `[${classBody('w', this.flags.ascii)}]`;
      // Python's \B never matches in an empty string.
      const js = c === 'b' ? `(?:(?<=${w})(?!${w})|(?<!${w})(?=${w}))` : `(?:(?<=${w})(?=${w})|(?<!${w})(?!${w})(?!^$))`;
      return { js };
    }
    if (!inClass && c === 'A') return { js: '^' };
    if (!inClass && c === 'Z') return { js: '$' };
    const simple: Record<string, number> = { a: 7, f: 12, n: 10, r: 13, t: 9, v: 11 };
    if (inClass && c === 'b') return { cp: 8 };
    if (simple[c] !== undefined) return { cp: simple[c]! };
    if (c === 'x' || c === 'u' || c === 'U') {
      const len = c === 'x' ? 2 : c === 'u' ? 4 : 8;
      const hex = this.src.slice(this.i, this.i + len);
      if (hex.length !== len || !HEX.test(hex)) this.error(`incomplete escape \\${c}${hex}`, start);
      this.i += len;
      const value = parseInt(hex, 16);
      if (value > 0x10ffff) this.error(`bad escape \\${c}${hex}`, start);
      return { cp: value };
    }
    if (c === '0' || (inClass && OCT.test(c))) {
      let digits = c;
      while (digits.length < 3 && OCT.test(this.peek() ?? '')) digits += this.src[this.i++];
      const value = parseInt(digits, 8);
      if (value > 0o377) this.error(`octal escape value \\${digits} outside of range 0-0o377`, start);
      return { cp: value };
    }
    if (DIGIT.test(c) && !inClass) return this.numberedEscape(c, start);
    if (c === 'N') this.error('unsupported \\N{...} escape', start);
    if (ASCII_ALNUM.test(c)) this.error(`bad escape \\${c}`, start);
    return { cp };
  }

  /** `\12` is a group reference, `\123` (three octal digits) a character. */
  private numberedEscape(first: string, start: number): Element {
    let digits = first;
    if (DIGIT.test(this.peek() ?? '')) {
      digits += this.src[this.i++];
      if (OCT.test(digits[0]!) && OCT.test(digits[1]!) && OCT.test(this.peek() ?? '')) {
        digits += this.src[this.i++];
        const value = parseInt(digits, 8);
        if (value > 0o377) this.error(`octal escape value \\${digits} outside of range 0-0o377`, start);
        return { cp: value };
      }
    }
    const n = Number(digits);
    if (n > this.groups) this.error(`invalid group reference ${n}`, start + 1);
    if (!this.closed.has(n)) this.error('cannot refer to an open group', start);
    return { js: `(?:\\${n + this.groupShift})` };
  }

  /** One class member: a character or a class escape. */
  private classElement(): Element {
    if (this.peek() === '\\') return this.escape(true);
    const cp = this.src.codePointAt(this.i)!;
    this.i += cp > 0xffff ? 2 : 1;
    return { cp };
  }

  /** `[...]`: Python's rules for `]` first, ranges, and a `-` that cannot be a range being a literal. */
  private charClass(): string {
    const start = this.i;
    this.i++;
    let out = '[';
    if (this.peek() === '^') {
      out += '^';
      this.i++;
    }
    let first = true;
    for (;;) {
      if (this.peek() === undefined) this.error('unterminated character set', start);
      if (this.peek() === ']' && !first) {
        this.i++;
        return out + ']';
      }
      first = false;
      const at = this.i;
      const lo = this.classElement();
      if (this.peek() !== '-' || this.peek(1) === ']' || this.peek(1) === undefined) {
        out += 'cp' in lo ? literal(lo.cp, true) : lo.js;
        continue;
      }
      this.i++;
      const hi = this.classElement();
      if (!('cp' in lo) || !('cp' in hi)) this.error(`bad character range ${this.src.slice(at, this.i)}`, at);
      if (hi.cp < lo.cp) this.error(`bad character range ${this.src.slice(at, this.i)}`, at);
      out += `${literal(lo.cp, true)}-${literal(hi.cp, true)}`;
    }
  }
}

// Recorded by the wrapper of the "non-empty" variant: the text from the match's start to the end.
const REST = '(?=([\\s\\S]*))';

const isLead = (u: number): boolean => u >= 0xd800 && u <= 0xdbff;
const isTrail = (u: number): boolean => u >= 0xdc00 && u <= 0xdfff;

/** Compiles a Python pattern; a pattern Python or this translation rejects throws `PY_REGEX_ERROR`. */
export function compilePyRegex(pattern: string): PyRegex {
  let plain: Translator;
  let source: string;
  let shifted: string;
  try {
    plain = new Translator(pattern, 0);
    source = plain.translate();
    shifted = new Translator(pattern, 1).translate();
  } catch (e) {
    if (e instanceof PatternError) {
      throw new DarkroomError('PY_REGEX_ERROR', `${e.message} at position ${e.position}`, { pattern, position: e.position, cause: e.message });
    }
    throw e;
  }
  const flags = 'v' + (plain.flags.ignoreCase ? 'i' : '');
  let anywhere: RegExp;
  let nonEmptyHere: RegExp;
  try {
    anywhere = new RegExp(source, flags + 'g');
    // Python will not return an empty match where the previous match ended, but lets the engine backtrack
    // into a longer one there: the match must not end where it started, i.e. with the whole rest still ahead.
    nonEmptyHere = new RegExp(`${REST}(?:${shifted})(?!\\1$)`, flags + 'y');
  } catch (e) {
    const cause = e instanceof Error ? e.message : String(e);
    throw new DarkroomError('PY_REGEX_ERROR', `cannot compile the pattern: ${cause}`, { pattern, cause });
  }
  const groups = plain.groupCount;
  const pick = (m: RegExpExecArray, offset: number): string | string[] => {
    if (groups === 0) return m[0];
    const values = Array.from({ length: groups }, (_, k) => m[k + 1 + offset] ?? '');
    return groups === 1 ? values[0]! : values;
  };
  return {
    pattern,
    groups,
    findall(text: string): Array<string | string[]> {
      // Python works on code points. V8 may report an empty match inside a surrogate pair and moves a
      // lastIndex set inside one, so searches start on code point boundaries and such matches are passed over.
      const midPair = (i: number): boolean => i > 0 && isLead(text.charCodeAt(i - 1)) && isTrail(text.charCodeAt(i));
      const nextPoint = (i: number): number => i + (isLead(text.charCodeAt(i)) && isTrail(text.charCodeAt(i + 1)) ? 2 : 1);
      const found: Array<string | string[]> = [];
      let pos = 0;
      let mustAdvance = false;
      while (pos <= text.length) {
        let m: RegExpExecArray | null = null;
        let offset = 0;
        if (mustAdvance) {
          mustAdvance = false;
          nonEmptyHere.lastIndex = pos;
          m = nonEmptyHere.exec(text);
          if (m) offset = 1;
          else if ((pos = nextPoint(pos)) > text.length) break;
        }
        if (!m) {
          anywhere.lastIndex = pos;
          m = anywhere.exec(text);
          if (!m) break;
          if (midPair(m.index)) {
            pos = m.index + 1;
            continue;
          }
        }
        found.push(pick(m, offset));
        const end = m.index + m[0].length;
        mustAdvance = end === m.index;
        pos = end;
      }
      return found;
    },
  };
}
