/**
 * "Prompt Blending" (amotile's script from A1111's wiki of custom scripts): `Crystal containing elemental
 * {fire|ice}` is the average of the conditioning of `Crystal containing elemental fire` and `... ice`;
 * alternatives take weights (`{fire:5|ice}`, also written `{fire@5|ice}`) and nest (`{{fire|lava}|ice:2}`).
 * A prompt expands into every combination of its groups' alternatives, each weighing the product of its
 * alternatives' weights, normalised to sum to 1; the conditioning of the prompt is the weighted sum of the
 * combinations' conditioning (pipeline/conditioning.ts). The script's parser is followed as it reads, odd corners
 * included: a group with one alternative stays literal text with its braces, a weight that is not a number is
 * part of the text, an unclosed group ends at the last character (which it drops).
 */
import { DarkroomError } from '../errors.js';

export type WeightedText = readonly [text: string, weight: number];

const OPEN = '{';
const CLOSE = '}';
const SEPARATE = '|';
const MARK = '@';

/**
 * The script's switch_syntax: a `:` whose innermost open bracket ({, [ or () is a brace becomes the weight mark
 * `@`, before the prompt reaches A1111's schedule parser (where `:` means prompt editing). A closer pops
 * whatever is open; a closer with nothing open (where the script fails) is passed over.
 */
export function blendWeightSyntax(prompt: string): string {
  const stack: string[] = [];
  let out = '';
  for (const c of prompt) {
    if (c === '{' || c === '[' || c === '(') stack.push(c);
    if (c === '}' || c === ']' || c === ')') stack.pop();
    out += c === ':' && stack[stack.length - 1] === '{' ? MARK : c;
  }
  return out;
}

/** Python's float() of a text, finite values only. */
function weightOf(text: string): number | undefined {
  const s = text.trim();
  if (!/^[+-]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][+-]?\d+(_\d+)*)?$/.test(s)) return undefined;
  const v = Number(s.replaceAll('_', ''));
  return Number.isFinite(v) ? v : undefined;
}

function combine(left: readonly WeightedText[], right: readonly WeightedText[]): WeightedText[] {
  return left.flatMap(([lt, lw]) => right.map(([rt, rw]): WeightedText => [lt + rt, lw * rw]));
}

/**
 * get_weighted_prompt: the texts a prompt (weight marks already `@`) blends, with weights summing to `weight`.
 * A prompt without a group of two or more alternatives is itself, with the whole weight.
 */
export function blendedPrompts(prompt: string, weight = 1): WeightedText[] {
  // Python indexes code points
  const chars = Array.from(prompt);
  const slice = (a: number, b?: number) => chars.slice(a, b).join('');
  let results: WeightedText[] = [['', weight]];
  let alts: WeightedText[] = [];
  let start = 0;
  let mark = -1;
  let open = 0;
  let firstOpen = 0;
  let nested = false;
  chars.forEach((c, i) => {
    let addAlt = false;
    let doCombine = false;
    if (c === OPEN) {
      open += 1;
      if (open === 1) {
        firstOpen = i;
        results = combine(results, [[slice(start, i), 1]]);
        start = i + 1;
      } else {
        nested = true;
      }
    }
    if (c === MARK && open === 1) mark = i;
    if (c === SEPARATE && open === 1) addAlt = true;
    if (c === CLOSE) {
      open -= 1;
      if (open === 0) {
        addAlt = true;
        doCombine = true;
      }
    }
    if (i === chars.length - 1 && open > 0) {
      addAlt = true;
      doCombine = true;
    }
    if (addAlt) {
      let end = i;
      let w = 1;
      if (mark !== -1) {
        const parsed = weightOf(slice(mark + 1, i));
        if (parsed !== undefined) {
          w = parsed;
          end = mark;
        }
      }
      const text = slice(start, end);
      alts.push(...(nested ? blendedPrompts(text, w) : [[text, w] as const]));
      nested = false;
      mark = -1;
      start = i + 1;
    }
    if (doCombine) {
      if (alts.length <= 1) alts = [[slice(firstOpen, i + 1), 1]];
      results = combine(results, alts);
      alts = [];
    }
  });
  results = combine(results, [[slice(start), 1]]);
  const sum = results.reduce((s, [, w]) => s + w, 0);
  if (sum === 0 || !Number.isFinite(sum)) {
    throw new DarkroomError('PROMPT_BLEND_INVALID', `the blend weights of ${JSON.stringify(prompt)} sum to ${sum}; give an alternative a weight`, { field: 'prompt', prompt });
  }
  return results.map(([t, w]): WeightedText => [t, (w / sum) * weight]);
}
