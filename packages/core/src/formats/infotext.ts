/**
 * A1111's "parameters" infotext: writing it (`processing.create_infotext`) and reading it back
 * (`infotext_utils.parse_generation_parameters`), with the same key order, Python number formatting, quoting
 * and back-compat defaults.
 */
import { parsePromptAttention } from '../text/prompt-attention.js';
import { PY_SPACE, PY_WORD, pyFloatRepr, pyJsonString } from '../text/python-compat.js';

/** A Python float in an infotext (`7.0`, `0.35`): JS numbers alone cannot tell 7 from 7.0. */
export class PyFloat {
  constructor(readonly value: number) {}
  toString(): string {
    return pyFloatRepr(this.value);
  }
}

export const pyFloat = (value: number): PyFloat => new PyFloat(value);

/** A value as create_infotext sees it: null/undefined entries are dropped; numbers are Python ints. */
export type InfotextValue = string | number | boolean | PyFloat | null | undefined;

/** Python `str()` of a value. */
export function pyStr(v: Exclude<InfotextValue, null | undefined>): string {
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloatRepr(v);
  return v.toString();
}

/** `infotext_utils.quote`: JSON-quotes a value containing `,`, `\n` or `:`. */
export function quoteInfotextValue(text: string): string {
  if (!text.includes(',') && !text.includes('\n') && !text.includes(':')) return text;
  return pyJsonString(text, { ensureAscii: false });
}

/** `infotext_utils.unquote`: JSON-decodes a `"..."` value, leaving it as is when that fails. */
export function unquoteInfotextValue(text: string): string {
  if (text.length === 0 || text[0] !== '"' || text[text.length - 1] !== '"') return text;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'string' ? v : text;
  } catch {
    return text;
  }
}

/** The parameter line: `Key: value` pairs in order, None dropped, a value equal to its key written bare. */
export function formatGenerationParams(pairs: ReadonlyArray<readonly [string, InfotextValue]>): string {
  const merged = new Map<string, InfotextValue>();
  for (const [k, v] of pairs) merged.set(k, v); // a repeated key keeps its first position, takes the last value
  const parts: string[] = [];
  for (const [k, v] of merged) {
    if (v === null || v === undefined) continue;
    parts.push(typeof v === 'string' && v === k ? k : `${k}: ${quoteInfotextValue(pyStr(v))}`);
  }
  return parts.join(', ');
}

/** Python `str.strip()`. */
function pyStrip(s: string): string {
  return s.replace(new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu'), '');
}

/** The whole infotext: prompt, `Negative prompt:` line when non-empty, the parameter line; then stripped. */
export function formatInfotext(prompt: string, negativePrompt: string, pairs: ReadonlyArray<readonly [string, InfotextValue]>): string {
  const neg = negativePrompt ? `\nNegative prompt: ${negativePrompt}` : '';
  return pyStrip(`${prompt}${neg}\n${formatGenerationParams(pairs)}`);
}

/** The fields `create_infotext` writes, already resolved against the options (null = not written). */
export interface InfotextFields {
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly steps: number;
  readonly sampler: string;
  readonly scheduleType: string;
  readonly cfgScale: InfotextValue;
  readonly imageCfgScale?: InfotextValue;
  readonly seed: number;
  readonly faceRestoration?: string | null;
  readonly width: number;
  readonly height: number;
  readonly modelHash?: string | null;
  readonly model?: string | null;
  readonly fp8Weight?: string | null;
  readonly cacheFp16WeightForLora?: InfotextValue;
  readonly vaeHash?: string | null;
  readonly vae?: string | null;
  /** Written with its strength only when the strength is non-zero. */
  readonly variationSeed?: number | null;
  readonly variationSeedStrength?: InfotextValue;
  readonly seedResizeFrom?: readonly [number, number] | null;
  readonly denoisingStrength?: InfotextValue;
  readonly conditionalMaskWeight?: InfotextValue;
  readonly clipSkip?: number;
  /** ENSD, only when non-zero and the sampler uses eta noise. */
  readonly ensd?: number | null;
  readonly tokenMergingRatio?: InfotextValue;
  readonly tokenMergingRatioHr?: InfotextValue;
  readonly initImageHash?: string | null;
  /** "GPU" (not written), "CPU" or "NV". */
  readonly rng?: string;
  readonly tiling?: boolean;
  /** `p.extra_generation_params` in insertion order. */
  readonly extra?: ReadonlyArray<readonly [string, InfotextValue]>;
  readonly version?: string | null;
  readonly user?: string | null;
}

/** `create_infotext`'s ordered parameter pairs. */
export function generationParamPairs(f: InfotextFields): [string, InfotextValue][] {
  const strength = f.variationSeedStrength;
  const hasVariation = strength !== null && strength !== undefined && !(strength instanceof PyFloat ? strength.value === 0 : strength === 0);
  const denoising = f.extra?.find(([k]) => k === 'Denoising strength')?.[1] ?? f.denoisingStrength;
  return [
    ['Steps', f.steps],
    ['Sampler', f.sampler],
    ['Schedule type', f.scheduleType],
    ['CFG scale', f.cfgScale],
    ['Image CFG scale', f.imageCfgScale],
    ['Seed', f.seed],
    ['Face restoration', f.faceRestoration],
    ['Size', `${f.width}x${f.height}`],
    ['Model hash', f.modelHash],
    ['Model', f.model],
    ['FP8 weight', f.fp8Weight],
    ['Cache FP16 weight for LoRA', f.cacheFp16WeightForLora],
    ['VAE hash', f.vaeHash],
    ['VAE', f.vae],
    ['Variation seed', hasVariation ? f.variationSeed : null],
    ['Variation seed strength', hasVariation ? strength : null],
    ['Seed resize from', f.seedResizeFrom && f.seedResizeFrom[0] > 0 && f.seedResizeFrom[1] > 0 ? `${f.seedResizeFrom[0]}x${f.seedResizeFrom[1]}` : null],
    ['Denoising strength', denoising],
    ['Conditional mask weight', f.conditionalMaskWeight],
    ['Clip skip', f.clipSkip !== undefined && f.clipSkip > 1 ? f.clipSkip : null],
    ['ENSD', f.ensd ? f.ensd : null],
    ['Token merging ratio', f.tokenMergingRatio],
    ['Token merging ratio hr', f.tokenMergingRatioHr],
    ['Init image hash', f.initImageHash],
    ['RNG', f.rng && f.rng !== 'GPU' ? f.rng : null],
    ['Tiling', f.tiling ? 'True' : null],
    ...(f.extra ?? []).map(([k, v]) => [k, v] as [string, InfotextValue]),
    ['Version', f.version],
    ['User', f.user],
  ];
}

/** The `TI hashes` value: `name: shorthash` per used embedding (`:` and `,` removed from names), joined by ", ". */
export function tiHashesValue(used: ReadonlyArray<{ readonly name: string; readonly shorthash: string }>): string | null {
  const parts = used.filter((e) => e.shorthash).map((e) => `${e.name.replace(/:/g, '').replace(/,/g, '')}: ${e.shorthash}`);
  return parts.length ? parts.join(', ') : null;
}

/** `create_infotext` for one image. */
export function createInfotext(f: InfotextFields): string {
  return formatInfotext(f.prompt, f.negativePrompt, generationParamPairs(f));
}

// ---------------------------------------------------------------------------------------------- parsing

/** A parsed value: strings from the text; numbers and booleans from defaults; the styles array. */
export type ParsedInfotextValue = string | number | boolean | string[];

export interface PromptStyle {
  readonly name: string;
  readonly prompt: string;
  readonly negativePrompt: string;
}

export interface ParseInfotextOptions {
  /** `infotext_skip_pasting`: keys removed from the result. */
  readonly skipFields?: readonly string[];
  /** The styles database (empty by default). */
  readonly styles?: readonly PromptStyle[];
  /** `infotext_styles`: 'Apply if any' (default), 'Apply', 'Discard' or 'Ignore'. */
  readonly infotextStyles?: 'Apply if any' | 'Apply' | 'Discard' | 'Ignore';
  readonly useOldHiresFixWidthHeight?: boolean;
  readonly autoBackcompat?: boolean;
}

const RE_PARAM = new RegExp(
  `[${PY_SPACE}]*([${PY_WORD}][${PY_WORD} \\-/]+):[${PY_SPACE}]*("(?:\\\\[^\\n]|[^\\\\"])+"|[^,]*)(?:,|$)`,
  'gu',
);
const RE_IMAGESIZE = /^(\p{Nd}+)x(\p{Nd}+)$/u;

function extractStyleText(styleText: string, prompt: string): [boolean, string] {
  const strippedPrompt = pyStrip(prompt);
  const strippedStyle = pyStrip(styleText);
  if (strippedStyle.includes('{prompt}')) {
    const at = strippedStyle.indexOf('{prompt}');
    const left = strippedStyle.slice(0, at);
    const right = strippedStyle.slice(at + '{prompt}'.length);
    if (strippedPrompt.startsWith(left) && strippedPrompt.endsWith(right)) {
      return [true, strippedPrompt.slice(left.length, strippedPrompt.length - right.length)];
    }
  } else if (strippedPrompt.endsWith(strippedStyle)) {
    let p = strippedPrompt.slice(0, strippedPrompt.length - strippedStyle.length);
    if (p.endsWith(', ')) p = p.slice(0, -2);
    return [true, p];
  }
  return [false, prompt];
}

/** `StyleDatabase.extract_styles_from_prompt`: peels matching styles off prompt and negative prompt. */
export function extractStylesFromPrompt(
  styles: readonly PromptStyle[],
  prompt: string,
  negativePrompt: string,
): { found: string[]; prompt: string; negativePrompt: string } {
  const extracted: string[] = [];
  const applicable = [...styles];
  for (;;) {
    let foundIndex = -1;
    for (let i = 0; i < applicable.length; i++) {
      const style = applicable[i]!;
      if (!style.prompt && !style.negativePrompt) continue;
      const [posOk, pos] = extractStyleText(style.prompt, prompt);
      if (!posOk) continue;
      const [negOk, neg] = extractStyleText(style.negativePrompt, negativePrompt);
      if (!negOk) continue;
      prompt = pos;
      negativePrompt = neg;
      foundIndex = i;
      break;
    }
    if (foundIndex < 0) break;
    extracted.push(applicable[foundIndex]!.name);
    applicable.splice(foundIndex, 1);
  }
  return { found: extracted.reverse(), prompt, negativePrompt };
}

/** Minimal CSV reading of A1111's `styles.csv` (`name,prompt,negative_prompt`, quoted fields). */
export function parseStylesCsv(csv: string): PromptStyle[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < csv.length; i++) {
    const c = csv[i]!;
    if (quoted) {
      if (c === '"' && csv[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && csv[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  const [header, ...body] = rows;
  if (!header) return [];
  const col = (name: string): number => header.indexOf(name);
  const promptCol = col('prompt') >= 0 ? col('prompt') : col('text');
  return body
    .filter((r) => r.length > 0 && r.some((x) => x !== ''))
    .map((r) => ({ name: r[col('name')] ?? '', prompt: r[promptCol] ?? '', negativePrompt: r[col('negative_prompt')] ?? '' }));
}

/** A PEP 440 version, the subset A1111 version strings use ("v1.10.1", "1.7.0-225", "1.6.0-RC"). */
export interface InfotextVersion {
  release: number[];
  pre: [number, number] | null;
  post: number | null;
  dev: number | null;
}

const PEP440_RE =
  /^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|alpha|b|beta|c|rc|pre|preview)[-_.]?(\d+)?)?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?([-_.]?dev[-_.]?(\d+)?)?(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$/i;

function parseVersionText(text: string): InfotextVersion | null {
  const m = PEP440_RE.exec(pyStrip(text));
  if (!m) return null;
  const preKind = m[2]?.toLowerCase();
  const preRank = preKind === undefined ? null : preKind.startsWith('a') ? 0 : preKind.startsWith('b') ? 1 : 2;
  const post = m[4] !== undefined ? Number(m[4]) : m[5] !== undefined ? Number(m[6] ?? 0) : null;
  return {
    release: m[1]!.split('.').map(Number),
    pre: preRank === null ? null : [preRank, Number(m[3] ?? 0)],
    post,
    dev: m[7] !== undefined ? Number(m[8] ?? 0) : null,
  };
}

/** packaging.version ordering: negative, zero or positive. */
export function compareInfotextVersion(a: InfotextVersion, b: InfotextVersion): number {
  const n = Math.max(a.release.length, b.release.length);
  for (let i = 0; i < n; i++) {
    const d = (a.release[i] ?? 0) - (b.release[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  const preKey = (v: InfotextVersion): number[] => (v.pre ? v.pre : v.post === null && v.dev !== null ? [-Infinity] : [Infinity]);
  const cmpArr = (x: number[], y: number[]): number => {
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      const d = (x[i] ?? -Infinity) - (y[i] ?? -Infinity);
      if (d !== 0 && !Number.isNaN(d)) return Math.sign(d);
    }
    return 0;
  };
  const pre = cmpArr(preKey(a), preKey(b));
  if (pre !== 0) return pre;
  const post = cmpArr([a.post ?? -Infinity], [b.post ?? -Infinity]);
  if (post !== 0) return post;
  return cmpArr([a.dev ?? Infinity], [b.dev ?? Infinity]);
}

/** `infotext_versions.parse_version`: "v1.10.1-89-gabc" -> 1.10.1.post89; unparseable -> null. */
export function parseInfotextVersion(text: string | undefined): InfotextVersion | null {
  if (text === undefined) return null;
  const m = /^([^-]+-[^-]+)-[^\n]*/.exec(text);
  return parseVersionText(m ? m[1]! : text);
}

const V160 = parseVersionText('1.6.0')!;
const V170_TSNR = parseVersionText('v1.7.0-225')!;
const V180 = parseVersionText('1.8.0')!;
const V180_HR_STYLES = parseVersionText('1.8.0-139')!;

function oldHiresFixFirstPassDimensions(width: number, height: number): [number, number] {
  const scale = Math.sqrt((512 * 512) / (width * height));
  return [Math.ceil((scale * width) / 64) * 64, Math.ceil((scale * height) / 64) * 64];
}

function pyInt(v: ParsedInfotextValue | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v === 'number') return Math.trunc(v);
  const n = Number(String(v).trim());
  return Number.isInteger(n) ? n : NaN;
}

function restoreOldHiresFixParams(res: Map<string, ParsedInfotextValue>, useOldHiresFixWidthHeight: boolean): void {
  const fpW = res.get('First pass size-1');
  const fpH = res.get('First pass size-2');
  if (useOldHiresFixWidthHeight) {
    const hw = pyInt(res.get('Hires resize-1'), 0);
    const hh = pyInt(res.get('Hires resize-2'), 0);
    if (hw && hh) {
      res.set('Size-1', hw);
      res.set('Size-2', hh);
      return;
    }
  }
  if (fpW === undefined || fpH === undefined) return;
  let w = pyInt(fpW, 0);
  let h = pyInt(fpH, 0);
  const width = pyInt(res.get('Size-1'), 512);
  const height = pyInt(res.get('Size-2'), 512);
  if (w === 0 || h === 0) [w, h] = oldHiresFixFirstPassDimensions(width, height);
  res.set('Size-1', w);
  res.set('Size-2', h);
  res.set('Hires resize-1', width);
  res.set('Hires resize-2', height);
}

function promptUsesEmphasis(prompt: string, negativePrompt: string): boolean {
  try {
    const parts = [...parsePromptAttention(prompt), ...parsePromptAttention(negativePrompt)];
    return parts.some(([text, w]) => !(w === 1.0 || text === 'BREAK'));
  } catch {
    return false;
  }
}

/**
 * `parse_generation_parameters(text)`: an insertion-ordered map of the fields, as the real function's dict.
 * Values read from the text stay strings; defaults keep their types (0, 32, false).
 */
export function parseGenerationParameters(text: string, opts: ParseInfotextOptions = {}): Map<string, ParsedInfotextValue> {
  const res = new Map<string, ParsedInfotextValue>();
  let prompt = '';
  let negativePrompt = '';
  let doneWithPrompt = false;

  const lines = pyStrip(text).split('\n');
  let lastline = lines.pop()!;
  if ([...lastline.matchAll(RE_PARAM)].length < 3) {
    lines.push(lastline);
    lastline = '';
  }
  for (let line of lines) {
    line = pyStrip(line);
    if (line.startsWith('Negative prompt:')) {
      doneWithPrompt = true;
      line = pyStrip(line.slice(16));
    }
    if (doneWithPrompt) negativePrompt += (negativePrompt === '' ? '' : '\n') + line;
    else prompt += (prompt === '' ? '' : '\n') + line;
  }

  for (const m of lastline.matchAll(RE_PARAM)) {
    const k = m[1]!;
    let v = m[2]!;
    if (v.length === 0) continue; // upstream: v[0] raises IndexError, the field is reported and skipped
    if (v[0] === '"' && v[v.length - 1] === '"') v = unquoteInfotextValue(v);
    const size = RE_IMAGESIZE.exec(v);
    if (size) {
      res.set(`${k}-1`, size[1]!);
      res.set(`${k}-2`, size[2]!);
    } else {
      res.set(k, v);
    }
  }

  const infotextStyles = opts.infotextStyles ?? 'Apply if any';
  if (infotextStyles !== 'Ignore') {
    const styles = opts.styles ?? [];
    const main = extractStylesFromPrompt(styles, prompt, negativePrompt);
    let sameHrStyles = true;
    const ver = parseInfotextVersion(res.get('Version') as string | undefined);
    if ((res.has('Hires prompt') || res.has('Hires negative prompt')) && (ver ? compareInfotextVersion(ver, V180_HR_STYLES) > 0 : true)) {
      const hrPrompt = (res.get('Hires prompt') as string | undefined) ?? prompt;
      const hrNeg = (res.get('Hires negative prompt') as string | undefined) ?? negativePrompt;
      const hr = extractStylesFromPrompt(styles, hrPrompt, hrNeg);
      sameHrStyles = hr.found.length === main.found.length && hr.found.every((s, i) => s === main.found[i]);
      if (sameHrStyles) {
        res.set('Hires prompt', hr.prompt === main.prompt ? '' : hr.prompt);
        res.set('Hires negative prompt', hr.negativePrompt === main.negativePrompt ? '' : hr.negativePrompt);
      }
    }
    if (sameHrStyles) {
      prompt = main.prompt;
      negativePrompt = main.negativePrompt;
      if ((infotextStyles === 'Apply if any' && main.found.length > 0) || infotextStyles === 'Apply') {
        res.set('Styles array', main.found);
      }
    }
  }

  res.set('Prompt', prompt);
  res.set('Negative prompt', negativePrompt);
  if (!res.has('Clip skip')) res.set('Clip skip', '1');

  const hypernet = res.get('Hypernet');
  if (hypernet !== undefined) {
    res.set('Prompt', `${String(res.get('Prompt'))}<hypernet:${String(hypernet)}:${String(res.get('Hypernet strength') ?? '1.0')}>`);
  }

  const setDefault = (k: string, v: ParsedInfotextValue): void => {
    if (!res.has(k)) res.set(k, v);
  };
  if (!res.has('Hires resize-1')) {
    res.set('Hires resize-1', 0);
    res.set('Hires resize-2', 0);
  }
  setDefault('Hires sampler', 'Use same sampler');
  setDefault('Hires schedule type', 'Use same scheduler');
  setDefault('Hires checkpoint', 'Use same checkpoint');
  setDefault('Hires prompt', '');
  setDefault('Hires negative prompt', '');
  setDefault('Mask mode', 'Inpaint masked');
  setDefault('Masked content', 'original');
  setDefault('Inpaint area', 'Whole picture');
  setDefault('Masked area padding', 32);

  restoreOldHiresFixParams(res, opts.useOldHiresFixWidthHeight ?? false);

  setDefault('RNG', 'GPU');
  setDefault('Schedule type', 'Automatic');
  setDefault('Schedule max sigma', 0);
  setDefault('Schedule min sigma', 0);
  setDefault('Schedule rho', 0);
  setDefault('VAE Encoder', 'Full');
  setDefault('VAE Decoder', 'Full');
  setDefault('FP8 weight', 'Disable');
  if (!res.has('Cache FP16 weight for LoRA') && res.get('FP8 weight') !== 'Disable') res.set('Cache FP16 weight for LoRA', false);
  if (!res.has('Emphasis') && promptUsesEmphasis(prompt, negativePrompt)) res.set('Emphasis', 'Original');
  setDefault('Refiner switch by sampling steps', false);

  if (opts.autoBackcompat ?? true) {
    const version = res.get('Version');
    const v = parseInfotextVersion(typeof version === 'string' ? version : undefined);
    if (v) {
      const p = res.get('Prompt');
      if (compareInfotextVersion(v, V160) < 0 && typeof p === 'string' && p.includes('[')) res.set('Old prompt editing timelines', true);
      const sampler = res.get('Sampler');
      if (compareInfotextVersion(v, V160) < 0 && (sampler === 'DDIM' || sampler === 'PLMS')) res.set('Pad conds v0', true);
      if (compareInfotextVersion(v, V170_TSNR) < 0) res.set('Downcast alphas_cumprod', true);
      if (compareInfotextVersion(v, V180) < 0 && res.get('Refiner')) res.set('Refiner switch by sampling steps', true);
    }
  }

  for (const k of opts.skipFields ?? []) res.delete(k);
  return res;
}
