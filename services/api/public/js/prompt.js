// Prompt fields: A1111's syntax highlighted under a transparent textarea, and names the tenant knows
// (embeddings, LoRAs, hypernetworks) completed as you type. Display only: the server parses the prompt.
import { esc } from './dom.js';

const span = (cls, text) => `<span class="${cls}">${esc(text)}</span>`;

/**
 * Tokens of A1111's prompt syntax: `(emphasis:1.2)`, `[de-emphasis]`, `[from:to:when]`, `<lora:name:w>` and
 * other extra networks, `BREAK`/`AND`, `\(` escapes, and whole words that are known embeddings.
 */
export function highlight(text, embeddings) {
  let out = '';
  let depth = 0;
  const brackets = []; // '(' or '[' for each open bracket, to colour a ':' inside [] as a schedule separator
  const re = /\\[()[\]\\]|<(lora|lyco|hypernet|hypernetwork)?:?[^<>]*>|\bBREAK\b|\bAND\b|:\s*-?\d*\.?\d+(?=\s*[)\]])|[()[\]]|:|[^\s()[\]<>:\\]+|\s+|./gy;
  let m;
  while ((m = re.exec(text))) {
    const t = m[0];
    if (t.startsWith('\\')) out += span('tk-esc', t);
    else if (t.startsWith('<')) out += span(m[1] ? 'tk-net' : 'tk-bad', t);
    else if (t === 'BREAK' || t === 'AND') out += span('tk-kw', t);
    else if (t === '(' || t === '[') {
      brackets.push(t);
      depth++;
      out += span(`tk-${t === '(' ? 'em' : 'de'} d${Math.min(depth, 4)}`, t);
    } else if (t === ')' || t === ']') {
      const open = brackets.pop();
      const ok = (open === '(' && t === ')') || (open === '[' && t === ']');
      out += span(ok ? `tk-${t === ')' ? 'em' : 'de'} d${Math.min(depth, 4)}` : 'tk-bad', t);
      depth = Math.max(0, depth - 1);
    } else if (t.startsWith(':')) {
      const inSchedule = brackets[brackets.length - 1] === '[';
      out += span(inSchedule ? 'tk-sched' : t.length > 1 ? 'tk-weight' : 'tk-colon', t);
    } else if (embeddings.has(t)) out += span('tk-emb', t);
    else out += esc(t);
  }
  // A trailing newline needs a character after it, or the overlay is one line short of the textarea.
  return out + '\n ';
}

/** What is being typed at the caret that can be completed, and the names that fit it. */
export function completionsAt(text, caret, names) {
  const before = text.slice(0, caret);
  const net = /<(lora|hypernet):([^:<>\s]*)$/.exec(before);
  if (net) {
    const pool = net[1] === 'lora' ? names.loras : names.hypernetworks;
    const stem = net[2].toLowerCase();
    return { start: caret - net[2].length, items: pool.filter((n) => n.toLowerCase().startsWith(stem)).slice(0, 20), suffix: ':1>' };
  }
  const word = /[\w.+-]{2,}$/.exec(before);
  if (!word) return null;
  const stem = word[0].toLowerCase();
  const items = [...names.embeddings].filter((n) => n.toLowerCase().startsWith(stem) && n !== word[0]).slice(0, 20);
  return items.length ? { start: caret - word[0].length, items, suffix: '' } : null;
}

/** Wires one prompt textarea to its overlay and the shared completion list. */
export function attachPrompt(textarea, list, names) {
  const overlay = textarea.parentElement.querySelector('.hl');
  let open = null; // { start, items, suffix, active }
  const paint = () => {
    overlay.innerHTML = highlight(textarea.value, names.embeddings);
    overlay.scrollTop = textarea.scrollTop;
  };
  const close = () => {
    open = null;
    list.hidden = true;
    textarea.removeAttribute('aria-activedescendant');
    textarea.setAttribute('aria-expanded', 'false');
  };
  const render = () => {
    list.innerHTML = open.items.map((n, i) => `<li role="option" id="cmp-${i}" aria-selected="${i === open.active}">${esc(n)}</li>`).join('');
    const r = textarea.getBoundingClientRect();
    list.style.left = `${r.left + window.scrollX}px`;
    list.style.top = `${r.bottom + window.scrollY}px`;
    list.style.minWidth = `${Math.min(r.width, 320)}px`;
    list.hidden = false;
    textarea.setAttribute('aria-expanded', 'true');
    textarea.setAttribute('aria-activedescendant', `cmp-${open.active}`);
    list.onmousedown = (e) => {
      const li = e.target.closest('li');
      if (!li) return;
      e.preventDefault();
      accept(Number(li.id.slice(4)));
    };
    list.owner = textarea;
  };
  const accept = (i) => {
    const name = open.items[i];
    const end = textarea.selectionStart;
    const v = textarea.value;
    const rest = v.slice(end);
    const suffix = open.suffix && !rest.startsWith(':') && !rest.startsWith('>') ? open.suffix : '';
    textarea.value = v.slice(0, open.start) + name + suffix + rest;
    const caret = open.start + name.length + suffix.length;
    textarea.setSelectionRange(caret, caret);
    close();
    paint();
  };
  const suggest = () => {
    const c = completionsAt(textarea.value, textarea.selectionStart, names);
    if (c?.items.length) {
      open = { ...c, active: 0 };
      render();
    } else close();
  };
  textarea.addEventListener('input', () => {
    paint();
    suggest();
  });
  textarea.addEventListener('scroll', () => { overlay.scrollTop = textarea.scrollTop; });
  textarea.addEventListener('blur', () => setTimeout(() => { if (list.owner === textarea) close(); }, 100));
  textarea.addEventListener('keydown', (e) => {
    if (!open) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      open.active = (open.active + (e.key === 'ArrowDown' ? 1 : open.items.length - 1)) % open.items.length;
      render();
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      if (e.ctrlKey || e.metaKey) return;
      e.preventDefault();
      accept(open.active);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      close();
    }
  });
  paint();
  // The known names arrive after the page opens and again after each upload, possibly while the user is typing:
  // the field being typed in then offers what is known now, not what was known at the last keystroke.
  const refresh = () => {
    paint();
    if (document.activeElement === textarea) suggest();
  };
  return { paint, refresh };
}
