// Assets: the tenant's checkpoints, embeddings and hypernetworks, listed and uploaded.
import { api, getJson } from './api.js';

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const size = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

export async function listAssets() {
  const kind = $('asset-kind').value;
  const tbody = $('asset-list');
  try {
    const { items } = await getJson(`/v1/${kind}`);
    tbody.innerHTML = items.length
      ? items.map((i) => `<tr><td>${esc(i.name)}</td><td>${esc(i.filename)}</td><td>${i.size ? size(i.size) : ''}</td></tr>`).join('')
      : '<tr><td colspan="3" class="muted">None yet.</td></tr>';
  } catch (e) {
    tbody.innerHTML = `<tr><td colspan="3" class="error">${esc(e.message)}</td></tr>`;
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
