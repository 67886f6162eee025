/**
 * Groups of a parity folder: the sub-folders, files and JSON sections a suite checks independently. Folders in
 * the same format may lack some of them (a smaller oracle, a hidden set with fewer parts): a missing group is one
 * skipped line with the reason, and a group that throws is one failed line; neither stops the other groups.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CaseResult } from './report.js';

export interface GroupSpec {
  /** The line's name when the group is skipped or fails as a whole. */
  readonly name: string;
  /** Paths relative to the folder that the group reads; any of them absent skips the group. */
  readonly needs: readonly string[];
  run(): AsyncIterable<CaseResult> | Iterable<CaseResult>;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function skipped(name: string, reason: string): CaseResult {
  return { name, status: 'skip', detail: reason };
}

/** The paths among `needs` that the folder lacks, as a reason, or undefined when all are there. */
export function missingReason(folder: string, needs: readonly string[]): string | undefined {
  const absent = needs.filter((p) => !existsSync(join(folder, p)));
  return absent.length ? `the folder has no ${absent.join(', ')}` : undefined;
}

export async function* runGroups(folder: string, groups: readonly GroupSpec[]): AsyncGenerator<CaseResult> {
  for (const g of groups) {
    const missing = missingReason(folder, g.needs);
    if (missing) {
      yield skipped(g.name, missing);
      continue;
    }
    try {
      for await (const r of g.run()) yield r;
    } catch (e) {
      yield { name: g.name, status: 'fail', detail: errorText(e) };
    }
  }
}

/**
 * A list-valued section of a parsed JSON file, or the reason it cannot be checked. An absent section is a part
 * the folder does not have; a present one that is not a list is a malformed file and throws.
 */
export function section<T>(json: Readonly<Record<string, unknown>>, key: string, file: string): { items: T[] } | { missing: string } {
  const v = json[key];
  if (v === undefined) return { missing: `${file} has no "${key}" section` };
  if (!Array.isArray(v)) throw new Error(`${file}: "${key}" is not a list`);
  return { items: v as T[] };
}
