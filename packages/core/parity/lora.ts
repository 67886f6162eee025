/**
 * Parity for LoRA / LyCORIS on a folder shaped like oracle/lora (see its README): every network file binds to
 * A1111's module table with the same types, dims, alphas, scales and multipliers and the same unmatched keys
 * (`network/<name>`); the no-network outputs match the baseline (`baseline/<model>`); every case's prompt
 * gives A1111's networks, multipliers, comments, errors and `Lora hashes`, its probe weights match after the
 * merge, and the text encoder and UNet built from the merged weights reproduce its outputs (`case/<id>`); the
 * prompt parser reproduces parse.json (`parse/<n>`); each `Lora hashes` value quotes and reads back as the
 * infotext does (`infotext/<id>`). Models, files, names and multipliers all come from the folder.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { quoteInfotextValue, unquoteInfotextValue } from '../src/formats/infotext.js';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { openCheckpoint, readComponent, type CheckpointSource } from '../src/model-files/checkpoint.js';
import { textOutputName } from '../src/models/clip.js';
import { inferModelConfig, overridesFromJson, UNET_PREFIX, type ConfigOverrides, type ModelConfig } from '../src/model-files/config.js';
import { textEncoderModel, unetModel } from '../src/models/graphs.js';
import { activateLoras, loraComments, LoraLibrary } from '../src/networks/lora/activate.js';
import { bindLora, MODULE_CLASS, type BoundLora } from '../src/networks/lora/bind.js';
import { isLoraFileName, loadLoraFilePath, type LoraFile } from '../src/networks/lora/file.js';
import { loraHashesValue, parseLoraHashes } from '../src/networks/lora/hashes.js';
import { loraModuleTable, type LoraModuleTable } from '../src/networks/lora/mapping.js';
import { mergeLoras, moduleMultiplier } from '../src/networks/lora/merge.js';
import { loraUses, parseBatchExtraNetworks, extraNetworkParams } from '../src/pipeline/extra-networks.js';
import { createSession } from '../src/runtime/session.js';
import { toFloat32, type Float32Tensor, type HostTensor } from '../src/tensor.js';
import { errorText, missingReason, runGroups, section, skipped } from './groups.js';
import { combine, elementwiseClose, type CaseResult, type Closeness } from './report.js';
import type { Suite } from './suites.js';

/** README tolerances: patched weights 1e-5, text and UNet outputs 1e-4 (absolute). */
const WEIGHT_ATOL = 1e-5;
const OUTPUT_ATOL = 1e-4;

interface ModelEntry {
  readonly checkpoint: string;
  readonly inputs: string;
  readonly baseline: string;
}

interface ModuleEntry {
  readonly network_key: string;
  readonly type: string;
  readonly target_module: string;
  readonly dim: number | null;
  readonly alpha: number | null;
  readonly scale: number;
  readonly multiplier: 'te' | 'unet';
}

interface NetworkEntry {
  readonly file: string;
  readonly model: string;
  readonly addnet_hash?: string;
  readonly sha256_file?: string;
  readonly a1111: {
    readonly name: string;
    readonly alias: string;
    readonly sd_version?: string;
    readonly metadata?: Record<string, unknown>;
    readonly hash_at_listing?: string;
    readonly modules: Record<string, ModuleEntry>;
    readonly unmatched_keys: Record<string, string>;
    readonly load_error: string | null;
  };
}

interface CaseEntry {
  readonly id: string;
  readonly model: string;
  readonly prompt: string;
  readonly file: string;
  readonly outputs: Record<string, unknown>;
  readonly prompt_after_parse?: string;
  readonly lora_hashes?: string | null;
  readonly comments?: string[];
  readonly errors?: Record<string, number>;
  readonly layer_errors?: string[];
  readonly networks?: Array<{ name: string; mentioned_name: string; file: string; te_multiplier: number; unet_multiplier: number; dyn_dim: number | null }>;
}

interface ModelContext {
  readonly config: ModelConfig;
  readonly table: LoraModuleTable;
  /** Text and UNet weights under their checkpoint keys. */
  readonly weights: ReadonlyMap<string, Float32Tensor>;
  readonly inputs: ReadonlyMap<string, HostTensor>;
}

interface Folder {
  readonly folder: string;
  readonly json: Record<string, unknown>;
  readonly models: Record<string, ModelEntry>;
  readonly networks: Record<string, NetworkEntry>;
  readonly library: LoraLibrary;
  readonly files: ReadonlyMap<string, LoraFile>;
  model(name: string): Promise<ModelContext | { missing: string }>;
  bind(file: LoraFile, table: LoraModuleTable): BoundLora;
}

async function runGraph(model: Parameters<typeof createSession>[0], feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const s = await createSession(model, { threads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

/** The config the model oracle keeps beside a checkpoint (`<stem>.json`, or an ldm `.yaml`), else none. */
async function configBeside(checkpoint: string): Promise<ConfigOverrides> {
  const stem = join(dirname(checkpoint), basename(checkpoint, extname(checkpoint)));
  if (existsSync(`${stem}.json`)) return overridesFromJson(JSON.parse(await readFile(`${stem}.json`, 'utf8')));
  if (existsSync(`${stem}.yaml`)) {
    const { parseYaml } = await import('../src/model-files/yaml.js');
    return overridesFromJson(parseYaml(await readFile(`${stem}.yaml`, 'utf8')));
  }
  return {};
}

async function loadModelContext(folder: string, entry: ModelEntry): Promise<ModelContext> {
  const checkpoint = join(folder, entry.checkpoint);
  const source: CheckpointSource = await openCheckpoint(checkpoint);
  try {
    const config = inferModelConfig(source.index, await configBeside(checkpoint));
    const weights = new Map<string, Float32Tensor>();
    for (const prefix of [config.text.prefix, UNET_PREFIX]) {
      for (const [k, t] of await readComponent(source, prefix)) weights.set(`${prefix}${k}`, t);
    }
    const inputs = (await readSafetensorsFile(join(folder, entry.inputs))).tensors;
    return { config, table: loraModuleTable(source.index, config.kind), weights, inputs };
  } finally {
    await source.close();
  }
}

async function openFolder(folder: string): Promise<Folder> {
  const json = JSON.parse(await readFile(join(folder, 'cases.json'), 'utf8')) as Record<string, unknown>;
  const models = (json.models ?? {}) as Record<string, ModelEntry>;
  const networks = (json.networks ?? {}) as Record<string, NetworkEntry>;
  // A1111's library is the folder's files, listed in name order.
  const dir = join(folder, 'networks');
  const names = existsSync(dir) ? readdirSync(dir).filter(isLoraFileName).sort() : [];
  const files = new Map<string, LoraFile>();
  for (const n of names) {
    const f = await loadLoraFilePath(join(dir, n));
    files.set(f.name, f);
  }
  const contexts = new Map<string, Promise<ModelContext>>();
  const bindings = new Map<string, BoundLora>();
  const tableIds = new Map<LoraModuleTable, number>();
  return {
    folder,
    json,
    models,
    networks,
    files,
    library: new LoraLibrary(files.values()),
    async model(name) {
      const entry = models[name];
      if (!entry) return { missing: `cases.json has no model "${name}"` };
      const missing = missingReason(folder, [entry.checkpoint, entry.inputs]);
      if (missing) return { missing };
      let p = contexts.get(name);
      if (!p) {
        p = loadModelContext(folder, entry);
        contexts.set(name, p);
      }
      return p;
    },
    bind(file, table) {
      if (!tableIds.has(table)) tableIds.set(table, tableIds.size + 1);
      const key = `${file.name}@${tableIds.get(table)}`;
      let b = bindings.get(key);
      if (!b) {
        b = bindLora(file, table);
        bindings.set(key, b);
      }
      return b;
    },
  };
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function closeNum(a: number | null, b: number | null): boolean {
  if (a === null || b === null) return a === b;
  return Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
}

async function* networkCases(f: Folder): AsyncGenerator<CaseResult> {
  for (const [name, n] of Object.entries(f.networks)) {
    const label = `network/${name}`;
    try {
      const stem = basename(n.file, extname(n.file));
      const file = f.files.get(stem);
      if (!file) {
        yield skipped(label, `the folder has no ${n.file}`);
        continue;
      }
      const ctx = await f.model(n.model);
      if ('missing' in ctx) {
        yield skipped(label, ctx.missing);
        continue;
      }
      const problems: string[] = [];
      const a = n.a1111;
      if (file.alias !== a.alias) problems.push(`alias ${file.alias} != ${a.alias}`);
      if (a.sd_version !== undefined && file.sdVersion !== a.sd_version) problems.push(`sd_version ${file.sdVersion} != ${a.sd_version}`);
      if (a.metadata !== undefined && !same(file.metadata, a.metadata)) problems.push('metadata differs');
      if (n.sha256_file !== undefined && file.sha256 !== n.sha256_file) problems.push('sha256 differs');
      const wantHash = typeof a.metadata?.sshs_model_hash === 'string' ? a.metadata.sshs_model_hash : extname(n.file) === '.safetensors' ? n.addnet_hash : n.sha256_file;
      if (wantHash !== undefined && file.hash !== wantHash) problems.push(`hash ${file.hash} != ${wantHash}`);
      let bound: BoundLora | undefined;
      try {
        bound = f.bind(file, ctx.table);
      } catch (e) {
        if (a.load_error === null) problems.push(`load failed: ${errorText(e)}`);
      }
      if (bound) {
        if (a.load_error !== null) problems.push(`loaded, A1111 failed: ${a.load_error}`);
        const want = a.modules;
        const got = bound.modules;
        for (const k of Object.keys(want)) if (!got.has(k)) problems.push(`missing module ${k}`);
        for (const k of got.keys()) if (!(k in want)) problems.push(`extra module ${k}`);
        for (const [k, m] of got) {
          const w = want[k];
          if (!w) continue;
          const mult = moduleMultiplier(m, { te: 1, unet: 2 }) === 1 ? 'te' : 'unet';
          const fields: Array<[string, unknown, unknown]> = [
            ['network_key', m.networkKey, w.network_key],
            ['type', MODULE_CLASS[m.type], w.type],
            ['target_module', m.target.className, w.target_module],
            ['multiplier', mult, w.multiplier],
          ];
          for (const [fld, x, y] of fields) if (x !== y) problems.push(`${k}.${fld}: ${String(x)} != ${String(y)}`);
          if (!closeNum(m.dim, w.dim)) problems.push(`${k}.dim: ${m.dim} != ${w.dim}`);
          if (!closeNum(m.alpha, w.alpha)) problems.push(`${k}.alpha: ${m.alpha} != ${w.alpha}`);
          if (!closeNum(m.scale, w.scale)) problems.push(`${k}.scale: ${m.scale} != ${w.scale}`);
        }
        const unmatched = Object.fromEntries([...bound.unmatched].sort(([x], [y]) => (x < y ? -1 : 1)));
        const wantUnmatched = Object.fromEntries(Object.entries(a.unmatched_keys).sort(([x], [y]) => (x < y ? -1 : 1)));
        if (!same(unmatched, wantUnmatched)) problems.push(`unmatched keys ${JSON.stringify(Object.keys(unmatched))} != ${JSON.stringify(Object.keys(wantUnmatched))}`);
      }
      const detail = `${bound?.modules.size ?? 0} modules, ${bound?.unmatched.size ?? 0} unmatched keys`;
      yield problems.length
        ? { name: label, status: 'fail', detail: `${problems.slice(0, 6).join('; ')}${problems.length > 6 ? `; +${problems.length - 6} more` : ''}` }
        : { name: label, status: 'pass', detail };
    } catch (e) {
      yield { name: label, status: 'fail', detail: errorText(e) };
    }
  }
}

/** Token embedding lookup on the host, as the engine does. */
function lookup(table: Float32Tensor, ids: HostTensor, rows?: number): Float32Tensor {
  const d = table.shape[1]!;
  const per = ids.shape[1]!;
  const n = (rows ?? ids.shape[0]!) * per;
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const id = Number((ids.data as BigInt64Array)[i]!);
    out.set(table.data.subarray(id * d, (id + 1) * d), i * d);
  }
  return { dtype: 'float32', shape: [n / per, per, d], data: out };
}

function relative(weights: ReadonlyMap<string, Float32Tensor>, patched: ReadonlyMap<string, Float32Tensor>, prefix: string): Map<string, Float32Tensor> {
  const out = new Map<string, Float32Tensor>();
  for (const [k, t] of weights) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), patched.get(k) ?? t);
  return out;
}

/** The outputs a case file records, computed from (possibly patched) weights. */
async function outputs(ctx: ModelContext, patched: ReadonlyMap<string, Float32Tensor>, wanted: readonly string[]): Promise<Map<string, Float32Tensor>> {
  const { config, inputs } = ctx;
  const out = new Map<string, Float32Tensor>();
  const textW = relative(ctx.weights, patched, config.text.prefix);
  const tokenKey = config.text.layout === 'hf-clip' ? 'embeddings.token_embedding.weight' : 'token_embedding.weight';
  const tokens = textW.get(tokenKey)!;
  const ids = inputs.get('text.input_ids');
  const encode = async (embeds: Float32Tensor): Promise<Record<string, HostTensor>> =>
    runGraph(textEncoderModel(textW, config.text, { batch: embeds.shape[0]! }), { inputs_embeds: embeds });
  if (ids && (wanted.includes('text.last_hidden_state') || wanted.includes('text.penultimate_ln') || wanted.includes('unet.out_e2e'))) {
    const r = await encode(lookup(tokens, ids));
    out.set('text.last_hidden_state', toFloat32(r[textOutputName(1)]!));
    out.set('text.penultimate_ln', toFloat32(r[textOutputName(2)]!));
    const cond = toFloat32(r[textOutputName(config.text.defaultClipSkip)]!);
    const x = inputs.get('unet.x');
    if (x && wanted.includes('unet.out_e2e')) {
      const b = x.shape[0]!;
      const per = cond.data.length / cond.shape[0]!;
      out.set('__e2e_context', { dtype: 'float32', shape: [b, ...cond.shape.slice(1)], data: cond.data.slice(0, b * per) });
    }
  }
  const embeds = inputs.get('text_embeds.inputs_embeds');
  if (embeds && wanted.includes('text_embeds.last_hidden_state')) {
    out.set('text_embeds.last_hidden_state', toFloat32((await encode(toFloat32(embeds)))[textOutputName(1)]!));
  }
  const x = inputs.get('unet.x');
  const t = inputs.get('unet.t');
  const context = inputs.get('unet.context');
  if (x && t && (wanted.includes('unet.out') || wanted.includes('unet.out_e2e'))) {
    const unetW = relative(ctx.weights, patched, UNET_PREFIX);
    const [batch, , height, width] = x.shape as [number, number, number, number];
    const tf: Float32Tensor = { dtype: 'float32', shape: [batch], data: Float32Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v)) };
    const runWith = async (c: Float32Tensor): Promise<Float32Tensor> => {
      const graph = unetModel(unetW, config.unet, { batch, height, width, contextLength: c.shape[1]! });
      return toFloat32((await runGraph(graph, { x: toFloat32(x), t: tf, context_k: c, context_v: c })).out!);
    };
    if (context && wanted.includes('unet.out')) out.set('unet.out', await runWith(toFloat32(context)));
    const e2e = out.get('__e2e_context');
    if (e2e && wanted.includes('unet.out_e2e')) out.set('unet.out_e2e', await runWith(e2e));
  }
  out.delete('__e2e_context');
  return out;
}

function outputChecks(got: ReadonlyMap<string, Float32Tensor>, ref: ReadonlyMap<string, HostTensor>, names: readonly string[]): Array<[string, Closeness]> {
  const checks: Array<[string, Closeness]> = [];
  for (const n of names) {
    const r = ref.get(n);
    const g = got.get(n);
    if (!r) continue;
    checks.push([n, g ? elementwiseClose(g.data, toFloat32(r).data, OUTPUT_ATOL, 0) : { maxAbs: Infinity, maxRel: Infinity, failing: 1, ok: false }]);
  }
  return checks;
}

const OUTPUT_NAMES = ['text.last_hidden_state', 'text.penultimate_ln', 'text_embeds.last_hidden_state', 'unet.out', 'unet.out_e2e'];

async function* baselineCases(f: Folder): AsyncGenerator<CaseResult> {
  for (const [name, entry] of Object.entries(f.models)) {
    const label = `baseline/${name}`;
    try {
      const ctx = await f.model(name);
      if ('missing' in ctx) {
        yield skipped(label, ctx.missing);
        continue;
      }
      const missing = missingReason(f.folder, [entry.baseline]);
      if (missing) {
        yield skipped(label, missing);
        continue;
      }
      const ref = (await readSafetensorsFile(join(f.folder, entry.baseline))).tensors;
      const wanted = OUTPUT_NAMES.filter((n) => ref.has(n));
      yield combine(label, outputChecks(await outputs(ctx, new Map(), wanted), ref, wanted));
    } catch (e) {
      yield { name: label, status: 'fail', detail: errorText(e) };
    }
  }
}

async function oneCase(f: Folder, c: CaseEntry): Promise<CaseResult> {
  const label = `case/${c.id}`;
  const ctx = await f.model(c.model);
  if ('missing' in ctx) return skipped(label, ctx.missing);
  const missing = missingReason(f.folder, [c.file]);
  if (missing) return skipped(label, missing);
  const { texts, calls } = parseBatchExtraNetworks([c.prompt]);
  const { uses } = loraUses(calls);
  const act = activateLoras(uses, f.library, ctx.table, (file, table) => f.bind(file, table));
  const merged = mergeLoras(ctx.weights, ctx.table, act.applications);
  const problems: string[] = [];
  if (c.prompt_after_parse !== undefined && texts[0] !== c.prompt_after_parse) problems.push(`prompt after parse ${JSON.stringify(texts[0])} != ${JSON.stringify(c.prompt_after_parse)}`);
  if (c.lora_hashes !== undefined && (act.hashes ?? '') !== (c.lora_hashes ?? '')) problems.push(`Lora hashes ${JSON.stringify(act.hashes)} != ${JSON.stringify(c.lora_hashes)}`);
  const comments = loraComments(act.notFound, merged.errors);
  if (c.comments !== undefined && !same(comments, c.comments)) problems.push(`comments ${JSON.stringify(comments)} != ${JSON.stringify(c.comments)}`);
  if (c.errors !== undefined && !same(Object.fromEntries(merged.errors), c.errors)) problems.push(`errors ${JSON.stringify(Object.fromEntries(merged.errors))} != ${JSON.stringify(c.errors)}`);
  if (c.layer_errors !== undefined) {
    // A1111 logs them in forward order, we in module-table order: compared as sets, with torch's wording.
    if (!same([...merged.layerErrors].sort(), [...c.layer_errors].sort())) {
      problems.push(`layer errors ${JSON.stringify(merged.layerErrors)} != ${JSON.stringify(c.layer_errors)}`);
    }
  }
  if (c.networks !== undefined) {
    const got = act.applications.map((a, i) => ({
      name: a.name,
      mentioned_name: a.name,
      file: act.files[i]!.filename,
      te_multiplier: a.te,
      unet_multiplier: a.unet,
      dyn_dim: a.dyn,
    }));
    if (!same(got, c.networks)) problems.push(`networks ${JSON.stringify(got)} != ${JSON.stringify(c.networks)}`);
  }
  const ref = (await readSafetensorsFile(join(f.folder, c.file))).tensors;
  const checks: Array<[string, Closeness]> = [];
  for (const [name, t] of ref) {
    if (!name.startsWith('weight.')) continue;
    const key = name.slice('weight.'.length);
    const got = merged.weights.get(key) ?? ctx.weights.get(key);
    checks.push([name, got ? elementwiseClose(got.data, toFloat32(t).data, WEIGHT_ATOL, 0) : { maxAbs: Infinity, maxRel: Infinity, failing: 1, ok: false }]);
  }
  const wanted = OUTPUT_NAMES.filter((n) => ref.has(n));
  checks.push(...outputChecks(await outputs(ctx, merged.weights, wanted), ref, wanted));
  const r = combine(label, checks);
  return problems.length ? { ...r, status: 'fail', detail: [r.detail, ...problems].filter(Boolean).join('; ') } : r;
}

async function* caseCases(f: Folder): AsyncGenerator<CaseResult> {
  const cases = section<CaseEntry>(f.json, 'cases', 'cases.json');
  if ('missing' in cases) {
    yield skipped('case', cases.missing);
    return;
  }
  for (const c of cases.items) {
    try {
      yield await oneCase(f, c);
    } catch (e) {
      yield { name: `case/${c.id}`, status: 'fail', detail: errorText(e) };
    }
  }
}

/** `Lora hashes` as the infotext writes it (quoted: the value holds `:`) and reads it back. */
async function* infotextCases(f: Folder): AsyncGenerator<CaseResult> {
  const cases = section<CaseEntry>(f.json, 'cases', 'cases.json');
  if ('missing' in cases) {
    yield skipped('infotext', cases.missing);
    return;
  }
  for (const c of cases.items) {
    if (!c.lora_hashes) continue;
    const label = `infotext/${c.id}`;
    const quoted = quoteInfotextValue(c.lora_hashes);
    const problems: string[] = [];
    if (quoted !== JSON.stringify(c.lora_hashes)) problems.push(`quoted as ${quoted}`);
    const back = parseLoraHashes(unquoteInfotextValue(quoted));
    const rewritten = loraHashesValue([...back].map(([name, shorthash]) => ({ name, shorthash })));
    if (rewritten !== c.lora_hashes) problems.push(`read back as ${String(rewritten)}`);
    for (const [name, short] of back) {
      if (!f.library.aliasForShorthash(short)) problems.push(`no file in the folder has the shorthash of ${name}`);
    }
    yield problems.length ? { name: label, status: 'fail', detail: problems.join('; ') } : { name: label, status: 'pass' };
  }
}

interface ParsePrompt {
  prompt: string;
  text: string;
  extra_networks: Record<string, Array<{ items: string[]; positional: string[]; named: Record<string, string> }>>;
  lora_activate: { names: string[]; te: Array<number | string>; unet: Array<number | string>; dyn: Array<number | null> };
  activation_errors?: string[];
}

interface ParseBatch extends Omit<ParsePrompt, 'prompt' | 'text'> {
  prompts: string[];
  texts: string[];
}

/** parse.json writes non-finite floats as 'inf' / 'nan'. */
function jsonFloat(x: number): number | string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  return x;
}

function parseProblems(prompts: readonly string[], want: ParseBatch): string[] {
  const problems: string[] = [];
  const { texts, calls } = parseBatchExtraNetworks(prompts);
  if (!same(texts, want.texts)) problems.push(`texts ${JSON.stringify(texts)} != ${JSON.stringify(want.texts)}`);
  const grouped: Record<string, Array<{ items: string[]; positional: string[]; named: Record<string, string> }>> = {};
  for (const c of calls) {
    const p = extraNetworkParams(c);
    (grouped[c.kind] ??= []).push({ items: [...c.items], positional: [...p.positional], named: { ...p.named } });
  }
  if (!same(grouped, want.extra_networks)) problems.push(`extra networks ${JSON.stringify(grouped)} != ${JSON.stringify(want.extra_networks)}`);
  const { uses, error } = loraUses(calls);
  const got = { names: uses.map((u) => u.name), te: uses.map((u) => jsonFloat(u.te)), unet: uses.map((u) => jsonFloat(u.unet)), dyn: uses.map((u) => u.dyn) };
  if (!same(got, want.lora_activate)) problems.push(`activate ${JSON.stringify(got)} != ${JSON.stringify(want.lora_activate)}`);
  const wantErrors = (want.activation_errors ?? []).map((e) => e.slice(e.indexOf(']: ') + 3));
  const gotErrors = error ? [error] : [];
  if (!same(gotErrors, wantErrors)) problems.push(`activation errors ${JSON.stringify(gotErrors)} != ${JSON.stringify(wantErrors)}`);
  return problems;
}

async function* parseCases(folder: string): AsyncGenerator<CaseResult> {
  const json = JSON.parse(await readFile(join(folder, 'parse.json'), 'utf8')) as Record<string, unknown>;
  const prompts = section<ParsePrompt>(json, 'prompts', 'parse.json');
  if ('missing' in prompts) yield skipped('parse/prompts', prompts.missing);
  else {
    for (const [i, p] of prompts.items.entries()) {
      const label = `parse/prompt-${i} ${JSON.stringify(p.prompt).slice(0, 40)}`;
      const problems = parseProblems([p.prompt], { ...p, prompts: [p.prompt], texts: [p.text] });
      yield problems.length ? { name: label, status: 'fail', detail: problems.join('; ') } : { name: label, status: 'pass' };
    }
  }
  const batches = section<ParseBatch>(json, 'batches', 'parse.json');
  if ('missing' in batches) yield skipped('parse/batches', batches.missing);
  else {
    for (const [i, b] of batches.items.entries()) {
      const problems = parseProblems(b.prompts, b);
      yield problems.length ? { name: `parse/batch-${i}`, status: 'fail', detail: problems.join('; ') } : { name: `parse/batch-${i}`, status: 'pass' };
    }
  }
}

export const suite: Suite = {
  name: 'lora',
  under: 'lora',
  marker: 'cases.json',
  async *run(folder: string) {
    let opened: Folder | undefined;
    const open = async (): Promise<Folder> => (opened ??= await openFolder(folder));
    yield* runGroups(folder, [
      { name: 'network', needs: ['cases.json', 'networks'], run: async function* () { yield* networkCases(await open()); } },
      { name: 'baseline', needs: ['cases.json'], run: async function* () { yield* baselineCases(await open()); } },
      { name: 'case', needs: ['cases.json', 'networks'], run: async function* () { yield* caseCases(await open()); } },
      { name: 'infotext', needs: ['cases.json', 'networks'], run: async function* () { yield* infotextCases(await open()); } },
      { name: 'parse', needs: ['parse.json'], run: () => parseCases(folder) },
    ]);
  },
};
