/**
 * Scenes rendered into RGB pixels: each pixel's colour is the average over a 4x4 grid of sub-pixel samples
 * (anti-aliased edges), shapes painted in order over the background.
 */
import { backgroundColours, PALETTE, POSITION_CENTRE, SIZE_RADIUS, type Background, type Colour, type Scene, type Shape } from './scene.js';

/** An 8-bit RGB image, rows top to bottom, channels interleaved. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

const SUBSAMPLES = 4;

function polygon(points: ReadonlyArray<readonly [number, number]>, x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const [xi, yi] = points[i]!;
    const [xj, yj] = points[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Vertices at `radii` (cycled) around the unit circle, the first pointing up. */
function star(count: number, radii: readonly number[]): Array<[number, number]> {
  return Array.from({ length: count }, (_, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / count;
    const r = radii[i % radii.length]!;
    return [r * Math.cos(a), r * Math.sin(a)] as [number, number];
  });
}

const TRIANGLE = star(3, [1]).map(([x, y]) => [x, y + 0.15] as [number, number]);
const STAR = star(10, [1, 0.45]);

/** Whether (x, y), relative to the shape's centre in units of its radius (y down), is inside the shape. */
export function insideShape(shape: Shape, x: number, y: number): boolean {
  switch (shape) {
    case 'circle':
      return x * x + y * y <= 1;
    case 'ring': {
      const d = x * x + y * y;
      return d <= 1 && d >= 0.55 * 0.55;
    }
    case 'square':
      return Math.abs(x) <= 0.8 && Math.abs(y) <= 0.8;
    case 'diamond':
      return Math.abs(x) + Math.abs(y) <= 1;
    case 'triangle':
      return polygon(TRIANGLE, x, y);
    case 'star':
      return polygon(STAR, x, y);
  }
}

function backgroundAt(bg: Background, u: number, v: number): Colour {
  if (bg.kind === 'plain') return bg.colour;
  const [a, b] = backgroundColours(bg) as [Colour, Colour];
  return (bg.direction === 'vertical' ? u : v) < 0.5 ? a : b;
}

/** Each object's centre and radius in pixels of a `width` x `height` image, in painting order. */
function placedObjects(scene: Scene, width: number, height: number) {
  const side = Math.min(width, height);
  return scene.objects.map((o) => {
    const [cx, cy] = POSITION_CENTRE[o.position];
    return { o, cx: cx * width, cy: cy * height, r: SIZE_RADIUS[o.size] * side };
  });
}

/**
 * Which object is painted at each pixel's centre, rows top to bottom: 0 for the background, i + 1 for
 * `scene.objects[i]` (the last one painted wins, as in renderScene).
 */
export function objectLabels(scene: Scene, width: number, height: number): Uint8Array {
  const labels = new Uint8Array(width * height);
  const objects = placedObjects(scene, width, height);
  for (let py = 0; py < height; py++) {
    for (let px = 0; px < width; px++) {
      for (const [i, ob] of objects.entries()) if (insideShape(ob.o.shape, (px + 0.5 - ob.cx) / ob.r, (py + 0.5 - ob.cy) / ob.r)) labels[py * width + px] = i + 1;
    }
  }
  return labels;
}

/** The scene at `width` x `height` pixels. */
export function renderScene(scene: Scene, width: number, height: number): RgbImage {
  const objects = placedObjects(scene, width, height);
  return paintOver(scene.background, width, height, (x, y) => {
    let colour: Colour | undefined;
    for (const ob of objects) if (insideShape(ob.o.shape, (x - ob.cx) / ob.r, (y - ob.cy) / ob.r)) colour = ob.o.colour;
    return colour;
  });
}

/**
 * `background` at `width` x `height` pixels with `colourAt(x, y)` (in pixels; undefined: the background there)
 * painted over it, each pixel the average of a 4x4 grid of sub-pixel samples: renderScene's anti-aliasing, for any
 * way of placing the objects.
 */
export function paintOver(background: Background, width: number, height: number, colourAt: (x: number, y: number) => Colour | undefined): RgbImage {
  const data = new Uint8Array(width * height * 3);
  const n = SUBSAMPLES * SUBSAMPLES;
  for (let py = 0; py < height; py++) {
    for (let px = 0; px < width; px++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let sy = 0; sy < SUBSAMPLES; sy++) {
        for (let sx = 0; sx < SUBSAMPLES; sx++) {
          const x = px + (sx + 0.5) / SUBSAMPLES;
          const y = py + (sy + 0.5) / SUBSAMPLES;
          const rgb = PALETTE[colourAt(x, y) ?? backgroundAt(background, x / width, y / height)];
          r += rgb[0]!;
          g += rgb[1]!;
          b += rgb[2]!;
        }
      }
      const i = (py * width + px) * 3;
      data[i] = Math.round(r / n);
      data[i + 1] = Math.round(g / n);
      data[i + 2] = Math.round(b / n);
    }
  }
  return { width, height, data };
}

/** (3, H, W) float32 in [-1, 1], the layout and range the VAE takes. */
export function imageToChw(img: RgbImage): Float32Array {
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = img.data[i * 3 + c]! / 127.5 - 1;
  return out;
}

/** The inverse of imageToChw, clamped to [0, 255]. */
export function chwToImage(chw: Float32Array, width: number, height: number): RgbImage {
  const plane = width * height;
  const data = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) data[i * 3 + c] = Math.max(0, Math.min(255, Math.round((chw[c * plane + i]! + 1) * 127.5)));
  }
  return { width, height, data };
}
