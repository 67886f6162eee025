/**
 * A1111's X/Y/Z plot axis table (scripts/xyz_grid.py axis_options, v1.10): every axis in A1111's order, so
 * that the `x_type` index of a request's script_args names the same axis here (indices count the axes shown on
 * the request's tab: txt2img hides the img2img-only ones and the other way round). Each axis says how values
 * are typed, labelled and ordered, and how one is applied to a cell's request; axes whose setting Darkroom's
 * engine does not have carry no `apply` and are refused by name.
 */
import type { OverrideSettings } from '../pipeline/params.js';
import { samplerEntryByAlias } from '../catalog/samplers.js';

export type AxisValue = number | string | readonly string[];

/** A cell's request while axes are applied to it: a copy of the base with its own override_settings. */
export type CellDraft = Record<string, unknown> & { prompt?: string; negative_prompt?: string; override_settings: OverrideSettings };

export interface AxisApplyContext {
  readonly checkpoints?: readonly string[];
  readonly vaes?: readonly string[];
  readonly warn: (message: string) => void;
}

export interface XyzAxis {
  readonly label: string;
  /** How values are read: int and float take ranges, 'permutations' makes every order of the values (Prompt order). */
  readonly type: 'int' | 'float' | 'str' | 'permutations';
  /** Shown on one tab only (AxisOptionTxt2Img / AxisOptionImg2Img). */
  readonly only?: 'txt2img' | 'img2img';
  /** Legend text: "Label: value", the value alone, a joined list, nothing, or a file's base name. */
  readonly format: 'label' | 'value' | 'join' | 'nothing' | 'basename';
  /** Switching cost: costlier axes are iterated outermost so a checkpoint loads once per value. */
  readonly cost: number;
  /** Values come from the dropdown unless csv mode is on. */
  readonly hasChoices: boolean;
  /** A1111's confirm step, run on every value before any cell is rendered. */
  readonly confirm?: (values: readonly AxisValue[], ctx: AxisApplyContext) => string | undefined;
  /** Applies one value to a cell; absent when Darkroom's engine has no such setting. */
  readonly apply?: (p: CellDraft, x: AxisValue, xs: readonly AxisValue[], ctx: AxisApplyContext) => string | undefined;
}

const field = (name: string) => (p: CellDraft, x: AxisValue): undefined => {
  p[name] = x;
  return undefined;
};

const override = (name: keyof OverrideSettings, boolean = false) => (p: CellDraft, x: AxisValue): undefined => {
  const settings = p.override_settings as Record<string, unknown>;
  settings[name] = boolean ? String(x).toLowerCase() === 'true' : x;
  return undefined;
};

/** Python's str.replace: every occurrence. */
const replaceAll = (s: string, search: string, by: string): string => s.split(search).join(by);

function applyPrompt(p: CellDraft, x: AxisValue, xs: readonly AxisValue[]): string | undefined {
  const search = String(xs[0]);
  const prompt = p.prompt ?? '';
  const negative = p.negative_prompt ?? '';
  if (!prompt.includes(search) && !negative.includes(search)) return `Prompt S/R did not find ${search} in prompt or negative prompt.`;
  p.prompt = replaceAll(prompt, search, String(x));
  p.negative_prompt = replaceAll(negative, search, String(x));
  return undefined;
}

/** apply_order: the tokens taken out of the prompt in order of first appearance and put back in the value's order. */
function applyOrder(p: CellDraft, x: AxisValue): undefined {
  const tokens = x as readonly string[];
  let prompt = p.prompt ?? '';
  const order = tokens.map((t) => [prompt.indexOf(t), t] as const).sort((a, b) => a[0] - b[0]);
  const parts: string[] = [];
  for (const [, token] of order) {
    // Python's find gives -1 for a missing token, and prompt[0:-1] is all but the last character.
    const n = prompt.indexOf(token);
    parts.push(n === -1 ? prompt.slice(0, -1) : prompt.slice(0, n));
    prompt = prompt.slice(n + token.length);
  }
  p.prompt = parts.map((part, i) => part + tokens[i]).join('') + prompt;
  return undefined;
}

/**
 * A sampler value by its display name: confirm_samplers accepts aliases and any casing, but A1111 then creates
 * the sampler by exact display name and the cell fails ("bad sampler name"), while Darkroom's engine would
 * quietly take its default; so an accepted value is written as the sampler's display name.
 */
const samplerField = (name: string) => (p: CellDraft, x: AxisValue): undefined => {
  p[name] = samplerEntryByAlias(String(x))?.name ?? x;
  return undefined;
};

function confirmSamplers(values: readonly AxisValue[]): string | undefined {
  const bad = values.find((v) => !samplerEntryByAlias(String(v)));
  return bad === undefined ? undefined : `Unknown sampler: ${String(bad)}`;
}

/** sd_models.get_closet_checkpoint_match over the job's checkpoint names: exact, else the shortest containing it. */
export function closestCheckpoint(name: string, checkpoints: readonly string[]): string | undefined {
  if (checkpoints.includes(name)) return name;
  return [...checkpoints].filter((c) => c.includes(name)).sort((a, b) => a.length - b.length)[0];
}

function confirmCheckpoints(values: readonly AxisValue[], ctx: AxisApplyContext): string | undefined {
  if (!ctx.checkpoints) return undefined;
  const bad = values.find((v) => closestCheckpoint(String(v), ctx.checkpoints!) === undefined);
  return bad === undefined ? undefined : `Unknown checkpoint: ${String(bad)}`;
}

function applyCheckpoint(p: CellDraft, x: AxisValue, _xs: readonly AxisValue[], ctx: AxisApplyContext): string | undefined {
  const name = ctx.checkpoints ? closestCheckpoint(String(x), ctx.checkpoints) : String(x);
  if (name === undefined) return `Unknown checkpoint: ${String(x)}`;
  p.override_settings.sd_model_checkpoint = name;
  return undefined;
}

/** find_vae: 'Automatic' / 'None' by any casing, else a VAE name matched case-insensitively, else Automatic with a warning. */
function applyVae(p: CellDraft, x: AxisValue, _xs: readonly AxisValue[], ctx: AxisApplyContext): undefined {
  const name = String(x).trim().toLowerCase();
  let vae: string;
  if (name === 'auto' || name === 'automatic') vae = 'Automatic';
  else if (name === 'none') vae = 'None';
  else if (!ctx.vaes) vae = String(x).trim();
  else {
    const found = ctx.vaes.find((k) => k.toLowerCase() === name);
    if (found === undefined) ctx.warn(`No VAE found for ${name}; using Automatic`);
    vae = found ?? 'Automatic';
  }
  p.override_settings.sd_vae = vae;
  return undefined;
}

/** apply_size: "WxH"; a value that does not read as two integers leaves the size alone (A1111 prints and goes on). */
function applySize(p: CellDraft, x: AxisValue, _xs: readonly AxisValue[], ctx: AxisApplyContext): undefined {
  const text = String(x);
  const at = text.indexOf('x');
  const [w, h] = at === -1 ? [text, ''] : [text.slice(0, at), text.slice(at + 1)];
  const int = /^\s*[+-]?\d+\s*$/;
  if (!int.test(w) || !int.test(h)) {
    ctx.warn(`Invalid size in XYZ plot: ${text}`);
    return undefined;
  }
  p.width = Number(w.trim());
  p.height = Number(h.trim());
  return undefined;
}

function applyClipSkip(p: CellDraft, x: AxisValue): undefined {
  // The request's clip_skip shorthand wins over the setting, so both are set.
  p.override_settings.CLIP_stop_at_last_layers = x as number;
  p.clip_skip = x;
  return undefined;
}

const axis = (label: string, type: XyzAxis['type'], rest: Partial<XyzAxis> = {}): XyzAxis => ({
  label,
  type,
  format: 'label',
  cost: 0,
  hasChoices: false,
  ...rest,
});

export const XYZ_AXES: readonly XyzAxis[] = [
  axis('Nothing', 'str', { format: 'nothing', apply: () => undefined }),
  axis('Seed', 'int', { apply: field('seed') }),
  axis('Var. seed', 'int', { apply: field('subseed') }),
  axis('Var. strength', 'float', { apply: field('subseed_strength') }),
  axis('Steps', 'int', { apply: field('steps') }),
  axis('Hires steps', 'int', { only: 'txt2img', apply: field('hr_second_pass_steps') }),
  axis('CFG Scale', 'float', { apply: field('cfg_scale') }),
  axis('Image CFG Scale', 'float', { only: 'img2img' }),
  axis('Prompt S/R', 'str', { format: 'value', apply: applyPrompt }),
  axis('Prompt order', 'permutations', { format: 'join', apply: applyOrder }),
  axis('Sampler', 'str', { only: 'txt2img', format: 'value', hasChoices: true, confirm: confirmSamplers, apply: samplerField('sampler_name') }),
  axis('Hires sampler', 'str', { only: 'txt2img', hasChoices: true, confirm: confirmSamplers, apply: samplerField('hr_sampler_name') }),
  axis('Sampler', 'str', { only: 'img2img', format: 'value', hasChoices: true, confirm: confirmSamplers, apply: samplerField('sampler_name') }),
  axis('Checkpoint name', 'str', { format: 'basename', cost: 1, hasChoices: true, confirm: confirmCheckpoints, apply: applyCheckpoint }),
  axis('Negative Guidance minimum sigma', 'float'),
  // The engine reads the sigma settings from override_settings (A1111's k-diffusion samplers read the options).
  axis('Sigma Churn', 'float', { apply: override('s_churn') }),
  axis('Sigma min', 'float', { apply: override('s_tmin') }),
  axis('Sigma max', 'float', { apply: override('s_tmax') }),
  axis('Sigma noise', 'float', { apply: override('s_noise') }),
  axis('Schedule type', 'str', { hasChoices: true, apply: field('scheduler') }),
  axis('Schedule min sigma', 'float', { apply: override('sigma_min') }),
  axis('Schedule max sigma', 'float', { apply: override('sigma_max') }),
  axis('Schedule rho', 'float', { apply: override('rho') }),
  axis('Skip Early CFG', 'float'),
  axis('Beta schedule alpha', 'float'),
  axis('Beta schedule beta', 'float'),
  axis('Eta', 'float', { apply: field('eta') }),
  axis('Clip skip', 'int', { apply: applyClipSkip }),
  axis('Denoising', 'float', { apply: field('denoising_strength') }),
  axis('Initial noise multiplier', 'float', { apply: field('initial_noise_multiplier') }),
  axis('Extra noise', 'float'),
  axis('Hires upscaler', 'str', { only: 'txt2img', hasChoices: true, apply: field('hr_upscaler') }),
  axis('Cond. Image Mask Weight', 'float', { only: 'img2img', apply: override('inpainting_mask_weight') }),
  axis('VAE', 'str', { cost: 0.7, hasChoices: true, apply: applyVae }),
  axis('Styles', 'str', { hasChoices: true }),
  axis('UniPC Order', 'int', { cost: 0.5 }),
  axis('Face restore', 'str', { format: 'value' }),
  axis('Token merging ratio', 'float'),
  axis('Token merging ratio high-res', 'float'),
  axis('Always discard next-to-last sigma', 'str', { hasChoices: true, apply: override('always_discard_next_to_last_sigma', true) }),
  axis('SGM noise multiplier', 'str', { hasChoices: true }),
  axis('Refiner checkpoint', 'str', { format: 'basename', cost: 1, hasChoices: true }),
  axis('Refiner switch at', 'float'),
  axis('RNG source', 'str', { hasChoices: true, apply: override('randn_source') }),
  axis('FP8 mode', 'str', { cost: 0.9, hasChoices: true }),
  axis('Size', 'str', { apply: applySize }),
];

/** The axes a tab shows, in order: the list the `x_type` / `y_type` / `z_type` index counts in. */
export function xyzAxesFor(mode: 'txt2img' | 'img2img'): readonly XyzAxis[] {
  return XYZ_AXES.filter((a) => a.only === undefined || a.only === mode);
}
