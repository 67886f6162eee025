/**
 * The model every Darkroom engine carries inside it and serves when a request names no checkpoint: its name is
 * what infotexts write as `Model:` and what `/sdapi/v1/sd-models` lists, so the API needs it without loading the
 * generator that writes the model's files (pipeline/demo-model.ts).
 */
export const BUILTIN_MODEL_NAME = 'darkroom-tiny-sd1';
