// The page's entry: sign-in, tabs, the Generate form's wiring, and dropping PNGs anywhere to read them.
import { api, ApiError, getJson, pngInfo, session } from './api.js';
import { initAssets, listAssets } from './assets.js';
import { applyParameters, form, loadChoices, readForm, setInitImage, watchSize } from './generate.js';
import { initGallery, resetGallery } from './gallery.js';
import { initMask } from './mask.js';
import { attachPrompt } from './prompt.js';
import { forgetTraining, initTrain, listDatasets } from './train.js';
import { forgetJobs, initWatch, onJobActions, restoreJobs, watchJob } from './watch.js';
import { forgetFlow, initXyz, refreshXyzChoices } from './xyz.js';
import { $ } from './dom.js';

const names = { embeddings: new Set(), loras: [], hypernetworks: [] };
const prompts = [];
let galleryLoaded = false;

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 4000);
}

/**
 * A key is good when an authenticated call answers; a 401 means this key is not one of the farm's. Asked on
 * /v1, which never answers with a Basic challenge (the browser would show its own password dialog).
 */
async function checkKey(key) {
  try {
    await api('/v1/embeddings', { key });
    return null;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return 'That API key was not accepted. Check it and try again.';
    return `Could not reach the API (${e.message}).`;
  }
}

async function loadNames() {
  const [emb, loras, hns] = await Promise.all([
    getJson('/sdapi/v1/embeddings').catch(() => ({ loaded: {} })),
    getJson('/sdapi/v1/loras').catch(() => []),
    getJson('/sdapi/v1/hypernetworks').catch(() => []),
  ]);
  names.embeddings = new Set(Object.keys(emb.loaded ?? {}));
  names.loras = Array.isArray(loras) ? loras.map((l) => l.name).filter(Boolean) : [];
  names.hypernetworks = Array.isArray(hns) ? hns.map((h) => h.name).filter(Boolean) : [];
  for (const p of prompts) p.refresh();
}

function selectTab(tab) {
  for (const t of document.querySelectorAll('[role=tab]')) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (tab.id === 'tab-gallery' && !galleryLoaded) {
    galleryLoaded = true;
    void resetGallery();
  }
  if (tab.id === 'tab-assets') void listAssets();
  if (tab.id === 'tab-train') void listDatasets();
  if (tab.id === 'tab-scripts') refreshXyzChoices();
}

function initTabs() {
  const tabs = [...document.querySelectorAll('[role=tab]')];
  for (const t of tabs) {
    t.addEventListener('click', () => selectTab(t));
    t.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(t);
      const next = e.key === 'ArrowRight' ? tabs[(i + 1) % tabs.length] : e.key === 'ArrowLeft' ? tabs[(i + tabs.length - 1) % tabs.length] : null;
      if (next) {
        e.preventDefault();
        next.focus();
        selectTab(next);
      }
    });
  }
}

async function submit(ev) {
  ev?.preventDefault();
  $('gen-error').textContent = '';
  const btn = $('generate');
  btn.disabled = true;
  try {
    const { kind, body } = await readForm();
    const res = await (await api(`/v1/${kind}`, { body })).json();
    watchJob(res.id, body.prompt);
  } catch (e) {
    $('gen-error').textContent = e.field && !e.message.startsWith(e.field) ? `${e.field}: ${e.message}` : e.message;
  } finally {
    btn.disabled = false;
  }
}

async function loadPng(file) {
  try {
    const info = await pngInfo(file);
    if (!info.info) {
      toast(`${file.name ?? 'That image'} carries no generation parameters.`);
      return;
    }
    applyParameters(info.parameters);
    selectTab($('tab-generate'));
    toast(`Loaded the parameters of ${file.name ?? 'the image'}.`);
  } catch (e) {
    toast(`Could not read that PNG: ${e.message}`);
  }
}

function initDrops() {
  const zone = $('init-drop');
  const overlay = $('png-drop');
  const isFileDrag = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
  zone.addEventListener('dragover', (e) => { e.preventDefault(); e.stopPropagation(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    zone.classList.remove('over');
    const f = e.dataTransfer.files[0];
    if (f?.type.startsWith('image/')) setInitImage(f);
  });
  zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('init-file').click(); } });
  zone.addEventListener('click', () => $('init-file').click());
  $('init-file').addEventListener('change', () => { const f = $('init-file').files[0]; if (f) setInitImage(f); });
  $('init-clear').addEventListener('click', () => setInitImage(null));
  // Anywhere else on the page: a PNG dropped is read for its parameters (A1111's PNG Info).
  document.addEventListener('dragover', (e) => { if (isFileDrag(e)) { e.preventDefault(); overlay.hidden = false; } });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) overlay.hidden = true; });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    overlay.hidden = true;
    const f = e.dataTransfer?.files[0];
    if (f) void loadPng(f);
  });
}

async function start() {
  $('signin').hidden = true;
  $('app').hidden = false;
  initTabs();
  for (const id of ['prompt', 'negative_prompt']) prompts.push(attachPrompt($(id), $('complete-list'), names));
  $('gen-form').addEventListener('submit', submit);
  $('gen-form').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void submit(e); });
  $('seed-random').addEventListener('click', () => { $('seed').value = '-1'; });
  $('seed-reuse').addEventListener('click', () => { if (form.lastSeed !== null) $('seed').value = String(form.lastSeed); });
  initWatch();
  watchSize();
  onJobActions({
    reuse: (p) => { applyParameters(p); toast('Settings loaded.'); },
    seed: (s) => { $('seed').value = String(s); },
    toImg2img: (blob) => { setInitImage(blob); toast('Sent to img2img.'); },
    done: (o) => { form.lastSeed = o.seed; },
  });
  initGallery((p) => { applyParameters(p); selectTab($('tab-generate')); toast('Settings loaded.'); });
  initAssets((kind) => { if (kind === 'models' || kind === 'vaes') void loadChoices(getJson); else void loadNames(); });
  initDrops();
  initMask();
  restoreJobs();
  initTrain(() => getJson('/sdapi/v1/sd-models'));
  initXyz(readForm);
  $('signout').addEventListener('click', () => {
    session.key = null;
    forgetJobs();
    forgetTraining();
    forgetFlow();
    // A full reload drops every image, job and listing of this tenant from the page.
    location.reload();
  });
  $('prompt').focus();
  document.body.dataset.ready = 'true';
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  await Promise.all([loadChoices(getJson), loadNames()]);
  document.body.dataset.loaded = 'true';
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const key = $('signin-key').value.trim();
  $('signin-error').textContent = '';
  const problem = await checkKey(key);
  if (problem) {
    $('signin-error').textContent = problem;
    $('signin-key').select();
    return;
  }
  session.key = key;
  $('signin-key').value = '';
  void start();
});

if (session.key) {
  // A key this tab already signed in with: show the form at once and check the key alongside; a key
  // revoked since then sends the page back to the sign-in, with nothing of the tenant's left on it.
  void start();
  void checkKey(session.key).then((problem) => {
    if (!problem) return;
    session.key = null;
    forgetJobs();
    forgetTraining();
    forgetFlow();
    location.reload();
  });
} else $('signin-key').focus();
