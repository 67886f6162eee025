/**
 * The model every Darkroom engine carries inside it and serves when a request names no checkpoint: a small
 * SD1-shaped model that Darkroom's own trainer made from scratch on procedural scenes (shapes in colours and
 * positions on plain or two-tone backgrounds; training/scenes), shipped in the repository as float16 with its
 * config and vocabulary. Its name is what infotexts write as `Model:` and what `/sdapi/v1/sd-models` lists, so the
 * API needs it without loading any engine code.
 */
import { fileURLToPath } from 'node:url';

export const BUILTIN_MODEL_NAME = 'darkroom-scenes-128';

/** The side the built-in model was trained at, and the size a request for it gets when it names none. */
export const BUILTIN_MODEL_RESOLUTION = 128;

/** The built-in checkpoint; `<stem>.json` (its config) and `<stem>.vocab/` lie beside it. */
export const BUILTIN_CHECKPOINT = fileURLToPath(new URL(`../../assets/scene-model/${BUILTIN_MODEL_NAME}.safetensors`, import.meta.url));
