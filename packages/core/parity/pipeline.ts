/**
 * parity:pipeline — every case of the pipeline oracle (`cases.json`): the request runs through `txt2img` on
 * the tiny checkpoint exactly as a user's request would, with a trace that records what the oracle stores.
 *
 * Checks (oracle README, "Suggested checks"): token ids of every text-encoder call exact; conds and unconds
 * |a-b| <= 1e-5; initial noise, sigmas, every CFG call's denoised output and every UNet call's eps, and the
 * final latent and decoded image within 5e-5 * max|ref|; the 8-bit image within 1 everywhere with at least
 * 99.9% identical; the infotext identical (and the PNG's `parameters` chunk equal to it).
 *
 * The CLIP vocabulary comes from a `vocab/` beside the folder's cases or in a sibling oracle folder (the text
 * oracle's `../text/vocab`); embeddings from the files cases.json lists, hypernetworks from the folder it names
 * (`hypernetwork_dir`). Without the model or the vocabulary the suite is one skipped line; a case whose own
 * files (tensors, embeddings, hypernetworks) are absent is skipped with the reason, and the others still run.
 * `DARKROOM_ATTENTION` renders with that attention variant (see attention-variant.ts).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import { decodePng, readPngText } from '../src/formats/png.js';
import { loadModel, type StableDiffusionModel } from '../src/models/load.js';
import { EmbeddingDatabase } from '../src/networks/embeddings/database.js';
import { loadEmbeddingFile } from '../src/networks/embeddings/load.js';
import { ClipTokenizer } from '../src/text/tokenizer.js';
import { toFloat32, type Float32Tensor, type HostTensor } from '../src/tensor.js';
import { txt2img } from '../src/pipeline/txt2img.js';
import { pipelineModel } from '../src/pipeline/model.js';
import { chunkLookup } from '../src/pipeline/embedding-adapter.js';
import { hypernetworkProvider } from '../src/pipeline/hypernetworks.js';
import type { MultiCond, ScheduledCond } from '../src/pipeline/cfg-denoiser.js';
import type { PipelineTrace } from '../src/pipeline/trace.js';
import type { JobNetworks, PipelineModel } from '../src/pipeline/types.js';
import type { Txt2ImgParams } from '../src/pipeline/params.js';
import { attentionFromEnv } from './attention-variant.js';
import { errorText, missingReason, section, skipped } from './groups.js';
import { repoRoot } from './oracle.js';
import { HF_VOCABULARY_FILES } from '../src/text/bpe-vocab.js';
import { combine, elementwiseClose, scaledClose, type CaseResult, type Closeness } from './report.js';
import type { Suite } from './suites.js';

const COND_ATOL = 1e-5;
const REL_TOL = 5e-5;
const UINT8_MAX_DIFF = 1;
const UINT8_MAX_DIFFERING = 0.001;

interface OracleCase {
  id: string;
  request: Txt2ImgParams;
  text_encoder_calls: Array<{ texts: string[]; chunks: Array<{ tokens: number[][] }> }>;
  cfg_calls: unknown[];
  unet_calls: unknown[];
  infotexts: string[];
  png: string[];
  file: string;
  processing: { hypernetworks_loaded: Array<{ names: string[] }> };
}

interface OracleIndex {
  model: { checkpoint: string; config: string; hypernetwork_dir: string };
  embeddings?: Array<{ file: string; name: string }>;
}

/** What the trace collects from one run. */
interface Recorded {
  textCalls: Array<{ texts: readonly string[]; tokens: number[][][]; out: Float32Tensor }>;
  conds?: { conds: readonly MultiCond[]; unconds: ReadonlyArray<readonly ScheduledCond[]> };
  noise?: Float32Tensor;
  sigmas?: Float32Array;
  cfg: Array<{ x: Float32Tensor; denoised: Float32Tensor }>;
  unet: Array<{ x: Float32Tensor; t: Float32Array; out: Float32Tensor }>;
  latent?: Float32Tensor;
  decoded: Float32Tensor[];
}

function recorder(): { rec: Recorded; trace: PipelineTrace } {
  const rec: Recorded = { textCalls: [], cfg: [], unet: [], decoded: [] };
  const trace: PipelineTrace = {
    onTextCall: (t) => rec.textCalls.push({ texts: t.texts, tokens: t.chunks.map((c) => c.tokens.map((r) => [...r])), out: t.out }),
    onConds: (c) => {
      if (c.pass === 'first') rec.conds = c;
    },
    onInitialNoise: (n) => {
      if (n.pass === 'first') rec.noise = n.noise;
    },
    onSigmas: (s) => {
      if (s.pass === 'first') rec.sigmas = s.sigmas;
    },
    onCfgCall: (c) => rec.cfg.push({ x: c.x, denoised: c.denoised }),
    onUnetCall: (u) => rec.unet.push({ x: u.x, t: u.t, out: u.out }),
    onLatent: (l) => {
      if (l.pass === 'first') rec.latent = l.latent;
    },
    onDecoded: (d) => rec.decoded.push(d.image),
  };
  return { rec, trace };
}

function failed(label: string, detail: string): readonly [string, Closeness] {
  return [`${label} (${detail})`, { maxAbs: Infinity, maxRel: Infinity, failing: 1, ok: false }];
}

function passed(): Closeness {
  return { maxAbs: 0, maxRel: 0, failing: 0, ok: true };
}

function concat(parts: readonly Float32Tensor[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p.data, at);
    at += p.data.length;
  }
  return out;
}

/** uint8 images: every value within 1 and at most 0.1% of values differing. */
function uint8Close(actual: Uint8Array, ref: Uint8Array): Closeness {
  if (actual.length !== ref.length) return { maxAbs: Infinity, maxRel: Infinity, failing: ref.length, ok: false };
  let maxAbs = 0;
  let differing = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(actual[i]! - ref[i]!);
    if (d > 0) differing++;
    maxAbs = Math.max(maxAbs, d);
  }
  const ok = maxAbs <= UINT8_MAX_DIFF && differing <= UINT8_MAX_DIFFERING * ref.length;
  return { maxAbs, maxRel: differing / ref.length, failing: ok ? 0 : differing, ok };
}

/** The embeddings a case's prompts name, and the hypernetworks A1111 loaded for it (paths relative to the folder). */
function caseNetworks(index: OracleIndex, c: OracleCase): { embeddings: string[]; hypernetworks: Map<string, string> } {
  const listed = index.embeddings ?? [];
  const needsTi = c.text_encoder_calls.some((t) => t.texts.some((text) => listed.some((e) => text.includes(e.name))));
  const names = [...new Set(c.processing.hypernetworks_loaded.flatMap((h) => h.names))];
  return {
    embeddings: needsTi ? listed.map((e) => e.file) : [],
    hypernetworks: new Map(names.map((n) => [n, join(index.model.hypernetwork_dir, `${n}.pt`)])),
  };
}

async function networksFor(folder: string, index: OracleIndex, c: OracleCase, model: PipelineModel): Promise<JobNetworks> {
  const wanted = caseNetworks(index, c);
  const hypernetworks = wanted.hypernetworks.size
    ? hypernetworkProvider(new Map([...wanted.hypernetworks].map(([n, p]) => [n, resolve(folder, p)])))
    : undefined;
  let embeddings: JobNetworks['embeddings'];
  if (wanted.embeddings.length) {
    const db = new EmbeddingDatabase(model.tokenizer, model.textEncoder.width);
    for (const file of wanted.embeddings) db.add(await loadEmbeddingFile(join(folder, file)));
    embeddings = chunkLookup(db);
  }
  return { ...(embeddings ? { embeddings } : {}), ...(hypernetworks ? { hypernetworks } : {}) };
}

/** Every file of the folder a case reads: its tensors and the networks it applies. */
function caseFiles(index: OracleIndex, c: OracleCase): string[] {
  const n = caseNetworks(index, c);
  return [c.file, ...n.embeddings, ...n.hypernetworks.values()];
}

async function runCase(folder: string, index: OracleIndex, c: OracleCase, model: PipelineModel): Promise<CaseResult> {
  const { tensors } = await readSafetensorsFile(join(folder, c.file));
  const ref = (name: string): Float32Tensor => toFloat32(tensors.get(name) as HostTensor);
  const { rec, trace } = recorder();
  const networks = await networksFor(folder, index, c, model);
  const result = await txt2img(model, c.request, { trace, networks });
  const checks: Array<readonly [string, Closeness]> = [];

  // text encoder calls: same texts in the same order, same token ids
  if (rec.textCalls.length !== c.text_encoder_calls.length) {
    checks.push(failed('text calls', `${rec.textCalls.length} calls, oracle ${c.text_encoder_calls.length}`));
  }
  c.text_encoder_calls.forEach((call, n) => {
    const ours = rec.textCalls[n];
    if (!ours) return;
    if (JSON.stringify(ours.texts) !== JSON.stringify(call.texts)) {
      checks.push(failed(`text${n}.texts`, `${JSON.stringify(ours.texts)} vs ${JSON.stringify(call.texts)}`));
    }
    const tokensSame = JSON.stringify(ours.tokens) === JSON.stringify(call.chunks.map((ch) => ch.tokens));
    checks.push(tokensSame ? [`text${n}.tokens`, passed()] : failed(`text${n}.tokens`, 'token ids differ'));
    if (tensors.has(`text${n}.out`)) checks.push([`text${n}.out`, elementwiseClose(ours.out.data, ref(`text${n}.out`).data, COND_ATOL, 0)]);
  });

  // conds and unconds per batch item, AND part and schedule entry
  for (const name of tensors.keys()) {
    let m = /^cond\.b(\d+)\.a(\d+)\.s(\d+)$/.exec(name);
    if (m) {
      const got = rec.conds?.conds[Number(m[1])]?.parts[Number(m[2])]?.schedule[Number(m[3])]?.cond;
      checks.push(got ? [name, elementwiseClose(got.data, ref(name).data, COND_ATOL, 0)] : failed(name, 'missing'));
      continue;
    }
    m = /^uncond\.b(\d+)\.s(\d+)$/.exec(name);
    if (m) {
      const got = rec.conds?.unconds[Number(m[1])]?.[Number(m[2])]?.cond;
      checks.push(got ? [name, elementwiseClose(got.data, ref(name).data, COND_ATOL, 0)] : failed(name, 'missing'));
    }
  }

  if (rec.noise) checks.push(['noise.initial', scaledClose(rec.noise.data, ref('noise.initial').data, REL_TOL)]);
  if (rec.sigmas) checks.push(['sigmas', scaledClose(rec.sigmas, ref('sigmas').data, REL_TOL)]);

  // every CFG call and every UNet call
  if (rec.cfg.length !== c.cfg_calls.length) checks.push(failed('cfg calls', `${rec.cfg.length} calls, oracle ${c.cfg_calls.length}`));
  rec.cfg.forEach((call, m) => {
    if (!tensors.has(`cfg${m}.denoised`)) return;
    checks.push([`cfg${m}.x`, scaledClose(call.x.data, ref(`cfg${m}.x`).data, REL_TOL)]);
    checks.push([`cfg${m}.denoised`, scaledClose(call.denoised.data, ref(`cfg${m}.denoised`).data, REL_TOL)]);
  });
  if (rec.unet.length !== c.unet_calls.length) checks.push(failed('unet calls', `${rec.unet.length} calls, oracle ${c.unet_calls.length}`));
  rec.unet.forEach((call, u) => {
    if (!tensors.has(`unet${u}.eps`)) return;
    checks.push([`unet${u}.x`, scaledClose(call.x.data, ref(`unet${u}.x`).data, REL_TOL)]);
    checks.push([`unet${u}.t`, scaledClose(call.t, ref(`unet${u}.t`).data, REL_TOL)]);
    checks.push([`unet${u}.eps`, scaledClose(call.out.data, ref(`unet${u}.eps`).data, REL_TOL)]);
  });

  checks.push(rec.latent ? ['latent.final', scaledClose(rec.latent.data, ref('latent.final').data, REL_TOL)] : failed('latent.final', 'missing'));
  checks.push(['image.decoded', scaledClose(concat(rec.decoded), ref('image.decoded').data, REL_TOL)]);

  // the 8-bit images, read back from our PNGs, and the infotexts
  const refU8 = tensors.get('image.uint8')!.data as Uint8Array;
  const per = refU8.length / c.png.length;
  result.images.forEach((png, i) => {
    const img = decodePng(png);
    checks.push([`image.uint8[${i}]`, uint8Close(img.data, refU8.subarray(i * per, (i + 1) * per))]);
    const text = readPngText(png).parameters;
    checks.push(text === c.infotexts[i] ? [`infotext[${i}]`, passed()] : failed(`infotext[${i}]`, `got ${JSON.stringify(text)}`));
  });
  if (result.images.length !== c.png.length) checks.push(failed('images', `${result.images.length} images, oracle ${c.png.length}`));

  const worst = checks.filter(([label]) => label === 'latent.final' || label === 'image.decoded').map(([l, x]) => `${l} rel ${x.maxRel.toExponential(2)}`);
  return combine(c.id, checks, worst.join(', '));
}

/** A CLIP vocabulary folder (vocab.json + merges.txt) beside the folder or in a sibling oracle folder. */
function findVocabulary(folder: string): string | undefined {
  const root = resolve(folder, '..');
  const siblings = existsSync(root) ? readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()) : [];
  const candidates = [join(folder, 'vocab'), join(root, 'text', 'vocab'), ...siblings.map((d) => join(root, d.name, 'vocab'))];
  return candidates.find((c) => Object.values(HF_VOCABULARY_FILES).every((f) => existsSync(join(c, f))));
}

async function loadOracleModel(folder: string, index: OracleIndex): Promise<{ sd: StableDiffusionModel; model: PipelineModel } | { missing: string }> {
  const checkpoint = resolve(folder, index.model.checkpoint);
  if (!existsSync(checkpoint)) return { missing: `checkpoint ${checkpoint} not found` };
  const vocab = findVocabulary(folder);
  if (!vocab) return { missing: `no CLIP vocabulary (vocab/vocab.json, vocab/merges.txt) beside ${folder} or in a sibling folder` };
  const config = resolve(folder, index.model.config);
  const sd = await loadModel({
    checkpoint,
    ...(existsSync(config) ? { config } : {}),
    cacheDir: join(repoRoot, '.darkroom', 'cache'),
    threads: 1,
    ...(attentionFromEnv()?.loadOptions ?? {}),
  });
  return { sd, model: pipelineModel(sd, ClipTokenizer.fromDirectory(vocab)) };
}

export const suite: Suite = {
  name: 'pipeline',
  under: 'pipeline',
  marker: 'cases.json',
  async *run(folder: string) {
    const json = JSON.parse(readFileSync(join(folder, 'cases.json'), 'utf8')) as Record<string, unknown>;
    const cases = section<OracleCase>(json, 'cases', 'cases.json');
    if ('missing' in cases) {
      yield skipped('cases', cases.missing);
      return;
    }
    if (typeof json.model !== 'object' || json.model === null) {
      yield skipped('model', 'cases.json has no "model" section');
      return;
    }
    const index = json as unknown as OracleIndex;
    const loaded = await loadOracleModel(folder, index);
    if ('missing' in loaded) {
      yield skipped('model', loaded.missing);
      return;
    }
    try {
      for (const c of cases.items) {
        const absent = missingReason(folder, caseFiles(index, c));
        if (absent) {
          yield skipped(c.id, absent);
          continue;
        }
        try {
          yield await runCase(folder, index, c, loaded.model);
        } catch (e) {
          yield { name: c.id, status: 'fail', detail: e instanceof Error ? `${e.name}: ${errorText(e)}` : String(e) };
        }
      }
    } finally {
      await loaded.sd.release();
    }
  },
};
