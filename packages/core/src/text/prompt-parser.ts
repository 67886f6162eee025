/**
 * A1111 `modules/prompt_parser.py` as pure functions: attention (prompt-attention.ts), schedules
 * (prompt-schedule.ts) and composable diffusion (`AND` with weights), here.
 */
import { PY_SPACE, parsePyFloat, pyWholeWord } from './python-compat.js';

export { parsePromptAttention, isBreakMarker, type AttentionFragment } from './prompt-attention.js';
export {
  getPromptSchedule,
  getLearnedConditioningPromptSchedules,
  type ScheduleEntry,
  type ScheduleOptions,
} from './prompt-schedule.js';

const AND_RE = new RegExp(pyWholeWord('AND'), 'u');
const WEIGHT_RE = new RegExp(
  `^([\\s\\S]*?)(?:[${PY_SPACE}]*:[${PY_SPACE}]*([-+]?(?:\\p{Nd}+\\.?|\\p{Nd}*\\.\\p{Nd}+)))?[${PY_SPACE}]*$`,
  'u',
);

/** One AND part of a prompt: index into the flat list of texts to encode, and its weight. */
export interface MulticondPart {
  readonly index: number;
  readonly weight: number;
}

export interface MulticondPromptList {
  /** Per prompt, its AND parts. */
  readonly resIndexes: MulticondPart[][];
  /** Distinct sub-prompt texts, in first-seen order. */
  readonly promptFlatList: string[];
  readonly promptIndexes: Map<string, number>;
}

/** Splits one prompt on `AND` into `[text, weight]` parts (texts keep their leading whitespace). */
export function splitAndParts(prompt: string): [text: string, weight: number][] {
  return prompt.split(AND_RE).map((sub) => {
    const m = WEIGHT_RE.exec(sub);
    if (!m) return [sub, 1.0];
    return [m[1]!, m[2] !== undefined ? parsePyFloat(m[2]) : 1.0];
  });
}

/** `get_multicond_prompt_list(prompts)`: AND parts of every prompt, identical texts sharing one index. */
export function getMulticondPromptList(prompts: readonly string[]): MulticondPromptList {
  const resIndexes: MulticondPart[][] = [];
  const promptFlatList: string[] = [];
  const promptIndexes = new Map<string, number>();
  for (const prompt of prompts) {
    const parts: MulticondPart[] = [];
    for (const [text, weight] of splitAndParts(prompt)) {
      let index = promptIndexes.get(text);
      if (index === undefined) {
        index = promptFlatList.length;
        promptFlatList.push(text);
        promptIndexes.set(text, index);
      }
      parts.push({ index, weight });
    }
    resIndexes.push(parts);
  }
  return { resIndexes, promptFlatList, promptIndexes };
}
