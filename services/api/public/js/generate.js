// The Generate form: reading it into a /v1 request, and loading parameters (png-info's) back into it.
import { blobToBase64 } from './api.js';
import { maskFields, maskForImage, readMask } from './mask.js';
import { $ } from './dom.js';

const num = (id) => Number($(id).value);

/**
 * The size a checkpoint draws at when nobody has set one: the built-in model was trained at 128x128
 * (BUILTIN_MODEL_RESOLUTION in core's catalog/built-in-model.ts); other checkpoints get A1111's 512.
 */
const BUILTIN_SIDE = 128;
const A1111_SIDE = 512;
/** Checkpoint select values that mean the built-in model: Default ('') and its sd-models title. */
const builtInValues = new Set(['']);

/** The size follows the chosen checkpoint until someone sets it (typed, or loaded from a PNG's parameters). */
function followCheckpointSize() {
  if ($('width').dataset.set === '1' || $('height').dataset.set === '1') return;
  const side = String(builtInValues.has($('checkpoint').value) ? BUILTIN_SIDE : A1111_SIDE);
  $('width').value = side;
  $('height').value = side;
}

export function watchSize() {
  for (const id of ['width', 'height']) $(id).addEventListener('input', () => { $(id).dataset.set = '1'; });
  $('checkpoint').addEventListener('change', followCheckpointSize);
}

export const form = {
  initImage: null, // { blob, url } of the img2img init image
  lastSeed: null,
};

/** The /v1 request the form describes, and which endpoint takes it. */
export async function readForm() {
  const body = {
    prompt: $('prompt').value,
    negative_prompt: $('negative_prompt').value,
    sampler_name: $('sampler_name').value || null,
    scheduler: $('scheduler').value || null,
    steps: num('steps'),
    cfg_scale: num('cfg_scale'),
    width: num('width'),
    height: num('height'),
    batch_size: num('batch_size'),
    n_iter: num('n_iter'),
    seed: Math.trunc(num('seed')),
  };
  const ckpt = $('checkpoint').value;
  if (ckpt) body.model = ckpt;
  // Automatic leaves the farm's choice (the tenant's sd_vae option) in force.
  if ($('sd_vae').value) body.override_settings = { sd_vae: $('sd_vae').value };
  if (form.initImage) {
    body.init_images = [await blobToBase64(form.initImage.blob)];
    body.denoising_strength = num('denoising_strength');
    const mask = await readMask();
    if (mask) Object.assign(body, { mask }, maskFields());
    return { kind: 'img2img', body };
  }
  if ($('enable_hr').checked) {
    Object.assign(body, {
      enable_hr: true, hr_upscaler: $('hr_upscaler').value, hr_scale: num('hr_scale'),
      hr_second_pass_steps: num('hr_second_pass_steps'), denoising_strength: num('hr_denoise'),
    });
  }
  return { kind: 'txt2img', body };
}

function setSelect(id, value) {
  const sel = $(id);
  if (value === undefined || value === null) return;
  const v = String(value);
  const opt = [...sel.options].find((o) => o.value === v || o.textContent === v || o.value.startsWith(`${v} [`) || o.value.split(' [')[0] === v);
  if (opt) sel.value = opt.value;
}

function setNumber(id, value) {
  if (value === undefined || value === null || value === '') return;
  const n = Number(value);
  if (Number.isFinite(n)) $(id).value = String(n);
}

/** Loads A1111 infotext parameters (png-info's `parameters`) into the form; fires input so prompts repaint. */
export function applyParameters(p) {
  if (typeof p.Prompt === 'string') $('prompt').value = p.Prompt;
  if (typeof p['Negative prompt'] === 'string') $('negative_prompt').value = p['Negative prompt'];
  setNumber('steps', p.Steps);
  setNumber('cfg_scale', p['CFG scale']);
  setNumber('seed', p.Seed);
  setNumber('width', p['Size-1']);
  setNumber('height', p['Size-2']);
  if (p['Size-1'] !== undefined) $('width').dataset.set = '1';
  if (p['Size-2'] !== undefined) $('height').dataset.set = '1';
  setSelect('sampler_name', p.Sampler);
  if (p['Schedule type'] && p['Schedule type'] !== 'Automatic') setSelect('scheduler', p['Schedule type']);
  else $('scheduler').value = '';
  if (p.Model) setSelect('checkpoint', p.Model);
  // The infotext names a VAE by its file stem; none named is the checkpoint's own.
  const vae = typeof p.VAE === 'string' ? [...$('sd_vae').options].find((o) => o.value && (o.value === p.VAE || o.value.replace(/\.[^.]+$/, '') === p.VAE)) : null;
  $('sd_vae').value = vae ? vae.value : '';
  // The parser fills `Hires resize-1` in for every infotext; only an upscale or upscaler says hires fix ran.
  const hires = p['Hires upscale'] !== undefined || p['Hires upscaler'] !== undefined;
  $('enable_hr').checked = hires;
  if (hires) {
    setNumber('hr_scale', p['Hires upscale']);
    setNumber('hr_second_pass_steps', p['Hires steps']);
    setNumber('hr_denoise', p['Denoising strength']);
    setSelect('hr_upscaler', p['Hires upscaler']);
    $('hires').open = true;
  } else if (p['Denoising strength'] !== undefined) setNumber('denoising_strength', p['Denoising strength']);
  for (const id of ['prompt', 'negative_prompt']) $(id).dispatchEvent(new Event('input'));
}

export function setInitImage(blob) {
  if (form.initImage) URL.revokeObjectURL(form.initImage.url);
  form.initImage = blob ? { blob, url: URL.createObjectURL(blob) } : null;
  const img = $('init-preview');
  img.src = blob ? form.initImage.url : '';
  img.alt = blob ? 'Init image' : '';
  $('init-hint').textContent = blob ? 'Drop another image here, or press Enter to choose one' : 'Drop an init image here, or press Enter to choose one';
  maskForImage(blob ? img : null);
  if (blob) $('img2img').open = true;
}

/**
 * The number inputs take the API's own bounds (its OpenAPI schema, which the engine shares), so the form refuses
 * what the API would and allows what it takes. Inputs keep the bounds written in the page when the schema is missing.
 */
function applyBounds(doc) {
  const schemas = doc?.components?.schemas ?? {};
  const props = { ...(schemas.Img2ImgRequest?.properties ?? {}), ...(schemas.Txt2ImgRequest?.properties ?? {}) };
  for (const input of document.querySelectorAll('#gen-form input[type="number"][name]')) {
    const p = props[input.name];
    const n = p?.anyOf?.find((a) => a.type === 'number' || a.type === 'integer') ?? p;
    if (!n || (n.type !== 'number' && n.type !== 'integer')) continue;
    if (typeof n.minimum === 'number') input.min = String(n.minimum);
    if (typeof n.maximum === 'number') input.max = String(n.maximum);
    if (typeof n.multipleOf === 'number') input.step = String(n.multipleOf);
  }
}

/** Fills the selects from the API's listings (each may be missing on an older API: the form still works). */
export async function loadChoices(getJson) {
  const opt = (value, label = value) => { const o = document.createElement('option'); o.value = value; o.textContent = label; return o; };
  void getJson('/openapi.json').then(applyBounds, () => undefined);
  const [samplers, schedulers, models, upscalers, vaes] = await Promise.all([
    getJson('/sdapi/v1/samplers').catch(() => []),
    getJson('/sdapi/v1/schedulers').catch(() => []),
    getJson('/sdapi/v1/sd-models').catch(() => []),
    getJson('/sdapi/v1/upscalers').catch(() => []),
    getJson('/sdapi/v1/sd-vae').catch(() => []),
  ]);
  const s = $('sampler_name');
  s.replaceChildren(...(samplers.length ? samplers.map((x) => opt(x.name)) : [opt('Euler')]));
  s.value = [...s.options].some((o) => o.value === 'DPM++ 2M') ? 'DPM++ 2M' : s.options[0].value;
  $('scheduler').replaceChildren(opt('', 'Automatic'), ...schedulers.map((x) => opt(x.name, x.label ?? x.name)));
  const keep = (id) => { const v = $(id).value; return () => { if ([...$(id).options].some((o) => o.value === v)) $(id).value = v; }; };
  const restoreCkpt = keep('checkpoint');
  const restoreVae = keep('sd_vae');
  $('checkpoint').replaceChildren(opt('', 'Default'), ...models.map((m) => opt(m.title, m.model_name)));
  $('sd_vae').replaceChildren(opt('', 'Automatic'), opt('None'), ...vaes.map((v) => opt(v.model_name)));
  for (const m of models) if (m.source === 'builtin') builtInValues.add(m.title);
  restoreCkpt();
  restoreVae();
  followCheckpointSize();
  const ups = ['Latent', ...upscalers.map((u) => u.name).filter((n) => n && n !== 'None' && n !== 'Latent')];
  $('hr_upscaler').replaceChildren(...ups.map((n) => opt(n)));
}
