import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { applyStyleTexts, mergeStylePrompt, parseStylesCsv, readCsvRows } from '../../src/text/prompt-styles.js';

test('merge_prompts: {prompt} is replaced, other style texts appended after ", " with both sides stripped', () => {
  assert.equal(mergeStylePrompt('a photo of {prompt}, 35mm', 'a cat'), 'a photo of a cat, 35mm');
  assert.equal(mergeStylePrompt('{prompt} and {prompt}', 'x'), 'x and x');
  assert.equal(mergeStylePrompt(' oil painting ', ' a cat '), 'a cat, oil painting');
  assert.equal(mergeStylePrompt('oil painting', ''), 'oil painting');
  assert.equal(mergeStylePrompt('', ' a cat '), 'a cat', 'an empty style still strips the prompt, as A1111 does');
  assert.equal(applyStyleTexts('a cat', ['{prompt}, detailed', 'sepia']), 'a cat, detailed, sepia');
});

test('the styles CSV is read as Python csv (quotes, doubled quotes, newlines in quotes, skipinitialspace)', () => {
  assert.deepEqual(readCsvRows('a,"b, c", "d ""e"""\r\n\nf,"g\nh",\n'), [['a', 'b, c', 'd "e"'], ['f', 'g\nh', '']]);
  const styles = parseStylesCsv('\uFEFFname,prompt,negative_prompt\n"Film", "{prompt}, film grain", "blurry, lowres"\n#note,x,y\nFilm,grainy,\nBare,only prompt\n');
  assert.deepEqual(styles, [
    { name: 'Film', prompt: 'grainy', negative_prompt: '' },
    { name: 'Bare', prompt: 'only prompt', negative_prompt: '' },
  ]);
  assert.deepEqual(parseStylesCsv('name,text\nOld,old style\n'), [{ name: 'Old', prompt: 'old style', negative_prompt: '' }]);
  assert.throws(() => parseStylesCsv('prompt\nx\n'), (e: unknown) => isDarkroomError(e, 'STYLES_BAD_CSV'));
  assert.throws(() => parseStylesCsv('name,prompt\n"open,x\n'), (e: unknown) => isDarkroomError(e, 'STYLES_BAD_CSV'));
});
