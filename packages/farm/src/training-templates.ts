/**
 * The prompt templates a training job may name, keyed by file name as A1111 keys its
 * `textual_inversion_templates/` folder: one prompt per line, `[name]` for the embedding's or hypernetwork's
 * name and `[filewords]` for the image's caption. The lines are Darkroom's own; what follows A1111 is the file
 * names, the format and the substitution, so a job may equally send its own `template_text`.
 */

const SUBJECTS = [
  'a photo of a [name]',
  'a close-up photo of a [name]',
  'a cropped photo of a [name]',
  'a bright photo of a [name]',
  'a dim photo of a [name]',
  'a rendering of a [name]',
  'a picture of the [name]',
  'a good photo of the [name]',
  'a photo of one [name]',
  'a blurry photo of the [name]',
  'a photo of a clean [name]',
  'a photo of a small [name]',
  'a photo of a large [name]',
];

const STYLES = [
  'a painting by [name]',
  'an illustration by [name]',
  'a drawing by [name]',
  'artwork by [name]',
  'a picture in the style of [name]',
  'a sketch by [name]',
  'a detailed painting by [name]',
  'a small painting by [name]',
  'a large painting by [name]',
  'a colourful painting by [name]',
  'a muted painting by [name]',
];

const lines = (xs: readonly string[]): string => `${xs.join('\n')}\n`;
const withFilewords = (xs: readonly string[]): string[] => xs.map((x) => `${x}, [filewords]`);

export const TRAINING_TEMPLATES = {
  'none.txt': lines(['a picture']),
  'style.txt': lines(STYLES),
  'style_filewords.txt': lines(withFilewords(STYLES)),
  'subject.txt': lines(SUBJECTS),
  'subject_filewords.txt': lines(withFilewords(SUBJECTS)),
  // A hypernetwork changes every prompt: its lines describe the image by its caption rather than by a name.
  'hypernetwork.txt': lines(SUBJECTS.map((x) => x.replace('[name]', '[filewords]'))),
} as const satisfies Record<string, string>;

export type TrainingTemplateName = keyof typeof TRAINING_TEMPLATES;
export const TRAINING_TEMPLATE_NAMES = Object.keys(TRAINING_TEMPLATES) as [TrainingTemplateName, ...TrainingTemplateName[]];
