// Updates a live view to new markup in place. A view that re-renders on every progress event must keep its nodes:
// a button replaced between a press and its release gets no click (the Cancel of a job whose previews arrive every
// step could not be clicked), an image replaced flickers, and a polite live region re-announces all of itself.

/** Makes `target`'s children match `html`, keeping every node whose tag (and id, where either has one) still fits. */
export function morph(target, html) {
  const tpl = document.createElement('template');
  tpl.innerHTML = html;
  morphChildren(target, tpl.content);
}

function fits(have, want) {
  return have.nodeType === want.nodeType && have.nodeName === want.nodeName
    && (have.nodeType !== Node.ELEMENT_NODE || have.id === want.id);
}

function morphChildren(into, from) {
  const wanted = [...from.childNodes];
  wanted.forEach((want, i) => {
    const have = into.childNodes[i];
    if (!have) into.appendChild(want);
    else if (fits(have, want)) morphNode(have, want);
    else into.replaceChild(want, have);
  });
  while (into.childNodes.length > wanted.length) into.lastChild.remove();
}

function morphNode(have, want) {
  if (have.nodeType !== Node.ELEMENT_NODE) {
    if (have.nodeValue !== want.nodeValue) have.nodeValue = want.nodeValue;
    return;
  }
  for (const a of [...have.attributes]) if (!want.hasAttribute(a.name)) have.removeAttribute(a.name);
  for (const a of want.attributes) if (have.getAttribute(a.name) !== a.value) have.setAttribute(a.name, a.value);
  morphChildren(have, want);
}
