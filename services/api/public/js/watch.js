// Watching jobs: a queue strip of every job of this tab, and the selected job's live preview, progress, ETA,
// cancel, and results with their infotext.
import { api, blobOf, getJson, imageUrl, pngInfo, streamEvents, TERMINAL_STATES } from './api.js';
import { morph } from './morph.js';
import { $, esc } from './dom.js';

const jobs = new Map(); // id -> job state
let selected = null;
let hooks = { reuse: () => {}, toImg2img: () => {}, seed: () => {}, done: () => {} };

export function onJobActions(h) { hooks = { ...hooks, ...h }; }

// The jobs this tab watches, kept with the key in sessionStorage so a reload shows them again.
const WATCHED = 'darkroom.jobs';
function remember() {
  sessionStorage.setItem(WATCHED, JSON.stringify([...jobs.values()].slice(-20).map((j) => ({ id: j.id, prompt: j.prompt }))));
}

/** Watches again the jobs this tab had before a reload (finished ones just show their results). */
export function restoreJobs() {
  let saved = [];
  try {
    saved = JSON.parse(sessionStorage.getItem(WATCHED) ?? '[]');
  } catch { /* nothing usable saved */ }
  for (const s of saved) if (typeof s?.id === 'string' && /^[0-9A-HJKMNP-TV-Z]{26}$/.test(s.id)) watchJob(s.id, String(s.prompt ?? ''));
}

export function forgetJobs() { sessionStorage.removeItem(WATCHED); }

function fmtEta(s) {
  if (!Number.isFinite(s)) return '';
  return s >= 60 ? `${Math.floor(s / 60)}m ${Math.round(s % 60)}s` : `${s.toFixed(1)}s`;
}

function renderStrip() {
  const ol = $('queue');
  morph(ol, [...jobs.values()].map((j) => {
    const pct = Math.round((j.progress?.fraction ?? (j.state === 'completed' ? 1 : 0)) * 100);
    return `<li><button type="button" class="chip state-${j.state}" data-job="${j.id}" aria-pressed="${j.id === selected}"
      aria-label="Job ${j.id.slice(-6)}: ${j.state} ${pct}%"><span class="chip-id">${esc(j.prompt.slice(0, 24) || j.id.slice(-6))}</span>
      <span class="bar"><span style="width:${pct}%"></span></span><span class="chip-state">${j.state}</span></button></li>`;
  }).join(''));
}

function renderJob() {
  const j = jobs.get(selected);
  const view = $('job-view');
  if (!j) return;
  const pct = Math.round((j.progress?.fraction ?? (j.state === 'completed' ? 1 : 0)) * 100);
  const running = !TERMINAL_STATES.has(j.state);
  view.dataset.job = j.id;
  view.dataset.state = j.state;
  view.dataset.previews = String(j.previews);
  morph(view, `
    <div class="job-head">
      <span class="state state-${j.state}" id="job-state">${j.state}</span>
      <progress max="100" value="${pct}" aria-label="Progress">${pct}%</progress>
      <span id="job-step">${j.progress ? `step ${j.progress.step}/${j.progress.steps}` : ''}</span>
      <span id="job-eta">${running && j.progress ? `ETA ${fmtEta(j.progress.eta)}` : ''}</span>
      ${running ? `<button type="button" id="job-cancel" class="danger"${j.cancelling ? ' disabled' : ''}>Cancel</button>` : ''}
    </div>
    ${j.error ? `<p class="error">${esc(j.error)}</p>` : ''}
    ${running && j.previewSrc ? `<img id="job-preview" class="preview" src="${j.previewSrc}" alt="Live preview at step ${j.progress?.step ?? ''}">` : ''}
    <div class="results">${j.outputs.map((o) => `
      <figure class="result" data-index="${o.index}">
        <img src="${o.src ?? ''}" alt="Result ${o.index + 1}, seed ${o.seed}" class="result-img">
        <figcaption><pre class="infotext">${esc(o.infotext)}</pre>
          <div class="row wrap">
            <button type="button" data-act="reuse" data-index="${o.index}">Use these settings again</button>
            <button type="button" data-act="seed" data-index="${o.index}">Reuse seed</button>
            <button type="button" data-act="img2img" data-index="${o.index}">Send to img2img</button>
            <a href="${o.src ?? '#'}" download="${j.id}-${o.index}.png">Download</a>
          </div></figcaption>
      </figure>`).join('')}</div>`);
}

function update(j) {
  renderStrip();
  if (j.id === selected) renderJob();
}

async function finish(j) {
  const v = await getJson(`/v1/jobs/${j.id}`).catch(() => null);
  if (v) {
    j.state = v.state;
    if (v.error) j.error = `${v.error.code}: ${v.error.message}`;
    j.outputs = v.outputs.map((o) => ({ index: o.index, seed: o.seed, infotext: o.infotext, url: `/v1/gallery/${j.id}/${o.index}/image.png` }));
    update(j);
    for (const o of j.outputs) o.src = await imageUrl(o.url).catch(() => imageUrl(v.outputs[o.index].url));
    if (j.outputs[0]) hooks.done(j.outputs[j.outputs.length - 1]);
  }
  update(j);
}

/** Starts watching a submitted job. */
export function watchJob(id, prompt) {
  const j = { id, prompt, state: 'queued', progress: null, previews: 0, previewSrc: null, outputs: [], error: null, cancelling: false, abort: new AbortController() };
  jobs.set(id, j);
  selected = id;
  remember();
  update(j);
  let previewBusy = false;
  streamEvents(`/v1/jobs/${id}/events`, (ev) => {
    const d = ev.data;
    if (ev.event === 'started') j.state = 'running';
    else if (ev.event === 'progress') {
      j.state = 'running';
      j.progress = d;
      if (d.preview && !previewBusy) {
        previewBusy = true;
        imageUrl(d.preview).then((src) => {
          if (j.previewSrc?.startsWith('blob:')) URL.revokeObjectURL(j.previewSrc);
          j.previewSrc = src;
          j.previews++;
          update(j);
        }, () => undefined).finally(() => { previewBusy = false; });
      }
    } else if (ev.event === 'worker_lost') j.error = 'The worker was lost; the job is retried.';
    else if (TERMINAL_STATES.has(ev.event)) {
      j.state = ev.event;
      update(j);
      return false;
    }
    update(j);
    return true;
  }, j.abort.signal).catch((e) => { j.error = e.message; }).finally(() => finish(j));
}

async function cancel(id) {
  const j = jobs.get(id);
  if (!j || j.cancelling) return;
  j.cancelling = true;
  update(j);
  await api(`/v1/jobs/${id}`, { method: 'DELETE' }).catch((e) => {
    j.error = e.message;
    j.cancelling = false;
  });
  update(j);
}

export function initWatch() {
  $('queue').addEventListener('click', (e) => {
    const b = e.target.closest('[data-job]');
    if (!b) return;
    selected = b.dataset.job;
    renderStrip();
    renderJob();
  });
  $('job-view').addEventListener('click', async (e) => {
    const t = e.target;
    if (t.id === 'job-cancel') {
      await cancel(selected);
      return;
    }
    const act = t.dataset?.act;
    if (!act) return;
    const o = jobs.get(selected)?.outputs[Number(t.dataset.index)];
    if (!o) return;
    if (act === 'seed') hooks.seed(o.seed);
    else if (act === 'reuse') hooks.reuse((await pngInfo(await blobOf(o.url))).parameters);
    else if (act === 'img2img') hooks.toImg2img(await blobOf(o.url));
  });
}
