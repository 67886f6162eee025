import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FarmError, LogDirectory, renameErrorField, SdapiCreateHypernetwork, SdapiTrainEmbedding, sdapiFieldNames, trainedInfo, trainingBodyFromSdapi,
  trainingLogKey, trainingLogPrefix, TrainingRequest,
} from '../src/index.js';

test('log_directory is a storage prefix: server paths, parent folders and hidden parts are refused', () => {
  for (const bad of ['/etc', '../x', 'a/../b', '.', 'a/.hidden', 'C:\\data', 'a\\b', '', 'a//b', 'x\0y']) {
    assert.equal(LogDirectory.safeParse(bad).success, false, JSON.stringify(bad));
  }
  assert.equal(LogDirectory.parse('textual_inversion/'), 'textual_inversion');
  assert.equal(LogDirectory.parse('runs/2026-q1/cats'), 'runs/2026-q1/cats');
});

test('a training\'s files land where A1111 puts them in its log folder', () => {
  const prefix = trainingLogPrefix('alice', 'textual_inversion', Date.UTC(2026, 0, 31, 23, 59), 'cat-2');
  assert.equal(prefix, 'logs/alice/textual_inversion/2026-01-31/cat-2/');
  const at = (file: string, area: 'files' | 'images' = 'files') => trainingLogKey(prefix, 'embedding', 'cat-2', file, area).slice(prefix.length);
  assert.equal(at('cat-2-50.pt'), 'embeddings/cat-2-50.pt');
  assert.equal(at('cat-2-50.pt.optim'), 'embeddings/cat-2-50.pt.optim');
  assert.equal(at('cat-2-50.png'), 'image_embeddings/cat-2-50.png');
  assert.equal(at('cat-2.pt'), 'cat-2.pt', 'a final file, although the name ends in digits');
  assert.equal(at('textual_inversion_loss.csv'), 'textual_inversion_loss.csv');
  assert.equal(at('cat-2-50.png', 'images'), 'images/cat-2-50.png');
  assert.equal(trainingLogKey(prefix, 'hypernetwork', 'cat-2', 'cat-2-50.pt', 'files').slice(prefix.length), 'hypernetworks/cat-2-50.pt');
});

test('an A1111 train call becomes a /v1 training of the named file, and refusals name A1111\'s fields', () => {
  const body = SdapiTrainEmbedding.parse({
    id_task: 'ignored', embedding_name: 'cat', learn_rate: 0.005, data_root: 'cats', steps: 20, save_embedding_every: 5, clip_grad_value: 0.1,
  });
  const req = TrainingRequest.parse(trainingBodyFromSdapi({ kind: 'embedding', body }, { datasetId: '01J0000000000000000000000A', model: null, clipSkip: 2 }));
  assert.equal(req.kind, 'embedding');
  assert.equal(req.continue_from, 'cat');
  assert.equal(req.learn_rate, '0.005');
  assert.equal(req.save_every, 5);
  assert.equal(req.clip_skip, 2);
  assert.equal(req.log_directory, 'textual_inversion', 'A1111\'s default log folder');
  for (const bad of [{ data_root: '/etc' }, { data_root: '../x' }, { varsize: true }, { log_directory: '/tmp' }]) {
    const r = SdapiTrainEmbedding.safeParse({ embedding_name: 'cat', data_root: 'cats', ...bad });
    assert.equal(r.success, false, JSON.stringify(bad));
    assert.equal(String(r.error!.issues[0]!.path[0]), Object.keys(bad)[0]);
  }
  const e = renameErrorField(new FarmError('UNKNOWN_DATASET', 400, 'dataset: no dataset x', 'dataset'), sdapiFieldNames('embedding'));
  assert.equal(e.field, 'data_root');
  assert.equal(e.message, 'data_root: no dataset x');
  assert.equal(renameErrorField(new FarmError('X', 400, 'batch_size: too big', 'batch_size'), sdapiFieldNames('embedding')).field, 'batch_size');
});

test('A1111\'s answers: Python\'s None for no error; UI strings for hypernetwork sizes', () => {
  assert.equal(trainedInfo('embeddings/cat.pt', null), 'train embedding complete: filename: embeddings/cat.pt error: None');
  assert.deepEqual(SdapiCreateHypernetwork.parse({ name: 'hn', enable_sizes: ['768', 320] }).enable_sizes, [768, 320]);
  assert.equal(SdapiCreateHypernetwork.safeParse({ name: 'hn', enable_sizes: ['wide'] }).success, false);
});
