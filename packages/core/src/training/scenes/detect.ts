/**
 * A detector written for the generated scenes, to measure whether a rendered image shows what its caption says:
 * the background from the image border (one colour, or two halves), objects as the connected regions that differ
 * from the background, each object's colour by a vote of its pixels' nearest palette colours, its position by
 * its centroid, and its shape by the best template match (intersection over union with each shape fitted to the
 * region's bounding box).
 */
import type { RgbImage } from './render.js';
import { insideShape } from './render.js';
import {
  backgroundColours,
  COLOURS,
  PALETTE,
  POSITION_CENTRE,
  POSITIONS,
  SHAPES,
  type Background,
  type Colour,
  type Position,
  type Scene,
  type Shape,
} from './scene.js';

export interface DetectedObject {
  readonly colour: Colour;
  readonly position: Position;
  readonly shape: Shape;
  /** Centroid as fractions of the image. */
  readonly centroid: readonly [number, number];
  /** Pixels in the region. */
  readonly area: number;
  /** The region's bounding box in pixels: [left, top, right, bottom), the box shapes are fitted to. */
  readonly box: PixelBox;
}

/** [left, top, right, bottom) in pixels. */
export type PixelBox = readonly [number, number, number, number];

export interface DetectedScene {
  readonly background: Background;
  /** Largest first. */
  readonly objects: readonly DetectedObject[];
}

/** A pixel belongs to an object when its colour is this far (RGB distance) from the background there. */
const OBJECT_DISTANCE = 60;
/** Regions smaller than this fraction of the image are noise. */
const MIN_AREA = 0.006;

function distance2(a: readonly number[], d: Uint8Array, i: number): number {
  const r = a[0]! - d[i]!;
  const g = a[1]! - d[i + 1]!;
  const b = a[2]! - d[i + 2]!;
  return r * r + g * g + b * b;
}

function nearestColour(d: Uint8Array, i: number): Colour {
  let best: Colour = COLOURS[0]!;
  let bestD = Infinity;
  for (const c of COLOURS) {
    const dd = distance2(PALETTE[c], d, i);
    if (dd < bestD) {
      bestD = dd;
      best = c;
    }
  }
  return best;
}

function majority(votes: readonly Colour[]): Colour {
  const counts = new Map<Colour, number>();
  for (const v of votes) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
}

/** The background from the two-pixel border: the halves' majority colours decide plain or split. */
export function detectBackground(img: RgbImage): Background {
  const { width: w, height: h, data } = img;
  const halves: Record<'left' | 'right' | 'top' | 'bottom', Colour[]> = { left: [], right: [], top: [], bottom: [] };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (x > 1 && y > 1 && x < w - 2 && y < h - 2) continue;
      const c = nearestColour(data, (y * w + x) * 3);
      halves[x < w / 2 ? 'left' : 'right'].push(c);
      halves[y < h / 2 ? 'top' : 'bottom'].push(c);
    }
  }
  const left = majority(halves.left);
  const right = majority(halves.right);
  const top = majority(halves.top);
  const bottom = majority(halves.bottom);
  if (left !== right && !(top !== bottom)) return { kind: 'split', colours: [left, right], direction: 'vertical' };
  if (top !== bottom && left === right) return { kind: 'split', colours: [top, bottom], direction: 'horizontal' };
  if (top !== bottom) {
    // Both pairs differ: the split is the one whose halves disagree more among the border pixels.
    return { kind: 'split', colours: [left, right], direction: 'vertical' };
  }
  return { kind: 'plain', colour: majority([...halves.left, ...halves.right]) };
}

function backgroundAt(bg: Background, u: number, v: number): Colour {
  if (bg.kind === 'plain') return bg.colour;
  const [a, b] = backgroundColours(bg) as [Colour, Colour];
  return (bg.direction === 'vertical' ? u : v) < 0.5 ? a : b;
}

/** Unit bounding box of each shape (radius 1), measured once on a fine grid. */
const SHAPE_BOXES: ReadonlyMap<Shape, readonly [number, number, number, number]> = new Map(
  SHAPES.map((s) => {
    let x0 = Infinity;
    let x1 = -Infinity;
    let y0 = Infinity;
    let y1 = -Infinity;
    for (let j = 0; j <= 400; j++) {
      for (let i = 0; i <= 400; i++) {
        const x = i / 200 - 1;
        const y = j / 200 - 1;
        if (!insideShape(s, x, y)) continue;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
    return [s, [x0, x1, y0, y1] as const];
  }),
);

function boundingBox(w: number, pixels: readonly number[]): PixelBox {
  let bx0 = Infinity;
  let bx1 = -Infinity;
  let by0 = Infinity;
  let by1 = -Infinity;
  for (const p of pixels) {
    const x = p % w;
    const y = (p - x) / w;
    bx0 = Math.min(bx0, x);
    bx1 = Math.max(bx1, x + 1);
    by0 = Math.min(by0, y);
    by1 = Math.max(by1, y + 1);
  }
  return [bx0, by0, bx1, by1];
}

/** Whether a point (px, py), in pixels, is inside `shape` stretched to fill `box`, as the detector fits it. */
export function fittedShape(shape: Shape, box: PixelBox): (px: number, py: number) => boolean {
  const [bx0, by0, bx1, by1] = box;
  const [x0, x1, y0, y1] = SHAPE_BOXES.get(shape)!;
  const sx = (bx1 - bx0) / (x1 - x0);
  const sy = (by1 - by0) / (y1 - y0);
  return (px, py) => insideShape(shape, (px - bx0) / sx + x0, (py - by0) / sy + y0);
}

/** The shape whose template, fitted to the region's bounding box, overlaps the region best. */
function matchShape(mask: Uint8Array, w: number, box: PixelBox): Shape {
  const [bx0, by0, bx1, by1] = box;
  let best: Shape = SHAPES[0]!;
  let bestIou = -1;
  for (const shape of SHAPES) {
    const inside = fittedShape(shape, box);
    let inter = 0;
    let union = 0;
    for (let y = by0; y < by1; y++) {
      for (let x = bx0; x < bx1; x++) {
        const t = inside(x + 0.5, y + 0.5);
        const m = mask[y * w + x] === 1;
        if (t && m) inter++;
        if (t || m) union++;
      }
    }
    const iou = union ? inter / union : 0;
    if (iou > bestIou) {
      bestIou = iou;
      best = shape;
    }
  }
  return best;
}

function nearestPosition(u: number, v: number): Position {
  let best: Position = 'centre';
  let bestD = Infinity;
  for (const p of POSITIONS) {
    const [cx, cy] = POSITION_CENTRE[p];
    const d = (u - cx) ** 2 + (v - cy) ** 2;
    if (d < bestD) {
      bestD = d;
      best = p;
    }
  }
  return best;
}

/** The background and the objects of an image, largest object first. */
export function detectScene(img: RgbImage): DetectedScene {
  const { width: w, height: h, data } = img;
  const background = detectBackground(img);
  const mask = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const bg = PALETTE[backgroundAt(background, (x + 0.5) / w, (y + 0.5) / h)];
      if (distance2(bg, data, i * 3) > OBJECT_DISTANCE * OBJECT_DISTANCE) mask[i] = 1;
    }
  }
  // 4-connected regions by flood fill.
  const label = new Int32Array(w * h).fill(-1);
  const regions: number[][] = [];
  for (let start = 0; start < w * h; start++) {
    if (!mask[start] || label[start] !== -1) continue;
    const pixels: number[] = [];
    const stack = [start];
    label[start] = regions.length;
    while (stack.length) {
      const p = stack.pop()!;
      pixels.push(p);
      const x = p % w;
      const next = [x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, p - w, p + w];
      for (const q of next) {
        if (q < 0 || q >= w * h || !mask[q] || label[q] !== -1) continue;
        label[q] = regions.length;
        stack.push(q);
      }
    }
    regions.push(pixels);
  }
  const objects = regions
    .filter((r) => r.length >= MIN_AREA * w * h)
    .sort((a, b) => b.length - a.length)
    .map((pixels): DetectedObject => {
      let sx = 0;
      let sy = 0;
      const votes: Colour[] = [];
      for (const p of pixels) {
        const x = p % w;
        sx += x + 0.5;
        sy += (p - x) / w + 0.5;
        votes.push(nearestColour(data, p * 3));
      }
      const centroid = [sx / pixels.length / w, sy / pixels.length / h] as const;
      const box = boundingBox(w, pixels);
      return {
        colour: majority(votes),
        position: nearestPosition(centroid[0], centroid[1]),
        shape: matchShape(mask, w, box),
        centroid,
        area: pixels.length,
        box,
      };
    });
  return { background, objects };
}

export interface SceneMatch {
  /** Every object's colour is right. */
  readonly colour: boolean;
  /** The background's colour(s) and layout are right. */
  readonly background: boolean;
  /** Every object is where the caption puts it (true when the caption does not say). */
  readonly position: boolean;
  readonly shape: boolean;
}

function sameBackground(a: Background, b: Background): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'plain' || b.kind === 'plain') return backgroundColours(a)[0] === backgroundColours(b)[0];
  return a.direction === b.direction && a.colours[0] === b.colours[0] && a.colours[1] === b.colours[1];
}

/**
 * Which facts of `scene` the image shows. Each expected object is matched to the detected object nearest its
 * stated place (the largest ones first when the position is not stated); a missing object fails everything.
 */
export function evaluateScene(img: RgbImage, scene: Scene, opts: { statesPosition?: boolean } = {}): SceneMatch {
  const detected = detectScene(img);
  const statesPosition = opts.statesPosition ?? true;
  const free = [...detected.objects];
  let colour = true;
  let position = true;
  let shape = true;
  for (const o of scene.objects) {
    if (free.length === 0) return { colour: false, background: sameBackground(detected.background, scene.background), position: false, shape: false };
    let k = 0;
    if (statesPosition) {
      const [cx, cy] = POSITION_CENTRE[o.position];
      const d = free.map((f) => (f.centroid[0] - cx) ** 2 + (f.centroid[1] - cy) ** 2);
      k = d.indexOf(Math.min(...d));
    }
    const f = free.splice(k, 1)[0]!;
    colour &&= f.colour === o.colour;
    shape &&= f.shape === o.shape;
    if (statesPosition) position &&= f.position === o.position;
  }
  return { colour, background: sameBackground(detected.background, scene.background), position, shape };
}
