// The one place the page talks to the API: every call carries the tenant's key, kept for this tab only.
const KEY = 'darkroom.key';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(v) { if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** fetch() against this origin with the key; JSON bodies are sent as JSON. Throws ApiError for non-2xx. */
export async function api(path, opts = {}) {
  const headers = new Headers(opts.headers ?? {});
  const key = opts.key ?? session.key;
  if (key) headers.set('authorization', `Bearer ${key}`);
  let body = opts.body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof ArrayBuffer) && !(body instanceof FormData) && typeof body !== 'string') {
    headers.set('content-type', 'application/json');
    body = JSON.stringify(body);
  }
  const res = await fetch(path, { method: opts.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, signal: opts.signal });
  if (!res.ok) {
    let err = { code: 'HTTP_' + res.status, message: res.statusText };
    try {
      const j = await res.json();
      if (j?.error) err = j.error;
      else if (j?.detail) err = { code: 'HTTP_' + res.status, message: String(j.detail) };
    } catch { /* not JSON */ }
    throw new ApiError(res.status, err.code, err.message, err.field);
  }
  return res;
}

export const getJson = async (path, opts) => (await api(path, opts)).json();

/**
 * Server-sent events over fetch (EventSource cannot send the key). Calls onEvent({id, event, data}) for each
 * event; comes back when the server ends the stream. Resumes after a dropped connection with Last-Event-ID.
 */
export async function streamEvents(path, onEvent, signal) {
  let lastId;
  for (let attempt = 0; attempt < 20 && !signal?.aborted; attempt++) {
    let ended = false;
    try {
      const headers = { accept: 'text/event-stream' };
      if (lastId) headers['last-event-id'] = lastId;
      const res = await api(path, { headers, signal });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const ev = { id: undefined, event: 'message', data: '' };
          for (const line of block.split('\n')) {
            const m = /^(\w+): ?(.*)$/.exec(line);
            if (!m) continue;
            if (m[1] === 'id') ev.id = m[2];
            else if (m[1] === 'event') ev.event = m[2];
            else if (m[1] === 'data') ev.data += m[2];
          }
          if (!ev.data) continue;
          if (ev.id) lastId = ev.id;
          if (onEvent({ ...ev, data: JSON.parse(ev.data) }) === false) ended = true;
        }
      }
      return;
    } catch (e) {
      if (signal?.aborted || ended) return;
      if (e instanceof ApiError && e.status < 500 && e.status !== 429) throw e;
    }
    await new Promise((r) => setTimeout(r, 1000 + attempt * 500));
  }
}

/**
 * An <img>-ready URL: a presigned storage URL is used as it is; one of this API's own URLs is fetched with
 * the key and handed over as a blob: URL (an <img> cannot send an Authorization header).
 */
export async function imageUrl(url) {
  const u = new URL(url, location.href);
  const own = u.origin === location.origin || (u.pathname.startsWith('/v1/') && !/X-Amz-Signature/i.test(u.search));
  if (!own) return u.href;
  const res = await api(u.pathname + u.search);
  return URL.createObjectURL(await res.blob());
}

export async function blobOf(url) {
  const u = new URL(url, location.href);
  const own = u.origin === location.origin || (u.pathname.startsWith('/v1/') && !/X-Amz-Signature/i.test(u.search));
  const res = own ? await api(u.pathname + u.search) : await fetch(u.href);
  return res.blob();
}

export function blobToBase64(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

/** A1111's png-info on any PNG: the parameters parsed by the server's one infotext parser. */
export async function pngInfo(blob) {
  return getJson('/sdapi/v1/png-info', { body: { image: await blobToBase64(blob) } });
}

/** The states (and stream events) after which a job or training changes no more. */
export const TERMINAL_STATES = new Set(['completed', 'failed', 'cancelled']);
