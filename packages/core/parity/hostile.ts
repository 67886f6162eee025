/**
 * The hostile-file group of the networks suite (`hostile/expected.json`): every file must be refused with the
 * typed error its `kind` calls for, and no payload may run. What a file must do is read from its entry
 * (`kind`, `expected`, the exception A1111 recorded), never from its name: other folders in this format use
 * other files and names.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DarkroomError, isDarkroomError } from '../src/errors.js';
import { loadEmbeddingFile } from '../src/networks/embeddings/load.js';
import { section, skipped } from './groups.js';
import type { CaseResult } from './report.js';

interface Refusal {
  readonly code: string;
  /**
   * Where a kind covers several failures, the part of A1111's recorded exception that names this one. When no
   * pattern of the kind matches, any of the kind's codes is accepted.
   */
  readonly when?: RegExp;
}

/** Our refusal codes for each kind of hostile file the oracle README defines. */
export const REFUSALS_BY_KIND: Readonly<Record<string, readonly Refusal[]>> = {
  malicious_pickle: [{ code: 'TORCH_FORBIDDEN_GLOBAL' }],
  bad_zip_member: [{ code: 'TORCH_BAD_ZIP_MEMBER' }],
  truncated: [{ code: 'TORCH_TRUNCATED' }],
  empty: [{ code: 'EMBEDDING_EMPTY_FILE' }],
  garbage: [{ code: 'TORCH_BAD_FORMAT' }],
  invalid_content: [
    { code: 'EMBEDDING_MULTIPLE_TERMS', when: /multiple terms/ },
    { code: 'EMBEDDING_UNRECOGNIZED', when: /Couldn't identify/ },
  ],
  lying_safetensors_header: [
    { code: 'ST_BAD_OFFSETS', when: /data_offsets .* out of bounds/ },
    { code: 'ST_BAD_SHAPE', when: /shape .* != byte span/ },
    { code: 'ST_HEADER_TOO_LARGE', when: /header length .* exceeds/ },
    { code: 'ST_BAD_HEADER', when: /invalid header JSON/ },
    { code: 'ST_BAD_DTYPE', when: /unknown dtype/ },
  ],
  bad_png_text: [
    { code: 'EMBEDDING_BAD_BASE64', when: /base64|padding/i },
    { code: 'EMBEDDING_BAD_JSON', when: /JSONDecodeError|UnicodeDecodeError/ },
    { code: 'EMBEDDING_UNRECOGNIZED', when: /Couldn't identify/ },
    { code: 'EMBEDDING_BAD_TENSOR', when: /ValueError|inhomogeneous/ },
  ],
};

export interface HostileEntry {
  readonly file: string;
  readonly kind: string;
  /** The outcome a loader must reach; the format defines "reject". */
  readonly expected: string;
  readonly description?: string;
  readonly a1111?: {
    readonly status?: string;
    readonly exception?: string;
    readonly errors_report?: ReadonlyArray<{ readonly exception?: string }>;
  };
}

interface HostileIndex {
  readonly description?: string;
  readonly cases: readonly HostileEntry[];
}

/** Every exception A1111 recorded for the file ("Type: message"). */
function recordedExceptions(e: HostileEntry): string[] {
  const out = e.a1111?.exception ? [e.a1111.exception] : [];
  for (const r of e.a1111?.errors_report ?? []) if (r.exception) out.push(r.exception);
  return out;
}

/** The global A1111's safe unpickler named ("global 'posix/system' is forbidden"), as module.name. */
function recordedGlobal(e: HostileEntry): string | undefined {
  for (const text of recordedExceptions(e)) {
    const m = /global '([^'/]+)\/([^']+)' is forbidden/.exec(text);
    if (m) return `${m[1]}.${m[2]}`;
  }
  return undefined;
}

export interface ExpectedRefusal {
  /** Any of these codes is the right refusal. */
  readonly codes: readonly string[];
  /** The forbidden global the error must name, where A1111 recorded one. */
  readonly global?: string;
}

/** What the entry requires of our loader; throws when the entry asks for something this table cannot check. */
export function expectedRefusal(e: HostileEntry): ExpectedRefusal {
  if (e.expected !== 'reject') {
    throw new DarkroomError('PARITY_UNKNOWN_OUTCOME', `expected outcome "${e.expected}" is not one this suite checks (only "reject")`, {
      file: e.file,
      expected: e.expected,
    });
  }
  const refusals = REFUSALS_BY_KIND[e.kind];
  if (!refusals) {
    throw new DarkroomError('PARITY_UNKNOWN_KIND', `no refusal code registered for kind "${e.kind}"`, { file: e.file, kind: e.kind });
  }
  const exceptions = recordedExceptions(e);
  const named = refusals.find((r) => r.when && exceptions.some((x) => r.when!.test(x)));
  const global = recordedGlobal(e);
  return { codes: named ? [named.code] : refusals.map((r) => r.code), ...(global ? { global } : {}) };
}

/** The files a payload would create (`/tmp/...` paths the index mentions), to confirm none appeared. */
function markerPaths(index: HostileIndex): string[] {
  const texts = [index.description ?? '', ...index.cases.map((c) => c.description ?? '')];
  return [...new Set(texts.flatMap((t) => t.match(/\/tmp\/[\w.-]+/g) ?? []))];
}

function markerState(paths: readonly string[]): string {
  if (!paths.length) return 'expected.json names no marker file';
  return paths.map((p) => `${p} ${existsSync(p) ? `present (mtime ${statSync(p).mtimeMs})` : 'absent'}`).join(', ');
}

async function checkFile(hostile: string, entry: HostileEntry): Promise<CaseResult> {
  const name = `hostile/${entry.file}`;
  let want: ExpectedRefusal;
  try {
    want = expectedRefusal(entry);
  } catch (e) {
    return { name, status: 'fail', detail: e instanceof Error ? e.message : String(e) };
  }
  try {
    const emb = await loadEmbeddingFile(join(hostile, entry.file));
    return { name, status: 'fail', detail: `loaded as "${emb.name}" instead of being refused (kind ${entry.kind})` };
  } catch (err) {
    const code = isDarkroomError(err) ? err.code : undefined;
    if (!code || !want.codes.includes(code)) {
      const got = err instanceof Error ? `${code ?? err.name}: ${err.message}` : String(err);
      return { name, status: 'fail', detail: `kind ${entry.kind} expects ${want.codes.join(' or ')}, got ${got}` };
    }
    const named = isDarkroomError(err) ? err.details.global : undefined;
    if (want.global && named !== want.global) {
      return { name, status: 'fail', detail: `refused, but names ${String(named)} instead of ${want.global}` };
    }
    return { name, status: 'pass', detail: code };
  }
}

/** One result per entry of `<hostile>/expected.json`, then one for the payload markers. */
export async function* hostileCases(hostile: string): AsyncGenerator<CaseResult> {
  const json = JSON.parse(await readFile(join(hostile, 'expected.json'), 'utf-8')) as Record<string, unknown>;
  const entries = section<HostileEntry>(json, 'cases', 'hostile/expected.json');
  if ('missing' in entries) {
    yield skipped('hostile', entries.missing);
    return;
  }
  const index: HostileIndex = { cases: entries.items, ...(typeof json.description === 'string' ? { description: json.description } : {}) };
  const markers = markerPaths(index);
  const before = markerState(markers);
  for (const entry of index.cases) yield await checkFile(hostile, entry);
  const after = markerState(markers);
  yield after === before
    ? { name: 'hostile/(no payload ran)', status: 'pass', detail: after }
    : { name: 'hostile/(no payload ran)', status: 'fail', detail: `was ${before}, now ${after}` };
}
