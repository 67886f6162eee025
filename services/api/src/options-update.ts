import { isDarkroomError } from '@darkroom/core/errors.js';
import { resolveSettings, type OverrideSettings } from '@darkroom/core/pipeline/params.js';
import { FarmError } from '@darkroom/farm';
import { OPTION_DEFAULTS } from './sdapi-options.js';

/** Ranges of the reported options that are not generation settings (the engine checks those), as A1111's UI bounds them. */
const UI_OPTION_RANGES: Record<string, { min: number; max: number }> = {
  show_progress_every_n_steps: { min: -1, max: 32 },
};

function refuse(option: string, message: string): FarmError {
  return new FarmError('INVALID_OPTION', 400, `${option}: ${message}`, option);
}

/** The option a field of the engine's settings check names (it speaks of override_settings and clip_skip). */
function optionOf(field: string): string {
  if (field === 'clip_skip') return 'CLIP_stop_at_last_layers';
  return field.replace(/^override_settings\./, '');
}

/**
 * Checks a `/sdapi/v1/options` update before it is stored: a stored value every later job reads must be one the
 * engine accepts, or each of the tenant's generations fails until someone resets it. Known options keep their
 * type and range (the engine's own check, so the ranges live in one place); options Darkroom does not use are
 * stored as sent, as A1111 keeps any setting a client writes.
 */
export function checkOptionsUpdate(update: Readonly<Record<string, unknown>>): void {
  for (const [k, v] of Object.entries(update)) {
    if (k in OPTION_DEFAULTS && typeof v !== typeof OPTION_DEFAULTS[k]) throw refuse(k, `must be a ${typeof OPTION_DEFAULTS[k]}`);
    const range = UI_OPTION_RANGES[k];
    if (range && (typeof v !== 'number' || !Number.isInteger(v) || v < range.min || v > range.max)) {
      throw refuse(k, `must be an integer between ${range.min} and ${range.max}`);
    }
  }
  const settings: Record<string, unknown> = { ...update };
  delete settings.sd_model_checkpoint;
  try {
    resolveSettings(settings as OverrideSettings);
  } catch (e) {
    if (!isDarkroomError(e)) throw e;
    const field = typeof e.details.field === 'string' ? optionOf(e.details.field) : undefined;
    const message = e.message.replace(/^[^:]+: /, '');
    throw field ? refuse(field, message) : new FarmError('INVALID_OPTION', 400, e.message);
  }
}
