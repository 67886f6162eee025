import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import type { Txt2ImgParams } from '../../src/pipeline/params.js';
import { planScript, scriptArgsFromA1111 } from '../../src/index.js';
import { shlexSplit } from '../../src/scripts/python-shlex.js';

const base: Txt2ImgParams = { prompt: 'oil painting', negative_prompt: 'blurry', seed: 10, steps: 5, width: 64, height: 64, batch_size: 2, n_iter: 3, sampler_name: 'Euler' };

test('shlex.split as Python splits (expected words from Python 3 shlex)', () => {
  assert.deepEqual(shlexSplit('--prompt "a cat" --steps 12'), ['--prompt', 'a cat', '--steps', '12']);
  assert.deepEqual(shlexSplit('a b\\ c "d e"f \'g\\h\''), ['a', 'b c', 'd ef', 'g\\h']);
  assert.deepEqual(shlexSplit('--negative_prompt "x \\"y\\"" --cfg_scale 4.5'), ['--negative_prompt', 'x "y"', '--cfg_scale', '4.5']);
  assert.deepEqual(shlexSplit('x"y z"w'), ['xy zw']);
  assert.deepEqual(shlexSplit('"a\\\\b"'), ['a\\b']);
  assert.throws(() => shlexSplit("--prompt it's fine"), (e) => isDarkroomError(e, 'SHLEX_ERROR') && e.message === 'No closing quotation');
});

test('one cell per non-blank line; plain lines are prompts put before (or after) the request prompt with a space', () => {
  const o = scriptArgsFromA1111('prompts from file or textbox', [false, false, 'start', '  a red fox \n\n\tblue sky\r\n']);
  const plan = planScript('prompts from file or textbox', o, base);
  assert.deepEqual(plan.cells.map((c) => c.params.prompt), ['a red fox oil painting', 'blue sky oil painting']);
  assert.ok(plan.cells.every((c) => c.params.negative_prompt === 'blurry' && c.params.seed === 10 && c.params.n_iter === 3));
  assert.deepEqual(plan.outputs, [{ kind: 'cell-all', cell: 0 }, { kind: 'cell-all', cell: 1 }]);
  assert.deepEqual(plan.layout.grids, []);
  const end = planScript('prompts from file or textbox', { ...o, promptPosition: 'end' }, base);
  assert.equal(end.cells[0]!.params.prompt, 'oil painting a red fox');
  const noBase = planScript('prompts from file or textbox', o, { ...base, prompt: '' });
  assert.equal(noBase.cells[1]!.params.prompt, 'blue sky');
});

test('--key value options with A1111 types; --prompt runs to the next option; a line that fails to parse is its own prompt', () => {
  const text = [
    '--prompt a "tiny cat" --negative_prompt dark --steps 7 --cfg_scale 4.5 --seed 77 --sampler_name k_euler_a --width 128 --tiling true',
    '--steps 3 --do_not_save_samples true --outpath_samples /tmp',
    '--prompt x --steps ten',
    '--bogus 1',
    '--sd_model v1-5 --subseed 3 --subseed_strength 0.25',
  ].join('\n');
  const plan = planScript('prompts from file or textbox', scriptArgsFromA1111('prompts from file or textbox', [false, false, 'start', text]), base);
  const [a, b, c, d, e] = plan.cells.map((x) => x.params);
  assert.equal(a!.prompt, 'a tiny cat oil painting');
  assert.equal(a!.negative_prompt, 'dark blurry');
  assert.deepEqual([a!.steps, a!.cfg_scale, a!.seed, a!.sampler_name, a!.width, a!.tiling], [7, 4.5, 77, 'Euler a', 128, true]);
  assert.deepEqual([b!.prompt, b!.steps, b!.seed], ['oil painting', 3, 10]);
  assert.equal(c!.prompt, '--prompt x --steps ten oil painting');
  assert.equal(c!.steps, 5);
  assert.equal(d!.prompt, '--bogus 1 oil painting');
  assert.deepEqual([e!.override_settings?.sd_model_checkpoint, e!.subseed, e!.subseed_strength], ['v1-5', 3, 0.25]);
  assert.equal(plan.warnings.length, 2);
  assert.match(plan.warnings[1]!, /unknown commandline option: --bogus/);
  // An unknown sampler fails the job in A1111 ("bad sampler name"); here the plan is refused naming the line.
  assert.throws(
    () => planScript('prompts from file or textbox', { iterateSeed: false, sameSeedForAllLines: false, promptPosition: 'start', text: 'ok\n--sampler_name nope' }, base),
    (err) => isDarkroomError(err, 'SCRIPT_ARGS_INVALID') && err.details.field === 'script_args[3]' && /line 2/.test(err.message),
  );
});

test('seeds: -1 stays per cell unless a seed box is ticked; "Iterate seed every line" moves on by batch_size x n_iter', () => {
  const lines = 'one\ntwo\nthree';
  const random = () => 500;
  const loose = planScript('prompts from file or textbox', { iterateSeed: false, sameSeedForAllLines: false, promptPosition: 'start', text: lines }, { ...base, seed: -1 });
  assert.deepEqual(loose.cells.map((c) => c.params.seed), [-1, -1, -1]);
  const same = planScript('prompts from file or textbox', { iterateSeed: false, sameSeedForAllLines: true, promptPosition: 'start', text: lines }, { ...base, seed: -1 }, { randomSeed: random });
  assert.deepEqual(same.cells.map((c) => c.params.seed), [500, 500, 500]);
  const iterated = planScript('prompts from file or textbox', { iterateSeed: true, sameSeedForAllLines: false, promptPosition: 'start', text: 'one\n--seed 3\nthree' }, base);
  // A line's own --seed wins for that line; the running seed still moves on.
  assert.deepEqual(iterated.cells.map((c) => c.params.seed), [10, 3, 22]);
});

test('script_args: defaults for missing trailing ones, wrong types named by index', () => {
  assert.deepEqual(scriptArgsFromA1111('prompts from file or textbox', [true]), { iterateSeed: true, sameSeedForAllLines: false, promptPosition: 'start', text: '' });
  assert.throws(() => scriptArgsFromA1111('prompts from file or textbox', [false, false, 'middle']), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[2]');
  assert.throws(() => scriptArgsFromA1111('prompts from file or textbox', [false, false, 'end', ['a']]), (e) => isDarkroomError(e, 'SCRIPT_ARGS_INVALID') && e.details.field === 'script_args[3]');
});
