// Assets: the tenant's checkpoints, VAEs, embeddings (PNG ones with their picture), hypernetworks and LoRAs,
// listed and uploaded.
import { api, getJson, imageUrl } from './api.js';
import { $, esc } from './dom.js';

const size = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

let listing = 0; // bumps per listing, so a slower earlier one (another kind) never overwrites a later one

const hasPicture = (kind, i) => kind === 'embeddings' && /\.(png|webp)$/i.test(i.filename);

export async function listAssets() {
  const kind = $('asset-kind').value;
  const tbody = $('asset-list');
  const mine = ++listing;
  try {
    const { items } = await getJson(`/v1/${kind}`);
    if (mine !== listing) return;
    tbody.innerHTML = items.length
      ? items.map((i) => `<tr data-name="${esc(i.name)}"><td>${esc(i.name)}</td><td>${esc(i.filename)}</td><td>${i.size ? size(i.size) : ''}</td>
          <td>${hasPicture(kind, i) ? `<img class="asset-pic" alt="${esc(i.name)}" width="64" height="64">` : ''}</td></tr>`).join('')
      : '<tr><td colspan="4" class="muted">None yet.</td></tr>';
    // An embedding in a PNG is shown as the picture it was saved in; fetched with the key, as every image.
    for (const i of items.filter((x) => hasPicture(kind, x))) {
      const img = tbody.querySelector(`tr[data-name="${CSS.escape(i.name)}"] img`);
      imageUrl(`/v1/embeddings/${encodeURIComponent(i.name)}/image`).then((src) => { if (img) img.src = src; }, () => undefined);
    }
  } catch (e) {
    if (mine === listing) tbody.innerHTML = `<tr><td colspan="4" class="error">${esc(e.message)}</td></tr>`;
  }
}

export function initAssets(onUploaded) {
  $('asset-kind').addEventListener('change', () => void listAssets());
  $('asset-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = $('asset-file').files[0];
    const kind = $('asset-kind').value;
    if (!file) return;
    $('asset-status').textContent = `Uploading ${file.name}…`;
    try {
      await api(`/v1/${kind}/${encodeURIComponent(file.name)}`, {
        method: 'PUT', body: file, headers: { 'content-type': 'application/octet-stream' },
      });
      $('asset-status').textContent = `Uploaded ${file.name}.`;
      $('asset-file').value = '';
      await listAssets();
      onUploaded(kind);
    } catch (e) {
      $('asset-status').textContent = `Upload refused: ${e.message}`;
    }
  });
}
