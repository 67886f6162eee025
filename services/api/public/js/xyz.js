// Scripts: A1111's X/Y/Z plot over the Generate form's settings, run as a /v1 flow. The plot's cells are laid
// out as the farm will draw them and fill in one by one as their jobs complete; the composed grid follows.
import { api, getJson, imageUrl, streamEvents, TERMINAL_STATES } from './api.js';
import { $, esc } from './dom.js';

const AXES = ['x', 'y', 'z'];
// The plot this tab shows, kept with the key in sessionStorage so a reload shows it again.
const SAVED = 'darkroom.flow';

let current = null; // { id, view, filled: Set<child>, abort }
let readBase = async () => ({ kind: 'txt2img', body: {} });

/** Axes whose values are names the farm has: each name is offered as a button that adds it to the values. */
const CHOICES = {
  Sampler: () => [...$('sampler_name').options].map((o) => o.value),
  'Hires sampler': () => [...$('sampler_name').options].map((o) => o.value),
  'Schedule type': () => [...$('scheduler').options].filter((o) => o.value).map((o) => o.value),
  'Checkpoint name': () => [...$('checkpoint').options].filter((o) => o.value).map((o) => o.textContent),
  VAE: () => [...$('sd_vae').options].map((o) => o.value || 'Automatic'),
  'Hires upscaler': () => [...$('hr_upscaler').options].map((o) => o.value),
};

/** The names on offer are the form's, which fill in (and change with uploads) after the tab is built. */
export function refreshXyzChoices() {
  for (const k of AXES) showChoices(k);
}

function showChoices(k) {
  const pick = CHOICES[$(`xyz-${k}-type`).value];
  const box = $(`xyz-${k}-choices`);
  const names = pick ? pick() : [];
  box.hidden = names.length === 0;
  box.innerHTML = names.map((n) => `<button type="button" class="tag" data-value="${esc(n)}">${esc(n)}</button>`).join('');
}

/** script_args in A1111's order; text values always (csv mode), so an axis with choices reads what was typed. */
export function xyzArgs() {
  const args = [];
  for (const k of AXES) args.push($(`xyz-${k}-type`).value, $(`xyz-${k}-values`).value.trim(), []);
  args.push($('xyz-legend').checked, $('xyz-lone').checked, false, $('xyz-keep-seeds').checked, false, false, false, 0, true);
  return args;
}

async function loadAxes() {
  const infos = await getJson('/sdapi/v1/script-info').catch(() => []);
  const info = infos.find((i) => i.name === 'x/y/z plot' && !i.is_img2img);
  const choices = info?.args?.[0]?.choices ?? ['Nothing', 'Seed', 'Steps', 'CFG Scale', 'Prompt S/R', 'Sampler'];
  for (const k of AXES) {
    const sel = $(`xyz-${k}-type`);
    const keep = sel.value || (k === 'x' ? 'Seed' : 'Nothing');
    sel.replaceChildren(...choices.map((c) => new Option(c, c)));
    sel.value = choices.includes(keep) ? keep : choices[0];
    showChoices(k);
  }
}

function tile(i, label) {
  return `<figure class="xyz-cell" data-cell="${i}"><div class="xyz-img"><span class="muted">…</span></div><figcaption>${esc(label)}</figcaption></figure>`;
}

function renderSkeleton() {
  const v = current.view;
  const cells = v.script?.cells ?? v.children.map((_, i) => `#${i + 1}`);
  const grids = v.script?.grids?.length ? v.script.grids : [{ cells: cells.map((_, i) => i), rows: Math.max(1, Math.round(Math.sqrt(cells.length))) }];
  $('xyz-cells').innerHTML = grids.map((g) => {
    const cols = Math.ceil(g.cells.length / Math.max(1, g.rows));
    return `<div class="xyz-grid" style="--cols:${cols}">${g.cells.map((i) => tile(i, cells[i] ?? '')).join('')}</div>`;
  }).join('');
}

function renderHead() {
  const t = current;
  const v = t.view;
  const running = !TERMINAL_STATES.has(v.state);
  const box = $('xyz-view');
  box.dataset.flow = t.id;
  box.dataset.state = v.state;
  box.dataset.filled = String(t.filled.size);
  $('xyz-head').innerHTML = `
    <span class="state state-${v.state}" id="xyz-state">${v.state}</span>
    <progress max="${v.progress.total}" value="${t.filled.size}" aria-label="Cells done">${t.filled.size}/${v.progress.total}</progress>
    <span id="xyz-count">${t.filled.size}/${v.progress.total} cells</span>
    ${running ? '<button type="button" id="xyz-cancel" class="danger">Cancel</button>' : ''}`;
  $('xyz-error-view').textContent = v.error ? `${v.error.code}: ${v.error.message}` : '';
}

async function fillCell(t, child, url, jobId) {
  if (t.filled.has(child) || current !== t) return;
  t.filled.add(child);
  const box = document.querySelector(`#xyz-cells [data-cell="${child}"] .xyz-img`);
  const src = await imageUrl(url).catch(() => imageUrl(`/v1/gallery/${jobId}/0/image.png`)).catch(() => null);
  if (box && src && current === t) box.innerHTML = `<img src="${src}" alt="Cell ${child + 1}">`;
  if (current === t) renderHead();
}

async function refresh(t) {
  const v = await getJson(`/v1/flows/${t.id}`).catch(() => null);
  if (!v || current !== t) return;
  t.view = v;
  renderHead();
  for (const c of v.children) if (c.state === 'completed' && c.outputs[0]) void fillCell(t, c.index, c.outputs[0].url, c.id);
  const grid = v.state === 'completed' ? v.outputs.find((o) => o.kind === 'grid') : null;
  if (grid && !t.gridShown) {
    t.gridShown = true;
    const src = await imageUrl(grid.url);
    if (current !== t) return;
    $('xyz-result').innerHTML = `<figure class="result"><img id="xyz-grid-img" class="result-img" src="${src}" alt="The X/Y/Z plot">
      <figcaption><pre class="infotext">${esc(grid.infotext)}</pre><a href="${src}" download="${t.id}-grid.png">Download the grid</a></figcaption></figure>`;
  }
}

async function watchFlow(id) {
  current?.abort.abort();
  const t = { id, view: null, filled: new Set(), gridShown: false, abort: new AbortController() };
  current = t;
  sessionStorage.setItem(SAVED, id);
  $('xyz-result').replaceChildren();
  t.view = await getJson(`/v1/flows/${id}`);
  renderSkeleton();
  renderHead();
  await streamEvents(`/v1/flows/${id}/events`, (ev) => {
    if (current !== t) return false;
    const d = ev.data;
    if (ev.event === 'progress' && typeof d.child === 'number' && d.outputs?.[0]) void fillCell(t, d.child, d.outputs[0].url, d.job_id);
    else if (TERMINAL_STATES.has(ev.event)) return false;
    return true;
  }, t.abort.signal).catch(() => undefined);
  await refresh(t);
}

export function initXyz(base) {
  readBase = base;
  $('xyz-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('xyz-error').textContent = '';
    const btn = $('xyz-run');
    btn.disabled = true;
    try {
      const { body } = await readBase();
      const r = await (await api('/v1/flows', { body: { script: { name: 'x/y/z plot', args: xyzArgs() }, base: body } })).json();
      void watchFlow(r.id);
    } catch (err) {
      $('xyz-error').textContent = err.field && !err.message.startsWith(err.field) ? `${err.field}: ${err.message}` : err.message;
    } finally {
      btn.disabled = false;
    }
  });
  $('xyz-view').addEventListener('click', async (e) => {
    if (e.target.id !== 'xyz-cancel' || !current) return;
    e.target.disabled = true;
    await api(`/v1/flows/${current.id}`, { method: 'DELETE' }).catch((err) => { $('xyz-error').textContent = err.message; });
  });
  for (const k of AXES) {
    $(`xyz-${k}-type`).addEventListener('change', () => showChoices(k));
    $(`xyz-${k}-choices`).addEventListener('click', (e) => {
      const v = e.target.dataset?.value;
      if (v === undefined) return;
      const input = $(`xyz-${k}-values`);
      // A1111 reads the list as CSV: a name with a comma or quote is quoted.
      const item = /[",]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
      input.value = input.value.trim() ? `${input.value.trim().replace(/,$/, '')}, ${item}` : item;
    });
  }
  void loadAxes();
  const saved = sessionStorage.getItem(SAVED);
  if (saved && /^[0-9A-HJKMNP-TV-Z]{26}$/.test(saved)) void watchFlow(saved).catch(() => sessionStorage.removeItem(SAVED));
}

export function forgetFlow() { sessionStorage.removeItem(SAVED); }
