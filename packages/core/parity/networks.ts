/**
 * Parity for networks on a folder shaped like oracle/text: every textual-inversion file loads with A1111's
 * name, vectors and fields; every hostile file is refused with its typed error and nothing runs; every
 * hypernetwork loads with A1111's fields and modules and reproduces its forward outputs within 1e-5 relative.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDarkroomError } from '../src/errors.js';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { EmbeddingDatabase, type TokenEncoder } from '../src/networks/embeddings/database.js';
import { embeddingChecksum, type Embedding } from '../src/networks/embeddings/embedding.js';
import { loadEmbeddingFile } from '../src/networks/embeddings/load.js';
import { describeLayer } from '../src/networks/hypernetworks/describe.js';
import { loadHypernetworkFile, moduleLayers, type Hypernetwork } from '../src/networks/hypernetworks/hypernetwork.js';
import { applyHypernetworks } from '../src/networks/hypernetworks/reference.js';
import type { Float32Tensor, HostTensor } from '../src/tensor.js';
import { combine, elementwiseClose, scaledClose, type CaseResult } from './report.js';
import type { Suite } from './suites.js';

/** What each hostile file must be refused with (expected.json records A1111's own exceptions). */
export const HOSTILE_CODES: Readonly<Record<string, string>> = {
  'evil_os_system.pt': 'TORCH_FORBIDDEN_GLOBAL',
  'evil_exec.pt': 'TORCH_FORBIDDEN_GLOBAL',
  'evil_builtins_eval.bin': 'TORCH_FORBIDDEN_GLOBAL',
  'evil_legacy_raw_pickle.pt': 'TORCH_FORBIDDEN_GLOBAL',
  'evil_torch_load_global.pt': 'TORCH_FORBIDDEN_GLOBAL',
  'zip_extra_member.pt': 'TORCH_BAD_ZIP_MEMBER',
  'truncated.pt': 'TORCH_TRUNCATED',
  'empty.pt': 'EMBEDDING_EMPTY_FILE',
  'garbage.pt': 'TORCH_BAD_FORMAT',
  'multiple_terms.pt': 'EMBEDDING_MULTIPLE_TERMS',
  'two_tensor_concept.bin': 'EMBEDDING_MULTIPLE_TERMS',
  'not_an_embedding.pt': 'EMBEDDING_UNRECOGNIZED',
  'st_offsets_past_end.safetensors': 'ST_BAD_OFFSETS',
  'st_huge_shape.safetensors': 'ST_BAD_SHAPE',
  'st_header_len_huge.safetensors': 'ST_HEADER_TOO_LARGE',
  'st_header_not_json.safetensors': 'ST_BAD_HEADER',
  'st_shape_overflow.safetensors': 'ST_BAD_SHAPE',
  'st_negative_offsets.safetensors': 'ST_BAD_OFFSETS',
  'st_bad_dtype.safetensors': 'ST_BAD_DTYPE',
  'png_bad_base64.png': 'EMBEDDING_BAD_BASE64',
  'png_bad_json.png': 'EMBEDDING_BAD_JSON',
  'png_json_not_embedding.png': 'EMBEDDING_UNRECOGNIZED',
  'png_ragged_tensor.png': 'EMBEDDING_BAD_TENSOR',
  'png_not_utf8_json.png': 'EMBEDDING_BAD_JSON',
};

/** The globals named in the malicious pickles, which the error must name. */
const HOSTILE_GLOBALS: Readonly<Record<string, string>> = {
  'evil_os_system.pt': 'posix.system',
  'evil_exec.pt': '__builtin__.exec',
  'evil_builtins_eval.bin': 'builtins.eval',
  'evil_legacy_raw_pickle.pt': 'posix.system',
  'evil_torch_load_global.pt': 'torch.load',
};

const MARKER = '/tmp/pwned-marker';
const HN_TOLERANCE = 1e-5;

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

interface HypernetworkCase {
  file: string;
  settings: { activation_func?: string };
  loaded?: Record<string, unknown>;
  modules?: Record<string, string[]>;
  io?: string | null;
  create_error?: string;
  forward_errors?: Record<string, string>;
}

interface ChainCase {
  hypernetworks: string[];
  io: string;
  context: string;
}

function pass(name: string, detail?: string): CaseResult {
  return { name, status: 'pass', ...(detail ? { detail } : {}) };
}

function fail(name: string, detail: string): CaseResult {
  return { name, status: 'fail', detail };
}

function markerState(): string {
  return existsSync(MARKER) ? `present (mtime ${statSync(MARKER).mtimeMs})` : 'absent';
}

async function jsonFile<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf-8')) as T;
}

function f32(t: HostTensor | undefined): Float32Array {
  return (t?.data as Float32Array | undefined) ?? new Float32Array(0);
}

/** Field-by-field comparison; returns the mismatches. */
function diffFields(actual: Record<string, unknown>, want: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(want)) {
    if (JSON.stringify(actual[k]) !== JSON.stringify(v)) out.push(`${k}: ${JSON.stringify(actual[k])} != ${JSON.stringify(v)}`);
  }
  return out;
}

async function tokenizerFor(folder: string): Promise<TokenEncoder | undefined> {
  const vocab = join(folder, 'vocab');
  if (!existsSync(join(vocab, 'vocab.json'))) return undefined;
  try {
    const { ClipTokenizer } = await import('../src/text/tokenizer.js');
    return ClipTokenizer.fromDirectory(vocab);
  } catch {
    return undefined;
  }
}

async function* embeddingCases(folder: string): AsyncGenerator<CaseResult> {
  const ti = join(folder, 'ti');
  const { results } = await jsonFile<{ results: LoaderResult[] }>(join(ti, 'loader_results.json'));
  const tokenizer = await tokenizerFor(folder);
  const db = tokenizer ? new EmbeddingDatabase(tokenizer, 768) : undefined;
  for (const r of results) {
    const name = `ti/${r.file}`;
    let e: Embedding;
    try {
      e = await loadEmbeddingFile(join(ti, r.file));
    } catch (err) {
      if (r.status === 'not_loaded' && isDarkroomError(err, 'EMBEDDING_NO_DATA')) yield pass(name, 'not an embedding, as in A1111');
      else yield fail(name, `load failed: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    if (r.status === 'not_loaded') {
      yield fail(name, 'loaded, but A1111 loads nothing from it');
      continue;
    }
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
    const expected = (await readSafetensorsFile(join(ti, r.expected_sidecar!))).tensors;
    const checks: Array<[string, ReturnType<typeof elementwiseClose>]> = [];
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
    const result = combine(name, checks, db ? undefined : 'token ids not checked (no vocab)');
    yield problems.length ? { ...result, status: 'fail', detail: [result.detail, ...problems].filter(Boolean).join('; ') } : result;
  }
}

async function* hostileCases(folder: string): AsyncGenerator<CaseResult> {
  const hostile = join(folder, 'hostile');
  const { cases } = await jsonFile<{ cases: Array<{ file: string }> }>(join(hostile, 'expected.json'));
  const before = markerState();
  for (const c of cases) {
    const name = `hostile/${c.file}`;
    const want = HOSTILE_CODES[c.file];
    if (!want) {
      yield fail(name, 'no expected error code registered for this file');
      continue;
    }
    try {
      const e = await loadEmbeddingFile(join(hostile, c.file));
      yield fail(name, `loaded as "${e.name}" instead of being refused`);
    } catch (err) {
      if (!isDarkroomError(err, want)) {
        yield fail(name, `expected ${want}, got ${err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err)}`);
        continue;
      }
      const g = HOSTILE_GLOBALS[c.file];
      if (g && err.details.global !== g) yield fail(name, `refused, but names ${String(err.details.global)} instead of ${g}`);
      else yield pass(name, want);
    }
  }
  const after = markerState();
  yield after === before ? pass('hostile/(no payload ran)', `${MARKER} ${after}`) : fail('hostile/(no payload ran)', `${MARKER} was ${before}, now ${after}`);
}

function loadedFields(hn: Hypernetwork): Record<string, unknown> {
  return {
    name: hn.name,
    step: hn.step,
    layer_structure: hn.layerStructure,
    activation_func: hn.activationFunc,
    weight_init: hn.weightInit,
    add_layer_norm: hn.addLayerNorm,
    use_dropout: hn.useDropout,
    activate_output: hn.activateOutput,
    dropout_structure: hn.dropoutStructure,
    last_layer_dropout: hn.lastLayerDropout,
    optional_info: hn.optionalInfo,
    sd_checkpoint: hn.sdCheckpoint,
    sd_checkpoint_name: hn.sdCheckpointName,
    sizes: hn.sizes,
    shorthash: hn.shorthash,
  };
}

async function* hypernetworkCases(folder: string): AsyncGenerator<CaseResult> {
  const dir = join(folder, 'hypernetworks');
  const spec = await jsonFile<{ cases: HypernetworkCase[]; chain_cases: ChainCase[] }>(join(dir, 'hypernetwork_cases.json'));
  const contexts = (await readSafetensorsFile(join(dir, 'contexts.safetensors'))).tensors as Map<string, Float32Tensor>;
  for (const c of spec.cases) {
    const name = `hypernetworks/${c.file}`;
    if (c.create_error) {
      // A1111 could not create this network; the same settings must be refused when building its modules.
      try {
        moduleLayers(32, { layerStructure: [1, 2, 1], activationFunc: c.settings.activation_func ?? null, addLayerNorm: false, activateOutput: false, dropoutStructure: [0, 0, 0] });
        yield fail(name, `built, but A1111 fails: ${c.create_error}`);
      } catch (err) {
        yield isDarkroomError(err, 'HYPERNETWORK_BAD_ACTIVATION') ? pass(name, 'refused at construction, as in A1111') : fail(name, String(err));
      }
      continue;
    }
    let hn: Hypernetwork;
    try {
      hn = await loadHypernetworkFile(join(dir, c.file));
    } catch (err) {
      yield fail(name, `load failed: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    const problems = diffFields(loadedFields(hn), c.loaded ?? {});
    for (const [size, want] of Object.entries(c.modules ?? {})) {
      const pair = hn.layers.get(Number(size));
      const got = pair ? pair[0].layers.map(describeLayer) : [];
      if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`modules ${size}: ${JSON.stringify(got)}`);
    }
    const checks: Array<[string, ReturnType<typeof scaledClose>]> = [];
    for (const [ioKey, err] of Object.entries(c.forward_errors ?? {})) {
      const [ctxName, m] = ioKey.split('@') as [string, string];
      try {
        applyHypernetworks([{ hypernetwork: hn, multiplier: Number(m) }], contexts.get(ctxName)!);
        problems.push(`${ioKey}: forward ran, but A1111 fails (${err})`);
      } catch (e) {
        if (!isDarkroomError(e, 'HYPERNETWORK_SHAPE_MISMATCH')) problems.push(`${ioKey}: ${String(e)}`);
      }
    }
    if (c.io) {
      const io = (await readSafetensorsFile(join(dir, c.io))).tensors;
      for (const [key, want] of io) {
        const m = /^(d\d+)\.([kv])@(.+)$/.exec(key);
        if (!m) continue;
        const out = applyHypernetworks([{ hypernetwork: hn, multiplier: Number(m[3]) }], contexts.get(m[1]!)!);
        checks.push([key, scaledClose((m[2] === 'k' ? out.contextK : out.contextV).data, f32(want), HN_TOLERANCE)]);
      }
      for (const [ctxName, ctx] of contexts) {
        if (hn.layers.has(ctx.shape[2]!)) continue;
        const out = applyHypernetworks([{ hypernetwork: hn, multiplier: 1 }], ctx);
        checks.push([`${ctxName} unchanged`, elementwiseClose(out.contextK.data, ctx.data, 0, 0)]);
      }
    }
    const r = combine(name, checks);
    yield problems.length ? { ...r, status: 'fail', detail: [r.detail, ...problems].filter(Boolean).join('; ') } : r;
  }
  for (const chain of spec.chain_cases) {
    const name = `hypernetworks/${chain.io}`;
    const apps = [];
    for (const entry of chain.hypernetworks) {
      const [file, m] = entry.split(' @ ') as [string, string];
      apps.push({ hypernetwork: await loadHypernetworkFile(join(dir, file)), multiplier: Number(m) });
    }
    const ctx = contexts.get(chain.context.split(':')[1]!)!;
    const want = (await readSafetensorsFile(join(dir, chain.io))).tensors;
    const out = applyHypernetworks(apps, ctx);
    yield combine(name, [
      ['context_k', scaledClose(out.contextK.data, f32(want.get('context_k')), HN_TOLERANCE)],
      ['context_v', scaledClose(out.contextV.data, f32(want.get('context_v')), HN_TOLERANCE)],
    ]);
  }
}

export const suite: Suite = {
  name: 'networks',
  under: 'text',
  marker: 'MANIFEST.json',
  async *run(folder: string) {
    yield* embeddingCases(folder);
    yield* hostileCases(folder);
    yield* hypernetworkCases(folder);
  },
};
