// The tenant's gallery: pages of thumbnails loaded as the list scrolls into view, filters, and a viewer.
import { blobOf, getJson, imageUrl, pngInfo } from './api.js';
import { $, esc } from './dom.js';

let cursor = null;
let done = false;
let loading = false;
let generation = 0; // bumps on every reset, so a page that arrives after a new filter is dropped
const entries = new Map();
let onReuse = () => {};
let thumbObserver;

function query() {
  const p = new URLSearchParams({ limit: '40' });
  const q = $('gallery-q').value.trim();
  const model = $('gallery-model').value.trim();
  if (q) p.set('q', q);
  if (model) p.set('model', model);
  if ($('gallery-since').value) p.set('since', `${$('gallery-since').value}T00:00:00Z`);
  if ($('gallery-until').value) p.set('until', `${$('gallery-until').value}T23:59:59Z`);
  if (cursor) p.set('cursor', cursor);
  return p;
}

async function loadPage() {
  if (loading || done) return;
  loading = true;
  const gen = generation;
  try {
    const page = await getJson(`/v1/gallery?${query()}`);
    if (gen !== generation) return;
    $('gallery-count').textContent = `${page.total} image${page.total === 1 ? '' : 's'}`;
    const ul = $('gallery');
    for (const e of page.items) {
      entries.set(e.cursor, e);
      const li = document.createElement('li');
      li.innerHTML = `<button type="button" class="thumb" data-cursor="${esc(e.cursor)}" title="${esc(e.prompt)}">
        <img alt="${esc(e.prompt || 'untitled')}" data-src="${esc(e.thumb_url)}" width="160" height="160"></button>`;
      ul.append(li);
      thumbObserver.observe(li.querySelector('img'));
    }
    cursor = page.next_cursor;
    done = !cursor;
    $('gallery-end').textContent = done ? (page.total ? 'That is everything.' : 'No images yet.') : '';
  } catch (e) {
    $('gallery-end').textContent = `Could not load the gallery: ${e.message}`;
  } finally {
    loading = false;
  }
  // The end marker may still be in view after a page (a tall screen): the observer will not fire again for
  // it, so ask for the next page here.
  if (!done && gen === generation && nearEnd()) void loadPage();
}

function nearEnd() {
  const end = $('gallery-end');
  return end.offsetParent !== null && end.getBoundingClientRect().top < window.innerHeight + 400;
}

export function resetGallery() {
  generation++;
  cursor = null;
  done = false;
  loading = false;
  entries.clear();
  $('gallery').replaceChildren();
  $('gallery-count').textContent = '';
  return loadPage();
}

async function openViewer(e) {
  const dlg = $('viewer');
  $('viewer-title').textContent = e.prompt ? e.prompt.slice(0, 80) : 'Image';
  $('viewer-info').textContent = e.infotext || '(no parameters)';
  $('viewer-img').alt = e.prompt || 'image';
  $('viewer-img').src = '';
  dlg.dataset.cursor = e.cursor;
  dlg.showModal();
  const src = await imageUrl(e.image_url);
  $('viewer-img').src = src;
  $('viewer-download').href = src;
  $('viewer-download').download = `${e.id}-${e.index}.png`;
}

export function initGallery(reuse) {
  onReuse = reuse;
  // Thumbnails load only as they come into view: the first load of a large gallery costs one page of JSON.
  thumbObserver = new IntersectionObserver((seen) => {
    for (const s of seen) {
      if (!s.isIntersecting) continue;
      thumbObserver.unobserve(s.target);
      imageUrl(s.target.dataset.src).then((src) => { s.target.src = src; }, () => { s.target.alt += ' (unavailable)'; });
    }
  }, { rootMargin: '200px' });
  new IntersectionObserver((seen) => { if (seen.some((s) => s.isIntersecting)) void loadPage(); }, { rootMargin: '400px' }).observe($('gallery-end'));
  $('gallery-filter').addEventListener('submit', (ev) => { ev.preventDefault(); void resetGallery(); });
  $('gallery').addEventListener('click', (ev) => {
    const b = ev.target.closest('[data-cursor]');
    const e = b && entries.get(b.dataset.cursor);
    if (e) void openViewer(e);
  });
  $('viewer-close').addEventListener('click', () => $('viewer').close());
  $('viewer-reuse').addEventListener('click', async () => {
    const e = entries.get($('viewer').dataset.cursor);
    if (!e) return;
    const info = await pngInfo(await blobOf(e.image_url));
    $('viewer').close();
    onReuse(info.parameters);
  });
}
