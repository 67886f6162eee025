/**
 * The hypernetworks group of the networks suite (`hypernetworks/hypernetwork_cases.json`): every file loads with
 * A1111's fields and modules and reproduces its recorded forward outputs within 1e-5 relative; settings A1111
 * could not build are refused; chains apply in order. Each case is checked on its own, so one broken file is one
 * failed line.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDarkroomError } from '../src/errors.js';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { createHypernetwork, type WeightInit } from '../src/networks/hypernetworks/create.js';
import { describeLayer } from '../src/networks/hypernetworks/describe.js';
import { loadHypernetworkFile, type Hypernetwork } from '../src/networks/hypernetworks/hypernetwork.js';
import { applyHypernetworks } from '../src/networks/hypernetworks/reference.js';
import type { Float32Tensor, HostTensor } from '../src/tensor.js';
import { errorText, section, skipped } from './groups.js';
import { combine, diffFields, elementwiseClose, scaledClose, type CaseResult, type Closeness } from './report.js';

/** The networks README: outputs within 1e-5 of max|ref|. */
const HN_TOLERANCE = 1e-5;

interface CreateSettings {
  sizes?: number[];
  layer_structure?: string | number[];
  activation_func?: string | null;
  weight_init?: string;
  add_layer_norm?: boolean;
  use_dropout?: boolean;
  dropout_structure?: string | number[] | null;
  activate_output?: boolean | null;
}

interface HypernetworkCase {
  file: string;
  settings: CreateSettings;
  loaded?: Record<string, unknown>;
  modules?: Record<string, string[]>;
  io?: string | null;
  create_error?: string;
  forward_errors?: Record<string, string>;
}

interface ChainCase {
  hypernetworks: string[];
  io: string;
  /** `<file>:<tensor>` of the input context. */
  context: string;
}

type Contexts = ReadonlyMap<string, Float32Tensor>;

function f32(t: HostTensor | undefined): Float32Array {
  return (t?.data as Float32Array | undefined) ?? new Float32Array(0);
}

function withProblems(r: CaseResult, problems: readonly string[]): CaseResult {
  return problems.length ? { ...r, status: 'fail', detail: [r.detail, ...problems].filter(Boolean).join('; ') } : r;
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

/** A1111 could not create this network: the recorded settings must be refused by our create path too. */
function createErrorCase(name: string, c: HypernetworkCase): CaseResult {
  const s = c.settings;
  try {
    createHypernetwork({
      name: c.file,
      sizes: s.sizes ?? [],
      ...(s.layer_structure !== undefined ? { layerStructure: s.layer_structure } : {}),
      activationFunc: s.activation_func ?? null,
      ...(s.weight_init ? { weightInit: s.weight_init as WeightInit } : {}),
      addLayerNorm: s.add_layer_norm ?? false,
      useDropout: s.use_dropout ?? false,
      dropoutStructure: s.dropout_structure ?? null,
      ...(typeof s.activate_output === 'boolean' ? { activateOutput: s.activate_output } : {}),
      // The weights never matter here: construction must fail before any is drawn or kept.
      random: { uniform: () => 0.5, normal: () => 0 },
    });
    return { name, status: 'fail', detail: `built, but A1111 fails: ${c.create_error}` };
  } catch (err) {
    return isDarkroomError(err) && err.code.startsWith('HYPERNETWORK_')
      ? { name, status: 'pass', detail: `refused at construction (${err.code}), as in A1111` }
      : { name, status: 'fail', detail: errorText(err) };
  }
}

async function fileCase(dir: string, c: HypernetworkCase, contexts: Contexts): Promise<CaseResult> {
  const name = `hypernetworks/${c.file}`;
  if (c.create_error) return createErrorCase(name, c);
  let hn: Hypernetwork;
  try {
    hn = await loadHypernetworkFile(join(dir, c.file));
  } catch (err) {
    return { name, status: 'fail', detail: `load failed: ${errorText(err)}` };
  }
  const problems = diffFields(loadedFields(hn), c.loaded ?? {});
  for (const [size, want] of Object.entries(c.modules ?? {})) {
    const pair = hn.layers.get(Number(size));
    const got = pair ? pair[0].layers.map(describeLayer) : [];
    if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`modules ${size}: ${JSON.stringify(got)}`);
  }
  for (const [ioKey, err] of Object.entries(c.forward_errors ?? {})) {
    const [ctxName, m] = ioKey.split('@') as [string, string];
    const ctx = contexts.get(ctxName);
    if (!ctx) {
      problems.push(`${ioKey}: no context ${ctxName} in contexts.safetensors`);
      continue;
    }
    try {
      applyHypernetworks([{ hypernetwork: hn, multiplier: Number(m) }], ctx);
      problems.push(`${ioKey}: forward ran, but A1111 fails (${err})`);
    } catch (e) {
      if (!isDarkroomError(e, 'HYPERNETWORK_SHAPE_MISMATCH')) problems.push(`${ioKey}: ${String(e)}`);
    }
  }
  const checks: Array<[string, Closeness]> = [];
  if (c.io) {
    const io = (await readSafetensorsFile(join(dir, c.io))).tensors;
    for (const [key, want] of io) {
      const m = /^(d\d+)\.([kv])@(.+)$/.exec(key);
      if (!m) continue;
      const ctx = contexts.get(m[1]!);
      if (!ctx) {
        problems.push(`${key}: no context ${m[1]} in contexts.safetensors`);
        continue;
      }
      const out = applyHypernetworks([{ hypernetwork: hn, multiplier: Number(m[3]) }], ctx);
      checks.push([key, scaledClose((m[2] === 'k' ? out.contextK : out.contextV).data, f32(want), HN_TOLERANCE)]);
    }
    for (const [ctxName, ctx] of contexts) {
      if (hn.layers.has(ctx.shape[2]!)) continue;
      const out = applyHypernetworks([{ hypernetwork: hn, multiplier: 1 }], ctx);
      checks.push([`${ctxName} unchanged`, elementwiseClose(out.contextK.data, ctx.data, 0, 0)]);
    }
  }
  return withProblems(combine(name, checks), problems);
}

async function chainCase(dir: string, chain: ChainCase): Promise<CaseResult> {
  const name = `hypernetworks/${chain.io}`;
  const apps = [];
  for (const entry of chain.hypernetworks) {
    const [file, m] = entry.split(' @ ') as [string, string];
    apps.push({ hypernetwork: await loadHypernetworkFile(join(dir, file)), multiplier: Number(m) });
  }
  const [ctxFile, ctxName] = chain.context.split(':') as [string, string];
  const ctx = (await readSafetensorsFile(join(dir, ctxFile))).tensors.get(ctxName) as Float32Tensor | undefined;
  if (!ctx) return { name, status: 'fail', detail: `no context ${chain.context}` };
  const want = (await readSafetensorsFile(join(dir, chain.io))).tensors;
  const out = applyHypernetworks(apps, ctx);
  return combine(name, [
    ['context_k', scaledClose(out.contextK.data, f32(want.get('context_k')), HN_TOLERANCE)],
    ['context_v', scaledClose(out.contextV.data, f32(want.get('context_v')), HN_TOLERANCE)],
  ]);
}

/** Runs one case, turning a throw (a missing io file, a bad tensor) into that case's failure. */
async function isolated(name: string, run: () => Promise<CaseResult>): Promise<CaseResult> {
  try {
    return await run();
  } catch (e) {
    return { name, status: 'fail', detail: errorText(e) };
  }
}

/** `dir` is the hypernetworks sub-folder. */
export async function* hypernetworkCases(dir: string): AsyncGenerator<CaseResult> {
  const json = JSON.parse(await readFile(join(dir, 'hypernetwork_cases.json'), 'utf-8')) as Record<string, unknown>;
  const contexts = (await readSafetensorsFile(join(dir, 'contexts.safetensors'))).tensors as Map<string, Float32Tensor>;
  const cases = section<HypernetworkCase>(json, 'cases', 'hypernetwork_cases.json');
  if ('missing' in cases) yield skipped('hypernetworks/cases', cases.missing);
  else for (const c of cases.items) yield await isolated(`hypernetworks/${c.file}`, () => fileCase(dir, c, contexts));
  const chains = section<ChainCase>(json, 'chain_cases', 'hypernetwork_cases.json');
  if ('missing' in chains) yield skipped('hypernetworks/chain_cases', chains.missing);
  else for (const c of chains.items) yield await isolated(`hypernetworks/${c.io}`, () => chainCase(dir, c));
}
