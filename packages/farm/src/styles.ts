import type { Redis } from 'ioredis';
import { applyStyleTexts, type PromptStyle } from '@darkroom/core/text/prompt-styles.js';
import { FarmError } from './errors.js';
import type { FarmKeys } from './keys.js';

/** Styles a tenant may keep: A1111 users' files run to a few hundred. */
export const MAX_STYLES = 2000;

/** A tenant's saved prompt styles, replaced whole by an upload of A1111's styles CSV. */
export class StyleStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: FarmKeys,
  ) {}

  async list(tenant: string): Promise<PromptStyle[]> {
    const raw = await this.redis.get(this.keys.styles(tenant));
    return raw ? (JSON.parse(raw) as PromptStyle[]) : [];
  }

  async replace(tenant: string, styles: readonly PromptStyle[]): Promise<void> {
    if (styles.length > MAX_STYLES) throw new FarmError('TOO_MANY_STYLES', 413, `at most ${MAX_STYLES} styles per tenant, got ${styles.length}`, 'body');
    if (styles.length === 0) await this.redis.del(this.keys.styles(tenant));
    else await this.redis.set(this.keys.styles(tenant), JSON.stringify(styles));
  }
}

/** The prompts of a request with A1111's styles applied (positive texts to prompts, negative to negatives). */
export interface StyledPrompts {
  readonly prompt: string;
  readonly negative_prompt: string;
  readonly hr_prompt?: string;
  readonly hr_negative_prompt?: string;
}

/**
 * Applies the named styles in order, as A1111's processing does to every prompt of the job (the hires prompts
 * too; an empty hires prompt stays empty, which means "the first pass's prompt", already styled). A name the
 * tenant has no style for is refused naming `styles` (A1111 would quietly apply nothing).
 */
export function applyNamedStyles(
  saved: readonly PromptStyle[], names: readonly string[], prompts: StyledPrompts,
): StyledPrompts {
  const byName = new Map(saved.map((s) => [s.name, s]));
  const picked = names.map((name, i) => {
    const s = byName.get(name);
    if (!s) throw new FarmError('UNKNOWN_STYLE', 400, `styles.${i}: no style "${name}" (GET /sdapi/v1/prompt-styles lists them)`, `styles.${i}`);
    return s;
  });
  const pos = picked.map((s) => s.prompt);
  const neg = picked.map((s) => s.negative_prompt);
  return {
    prompt: applyStyleTexts(prompts.prompt, pos),
    negative_prompt: applyStyleTexts(prompts.negative_prompt, neg),
    ...(prompts.hr_prompt !== undefined ? { hr_prompt: prompts.hr_prompt === '' ? '' : applyStyleTexts(prompts.hr_prompt, pos) } : {}),
    ...(prompts.hr_negative_prompt !== undefined
      ? { hr_negative_prompt: prompts.hr_negative_prompt === '' ? '' : applyStyleTexts(prompts.hr_negative_prompt, neg) } : {}),
  };
}
