// Inpainting: a mask painted over the img2img init image with a round brush (paint or erase), sent as A1111's
// `mask` (white repaints, black keeps). The canvas holds the init image's own pixel size, so the mask lines up with
// it whatever size the image is shown at.
import { $ } from './dom.js';

let canvas = null;
let painted = false;
let last = null; // the previous point of the stroke being drawn, in canvas pixels

const brush = () => Number($('mask-brush').value);
const erasing = () => $('mask-erase').checked;

function updateState() {
  $('mask-tools').dataset.painted = String(painted);
  $('mask-clear').disabled = !painted;
  $('mask-options').hidden = !painted;
}

/** Whether any pixel is masked: an erased-away stroke leaves nothing to inpaint. */
function anyMasked() {
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
  return false;
}

function toCanvas(e) {
  const r = canvas.getBoundingClientRect();
  return { x: ((e.clientX - r.left) / r.width) * canvas.width, y: ((e.clientY - r.top) / r.height) * canvas.height };
}

/** The brush is sized in screen pixels, as a person sees it, and drawn at the image's own scale. */
function brushPixels() {
  const r = canvas.getBoundingClientRect();
  return Math.max(1, (brush() * canvas.width) / Math.max(1, r.width));
}

function stroke(from, to) {
  const g = canvas.getContext('2d');
  g.globalCompositeOperation = erasing() ? 'destination-out' : 'source-over';
  g.strokeStyle = '#fff';
  g.fillStyle = '#fff';
  g.lineCap = 'round';
  g.lineJoin = 'round';
  g.lineWidth = brushPixels();
  g.beginPath();
  if (from.x === to.x && from.y === to.y) {
    g.arc(to.x, to.y, g.lineWidth / 2, 0, Math.PI * 2);
    g.fill();
  } else {
    g.moveTo(from.x, from.y);
    g.lineTo(to.x, to.y);
    g.stroke();
  }
}

/** Paint the whole image (keyboard users' way to an inpaint of everything, or a start for erasing). */
function fill() {
  const g = canvas.getContext('2d');
  g.globalCompositeOperation = 'source-over';
  g.fillStyle = '#fff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  painted = true;
  updateState();
}

export function clearMask() {
  if (canvas) canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  painted = false;
  updateState();
}

/** Sizes the canvas to a newly chosen init image (and drops the old mask), or hides it with none. */
export function maskForImage(img) {
  clearMask();
  $('mask-tools').hidden = !img;
  if (!img) return;
  const size = () => {
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
  };
  if (img.complete && img.naturalWidth) size();
  else img.addEventListener('load', size, { once: true });
}

/** The mask as a PNG data URL (black everywhere not painted), or null when nothing is painted. */
export async function readMask() {
  if (!canvas || !painted || !anyMasked()) return null;
  const out = document.createElement('canvas');
  out.width = canvas.width;
  out.height = canvas.height;
  const g = out.getContext('2d');
  g.fillStyle = '#000';
  g.fillRect(0, 0, out.width, out.height);
  g.drawImage(canvas, 0, 0);
  return out.toDataURL('image/png');
}

export function initMask() {
  canvas = $('mask-canvas');
  canvas.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    last = toCanvas(e);
    stroke(last, last);
    if (!erasing()) painted = true;
    updateState();
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = toCanvas(e);
    stroke(last, p);
    last = p;
  });
  const end = () => { last = null; };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  const size = () => { $('mask-brush-value').textContent = `${brush()} px`; };
  $('mask-brush').addEventListener('input', size);
  size();
  // A1111's keys for the brush: [ and ] make it smaller and larger while the canvas has focus.
  canvas.addEventListener('keydown', (e) => {
    if (e.key !== '[' && e.key !== ']') return;
    e.preventDefault();
    const b = $('mask-brush');
    b.value = String(Math.min(Number(b.max), Math.max(Number(b.min), brush() + (e.key === ']' ? 4 : -4))));
    size();
  });
  $('mask-fill').addEventListener('click', fill);
  $('mask-clear').addEventListener('click', clearMask);
  updateState();
}

/** The inpainting fields A1111's img2img takes beside the mask. */
export function maskFields() {
  return {
    mask_blur: Number($('mask_blur').value),
    inpainting_fill: Number($('inpainting_fill').value),
    inpaint_full_res: $('inpaint_full_res').value === 'masked',
    inpaint_full_res_padding: Number($('inpaint_full_res_padding').value),
    inpainting_mask_invert: $('inpainting_mask_invert').checked ? 1 : 0,
  };
}
