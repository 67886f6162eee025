import { DarkroomError, isDarkroomError } from '../errors.js';
import { parsePyFloat, parsePyInt } from '../text/python-compat.js';

/**
 * Extra-network tags in prompts (`<hypernet:name:0.8>`, `<lora:name:1>`, any `<kind:args>`), removed from the
 * text that is encoded and returned as data, as A1111's extra_networks.parse_prompt does. The infotext keeps
 * the original prompt.
 */

export interface ExtraNetworkCall {
  /** The tag's kind: 'hypernet', 'lora', ... */
  readonly kind: string;
  /** The ':'-separated arguments: name first, then multipliers as written. */
  readonly items: readonly string[];
}

/** `<(\w+):([^>]+)>`; Python's \w matches Unicode word characters. */
const TAG = /<([\p{L}\p{N}_]+):([^>]+)>/gu;

export function parseExtraNetworks(prompt: string): { text: string; calls: ExtraNetworkCall[] } {
  const calls: ExtraNetworkCall[] = [];
  const text = prompt.replace(TAG, (_m, kind: string, args: string) => {
    calls.push({ kind, items: args.split(':') });
    return '';
  });
  return { text, calls };
}

/** A hypernetwork named in a prompt with its strength (`<hypernet:name>` = 1.0). */
export interface HypernetworkUse {
  readonly name: string;
  readonly multiplier: number;
}

/**
 * A1111's extra_networks_hypernet.activate: every tag in order (the same name twice loads it twice), the name as
 * written (not trimmed: `<hypernet: anime>` names " anime"), the multiplier Python's `float()` of the second item
 * (NaN where float() raises, refused by hypernetworkMultiplierError), 1 without one.
 */
export function hypernetworkUses(calls: readonly ExtraNetworkCall[]): HypernetworkUse[] {
  const out: HypernetworkUse[] = [];
  for (const c of calls) {
    if (c.kind !== 'hypernet' || c.items.length === 0) continue;
    out.push({ name: c.items[0]!, multiplier: c.items.length > 1 ? pyFloatOrNaN(c.items[1]!) : 1 });
  }
  return out;
}

function pyFloatOrNaN(text: string): number {
  try {
    return parsePyFloat(text);
  } catch (e) {
    if (isDarkroomError(e, 'PY_VALUE_ERROR')) return Number.NaN;
    throw e;
  }
}

/**
 * The hypernetworks one prompt activates, in order, as the pipeline applies them. The API checks a request's tags
 * and the worker fetches their files with this, so all three read a tag the same way.
 */
export function promptHypernetworks(prompt: string): HypernetworkUse[] {
  return hypernetworkUses(parseExtraNetworks(prompt).calls);
}

/** The refusal of a hypernetwork tag whose multiplier is not a finite number, or undefined. */
export function hypernetworkMultiplierError(use: HypernetworkUse): DarkroomError | undefined {
  if (Number.isFinite(use.multiplier)) return undefined;
  return new DarkroomError('HYPERNETWORK_BAD_MULTIPLIER', `hypernetwork "${use.name}" has a multiplier that is not a number`, { name: use.name });
}

/**
 * A1111's parse_prompts: tags are removed from every prompt of the batch, but only the first prompt's tags
 * are activated.
 */
export function parseBatchExtraNetworks(prompts: readonly string[]): { texts: string[]; calls: ExtraNetworkCall[] } {
  const texts: string[] = [];
  let calls: ExtraNetworkCall[] | undefined;
  for (const p of prompts) {
    const r = parseExtraNetworks(p);
    texts.push(r.text);
    calls ??= r.calls;
  }
  return { texts, calls: calls ?? [] };
}

/** A1111's ExtraNetworkParams: an item with exactly one `=` is named, every other item positional. */
export interface ExtraNetworkParams {
  readonly positional: readonly string[];
  readonly named: Readonly<Record<string, string>>;
}

export function extraNetworkParams(call: ExtraNetworkCall): ExtraNetworkParams {
  const positional: string[] = [];
  const named: Record<string, string> = {};
  for (const item of call.items) {
    // Python's item.split('=', 2) has two parts only for exactly one '='.
    const parts = item.split('=');
    if (parts.length === 2) named[parts[0]!] = parts[1]!;
    else positional.push(item);
  }
  return { positional, named };
}

/** Tag kinds that name LoRA / LyCORIS networks (`lyco` is A1111's alias of `lora`). */
export const LORA_TAG_KINDS: readonly string[] = ['lora', 'lyco'];

/** One network of a prompt, with the multipliers `ExtraNetworkLora.activate` derives. */
export interface LoraUse {
  readonly name: string;
  readonly te: number;
  readonly unet: number;
  /** `dyn=`: how many rank components of LoRA modules to use; null for all. */
  readonly dyn: number | null;
}

/**
 * `ExtraNetworkLora.activate` on a prompt's tags: `lora` and `lyco` tags grouped as A1111's
 * lookup_extra_networks does (kinds in first-appearance order, tags in order within a kind). te is the
 * second item or `te=` (default 1), unet the third or `unet=` (default: te), dyn the fourth or `dyn=`. A value
 * Python's float()/int() refuses makes A1111 drop every LoRA of the generation: `uses` is empty and `error`
 * carries Python's message.
 */
export function loraUses(calls: readonly ExtraNetworkCall[]): { uses: LoraUse[]; error?: string } {
  const byKind = new Map<string, ExtraNetworkCall[]>();
  for (const c of calls) {
    if (!LORA_TAG_KINDS.includes(c.kind)) continue;
    if (!byKind.has(c.kind)) byKind.set(c.kind, []);
    byKind.get(c.kind)!.push(c);
  }
  const uses: LoraUse[] = [];
  try {
    for (const c of [...byKind.values()].flat()) {
      const { positional, named } = extraNetworkParams(c);
      const name = positional[0];
      if (name === undefined) throw new Error('IndexError: list index out of range');
      let te = positional.length > 1 ? parsePyFloat(positional[1]!) : 1.0;
      if ('te' in named) te = parsePyFloat(named.te!);
      let unet = positional.length > 2 ? parsePyFloat(positional[2]!) : te;
      if ('unet' in named) unet = parsePyFloat(named.unet!);
      let dyn = positional.length > 3 ? parsePyInt(positional[3]!) : null;
      if ('dyn' in named) dyn = parsePyInt(named.dyn!);
      uses.push({ name, te, unet, dyn });
    }
  } catch (e) {
    const message = isDarkroomError(e) ? `${String(e.details.pythonType ?? 'ValueError')}: ${e.message}` : e instanceof Error ? e.message : String(e);
    return { uses: [], error: message };
  }
  return { uses };
}
