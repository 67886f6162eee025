import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDarkroomError } from '../../src/errors.js';
import { INVALID_SCHEDULE_MESSAGE, LearnRateScheduler, parseLearnSchedule, planLearnRates } from '../../src/training/learn-schedule.js';

function rejection(fn: () => unknown): { field: unknown; causeType: unknown; causeMessage: unknown } {
  try {
    fn();
  } catch (e) {
    assert.ok(isDarkroomError(e, 'TRAINING_SCHEDULE_INVALID'), String(e));
    assert.equal(e.message, INVALID_SCHEDULE_MESSAGE);
    return { field: e.details.field, causeType: e.details.causeType, causeMessage: e.details.causeMessage };
  }
  assert.fail('expected the schedule to be rejected');
}

test('items, steps clamped to max_steps, and parsing that stops at an open-ended item', () => {
  assert.deepEqual(parseLearnSchedule('0.005:5, 1e-3:12, 1e-5', 20, 0), [
    [0.005, 5],
    [0.001, 12],
    [1e-5, 20],
  ]);
  assert.deepEqual(parseLearnSchedule('0.005:4, 0.001:50, not parsed', 20, 0), [
    [0.005, 4],
    [0.001, 20],
  ]);
  assert.deepEqual(parseLearnSchedule('0.003:-1, junk', 10, 0), [[0.003, 10]]);
  assert.deepEqual(parseLearnSchedule('0.005, garbage', 10, 0), [[0.005, 10]]);
  assert.deepEqual(parseLearnSchedule('0.1:2:3, 0.5', 6, 0), [[0.1, 6]]);
});

test('Python number syntax: whitespace, signs, underscores, inf/nan, leading zeros', () => {
  assert.deepEqual(parseLearnSchedule('+0.00_5:0_4, .001:+6, 2.', 9, 0), [
    [0.005, 4],
    [0.001, 6],
    [2, 9],
  ]);
  assert.deepEqual(parseLearnSchedule('\t1E-3 :\n05 ,inf', 9, 0), [
    [0.001, 5],
    [Infinity, 9],
  ]);
  const [[nan]] = parseLearnSchedule('-NaN', 3, 0) as [[number, number]];
  assert.ok(Number.isNaN(nan));
});

test('resume drops passed items without reading their rate', () => {
  assert.deepEqual(parseLearnSchedule('0.005:5, 1e-3:12, 1e-5', 20, 5), [
    [0.001, 12],
    [1e-5, 20],
  ]);
  assert.deepEqual(parseLearnSchedule('bad:3, 0.01', 10, 5), [[0.01, 10]]);
});

test('errors carry the Python cause and the field', () => {
  assert.deepEqual(
    rejection(() => parseLearnSchedule('0.005:10.5', 20, 0)),
    { field: 'learn_rate', causeType: 'ValueError', causeMessage: "invalid literal for int() with base 10: '10.5'" },
  );
  assert.deepEqual(
    rejection(() => parseLearnSchedule('1e-3:1e3', 2000, 0, { field: 'clip_grad_value' })),
    { field: 'clip_grad_value', causeType: 'ValueError', causeMessage: "invalid literal for int() with base 10: '1e3'" },
  );
  assert.deepEqual(rejection(() => parseLearnSchedule('0.005:5, oops', 20, 0)).causeMessage, "could not convert string to float: ' oops'");
  assert.deepEqual(rejection(() => parseLearnSchedule(':100', 20, 0)).causeMessage, "could not convert string to float: ''");
  // The step is converted first, so its error wins over the rate's.
  assert.deepEqual(rejection(() => parseLearnSchedule('x:y', 20, 0)).causeMessage, "invalid literal for int() with base 10: 'y'");
  assert.deepEqual(rejection(() => parseLearnSchedule('0x10', 10, 0)).causeMessage, "could not convert string to float: '0x10'");
  assert.deepEqual(rejection(() => parseLearnSchedule('1__0', 10, 0)).causeMessage, "could not convert string to float: '1__0'");
  for (const empty of ['', ' , ,']) assert.deepEqual(rejection(() => parseLearnSchedule(empty, 10, 0)).causeType, 'AssertionError');
  assert.deepEqual(rejection(() => parseLearnSchedule('0.005:3', 10, 5)), { field: 'learn_rate', causeType: 'AssertionError', causeMessage: '' });
});

test('step advances one item per call and finishes without changing the rate', () => {
  const s = new LearnRateScheduler('0.1:2, 0.2:2, 0.3', 6);
  assert.equal(s.step(1), false);
  assert.equal(s.step(2), true);
  assert.deepEqual([s.learnRate, s.endStep], [0.2, 2]);
  assert.equal(s.step(2), true);
  assert.deepEqual([s.learnRate, s.endStep], [0.3, 6]);
  assert.equal(s.step(6), false);
  assert.equal(s.finished, true);
  assert.deepEqual([s.learnRate, s.endStep], [0.3, 6]);
});

test('training ends at the last end step, and gradient accumulation can skip an item', () => {
  const short = planLearnRates({ learnRate: '0.005:6, 0.001:10', maxSteps: 15, curStep: 0, gradientStep: 1 });
  assert.equal(short.optimizerSteps, 10);
  assert.equal(short.finalStep, 10);
  assert.deepEqual(
    short.steps.map((p) => p.lr),
    [...Array(6).fill(0.005), ...Array(4).fill(0.001)],
  );
  const gs1 = planLearnRates({ learnRate: '0.1:2, 0.2:2, 0.3', maxSteps: 6, curStep: 0, gradientStep: 1 });
  const gs2 = planLearnRates({ learnRate: '0.1:2, 0.2:2, 0.3', maxSteps: 6, curStep: 0, gradientStep: 2 });
  assert.equal(gs1.steps[2]!.lr, 0.2);
  assert.equal(gs2.steps[2]!.lr, 0.3);
});

test('a resumed optimizer keeps its restored rate until the schedule advances', () => {
  const plan = planLearnRates({ learnRate: '0.005:14, 0.001', maxSteps: 16, curStep: 12, gradientStep: 1, optimizerLr: 0.02 });
  assert.deepEqual(
    plan.steps.map((p) => [p.step, p.lr]),
    [
      [12, 0.02],
      [13, 0.02],
      [14, 0.001],
      [15, 0.001],
    ],
  );
});

test('the clip schedule keeps its last value after it runs out', () => {
  const plan = planLearnRates({ learnRate: '0.005', clipGradValue: '0.1:2, 0.05:3', maxSteps: 5, curStep: 0, gradientStep: 2 });
  assert.deepEqual(
    plan.steps.map((p) => [p.clip!.value, p.clip!.finished]),
    [
      [0.1, false],
      [0.1, false],
      [0.05, false],
      [0.05, true],
      [0.05, true],
    ],
  );
  assert.equal(rejection(() => planLearnRates({ learnRate: '0.1', clipGradValue: 'x', maxSteps: 5, curStep: 0, gradientStep: 1 })).field, 'clip_grad_value');
});
