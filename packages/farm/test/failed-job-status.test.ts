/**
 * A failed job's code becomes an HTTP status in one place (failedJobError), for every synchronous route that waits
 * for a job: something the request named and that is missing is 404, an untyped failure 500, any other refusal 422.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failedJobError, FarmError } from '../src/errors.js';

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
