/**
 * The subset of YAML that ldm / A1111 model configs (`v1-inference.yaml`, `v2-inference-v.yaml`, the
 * `<checkpoint>.yaml` files users keep beside checkpoints) are written in: block mappings and sequences by
 * indentation, flow lists of scalars (`[ 4, 2, 1 ]`), empty `{}`, comments, quoted strings, and YAML 1.1
 * scalars as PyYAML reads them (`True`, `1.e-6`, `null`). Anything else is refused with MODEL_CONFIG_INVALID
 * rather than guessed at.
 */
import { DarkroomError } from '../errors.js';

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  readonly indent: number;
  readonly text: string;
  readonly number: number;
}

function invalid(line: Line | undefined, reason: string): never {
  throw new DarkroomError('MODEL_CONFIG_INVALID', `yaml${line ? ` line ${line.number}` : ''}: ${reason}`);
}

/** Drops a trailing comment: '#' at the start or after whitespace, outside quotes. */
function stripComment(s: string): string {
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]!))) {
      return s.slice(0, i);
    }
  }
  return s;
}

const FLOAT = /^[-+]?(\d[\d_]*)?\.?[\d_]*([eE][-+]?\d+)?$/;

export function yamlScalar(raw: string, line?: Line): YamlValue {
  const s = raw.trim();
  if (s === '' || s === '~' || s === 'null' || s === 'Null' || s === 'NULL') return null;
  if (/^(true|True|TRUE|yes|Yes|on|On)$/.test(s)) return true;
  if (/^(false|False|FALSE|no|No|off|Off)$/.test(s)) return false;
  if ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'"))) {
    if (s.length < 2) invalid(line, `unterminated string ${s}`);
    return s.slice(1, -1);
  }
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) invalid(line, `unterminated flow list ${s}`);
    const inner = s.slice(1, -1).trim();
    if (inner === '') return [];
    if (/[[\]{}]/.test(inner)) invalid(line, 'nested flow collections are not supported');
    return inner.split(',').map((part) => yamlScalar(part, line));
  }
  if (s === '{}') return {};
  if (s.startsWith('{') || s.startsWith('&') || s.startsWith('*') || s.startsWith('|') || s.startsWith('>')) {
    invalid(line, `unsupported YAML construct "${s}"`);
  }
  if (/^[-+]?\.(inf|Inf|INF)$/.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/\d/.test(s) && FLOAT.test(s)) {
    const n = Number(s.replace(/_/g, ''));
    if (Number.isFinite(n)) return n;
  }
  return s;
}

/** Splits `key: rest` at the first ': ' (or a trailing ':') outside quotes. */
function splitKey(text: string): [string, string] | undefined {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === ':' && (i === text.length - 1 || text[i + 1] === ' ')) {
      const key = text.slice(0, i).trim();
      return [key.replace(/^(["'])(.*)\1$/, '$2'), text.slice(i + 1).trim()];
    }
  }
  return undefined;
}

class Parser {
  private pos = 0;

  constructor(private readonly lines: readonly Line[]) {}

  parseDocument(): YamlValue {
    if (this.lines.length === 0) return null;
    const v = this.parseBlock(this.lines[0]!.indent);
    if (this.pos < this.lines.length) invalid(this.lines[this.pos], 'unexpected indentation');
    return v;
  }

  private parseBlock(indent: number): YamlValue {
    const first = this.lines[this.pos]!;
    if (first.text === '-' || first.text.startsWith('- ')) return this.parseSequence(indent);
    return this.parseMapping(indent);
  }

  private parseSequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    while (this.pos < this.lines.length) {
      const line = this.lines[this.pos]!;
      if (line.indent < indent) break;
      if (line.indent > indent) invalid(line, 'unexpected indentation');
      if (!(line.text === '-' || line.text.startsWith('- '))) break;
      const rest = line.text.slice(1).trim();
      this.pos++;
      if (rest === '') {
        out.push(this.nestedOrNull(indent));
      } else if (splitKey(rest)) {
        // "- key: value" starts a mapping whose keys sit two columns in.
        const virtual: Line = { indent: indent + 2, text: rest, number: line.number };
        const lines = [...this.lines.slice(0, this.pos - 1), virtual, ...this.lines.slice(this.pos)];
        const sub = new Parser(lines);
        sub.pos = this.pos - 1;
        out.push(sub.parseMapping(indent + 2));
        this.pos = sub.pos;
      } else {
        out.push(yamlScalar(rest, line));
      }
    }
    return out;
  }

  private parseMapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    while (this.pos < this.lines.length) {
      const line = this.lines[this.pos]!;
      if (line.indent < indent) break;
      if (line.indent > indent) invalid(line, 'unexpected indentation');
      const kv = splitKey(line.text);
      if (!kv) invalid(line, `expected "key: value", got "${line.text}"`);
      const [key, rest] = kv;
      if (Object.hasOwn(out, key)) invalid(line, `duplicate key "${key}"`);
      this.pos++;
      out[key] = rest === '' ? this.nestedOrNull(indent) : yamlScalar(rest, line);
    }
    return out;
  }

  /** The block under a `key:` or `-` with nothing after it: deeper lines, a same-level sequence, or null. */
  private nestedOrNull(parentIndent: number): YamlValue {
    const next = this.lines[this.pos];
    if (!next) return null;
    if (next.indent > parentIndent) return this.parseBlock(next.indent);
    if (next.indent === parentIndent && (next.text === '-' || next.text.startsWith('- '))) return this.parseSequence(parentIndent);
    return null;
  }
}

export function parseYaml(text: string): YamlValue {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.includes('\t')) invalid({ indent: 0, text: raw, number: i + 1 }, 'tabs are not allowed for indentation');
    const body = stripComment(raw).trimEnd();
    if (body.trim() === '' || body.trim() === '---') return;
    const indent = body.length - body.trimStart().length;
    lines.push({ indent, text: body.trim(), number: i + 1 });
  });
  return new Parser(lines).parseDocument();
}
