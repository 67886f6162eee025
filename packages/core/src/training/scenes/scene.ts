/**
 * The vocabulary of the procedural scenes the demo model is trained on: shapes, named colours, sizes, positions
 * and backgrounds, a scene drawn deterministically from (seed, index), and the held-out split of
 * (shape, colour, background) combinations kept for evaluation.
 */
import { keyedSeed, KeyedStream } from '../keyed-random.js';

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'ring', 'diamond'] as const;
export type Shape = (typeof SHAPES)[number];

/** Named colours far enough apart in RGB that a detector tells them apart in a blurry render. */
export const PALETTE = {
  red: [220, 40, 40],
  orange: [245, 145, 30],
  yellow: [245, 225, 40],
  green: [40, 170, 60],
  blue: [40, 80, 225],
  purple: [140, 55, 190],
  pink: [250, 140, 200],
  white: [245, 245, 245],
  black: [20, 20, 20],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Colour = keyof typeof PALETTE;
export const COLOURS = Object.keys(PALETTE) as Colour[];

export const SIZES = ['small', 'medium', 'large'] as const;
export type Size = (typeof SIZES)[number];
/** Circumradius of each size, as a fraction of the image side. */
export const SIZE_RADIUS: Record<Size, number> = { small: 0.13, medium: 0.19, large: 0.26 };

export const POSITIONS = ['left', 'right', 'top', 'bottom', 'centre'] as const;
export type Position = (typeof POSITIONS)[number];
/** Centre of an object at each position, as fractions of the image (x right, y down). */
export const POSITION_CENTRE: Record<Position, readonly [number, number]> = {
  left: [0.28, 0.5],
  right: [0.72, 0.5],
  top: [0.5, 0.28],
  bottom: [0.5, 0.72],
  centre: [0.5, 0.5],
};

export interface SceneObject {
  readonly shape: Shape;
  readonly colour: Colour;
  readonly size: Size;
  readonly position: Position;
}

/** A plain background, or two colours split into halves (`vertical`: left|right, `horizontal`: top/bottom). */
export type Background =
  | { readonly kind: 'plain'; readonly colour: Colour }
  | { readonly kind: 'split'; readonly colours: readonly [Colour, Colour]; readonly direction: 'vertical' | 'horizontal' };

export interface Scene {
  readonly objects: readonly SceneObject[];
  readonly background: Background;
}

export function backgroundColours(bg: Background): readonly Colour[] {
  return bg.kind === 'plain' ? [bg.colour] : bg.colours;
}

/** The combination the held-out split is made of: an object's shape and colour with the background's first colour. */
export function comboKey(o: Pick<SceneObject, 'shape' | 'colour'>, bg: Background): string {
  return `${o.shape}|${o.colour}|${backgroundColours(bg)[0]}`;
}

/** About one combination in `HELD_OUT_ONE_IN` is never shown in training (decided by a hash, so fixed forever). */
export const HELD_OUT_ONE_IN = 10;

export function isHeldOut(o: Pick<SceneObject, 'shape' | 'colour'>, bg: Background): boolean {
  return keyedSeed(0, 'held-out', ...[...comboKey(o, bg)].map((c) => c.charCodeAt(0))) % HELD_OUT_ONE_IN === 0;
}

export interface SceneOptions {
  /** Chance of a two-tone background (default 0.25). */
  readonly splitBackground?: number;
  /** Chance of a second object (default 0.25). */
  readonly twoObjects?: number;
}

function pick<T>(r: KeyedStream, xs: readonly T[]): T {
  return xs[r.below(xs.length)]!;
}

/** Positions two objects can take without overlapping, whatever their sizes. */
const APART: ReadonlyArray<readonly [Position, Position]> = [
  ['left', 'right'],
  ['top', 'bottom'],
];

/** Objects in two-object scenes are at most medium-sized so that they stay apart. */
function drawObject(r: KeyedStream, bgColours: readonly Colour[], position: Position, maxSize: number, avoid?: Colour): SceneObject {
  const colours = COLOURS.filter((c) => !bgColours.includes(c) && c !== avoid);
  return { shape: pick(r, SHAPES), colour: pick(r, colours), size: SIZES[r.below(maxSize)]!, position };
}

function drawBackground(r: KeyedStream, split: number): Background {
  const first = pick(r, COLOURS);
  if (r.random() >= split) return { kind: 'plain', colour: first };
  const second = pick(r, COLOURS.filter((c) => c !== first));
  return { kind: 'split', colours: [first, second], direction: r.random() < 0.5 ? 'vertical' : 'horizontal' };
}

function drawScene(r: KeyedStream, opts: SceneOptions): Scene {
  const background = drawBackground(r, opts.splitBackground ?? 0.25);
  const bg = backgroundColours(background);
  if (r.random() < (opts.twoObjects ?? 0.25)) {
    const [p, q] = pick(r, APART);
    const first = drawObject(r, bg, r.random() < 0.5 ? p : q, 2);
    const second = drawObject(r, bg, first.position === p ? q : p, 2, first.colour);
    return { objects: [first, second], background };
  }
  return { objects: [drawObject(r, bg, pick(r, POSITIONS), SIZES.length)], background };
}

/** Whether any object of `scene` shows a held-out combination. */
function showsHeldOut(scene: Scene): boolean {
  return scene.objects.some((o) => isHeldOut(o, scene.background));
}

/**
 * Training scene `index` of the dataset with `seed`: every object's (shape, colour, background) combination is
 * outside the held-out split (drawn again until it is).
 */
export function trainingScene(seed: number, index: number, opts: SceneOptions = {}): Scene {
  const r = new KeyedStream(seed, 'scene', index);
  for (;;) {
    const s = drawScene(r, opts);
    if (!showsHeldOut(s)) return s;
  }
}

/**
 * `scene` with its objects moved to the `variant`th of the positions it can take (0 to POSITIONS.length - 1), and
 * nothing else changed: a one-object scene's object goes to POSITIONS[variant]; a two-object scene's objects swap
 * places on odd variants. The members of a position group differ only in where the object is, so a caption's
 * position words are the only thing that tells them apart.
 */
export function atPositionVariant(scene: Scene, variant: number): Scene {
  const [first, second] = scene.objects;
  if (!first) return scene;
  if (!second) return { ...scene, objects: [{ ...first, position: POSITIONS[variant % POSITIONS.length]! }] };
  if (variant % 2 === 0) return scene;
  return { ...scene, objects: [{ ...first, position: second.position }, { ...second, position: first.position }] };
}

/**
 * `scene` with its first object made the `variant`th shape (SHAPES[variant], modulo their number), nothing else
 * changed. The members of a shape group differ only in that shape, so a caption's shape word is the only thing
 * that tells them apart.
 */
export function atShapeVariant(scene: Scene, variant: number): Scene {
  const [first, ...rest] = scene.objects;
  if (!first) return scene;
  return { ...scene, objects: [{ ...first, shape: SHAPES[variant % SHAPES.length]! }, ...rest] };
}

/**
 * Scene `index` of the dataset with `seed` to build a shape group on: drawn again until every shape variant of it
 * (atShapeVariant) stays outside the held-out split, so that no member of the group shows a held-out combination.
 */
export function shapeGroupScene(seed: number, index: number, opts: SceneOptions = {}): Scene {
  const r = new KeyedStream(seed, 'shape-group', index);
  for (;;) {
    const s = drawScene(r, opts);
    if (!SHAPES.some((_, v) => showsHeldOut(atShapeVariant(s, v)))) return s;
  }
}

/** Every held-out combination as a one-object scene on a plain background (size and position from the seed). */
export function heldOutScenes(seed: number): Scene[] {
  const out: Scene[] = [];
  for (const shape of SHAPES) {
    for (const colour of COLOURS) {
      for (const bgColour of COLOURS) {
        if (bgColour === colour) continue;
        const background: Background = { kind: 'plain', colour: bgColour };
        if (!isHeldOut({ shape, colour }, background)) continue;
        const r = new KeyedStream(seed, 'held-out-scene', out.length);
        out.push({ objects: [{ shape, colour, size: pick(r, SIZES), position: pick(r, POSITIONS) }], background });
      }
    }
  }
  return out;
}

/**
 * One-object scenes on a plain background whose combinations training does show, as many as heldOutScenes(seed)
 * has and with the same first shapes, so the two lists' rates compare fact by fact: a fact a model draws wrong on
 * both is one it has not learnt, not one it fails to carry to new combinations.
 */
export function seenScenes(seed: number): Scene[] {
  const r = new KeyedStream(seed, 'seen-scene');
  return heldOutScenes(seed).map(({ objects }) => {
    const shape = objects[0]!.shape;
    for (;;) {
      const colour = pick(r, COLOURS);
      const background: Background = { kind: 'plain', colour: pick(r, COLOURS.filter((c) => c !== colour)) };
      if (!isHeldOut({ shape, colour }, background)) return { objects: [{ shape, colour, size: pick(r, SIZES), position: pick(r, POSITIONS) }], background };
    }
  });
}
