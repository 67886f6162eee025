/**
 * The infotext groups of the text suite (`infotext/`): A1111's parse_generation_parameters on every recorded
 * text (plain, with styles, with skipped fields), quote/unquote, and create_infotext written and read back.
 */
import { join } from 'node:path';
import {
  createInfotext,
  parseGenerationParameters,
  parseStylesCsv,
  pyFloat,
  quoteInfotextValue,
  unquoteInfotextValue,
  type InfotextFields,
  type InfotextValue,
} from '../src/formats/infotext.js';
import { diff, readJson, sectionGroup, short, type Group, type Json, type Obj } from './text-cases.js';

function parsedJson(text: string, opts: Parameters<typeof parseGenerationParameters>[1] = {}): Json {
  return Object.fromEntries(parseGenerationParameters(text, opts)) as Json;
}

/** Parses the Python literals the create_infotext cases carry (`{'k': 0.55}`, `['a']`): str, int, float, bool, None. */
function parsePythonLiteral(src: string): unknown {
  let i = 0;
  const ws = (): void => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  const value = (): unknown => {
    ws();
    const c = src[i]!;
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      const items: unknown[] = [];
      const entries: [string, unknown][] = [];
      ws();
      while (src[i] !== close) {
        const v = value();
        ws();
        if (c === '{') {
          i++; // ':'
          entries.push([String(v), value()]);
        } else items.push(v);
        ws();
        if (src[i] === ',') i++;
        ws();
      }
      i++;
      return c === '{' ? entries : items;
    }
    if (c === "'" || c === '"') {
      i++;
      let s = '';
      while (src[i] !== c) {
        if (src[i] === '\\') {
          const n = src[i + 1]!;
          s += n === 'n' ? '\n' : n === 't' ? '\t' : n === 'r' ? '\r' : n;
          i += 2;
        } else s += src[i++];
      }
      i++;
      return s;
    }
    const m = /^(True|False|None|[-+]?\d+\.\d*(?:e[-+]?\d+)?|[-+]?\d+)/.exec(src.slice(i))!;
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return m[0].includes('.') ? pyFloat(Number(m[0])) : Number(m[0]);
  };
  return value();
}

function infotextFieldsFromCase(c: Obj, defaults: Obj, programVersion: string | null): InfotextFields {
  const p = c.p as Obj;
  const o = { ...defaults, ...(c.options_changed as Obj) };
  const negs = parsePythonLiteral(String(p.all_negative_prompts)) as string[];
  const seeds = parsePythonLiteral(String(p.all_seeds)) as number[];
  const subseeds = parsePythonLiteral(String(p.all_subseeds)) as number[];
  const extra = parsePythonLiteral(String(p.extra_generation_params)) as [string, InfotextValue][];
  const strength = Number(p.subseed_strength);
  const ensd = Number(o.eta_noise_seed_delta);
  return {
    prompt: (c.all_prompts as string[])[0]!,
    negativePrompt: negs[0]!,
    steps: Number(p.steps),
    sampler: String(p.sampler_name),
    scheduleType: String(p.scheduler),
    cfgScale: pyFloat(Number(p.cfg_scale)),
    seed: seeds[0]!,
    width: Number(p.width),
    height: Number(p.height),
    modelHash: o.add_model_hash_to_info ? (p.sd_model_hash as string | null) : null,
    model: o.add_model_name_to_info ? (p.sd_model_name as string | null) : null,
    vaeHash: o.add_vae_hash_to_info ? (p.sd_vae_hash as string | null) : null,
    vae: o.add_vae_name_to_info ? (p.sd_vae_name as string | null) : null,
    variationSeed: subseeds[0]!,
    variationSeedStrength: strength === 0 ? 0 : pyFloat(strength),
    seedResizeFrom: [Number(p.seed_resize_from_w), Number(p.seed_resize_from_h)],
    clipSkip: p.clip_skip !== undefined ? Number(p.clip_skip) : Number(o.CLIP_stop_at_last_layers),
    // The generator's stub: every sampler but DDIM uses eta noise.
    ensd: ensd !== 0 && p.sampler_name !== 'DDIM' ? ensd : null,
    rng: String(o.randn_source),
    tiling: Boolean(p.tiling),
    extra,
    version: o.add_version_to_infotext ? programVersion : null,
    user: (p.user as string | null) ?? null,
  };
}

/**
 * The version string A1111 wrote (`program_version()`), as the create cases record it in their description; else
 * the A1111 release the folder's MANIFEST names. Null when neither says, so a written Version field then differs.
 */
function programVersion(folder: string, create: Obj): string | null {
  const m = /program_version\(\) = '([^']+)'/.exec(String(create.description ?? ''));
  if (m) return m[1]!;
  const upstream = (readJson(join(folder, 'MANIFEST.json')).upstream ?? {}) as Obj;
  const a1111 = upstream['AUTOMATIC1111/stable-diffusion-webui'] as Obj | undefined;
  return typeof a1111?.ref === 'string' ? a1111.ref : null;
}

/** `infotext/infotext_cases.json`: parsing, with its style, skip-field and quoting sections. */
export function infotextParseGroups(folder: string): Group[] {
  const file = 'infotext/infotext_cases.json';
  const d = readJson(join(folder, file));
  const parse = sectionGroup('infotext/infotext_cases.json', d, 'cases', file, (c) => `${String(c.id)} ${String(c.category)}`, (c) =>
    diff('parsed', parsedJson(String(c.infotext)), c.result),
  );
  const styles = parseStylesCsv(String(d.styles_csv ?? ''));
  const styleCases = sectionGroup('infotext style_cases', d, 'style_cases', file, (c) => `${String(c.id)} ${String(c.category)}`, (c) =>
    diff('parsed', parsedJson(String(c.infotext), { styles }), c.result),
  );
  const skip = sectionGroup('infotext skip_fields_cases', d, 'skip_fields_cases', file, (c) => String(c.id), (c) =>
    diff('parsed', parsedJson(String(c.infotext), { skipFields: c.skip_fields as string[] }), c.result),
  );
  const quote = sectionGroup('infotext quote_cases', d, 'quote_cases', file, (c) => short(c.input), (c) =>
    diff('quote', quoteInfotextValue(String(c.input)), c.quote),
  );
  const unquote = sectionGroup('infotext unquote_cases', d, 'unquote_cases', file, (c) => short(c.input), (c) =>
    diff('unquote', unquoteInfotextValue(String(c.input)), c.unquote),
  );
  return [parse, styleCases, skip, quote, unquote];
}

/** `infotext/create_infotext_cases.json`: create_infotext written from the recorded fields and read back. */
export function infotextCreateGroup(folder: string): Group {
  const file = 'infotext/create_infotext_cases.json';
  const w = readJson(join(folder, file));
  const version = programVersion(folder, w);
  return sectionGroup('infotext/create_infotext_cases.json (write + read back)', w, 'cases', file, (c) => String(c.name), (c) => {
    const text = createInfotext(infotextFieldsFromCase(c, (w.options_default ?? {}) as Obj, version));
    return [
      ...diff('written', text, c.infotext),
      ...diff('read back (ours)', parsedJson(text), c.parsed_back),
      ...diff('read back (A1111 text)', parsedJson(String(c.infotext)), c.parsed_back),
    ];
  });
}
