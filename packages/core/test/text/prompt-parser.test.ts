import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  getLearnedConditioningPromptSchedules,
  getMulticondPromptList,
  getPromptSchedule,
  parsePromptAttention,
  splitAndParts,
} from '../../src/text/prompt-parser.js';
import { parseExtraNetworks } from '../../src/pipeline/extra-networks.js';
import { parsePyFloat, pyFloatRepr } from '../../src/text/python-compat.js';

test('attention: nesting multiplies in upstream order, unmatched closers are text', () => {
  assert.deepEqual(parsePromptAttention('a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).'), [
    ['a ', 1.0],
    ['house', 1.5730000000000004],
    [' ', 1.1],
    ['on', 1.0],
    [' a ', 1.1],
    ['hill', 0.55],
    [', sun, ', 1.1],
    ['sky', 1.4641000000000006],
    ['.', 1.1],
  ]);
  assert.deepEqual(parsePromptAttention('a)b]'), [['a)b]', 1.0]]);
  assert.deepEqual(parsePromptAttention('\\(x\\)'), [['(x)', 1.0]]);
  assert.deepEqual(parsePromptAttention(''), [['', 1.0]]);
  assert.deepEqual(parsePromptAttention('(a BREAK b:1.2)'), [['a', 1.2], ['BREAK', -1.2], ['b', 1.2]]);
  assert.deepEqual(parsePromptAttention('aBREAKb'), [['aBREAKb', 1.0]], 'BREAK needs word boundaries');
  assert.deepEqual(parsePromptAttention('éBREAK'), [['éBREAK', 1.0]], 'Unicode letters are word characters, as in Python');
});

test('attention: a malformed weight raises like float()', () => {
  assert.throws(() => parsePromptAttention('(word:1.2.3)'), { code: 'PROMPT_BAD_WEIGHT', message: "could not convert string to float: '1.2.3'" });
});

test('schedules: editing, alternation, hires offsets and old timelines', () => {
  assert.deepEqual(getPromptSchedule('a [b:3]', 10), [[3, 'a '], [10, 'a b']]);
  assert.deepEqual(getPromptSchedule('a[b:[c:d:2]:1]e', 10), [[1, 'abe'], [2, 'ace'], [10, 'ade']]);
  assert.deepEqual(getPromptSchedule('[fe|||]male', 4), [[1, 'female'], [2, 'male'], [3, 'male'], [4, 'male']]);
  assert.deepEqual(getPromptSchedule('[a|[b|c]]', 4), [[1, 'a'], [2, 'c'], [3, 'a'], [4, 'c']]);
  assert.deepEqual(getPromptSchedule('((a][:b:c [d:3]', 10), [[3, '((a][:b:c '], [10, '((a][:b:c d']]);
  // unparseable prompts are used literally
  assert.deepEqual(getPromptSchedule('pipe | outside [a:b:2]', 10), [[10, 'pipe | outside [a:b:2]']]);
  assert.deepEqual(getPromptSchedule('[a:b:2] trailing\\', 10), [[10, '[a:b:2] trailing\\']]);
  // fractions vs integers, hires pass: integers count from the start of the job, 1.0-2.0 spans the hires pass
  assert.deepEqual(getPromptSchedule('[a:b:0.5]', 20), [[10, 'a'], [20, 'b']]);
  assert.deepEqual(getPromptSchedule('[a:b:1.5]', 20, { hiresSteps: 10 }), [[5, 'a'], [10, 'b']]);
  assert.deepEqual(getPromptSchedule('[a:b:25]', 20, { hiresSteps: 10 }), [[5, 'a'], [10, 'b']]);
  assert.deepEqual(getPromptSchedule('[a:b:1.0]', 20, { useOldScheduling: true }), [[1, 'a'], [20, 'b']]);
  assert.deepEqual(getPromptSchedule('[a:b:1e1]', 20), [[10, 'a'], [20, 'b']], 'lark SIGNED_NUMBER accepts exponents');
  const batch = getLearnedConditioningPromptSchedules(['x', '[y:z:5]', 'x'], 8);
  assert.equal(batch[0], batch[2], 'identical prompts share one schedule');
});

test('AND: weights, shared flat indexes, leading whitespace kept', () => {
  assert.deepEqual(splitAndParts('a castle AND a dragon :0.6'), [['a castle', 1.0], [' a dragon', 0.6]]);
  assert.deepEqual(splitAndParts('weight without space:0.4'), [['weight without space', 0.4]]);
  assert.deepEqual(splitAndParts('bANDa'), [['bANDa', 1.0]]);
  const m = getMulticondPromptList(['cat', 'dog AND cat']);
  assert.deepEqual(m.promptFlatList, ['cat', 'dog', ' cat']);
  assert.deepEqual(m.resIndexes, [[{ index: 0, weight: 1 }], [{ index: 1, weight: 1 }, { index: 2, weight: 1 }]]);
});

test('extra-network tags are cut from the encoded text', () => {
  const r = parseExtraNetworks('a castle <hypernet:hn_relu_ln:0.8> and <lora:x:0.5:0.2>');
  assert.equal(r.text, 'a castle  and ');
  assert.deepEqual(r.calls, [{ kind: 'hypernet', items: ['hn_relu_ln', '0.8'] }, { kind: 'lora', items: ['x', '0.5', '0.2'] }]);
});

test('Python float parsing and repr', () => {
  assert.equal(parsePyFloat(' 1.5 '), 1.5);
  assert.equal(parsePyFloat('1.'), 1);
  assert.equal(parsePyFloat('.7'), 0.7);
  assert.equal(parsePyFloat('١٫٥'.replace('٫', '.')), 1.5, 'Unicode digits');
  assert.throws(() => parsePyFloat('.'), { code: 'PY_VALUE_ERROR' });
  assert.equal(pyFloatRepr(7), '7.0');
  assert.equal(pyFloatRepr(0.1 + 0.2), '0.30000000000000004');
  assert.equal(pyFloatRepr(1e16), '1e+16');
  assert.equal(pyFloatRepr(123456789012345.6), '123456789012345.6');
  assert.equal(pyFloatRepr(0.0001), '0.0001');
  assert.equal(pyFloatRepr(0.00001), '1e-05');
  assert.equal(pyFloatRepr(-2.5e-7), '-2.5e-07');
  assert.equal(pyFloatRepr(NaN), 'nan');
});
