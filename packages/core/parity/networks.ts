/**
 * Parity for networks on a folder shaped like oracle/text: every textual-inversion file loads with A1111's
 * name, vectors and fields (`ti/`); every hostile file is refused with the typed error its kind calls for and
 * nothing runs (`hostile/`, see hostile.ts); every hypernetwork loads with A1111's fields and modules and
 * reproduces its forward outputs (`hypernetworks/`, see networks-hypernetworks.ts). A group the folder lacks is
 * one skipped line; the others are still checked.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDarkroomError } from '../src/errors.js';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { EmbeddingDatabase, type TokenEncoder } from '../src/networks/embeddings/database.js';
import { embeddingChecksum, type Embedding } from '../src/networks/embeddings/embedding.js';
import { loadEmbeddingFile } from '../src/networks/embeddings/load.js';
import { ClipTokenizer } from '../src/text/tokenizer.js';
import type { HostTensor } from '../src/tensor.js';
import { errorText, runGroups, section, skipped } from './groups.js';
import { hostileCases } from './hostile.js';
import { hypernetworkCases } from './networks-hypernetworks.js';
import { HF_VOCABULARY_FILES } from '../src/text/bpe-vocab.js';
import { combine, diffFields, elementwiseClose, type CaseResult, type Closeness } from './report.js';
import type { Suite } from './suites.js';

interface LoaderResult {
  file: string;
  status: string;
  name?: string;
  vectors?: number;
  shape?: number;
  step?: number | null;
  sd_checkpoint?: string | null;
  sd_checkpoint_name?: string | null;
  hash?: string;
  shorthash?: string;
  checksum?: string;
  registered_token_ids?: number[] | null;
  expected_sidecar?: string;
}

function f32(t: HostTensor | undefined): Float32Array {
  return (t?.data as Float32Array | undefined) ?? new Float32Array(0);
}

function tokenizerFor(folder: string): TokenEncoder | undefined {
  const vocab = join(folder, 'vocab');
  return existsSync(join(vocab, HF_VOCABULARY_FILES.encoder)) ? ClipTokenizer.fromDirectory(vocab) : undefined;
}

/**
 * The model width the loader results were recorded against (A1111's `expected_shape`): the width of the files
 * A1111 registered, else the figure the results' description states. Undefined when neither says.
 */
function expectedWidth(results: readonly LoaderResult[], description: unknown): number | undefined {
  const registered = results.find((r) => r.status === 'registered' && typeof r.shape === 'number');
  if (registered) return registered.shape;
  const m = typeof description === 'string' ? /expected_shape\s*=\s*(\d+)/.exec(description) : null;
  return m ? Number(m[1]) : undefined;
}

async function embeddingCase(ti: string, r: LoaderResult, db: EmbeddingDatabase | undefined): Promise<CaseResult> {
  const name = `ti/${r.file}`;
  let e: Embedding;
  try {
    e = await loadEmbeddingFile(join(ti, r.file));
  } catch (err) {
    if (r.status === 'not_loaded' && isDarkroomError(err, 'EMBEDDING_NO_DATA')) return { name, status: 'pass', detail: 'not an embedding, as in A1111' };
    return { name, status: 'fail', detail: `load failed: ${errorText(err)}` };
  }
  if (r.status === 'not_loaded') return { name, status: 'fail', detail: 'loaded, but A1111 loads nothing from it' };
  const problems = diffFields(
    {
      name: e.name,
      vectors: e.vectors,
      shape: e.width,
      step: e.step,
      sd_checkpoint: e.sdCheckpoint,
      sd_checkpoint_name: e.sdCheckpointName,
      hash: e.hash,
      shorthash: e.shorthash,
      ...(e.parts ? {} : { checksum: embeddingChecksum(e.vec) }),
    },
    {
      name: r.name,
      vectors: r.vectors,
      shape: r.shape,
      step: r.step,
      sd_checkpoint: r.sd_checkpoint,
      sd_checkpoint_name: r.sd_checkpoint_name,
      hash: r.hash,
      shorthash: r.shorthash,
      ...(r.checksum !== undefined ? { checksum: r.checksum } : {}),
    },
  );
  if (!r.expected_sidecar) return { name, status: 'fail', detail: 'loader_results.json names no expected_sidecar for a loaded file' };
  const expected = (await readSafetensorsFile(join(ti, r.expected_sidecar))).tensors;
  const checks: Array<[string, Closeness]> = [];
  if (e.parts) {
    for (const [k, t] of Object.entries(e.parts)) checks.push([k, elementwiseClose(t.data, f32(expected.get(k)), 0, 0)]);
  } else checks.push(['vectors', elementwiseClose(e.vec.data, f32(expected.get('vectors')), 0, 0)]);
  if (db) {
    const registered = db.add(e, { onMismatch: 'skip' });
    const wantRegistered = r.status === 'registered';
    if (registered !== wantRegistered) problems.push(`registered ${registered}, A1111 status ${r.status}`);
    if (registered && JSON.stringify(db.tokenIds(e.name)) !== JSON.stringify(r.registered_token_ids)) {
      problems.push(`token ids ${JSON.stringify(db.tokenIds(e.name))} != ${JSON.stringify(r.registered_token_ids)}`);
    }
  }
  const result = combine(name, checks, db ? undefined : 'registration and token ids not checked (no vocab or model width)');
  return problems.length ? { ...result, status: 'fail', detail: [result.detail, ...problems].filter(Boolean).join('; ') } : result;
}

async function* embeddingCases(folder: string): AsyncGenerator<CaseResult> {
  const ti = join(folder, 'ti');
  const json = JSON.parse(await readFile(join(ti, 'loader_results.json'), 'utf-8')) as Record<string, unknown>;
  const results = section<LoaderResult>(json, 'results', 'ti/loader_results.json');
  if ('missing' in results) {
    yield skipped('ti', results.missing);
    return;
  }
  const tokenizer = tokenizerFor(folder);
  const width = expectedWidth(results.items, json.description);
  const db = tokenizer && width !== undefined ? new EmbeddingDatabase(tokenizer, width) : undefined;
  for (const r of results.items) {
    try {
      yield await embeddingCase(ti, r, db);
    } catch (e) {
      yield { name: `ti/${r.file}`, status: 'fail', detail: errorText(e) };
    }
  }
}

export const suite: Suite = {
  name: 'networks',
  under: 'text',
  marker: 'MANIFEST.json',
  run(folder: string) {
    return runGroups(folder, [
      { name: 'ti', needs: ['ti/loader_results.json'], run: () => embeddingCases(folder) },
      { name: 'hostile', needs: ['hostile/expected.json'], run: () => hostileCases(join(folder, 'hostile')) },
      {
        name: 'hypernetworks',
        needs: ['hypernetworks/hypernetwork_cases.json', 'hypernetworks/contexts.safetensors'],
        run: () => hypernetworkCases(join(folder, 'hypernetworks')),
      },
    ]);
  },
};
