/**
 * A1111 prompt editing and alternation (`get_learned_conditioning_prompt_schedules`): `[from:to:when]`,
 * `[to:when]`, `[from::when]`, `[a|b|c]`, nested, with the hires-pass offsets and the old timeline rules.
 *
 * Upstream parses with a lark Earley grammar:
 *   start: (prompt | /[][():]/+)*          prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
 *   emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
 *   scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
 *   alternate: "[" prompt ("|" [prompt])+ "]"        plain: /([^\\\[\]():|]|\\.)+/
 * Everything but scheduled/alternate is reproduced verbatim, so only three things matter: whether the whole
 * text parses (a `|` outside an alternation or a dangling `\` makes it fail, and then the prompt is used as
 * is), and which brackets are schedules or alternations. Inside a construct the grammar is deterministic;
 * at the top level a bracket that can open a construct does (lark resolves the ambiguity that way), and one
 * that cannot is a stray character.
 */
import { PY_SPACE } from './python-compat.js';

type Node = string | Scheduled | Alternate;
interface Scheduled {
  readonly kind: 'scheduled';
  readonly before: Node[] | null;
  readonly after: Node[];
  readonly whenText: string;
  when: number;
}
interface Alternate {
  readonly kind: 'alternate';
  readonly options: (Node[] | null)[];
}

/** `[end_at_step, text]`: the text is used while the step is <= end_at_step. */
export type ScheduleEntry = [endAtStep: number, text: string];

const NUMBER_RE = /^[+-]?(?:\d+[eE][+-]?\d+|(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+)$/;
const WHEN_RE = new RegExp(`^[${PY_SPACE}]*([^${PY_SPACE}]*)[${PY_SPACE}]*$`, 'u');

class ScheduleParser {
  constructor(private readonly s: string) {}

  /** The top level: constructs where possible, stray brackets and colons otherwise. Null when unparseable. */
  parseStart(): Node[] | null {
    const out: Node[] = [];
    let pos = 0;
    const s = this.s;
    while (pos < s.length) {
      const c = s[pos]!;
      if (c === '[' || c === '(') {
        const r = c === '[' ? this.parseBracket(pos) : this.parseParen(pos);
        if (r) {
          out.push(...r.nodes);
          pos = r.end;
        } else {
          out.push(c);
          pos++;
        }
      } else if (c === ']' || c === ')' || c === ':') {
        out.push(c);
        pos++;
      } else if (c === '|') {
        return null;
      } else {
        const r = this.parsePlain(pos);
        if (!r) return null;
        out.push(r.text);
        pos = r.end;
      }
    }
    return out;
  }

  private parsePlain(pos: number): { text: string; end: number } | null {
    const s = this.s;
    let end = pos;
    while (end < s.length) {
      const c = s[end]!;
      if (c === '\\') {
        if (end + 1 >= s.length || s[end + 1] === '\n') return end > pos ? { text: s.slice(pos, end), end } : null;
        end += s.codePointAt(end + 1)! > 0xffff ? 3 : 2;
      } else if ('[]():|'.includes(c)) {
        break;
      } else {
        end++;
      }
    }
    return { text: s.slice(pos, end), end };
  }

  /** `prompt` inside a construct: stops before `)`, `]`, `:`, `|` or the end. */
  private parsePrompt(pos: number): { nodes: Node[]; end: number } | null {
    const s = this.s;
    const nodes: Node[] = [];
    while (pos < s.length) {
      const c = s[pos]!;
      if (c === ')' || c === ']' || c === ':' || c === '|') break;
      if (c === '[' || c === '(') {
        const r = c === '[' ? this.parseBracket(pos) : this.parseParen(pos);
        if (!r) return null;
        nodes.push(...r.nodes);
        pos = r.end;
        continue;
      }
      const r = this.parsePlain(pos);
      if (!r || r.end === pos) return null;
      nodes.push(r.text);
      pos = r.end;
    }
    return { nodes, end: pos };
  }

  private parseParen(pos: number): { nodes: Node[]; end: number } | null {
    const p1 = this.parsePrompt(pos + 1);
    if (!p1) return null;
    const c = this.s[p1.end];
    if (c === ')') return { nodes: ['(', ...p1.nodes, ')'], end: p1.end + 1 };
    if (c !== ':') return null;
    const p2 = this.parsePrompt(p1.end + 1);
    if (!p2 || this.s[p2.end] !== ')') return null;
    return { nodes: ['(', ...p1.nodes, ':', ...p2.nodes, ')'], end: p2.end + 1 };
  }

  /** The `when` of a schedule: optional whitespace, a number, optional whitespace, then `]`. */
  private parseWhen(pos: number): { whenText: string; end: number } | null {
    const close = this.s.indexOf(']', pos);
    if (close < 0) return null;
    const m = WHEN_RE.exec(this.s.slice(pos, close));
    if (!m || !NUMBER_RE.test(m[1]!)) return null;
    return { whenText: m[1]!, end: close + 1 };
  }

  private parseBracket(pos: number): { nodes: Node[]; end: number } | null {
    const p1 = this.parsePrompt(pos + 1);
    if (!p1) return null;
    const c = this.s[p1.end];
    if (c === ']') return { nodes: ['[', ...p1.nodes, ']'], end: p1.end + 1 };
    if (c === '|') {
      const options: (Node[] | null)[] = [p1.nodes];
      let at = p1.end;
      while (this.s[at] === '|') {
        const p = this.parsePrompt(at + 1);
        if (!p) return null;
        options.push(p.nodes.length ? p.nodes : null);
        at = p.end;
      }
      if (this.s[at] !== ']') return null;
      return { nodes: [{ kind: 'alternate', options }], end: at + 1 };
    }
    if (c !== ':') return null;
    const short = this.parseWhen(p1.end + 1);
    if (short) {
      return { nodes: [{ kind: 'scheduled', before: null, after: p1.nodes, whenText: short.whenText, when: 0 }], end: short.end };
    }
    const p2 = this.parsePrompt(p1.end + 1);
    if (!p2 || this.s[p2.end] !== ':') return null;
    const long = this.parseWhen(p2.end + 1);
    if (!long) return null;
    return { nodes: [{ kind: 'scheduled', before: p1.nodes, after: p2.nodes, whenText: long.whenText, when: 0 }], end: long.end };
  }
}

export interface ScheduleOptions {
  /** Steps of the hires pass; when given (and not old scheduling) the schedule covers that pass. */
  readonly hiresSteps?: number | undefined;
  /** A1111's `use_old_scheduling` (infotext "Old prompt editing timelines"). */
  readonly useOldScheduling?: boolean | undefined;
}

function visit(nodes: readonly Node[], fn: (n: Scheduled | Alternate) => void): void {
  for (const n of nodes) {
    if (typeof n === 'string') continue;
    fn(n);
    if (n.kind === 'scheduled') {
      if (n.before) visit(n.before, fn);
      visit(n.after, fn);
    } else {
      for (const o of n.options) if (o) visit(o, fn);
    }
  }
}

function textAtStep(nodes: readonly Node[] | null, step: number): string {
  if (!nodes) return '';
  let out = '';
  for (const n of nodes) {
    if (typeof n === 'string') out += n;
    else if (n.kind === 'scheduled') out += textAtStep(step <= n.when ? n.before : n.after, step);
    else out += textAtStep(n.options[(step - 1) % n.options.length]!, step);
  }
  return out;
}

/** The schedule of one prompt: `[[end_at_step, text], ...]`, always ending at the pass's step count. */
export function getPromptSchedule(prompt: string, baseSteps: number, opts: ScheduleOptions = {}): ScheduleEntry[] {
  const hires = opts.hiresSteps !== undefined && opts.hiresSteps !== null && !opts.useOldScheduling;
  const intOffset = hires ? baseSteps : 0;
  const fltOffset = hires ? 1.0 : 0;
  const steps = hires ? opts.hiresSteps! : baseSteps;

  const tree = new ScheduleParser(prompt).parseStart();
  if (!tree) return [[steps, prompt]];

  const boundaries = new Set<number>([steps]);
  visit(tree, (n) => {
    if (n.kind === 'alternate') {
      for (let t = 1; t <= steps; t++) boundaries.add(t);
      return;
    }
    let v = Number(n.whenText);
    if (opts.useOldScheduling) v = v < 1 ? v * steps : v;
    else if (n.whenText.includes('.')) v = (v - fltOffset) * steps;
    else v = v - intOffset;
    n.when = Math.min(steps, Math.trunc(v));
    if (n.when >= 1) boundaries.add(n.when);
  });
  return [...boundaries].sort((a, b) => a - b).map((t) => [t, textAtStep(tree, t)]);
}

/** `get_learned_conditioning_prompt_schedules(prompts, base_steps, hires_steps, use_old_scheduling)`. */
export function getLearnedConditioningPromptSchedules(
  prompts: readonly string[],
  baseSteps: number,
  opts: ScheduleOptions = {},
): ScheduleEntry[][] {
  const cache = new Map<string, ScheduleEntry[]>();
  return prompts.map((p) => {
    let s = cache.get(p);
    if (!s) {
      s = getPromptSchedule(p, baseSteps, opts);
      cache.set(p, s);
    }
    return s;
  });
}
