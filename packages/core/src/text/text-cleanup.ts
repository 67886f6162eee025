/**
 * The text clean-up the CLIP tokenizer applies before BPE: the parts of ftfy 6's `fix_text` that change
 * prompts in practice (HTML entities, UTF-8/Windows-1252 mojibake, C1 controls, Latin ligatures, full/half
 * width forms, curly quotes, line breaks, control characters, NFC), then `whitespace_clean`.
 *
 * ftfy decides whether text is mojibake with a large statistical heuristic; here a run of characters is
 * re-decoded only when its Windows-1252 bytes form valid multi-byte UTF-8, which agrees with ftfy on
 * ordinary prompts and on the classic `cafÃ©` / `â€œ` cases. The named-entity table holds the common
 * entities, not all 2231 of HTML5.
 */
import { REGEX_SPACE } from './python-compat.js';

const CP1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d, 0x017d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d, 0x017e, 0x0178,
];

/** Unicode char -> byte for "sloppy" Windows-1252 (undefined bytes map to the C1 control of the same value). */
const SLOPPY_CP1252_ENCODE = new Map<number, number>();
for (let b = 0; b < 256; b++) {
  const cp = b >= 0x80 && b < 0xa0 ? CP1252_HIGH[b - 0x80]! : b;
  SLOPPY_CP1252_ENCODE.set(cp, b);
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '©', reg: '®', trade: '™', hellip: '…',
  mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', sbquo: '‚', bdquo: '„', laquo: '«',
  raquo: '»', lsaquo: '‹', rsaquo: '›', deg: '°', times: '×', divide: '÷', euro: '€', pound: '£', yen: '¥',
  cent: '¢', sect: '§', para: '¶', middot: '·', bull: '•', dagger: '†', Dagger: '‡', permil: '‰', prime: '′',
  Prime: '″', iexcl: '¡', iquest: '¿', shy: '\u00ad', macr: '¯', acute: '´', cedil: '¸', uml: '¨', ordf: 'ª',
  ordm: 'º', sup1: '¹', sup2: '²', sup3: '³', frac14: '¼', frac12: '½', frac34: '¾', micro: 'µ', plusmn: '±',
  not: '¬', curren: '¤', brvbar: '¦', hearts: '♥', spades: '♠', clubs: '♣', diams: '♦', larr: '←', rarr: '→',
  uarr: '↑', darr: '↓', harr: '↔', infin: '∞', ne: '≠', le: '≤', ge: '≥', asymp: '≈', minus: '−', star: '☆',
  szlig: 'ß', thorn: 'þ', THORN: 'Þ', eth: 'ð', ETH: 'Ð', aelig: 'æ', AElig: 'Æ', oelig: 'œ', OElig: 'Œ',
  scaron: 'š', Scaron: 'Š', zcaron: 'ž', Zcaron: 'Ž', yuml: 'ÿ', Yuml: 'Ÿ', fnof: 'ƒ', circ: 'ˆ', tilde: '˜',
  ensp: '\u2002', emsp: '\u2003', thinsp: '\u2009', zwnj: '\u200c', zwj: '\u200d', lrm: '\u200e', rlm: '\u200f',
};
// Accented Latin letters: &Aacute; &eacute; ... built from their decompositions.
for (const [suffix, mark] of [['acute', '\u0301'], ['grave', '\u0300'], ['circ', '\u0302'], ['uml', '\u0308'], ['tilde', '\u0303'], ['ring', '\u030a'], ['cedil', '\u0327'], ['slash', '\u0338']] as const) {
  for (const base of 'AEIOUYaeiouyCcNnSsZz') {
    const composed = (base + mark).normalize('NFC');
    if (composed.length === 1 && /\p{L}/u.test(composed)) NAMED_ENTITIES[base + suffix] = composed;
  }
}
NAMED_ENTITIES.Oslash = 'Ø';
NAMED_ENTITIES.oslash = 'ø';

const HTML_ENTITY_RE = /&#?[0-9A-Za-z]{1,24};/g;

function unescapeNumericEntity(entity: string): string {
  const hex = /^&#[xX]([0-9a-fA-F]+);$/.exec(entity);
  const dec = /^&#([0-9]+);$/.exec(entity);
  const cp = hex ? parseInt(hex[1]!, 16) : dec ? parseInt(dec[1]!, 10) : NaN;
  if (Number.isNaN(cp)) return entity;
  if (cp >= 0x80 && cp < 0xa0) return String.fromCodePoint(CP1252_HIGH[cp - 0x80]!);
  if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return '\ufffd';
  return String.fromCodePoint(cp);
}

function unescapeHtml(text: string): string {
  return text.replace(HTML_ENTITY_RE, (entity) => {
    if (entity.startsWith('&#')) return unescapeNumericEntity(entity);
    const name = entity.slice(1, -1);
    const direct = NAMED_ENTITIES[name];
    if (direct !== undefined) return direct;
    // ftfy also decodes an all-caps spelling of a lower-case entity, upper-casing the result (&NTILDE; -> Ñ).
    const lower = NAMED_ENTITIES[name.toLowerCase()];
    return name === name.toUpperCase() && lower !== undefined ? lower.toUpperCase() : entity;
  });
}

function utf8SequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/** Entities Python's `html.unescape` also accepts without the trailing `;` (HTML's legacy set, common part). */
const LEGACY_ENTITIES = new Set([
  'amp', 'lt', 'gt', 'quot', 'nbsp', 'copy', 'reg', 'deg', 'times', 'divide', 'pound', 'yen', 'cent', 'sect', 'para',
  'middot', 'iexcl', 'iquest', 'shy', 'macr', 'acute', 'cedil', 'uml', 'ordf', 'ordm', 'sup1', 'sup2', 'sup3',
  'frac14', 'frac12', 'frac34', 'micro', 'plusmn', 'not', 'curren', 'brvbar', 'szlig', 'thorn', 'THORN', 'eth', 'ETH',
  'aelig', 'AElig', 'yuml', 'Oslash', 'oslash', 'AMP', 'LT', 'GT', 'QUOT', 'COPY', 'REG',
]);
for (const name of Object.keys(NAMED_ENTITIES)) if (/(acute|grave|circ|uml|tilde|ring|cedil)$/.test(name) && name.length > 4) LEGACY_ENTITIES.add(name);

/**
 * Python `html.unescape` (numeric references with its replacement rules, named entities from the table above,
 * the legacy ones also without `;`, longest match first).
 */
export function pythonHtmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g, (whole, body: string) => {
    if (body.startsWith('#')) {
      const hex = body[1] === 'x' || body[1] === 'X';
      const cp = parseInt(body.slice(hex ? 2 : 1).replace(';', ''), hex ? 16 : 10);
      if (cp >= 0x80 && cp < 0xa0) return String.fromCodePoint(CP1252_HIGH[cp - 0x80]!);
      if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return '\ufffd';
      return String.fromCodePoint(cp);
    }
    const named = body.endsWith(';') ? NAMED_ENTITIES[body.slice(0, -1)] : undefined;
    if (named !== undefined) return named;
    for (let n = body.length - (body.endsWith(';') ? 1 : 0); n > 1; n--) {
      const prefix = body.slice(0, n);
      if (LEGACY_ENTITIES.has(prefix) && NAMED_ENTITIES[prefix] !== undefined) return NAMED_ENTITIES[prefix] + body.slice(n);
    }
    return whole;
  });
}

/** Re-decodes runs of characters whose Windows-1252 bytes are valid multi-byte UTF-8 (`Ã©` -> `é`). */
function fixMojibake(text: string): string {
  const chars = Array.from(text);
  const bytes = chars.map((c) => SLOPPY_CP1252_ENCODE.get(c.codePointAt(0)!));
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let out = '';
  let i = 0;
  while (i < chars.length) {
    const lead = bytes[i];
    const n = lead === undefined ? 0 : utf8SequenceLength(lead);
    if (n > 0 && i + n <= chars.length) {
      const seq = bytes.slice(i, i + n);
      if (seq.every((b, k) => b !== undefined && (k === 0 || (b >= 0x80 && b <= 0xbf)))) {
        try {
          out += decoder.decode(Uint8Array.from(seq as number[]));
          i += n;
          continue;
        } catch {
          // not UTF-8 after all: keep the characters
        }
      }
    }
    out += chars[i];
    i++;
  }
  return out;
}

function fixC1Controls(text: string): string {
  return text.replace(/[\x80-\x9f]/g, (c) => String.fromCodePoint(CP1252_HIGH[c.charCodeAt(0) - 0x80]!));
}

const LIGATURES: Record<string, string> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn', 'Ǳ': 'DZ', 'ǲ': 'Dz', 'ǳ': 'dz', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž', 'Ǉ': 'LJ',
  'ǈ': 'Lj', 'ǉ': 'lj', 'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj', 'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl',
  'ﬅ': 'ſt', 'ﬆ': 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'gu');

function fixCharacterWidth(text: string): string {
  return text.replace(/[\uff01-\uffef\u3000]/g, (c) => (c === '\u3000' ? ' ' : c.normalize('NFKC')));
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ftfy's list of control characters to remove
const CONTROL_CHARS_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

function fixSegmentOnce(text: string, unescapeEntities: boolean): string {
  let t = unescapeEntities ? unescapeHtml(text) : text;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: any character outside ASCII
  if (/[^\x00-\x7f]/.test(t)) t = fixMojibake(t);
  t = fixC1Controls(t);
  t = t.replace(LIGATURE_RE, (c) => LIGATURES[c]!);
  t = fixCharacterWidth(t);
  t = t.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
  t = t.replace(/\r\n/g, '\n').replace(/[\r\u2028\u2029\u0085]/g, '\n');
  t = t.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences, as ftfy removes them
  t = t.replace(/\x1b\[((?:\d|;)*)([a-zA-Z])/g, '');
  t = t.replace(CONTROL_CHARS_RE, '');
  return t.normalize('NFC');
}

/**
 * ftfy `fix_text` with its default configuration: the text is fixed line by line, each line until it stops
 * changing; HTML entities are left alone from the first line containing `<` on.
 */
export function fixText(text: string): string {
  let unescapeEntities = true;
  let out = '';
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl === -1 ? text.length : nl + 1;
    let segment = text.slice(pos, end);
    if (segment.includes('<')) unescapeEntities = false;
    for (let i = 0; i < 16; i++) {
      const next = fixSegmentOnce(segment, unescapeEntities);
      if (next === segment) break;
      segment = next;
    }
    out += segment;
    pos = end;
  }
  return out;
}

const SPACE_RUN_RE = new RegExp(`[${REGEX_SPACE}]+`, 'gu');

/** CLIP's `whitespace_clean`: runs of whitespace become one space, then strip. */
export function whitespaceClean(text: string): string {
  return text.replace(SPACE_RUN_RE, ' ').replace(/^ | $/g, '');
}
