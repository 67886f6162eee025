// What every page module needs of the document: an element by id, and text made safe to put in markup.

/** The element with this id (null when the page has none). */
export const $ = (id) => document.getElementById(id);

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `s` as text inside markup or a quoted attribute, whichever quote the attribute uses. */
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ENTITIES[c]);
