/**
 * A failed job's error crosses Redis as one envelope (jobFailure writes it, splitFailedReason reads it) and becomes
 * an HTTP status in one place (failedJobError): something the request named and that is missing is 404, an untyped
 * failure 500, any other refusal 422.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UnrecoverableError } from 'bullmq';
import { DarkroomError } from '@darkroom/core/errors.js';
import { failedJobError, FarmError } from '../src/errors.js';
import { CANCELLED_REASON, jobFailure, splitFailedReason } from '../src/jobs.js';

test('a missing model, VAE, embedding, hypernetwork or upscaler is a 404', () => {
  for (const code of ['MODEL_NOT_FOUND', 'VAE_NOT_FOUND', 'EMBEDDING_NOT_FOUND', 'HYPERNETWORK_NOT_FOUND', 'UPSCALER_NOT_FOUND']) {
    const e = failedJobError(code, `no ${code}`);
    assert.ok(e instanceof FarmError);
    assert.deepEqual([e.code, e.status, e.message], [code, 404, `no ${code}`]);
  }
});

test('an untyped failure after every retry is ours (500); a typed refusal of the content is 422', () => {
  assert.equal(failedJobError('RENDER_FAILED', 'boom').status, 500);
  for (const code of ['PROMPT_TOO_LONG', 'LORA_BAD_FILE', 'INPUT_MISSING', 'JOB_QUARANTINED']) assert.equal(failedJobError(code, 'x').status, 422);
});

test('the status is chosen by the whole code, not its ending', () => {
  // A code that only ends like a missing thing's is not one.
  assert.equal(failedJobError('FILE_NOT_FOUND_IN_ZIP', 'x').status, 422);
  assert.equal(failedJobError('SOMETHING_NOT_FOUND', 'x').status, 422);
});

test('a failure crosses Redis as its envelope: code, message and field come back as they left', () => {
  const withField = jobFailure(new DarkroomError('VAE_NOT_FOUND', 'VAE "x" is gone: a: b', { field: 'override_settings.sd_vae' }));
  assert.ok(withField instanceof UnrecoverableError, 'a typed failure spends no retry');
  assert.deepEqual(splitFailedReason(withField.message), { code: 'VAE_NOT_FOUND', message: 'VAE "x" is gone: a: b', field: 'override_settings.sd_vae' });
  const farm = jobFailure(new FarmError('EMBEDDING_NOT_FOUND', 404, 'embedding "e" is not uploaded', 'embeddings'));
  assert.deepEqual(splitFailedReason(farm.message), { code: 'EMBEDDING_NOT_FOUND', message: 'embedding "e" is not uploaded', field: 'embeddings' });
  const retry = jobFailure({ code: 'COMPOSE_FAILED', message: 'thread died', retryable: true });
  assert.ok(!(retry instanceof UnrecoverableError), 'a retryable failure is left to BullMQ to retry');
  assert.deepEqual(splitFailedReason(retry.message), { code: 'COMPOSE_FAILED', message: 'thread died' });
});

test("a reason that is not an envelope is RENDER_FAILED with the reason as message; the cancel reason keeps its code", () => {
  assert.deepEqual(splitFailedReason('job stalled more than allowable limit'), { code: 'RENDER_FAILED', message: 'job stalled more than allowable limit' });
  assert.deepEqual(splitFailedReason('{"not": "an envelope"}'), { code: 'RENDER_FAILED', message: '{"not": "an envelope"}' });
  assert.deepEqual(splitFailedReason('{broken'), { code: 'RENDER_FAILED', message: '{broken' });
  assert.equal(splitFailedReason(CANCELLED_REASON).code, 'CANCELLED');
  assert.deepEqual(splitFailedReason(undefined), { code: 'RENDER_FAILED', message: 'unknown error' });
});
