/**
 * One cancellation and one thread-failure shape for every layer: samplers, pipelines and the worker's threads
 * all read them from core's errors module.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DarkroomError, isCancelled, isDarkroomError, threadFailure, throwIfCancelled } from '../src/errors.js';

test('an aborted signal throws CANCELLED; an error the caller aborted with is thrown as it is', () => {
  assert.doesNotThrow(() => throwIfCancelled(undefined));
  assert.doesNotThrow(() => throwIfCancelled(new AbortController().signal));
  const plain = new AbortController();
  plain.abort();
  assert.throws(() => throwIfCancelled(plain.signal), (e: unknown) => isCancelled(e) && isDarkroomError(e, 'CANCELLED'));
  const own = new AbortController();
  const reason = new Error('interrupted');
  own.abort(reason);
  assert.throws(() => throwIfCancelled(own.signal), (e: unknown) => e === reason && !isCancelled(e));
  const nonError = new AbortController();
  nonError.abort('user pressed stop');
  assert.throws(() => throwIfCancelled(nonError.signal), (e: unknown) => isCancelled(e) && (e as DarkroomError).details.reason === 'user pressed stop');
});

test('a thread reports a typed refusal as final and anything else as retryable under its fallback code', () => {
  assert.deepEqual(threadFailure(new DarkroomError('PROMPT_BAD', 'no'), 'RENDER_FAILED'), { code: 'PROMPT_BAD', message: 'no', retryable: false });
  assert.deepEqual(threadFailure(new RangeError('out of memory'), 'RENDER_FAILED'), { code: 'RENDER_FAILED', message: 'out of memory', retryable: true });
  assert.deepEqual(threadFailure('a string', 'COMPOSE_FAILED'), { code: 'COMPOSE_FAILED', message: 'a string', retryable: true });
});
