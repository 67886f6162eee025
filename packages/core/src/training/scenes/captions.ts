/**
 * Captions of a scene in varied plain-English phrasings, drawn deterministically, so that the prompts people
 * write ("a red circle on a blue background", "red circle, blue background", "a small red circle on the left")
 * all look like something the model saw. A caption says which optional facts (size, position) it states; the
 * evaluation checks only what the caption says.
 */
import { KeyedStream } from '../keyed-random.js';
import { COLOURS, SHAPES, SIZES, type Background, type Position, type Scene, type SceneObject } from './scene.js';

export interface Caption {
  readonly text: string;
  /** Whether each object's size and position are stated. */
  readonly statesSize: boolean;
  readonly statesPosition: boolean;
}

const WHERE: Record<Position, readonly string[]> = {
  left: ['on the left', 'at the left'],
  right: ['on the right', 'at the right'],
  top: ['at the top', 'near the top'],
  bottom: ['at the bottom', 'near the bottom'],
  centre: ['in the centre', 'in the middle'],
};

function pick<T>(r: KeyedStream, xs: readonly T[]): T {
  return xs[r.below(xs.length)]!;
}

function backgroundWords(bg: Background): string {
  return bg.kind === 'plain' ? bg.colour : `${bg.colours[0]} and ${bg.colours[1]}`;
}

function objectPhrase(o: SceneObject, size: boolean, position: string | undefined, article: boolean): string {
  const words = [size ? o.size : undefined, o.colour, o.shape].filter(Boolean).join(' ');
  const noun = article ? `a ${words}` : words;
  return position ? `${noun} ${position}` : noun;
}

/** The templates: (objects phrase, background words) -> caption. */
const TEMPLATES: ReadonlyArray<(objects: string, bg: string) => string> = [
  (o, bg) => `${o}, ${bg} background`,
  (o, bg) => `${o} on a ${bg} background`,
  (o, bg) => `${o} on ${bg}`,
  (o, bg) => `${bg} background with ${o}`,
];

/**
 * A caption of `scene`, variant `index` of the stream `seed`. `full` states size and position always (the
 * evaluation prompts); otherwise each is stated about half the time, the position always where `alwaysPosition`.
 */
export function captionScene(scene: Scene, seed: number, index: number, full = false, alwaysPosition = false): Caption {
  const r = new KeyedStream(seed, 'caption', index);
  const statesSize = full || r.random() < 0.5;
  const statesPosition = full || scene.objects.length > 1 || r.random() < 0.6 || alwaysPosition;
  const article = full || r.random() < 0.7;
  const phrases = scene.objects.map((o) => objectPhrase(o, statesSize, statesPosition ? pick(r, WHERE[o.position]) : undefined, article));
  const objects = phrases.join(' and ');
  const template = full ? TEMPLATES[0]! : pick(r, TEMPLATES);
  return { text: template(objects, backgroundWords(scene.background)), statesSize, statesPosition };
}

/** Every word a caption can contain (lower case), for a vocabulary in which each is one token. */
export function captionWords(): string[] {
  const words = new Set<string>(['a', 'on', 'the', 'at', 'near', 'in', 'and', 'with', 'background']);
  for (const list of [COLOURS, SHAPES, SIZES]) for (const w of list) words.add(w);
  for (const phrases of Object.values(WHERE)) for (const p of phrases) for (const w of p.split(' ')) words.add(w);
  return [...words].sort();
}
