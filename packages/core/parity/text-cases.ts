/**
 * How the text suite reports: one summary line per list of recorded cases (a JSON section), plus a line for
 * every case that differs. A section the file lacks is one skipped line, so folders with fewer parts still run.
 */
import { readFileSync } from 'node:fs';
import type { CaseResult } from './report.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

export const readJson = (path: string): Obj => JSON.parse(readFileSync(path, 'utf-8')) as Obj;
export const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
export const short = (x: unknown): string => {
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 160 ? s.slice(0, 157) + '...' : s;
};

export function diff(what: string, got: unknown, want: unknown): string[] {
  return same(got, want) ? [] : [`${what}: got ${short(got)} want ${short(want)}`];
}

export interface Group {
  readonly label: string;
  readonly total: number;
  readonly failures: CaseResult[];
  /** Why the group could not be checked (its section is absent). */
  readonly missing?: string;
}

export function* report(g: Group): Generator<CaseResult> {
  if (g.missing) {
    yield { name: g.label, status: 'skip', detail: g.missing };
    return;
  }
  yield* g.failures;
  const ok = g.failures.length === 0;
  yield {
    name: g.label,
    status: ok ? 'pass' : 'fail',
    maxAbs: 0,
    maxRel: 0,
    detail: ok ? `${g.total} cases exact` : `${g.failures.length} of ${g.total} cases differ`,
  };
}

/** Collects per-case mismatches: check() returns a list of "what: got vs want" strings. */
export function group(label: string, cases: readonly Obj[], name: (c: Obj, i: number) => string, check: (c: Obj) => string[]): Group {
  const failures: CaseResult[] = [];
  cases.forEach((c, i) => {
    let problems: string[];
    try {
      problems = check(c);
    } catch (e) {
      problems = [`threw ${e instanceof Error ? e.message : String(e)}`];
    }
    if (problems.length) failures.push({ name: `${label}/${name(c, i)}`, status: 'fail', detail: problems.join('; ') });
  });
  return { label, total: cases.length, failures };
}

/**
 * `group` over the list `json[key]` of the file `file`; a skipped group when the file has no such section.
 * A section that is present but not a list is a malformed file: its group fails.
 */
export function sectionGroup(
  label: string,
  json: Obj,
  key: string,
  file: string,
  name: (c: Obj, i: number) => string,
  check: (c: Obj) => string[],
): Group {
  const v = json[key];
  if (v === undefined) return { label, total: 0, failures: [], missing: `${file} has no "${key}" section` };
  if (!Array.isArray(v)) return { label, total: 0, failures: [{ name: label, status: 'fail', detail: `${file}: "${key}" is not a list` }] };
  return group(label, v as Obj[], name, check);
}
