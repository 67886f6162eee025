/** One line of a parity report: a case, its worst errors, and whether it passed. */
export type CaseStatus = 'pass' | 'fail' | 'skip';

export interface CaseResult {
  readonly name: string;
  readonly status: CaseStatus;
  readonly maxAbs?: number;
  readonly maxRel?: number;
  /** Why it failed or was skipped, or extra facts worth printing. */
  readonly detail?: string;
}

export interface Closeness {
  readonly maxAbs: number;
  /** max |a-b| / max |ref| over the tensor: the scale-free figure the oracle READMEs quote. */
  readonly maxRel: number;
  /** Number of elements outside the tolerance. */
  readonly failing: number;
  readonly ok: boolean;
}

type Numeric = ArrayLike<number>;

/** Elementwise |a-b| <= atol + rtol*|ref|, and the summary figures. NaN anywhere fails. */
export function elementwiseClose(actual: Numeric, ref: Numeric, atol: number, rtol: number): Closeness {
  if (actual.length !== ref.length) {
    return { maxAbs: Infinity, maxRel: Infinity, failing: Math.max(actual.length, ref.length), ok: false };
  }
  let maxAbs = 0;
  let maxRef = 0;
  let failing = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const d = Math.abs(actual[i]! - r);
    if (!(d <= atol + rtol * Math.abs(r))) failing++;
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? NaN : Math.max(maxAbs, d);
    maxRef = Math.max(maxRef, Math.abs(r));
  }
  const maxRel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
  return { maxAbs, maxRel, failing, ok: failing === 0 && !Number.isNaN(maxAbs) };
}

/** max|a-b| <= tol * max|ref|: the per-tensor criterion used for gradients and latents. */
export function scaledClose(actual: Numeric, ref: Numeric, tol: number): Closeness {
  const c = elementwiseClose(actual, ref, Infinity, 0);
  if (actual.length !== ref.length) return c;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) maxRef = Math.max(maxRef, Math.abs(ref[i]!));
  const ok = !Number.isNaN(c.maxAbs) && c.maxAbs <= tol * maxRef;
  return { maxAbs: c.maxAbs, maxRel: c.maxRel, failing: ok ? 0 : 1, ok };
}

export function fmt(x: number | undefined): string {
  if (x === undefined) return '-';
  if (x === 0) return '0';
  return x.toExponential(2);
}

export function formatCase(suite: string, r: CaseResult): string {
  const status = r.status.toUpperCase();
  const name = `${suite}/${r.name}`;
  const figures = r.status === 'skip' ? '' : `  maxAbs=${fmt(r.maxAbs)}  maxRel=${fmt(r.maxRel)}`;
  const detail = r.detail ? `  (${r.detail})` : '';
  return `${status.padEnd(4)}  ${name}${figures}${detail}`;
}

/** Merges several closeness checks of one case into one CaseResult. */
export function combine(name: string, checks: ReadonlyArray<readonly [string, Closeness]>, extra?: string): CaseResult {
  let maxAbs = 0;
  let maxRel = 0;
  const failed: string[] = [];
  for (const [label, c] of checks) {
    maxAbs = Math.max(maxAbs, c.maxAbs);
    maxRel = Math.max(maxRel, c.maxRel);
    if (!c.ok) failed.push(`${label}: ${c.failing} off, maxAbs ${fmt(c.maxAbs)}`);
  }
  const detail = [failed.join('; '), extra].filter(Boolean).join('; ');
  return { name, status: failed.length ? 'fail' : 'pass', maxAbs, maxRel, ...(detail ? { detail } : {}) };
}

/** Field-by-field comparison of recorded fields (JSON equality); returns the mismatches. */
export function diffFields(actual: Readonly<Record<string, unknown>>, want: Readonly<Record<string, unknown>>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(want)) {
    if (JSON.stringify(actual[k]) !== JSON.stringify(v)) out.push(`${k}: ${JSON.stringify(actual[k])} != ${JSON.stringify(v)}`);
  }
  return out;
}
