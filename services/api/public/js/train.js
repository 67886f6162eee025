// Train: datasets, a training's parameters, its live loss curve and preview images, cancel and resume.
import { api, getJson, imageUrl, streamEvents, TERMINAL_STATES } from './api.js';
import { morph } from './morph.js';
import { $, esc } from './dom.js';

const SAVED = 'darkroom.training';

let current = null; // { id, view, losses: [[step, loss]], previews: [{step, src}], abort }

export async function listDatasets() {
  const sel = $('train-dataset');
  const { items } = await getJson('/v1/datasets').catch(() => ({ items: [] }));
  const keep = sel.value;
  sel.innerHTML = items.map((d) => `<option value="${esc(d.id)}">${esc(d.name)} (${d.images} images)</option>`).join('');
  if (items.some((d) => d.id === keep)) sel.value = keep;
}

function lossSvg(points) {
  if (points.length === 0) return '<svg class="loss" role="img" aria-label="Loss curve: no steps yet"></svg>';
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys, Math.min(...ys) + 1e-9)];
  const W = 400, H = 160;
  const pts = points.map(([x, y]) => `${((x - x0) / (x1 - x0)) * W},${H - ((y - y0) / (y1 - y0)) * (H - 10) - 5}`).join(' ');
  const last = ys[ys.length - 1];
  return `<svg class="loss" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img"
    aria-label="Loss curve over ${points.length} reports, latest ${last.toFixed(4)}" data-points="${points.length}">
    <polyline points="${pts}"/><text x="4" y="12">${y1.toFixed(4)}</text><text x="4" y="${H - 4}">${y0.toFixed(4)}</text></svg>`;
}

/** A trained embedding's PNGs (the embedding inside its last preview, as A1111 saves it), shown as pictures. */
function embeddingPngs(t) {
  const pngs = (t.view?.files ?? []).filter((f) => f.name.endsWith('.png') && t.fileSrc.get(f.name));
  return pngs.length ? `<div class="train-previews embedding-pngs">${pngs.map((f) => `<figure><img src="${t.fileSrc.get(f.name)}" alt="Embedding image ${esc(f.name)}"><figcaption>${esc(f.name)}</figcaption></figure>`).join('')}</div>` : '';
}

function render() {
  const t = current;
  if (!t) return;
  const v = t.view ?? {};
  const state = v.state ?? 'queued';
  const p = v.progress;
  const running = !TERMINAL_STATES.has(state);
  const box = $('training-view');
  box.dataset.training = t.id;
  box.dataset.state = state;
  box.dataset.previews = String(t.previews.length);
  morph(box, `
    <div class="job-head">
      <strong>${esc(v.name ?? '')}</strong>
      <span class="state state-${state}" id="train-state">${state}</span>
      <span>${p ? `step ${p.step}/${p.steps}` : v.step != null ? `step ${v.step}/${v.steps}` : ''}</span>
      <span>${p ? `loss ${p.loss.toFixed(5)}` : ''}</span>
      <span>${running && p ? `ETA ${Math.round(p.eta)}s` : ''}</span>
      ${running ? `<button type="button" id="train-cancel" class="danger"${t.cancelling ? ' disabled' : ''}>Cancel</button>` : ''}
    </div>
    ${v.error ? `<p class="error">${esc(v.error.code)}: ${esc(v.error.message)}</p>` : ''}
    ${lossSvg(t.losses)}
    <div class="train-previews">${t.previews.map((x) => `<figure><img src="${x.src}" alt="Preview at step ${x.step}"><figcaption>step ${x.step}</figcaption></figure>`).join('')}</div>
    ${v.checkpoints?.length ? `<p class="muted">Checkpoints: ${v.checkpoints.map((c) => `${c.step} (${c.reason})`).join(', ')}</p>` : ''}
    ${v.asset ? `<p>Registered as ${esc(v.asset.kind.replace(/s$/, ''))} <strong>${esc(v.asset.name)}</strong>: use it in a prompt.</p>` : ''}
    ${embeddingPngs(t)}
    ${v.files?.length ? `<ul class="files">${v.files.map((f) => `<li><a href="#" data-file="${esc(f.url)}" data-name="${esc(f.name)}">${esc(f.name)}</a></li>`).join('')}</ul>` : ''}
    ${!running && v.checkpoints?.length ? `<form id="resume-form" class="row wrap"><label>Train on to step <input id="resume-steps" type="number" min="${(v.step ?? 0) + 1}" value="${(v.step ?? 0) + 100}"></label><button type="submit">Resume</button></form>` : ''}`);
}

async function refresh() {
  if (!current) return;
  current.view = await getJson(`/v1/trainings/${current.id}`).catch(() => current.view);
  // Every stored preview, also those made before this page was opened.
  const t = current;
  for (const pv of t.view?.previews ?? []) {
    // Refreshes overlap (an event may arrive while one runs): claim a preview before fetching it.
    if (t.seen.has(pv.name)) continue;
    t.seen.add(pv.name);
    t.previews.push({ step: pv.step, src: await imageUrl(pv.url).catch(() => '') });
  }
  t.previews.sort((a, b) => a.step - b.step);
  for (const f of t.view?.files ?? []) {
    if (!f.name.endsWith('.png') || t.fileSrc.has(f.name)) continue;
    t.fileSrc.set(f.name, '');
    t.fileSrc.set(f.name, await imageUrl(f.url).catch(() => ''));
  }
  render();
}

export function watchTraining(id) {
  current?.abort.abort();
  const t = { id, view: null, losses: [], previews: [], seen: new Set(), fileSrc: new Map(), abort: new AbortController() };
  current = t;
  sessionStorage.setItem(SAVED, id);
  void refresh();
  streamEvents(`/v1/trainings/${id}/events`, (ev) => {
    if (current !== t) return false;
    const d = ev.data;
    if (ev.event === 'progress' && typeof d.loss === 'number') {
      t.losses.push([d.step, d.loss]);
      t.view = { ...(t.view ?? {}), state: 'running', progress: d };
      render();
    } else if (ev.event === 'preview' || ev.event === 'checkpoint' || ev.event === 'started') void refresh();
    else if (TERMINAL_STATES.has(ev.event)) {
      void refresh();
      return false;
    }
    return true;
  }, t.abort.signal).catch(() => undefined).finally(() => { if (current === t) void refresh(); });
}

export function initTrain(getModels) {
  $('dataset-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const files = [...$('dataset-files').files];
    const form = new FormData();
    form.append('name', $('dataset-name').value.trim());
    for (const f of files) form.append('files', f, f.name);
    $('dataset-status').textContent = `Uploading ${files.length} files…`;
    try {
      const d = await (await api('/v1/datasets', { method: 'POST', body: form })).json();
      $('dataset-status').textContent = `Dataset ${d.name}: ${d.images} images, ${d.captions} captions.`;
      await listDatasets();
      $('train-dataset').value = d.id;
    } catch (err) {
      $('dataset-status').textContent = `Refused: ${err.field ? `${err.field}: ` : ''}${err.message}`;
    }
  });
  $('train-kind').addEventListener('change', () => {
    $('train-lr').value = $('train-kind').value === 'embedding' ? '0.005' : '0.00001';
  });
  $('train-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('train-error').textContent = '';
    const body = {
      kind: $('train-kind').value, name: $('train-name').value.trim(), dataset: $('train-dataset').value,
      steps: Number($('train-steps').value), learn_rate: $('train-lr').value.trim(), batch_size: Number($('train-batch').value),
      training_width: Number($('train-width').value), training_height: Number($('train-height').value),
      template_filename: $('train-template').value.trim(), save_every: Number($('train-save').value),
      create_image_every: Number($('train-preview').value),
    };
    if ($('train-model').value) body.model = $('train-model').value;
    try {
      const r = await (await api('/v1/trainings', { body })).json();
      watchTraining(r.id);
    } catch (err) {
      $('train-error').textContent = err.field && !err.message.startsWith(err.field) ? `${err.field}: ${err.message}` : err.message;
    }
  });
  $('training-view').addEventListener('click', async (e) => {
    const t = current;
    if (e.target.id === 'train-cancel' && t && !t.cancelling) {
      // Kept on the training, not the button, so the re-render at the next step keeps it disabled.
      t.cancelling = true;
      render();
      await api(`/v1/trainings/${t.id}/cancel`, { method: 'POST' }).catch(() => { t.cancelling = false; });
      render();
    }
    const file = e.target.dataset?.file;
    if (file) {
      e.preventDefault();
      const a = document.createElement('a');
      a.href = await imageUrl(file);
      a.download = e.target.dataset.name;
      a.click();
    }
  });
  $('training-view').addEventListener('submit', async (e) => {
    if (e.target.id !== 'resume-form' || !current) return;
    e.preventDefault();
    try {
      const r = await (await api(`/v1/trainings/${current.id}/resume`, { body: { steps: Number($('resume-steps').value) } })).json();
      watchTraining(r.id);
    } catch (err) {
      $('train-error').textContent = err.message;
    }
  });
  getModels().then((models) => {
    $('train-model').replaceChildren(new Option('Default', ''), ...models.map((m) => new Option(m.model_name, m.title)));
  }, () => undefined);
  const saved = sessionStorage.getItem(SAVED);
  if (saved && /^[0-9A-HJKMNP-TV-Z]{26}$/.test(saved)) watchTraining(saved);
}

export function forgetTraining() { sessionStorage.removeItem(SAVED); }
