/**
 * What every bench leaves behind: a plain-text table on stdout and `bench/results/<name>.json` (git-ignored)
 * holding the machine, the date, the parameters and the same rows, so runs on different hosts compare.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineInfo } from './machine.js';

export type Cell = string | number | null;
export type Row = Readonly<Record<string, Cell>>;

export interface Column {
  readonly key: string;
  readonly label: string;
  /** Decimal places for numbers (default 1). */
  readonly digits?: number;
}

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

function cellText(v: Cell | undefined, digits: number): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'number') return Number.isFinite(v) ? v.toFixed(digits) : String(v);
  return v;
}

export function formatTable(title: string, columns: readonly Column[], rows: readonly Row[]): string {
  const cells = rows.map((r) => columns.map((c) => cellText(r[c.key], c.digits ?? 1)));
  const widths = columns.map((c, i) => Math.max(c.label.length, ...cells.map((row) => row[i]!.length)));
  // Text columns read left-aligned, numbers right-aligned.
  const numeric = columns.map((c) => rows.some((r) => typeof r[c.key] === 'number'));
  const line = (xs: readonly string[]): string =>
    xs.map((x, i) => (numeric[i] ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ').trimEnd();
  return [title, line(columns.map((c) => c.label)), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

export function printTable(title: string, columns: readonly Column[], rows: readonly Row[]): void {
  console.log(`\n${formatTable(title, columns, rows)}\n`);
}

export interface BenchResult {
  readonly bench: string;
  readonly date: string;
  readonly machine: MachineInfo;
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly rows: readonly Row[];
  readonly notes?: readonly string[];
  readonly [extra: string]: unknown;
}

/** Writes `bench/results/<bench>.json` (the latest run of each bench) and returns its path. */
export function writeResult(result: BenchResult): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${result.bench}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  return file;
}
