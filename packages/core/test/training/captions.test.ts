import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDarkroomError } from '../../src/errors.js';
import { encodePng } from '../../src/formats/png.js';
import { captionFileName, chooseTemplateLine, createText, filenameText, splitExtension, templateLines } from '../../src/training/captions.js';
import { readCaptionFile, scanDatasetFiles } from '../../src/training/dataset-files.js';
import { compilePyRegex } from '../../src/training/python-regex.js';

const plain = { wordRegex: '', joinString: ' ' };

test('file names lose their last extension and leading numbering', () => {
  assert.equal(filenameText('photo.2.png', null, plain), 'photo.2');
  assert.equal(filenameText('007 -blue_cube,shiny.png', null, plain), '-blue_cube,shiny');
  assert.equal(filenameText('-5-night sky.png', null, plain), 'night sky');
  assert.equal(filenameText('1.png', null, plain), '');
  assert.equal(filenameText('٣٤ arabic digits.png', null, plain), 'arabic digits');
  assert.equal(filenameText('.hidden', null, plain), '.hidden');
  assert.deepEqual(splitExtension('..png'), ['..png', '']);
  assert.deepEqual(splitExtension('a.b.c'), ['a.b', '.c']);
  assert.equal(captionFileName('photo.2.png'), 'photo.2.txt');
});

test('a caption file wins, unstripped, with text-mode newlines', () => {
  assert.equal(filenameText('x.png', 'a [name] toy, wooden\n', plain), 'a [name] toy, wooden\n');
  assert.equal(filenameText('x.png', 'one\r\ntwo\r', { wordRegex: '\\w+', joinString: '-' }), 'one\ntwo\n');
  assert.equal(readCaptionFile('x.txt', new Uint8Array([0xef, 0xbb, 0xbf, 0x61, 0x0d, 0x0a])), '\ufeffa\n');
  assert.throws(() => readCaptionFile('x.txt', new Uint8Array([0xff])), { code: 'TRAINING_CAPTION_UNREADABLE' });
});

test('the word regex keeps its matches and joins them', () => {
  assert.equal(filenameText('007 -blue_cube,shiny.png', null, { wordRegex: '\\w+', joinString: ' ' }), 'blue_cube shiny');
  assert.equal(filenameText('a_red_ball (3).png', null, { wordRegex: '[a-zA-Z]+', joinString: '_' }), 'a_red_ball');
  assert.equal(filenameText('-5-night sky.png', null, { wordRegex: '[a-z]+', joinString: '' }), 'nightsky');
  assert.equal(filenameText('Élève ½ x.png', null, { wordRegex: '\\w+', joinString: '|' }), 'Élève|½|x');
  assert.equal(filenameText('tag-one tag-two.png', null, { wordRegex: 'tag-(\\w+)', joinString: '+' }), 'one+two');
  assert.equal(filenameText('a b.png', null, { wordRegex: '\\w+', joinString: null }), 'ab');
  assert.throws(() => filenameText('ab.png', null, { wordRegex: '(a)(b)', joinString: ' ' }), { code: 'TRAINING_WORD_REGEX_INVALID' });
  try {
    filenameText('x.png', null, { wordRegex: '[a-', joinString: ' ' });
    assert.fail('expected an error');
  } catch (e) {
    assert.ok(isDarkroomError(e, 'TRAINING_WORD_REGEX_INVALID'));
    assert.equal(e.details.field, 'dataset_filename_word_regex');
    assert.match(String(e.details.cause), /unterminated character set/);
  }
});

test('Python findall semantics the JavaScript engine does not share', () => {
  const findall = (p: string, s: string): unknown => compilePyRegex(p).findall(s);
  // A non-empty match may start where an empty one ended.
  assert.deepEqual(findall('^|\\w+', 'foo bar'), ['', 'foo', 'bar']);
  assert.deepEqual(findall('\\w*', 'ab c'), ['ab', '', 'c', '']);
  // `.` stops only at \n; `$` also matches before a final newline.
  assert.deepEqual(findall('.', 'a\rb\u2028'), ['a', '\r', 'b', '\u2028']);
  assert.deepEqual(findall('\\w$', 'ab\n'), ['b']);
  // \s is Python's whitespace; \b is Unicode-aware.
  assert.deepEqual(findall('\\s', 'a\u001cb\u0085c\ufeff'), ['\u001c', '\u0085']);
  assert.deepEqual(findall('\\bé\\w*', 'café école'), ['école']);
  assert.deepEqual(findall('[^\\W\\d_]+', 'ab12_cd'), ['ab', 'cd']);
  assert.deepEqual(findall('a{,2}', 'aaa'), ['aa', 'a', '']);
  assert.deepEqual(findall('a{}', 'a{}'), ['a{}']);
  assert.deepEqual(findall('(?x) \\w + # words', 'hi there'), ['hi', 'there']);
  assert.deepEqual(findall('(?i)[a-z]+', 'ABC def'), ['ABC', 'def']);
  assert.deepEqual(findall('(?a)\\w+', 'éa1'), ['a1']);
  assert.deepEqual(findall('(a)|b', 'ab'), ['a', '']);
  assert.deepEqual(findall('(?P<c>\\w)(?P=c)', 'aabcc'), ['a', 'c']);
  assert.deepEqual(findall('$', '😀a😀'), ['']);
  for (const bad of ['\\q', 'a**', '*a', '(?i:a)', '[z-a]', '(', '\\1(a)', 'x(?i)y']) {
    assert.throws(() => compilePyRegex(bad), { code: 'PY_REGEX_ERROR' }, bad);
  }
});

test('template lines follow readlines() and strip()', () => {
  assert.deepEqual(templateLines('a photo of [name]\n   padded   \n\n'), ['a photo of [name]', 'padded', '']);
  assert.deepEqual(templateLines('no newline'), ['no newline']);
  assert.deepEqual(templateLines('one\r\ntwo\rthree\u2028four'), ['one', 'two', 'three\u2028four']);
  assert.deepEqual(templateLines(''), []);
  assert.deepEqual(templateLines('\n'), ['']);
});

test('create_text fills [filewords] before [name]', () => {
  assert.equal(createText('a [name], [filewords]', 'a [name] toy', 'emb-x'), 'a emb-x, a emb-x toy');
  assert.equal(createText('[filewords] and [filewords]', 'x,y', 'p'), 'x,y and x,y');
  assert.equal(createText('$& [name]', '$1', 'p$&'), '$& p$&');
  // Drop-out keeps a tag when the draw exceeds the rate; shuffle swaps from the end.
  const draws = [0.9, 0.1, 0.6];
  assert.equal(createText('[filewords]', 'a,b,c', 'p', { tagDropOut: 0.5, random: () => draws.shift()! }), 'a,c');
  const swaps = [0, 0];
  assert.equal(createText('[filewords]', 'a,b,c', 'p', { shuffleTags: true, random: () => swaps.shift()! }), 'b,c,a');
  assert.throws(() => createText('[filewords]', 'a', 'p', { shuffleTags: true }), { code: 'BAD_PARAMS' });
  assert.equal(chooseTemplateLine(['x', 'y'], () => 0.99), 'y');
  assert.throws(() => chooseTemplateLine([], () => 0), { code: 'TRAINING_TEMPLATE_EMPTY' });
});

test('a folder scan keeps images, reads their captions and skips the rest', () => {
  const png = encodePng({ width: 1, height: 1, channels: 3, data: new Uint8Array([1, 2, 3]) });
  const text = (s: string): Uint8Array => new TextEncoder().encode(s);
  const scan = scanDatasetFiles(
    [
      { name: 'b.png', bytes: png },
      { name: 'b.txt', bytes: text('caption\n') },
      { name: '01 a.png', bytes: png },
      { name: 'broken.png', bytes: text('not a png') },
    ],
    plain,
  );
  assert.deepEqual(
    scan.images.map((e) => [e.file, e.filenameText]),
    [
      ['01 a.png', 'a'],
      ['b.png', 'caption\n'],
    ],
  );
  assert.deepEqual(scan.skipped.map((s) => s.file).sort(), ['b.txt', 'broken.png']);
});
