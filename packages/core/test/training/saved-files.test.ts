import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDarkroomError } from '../../src/errors.js';
import { PyDict, PyFloat, TorchTensor, readTorch } from '../../src/formats/torch.js';
import { embeddingChecksum } from '../../src/networks/embeddings/embedding.js';
import { loadEmbedding } from '../../src/networks/embeddings/load.js';
import { createHypernetwork } from '../../src/networks/hypernetworks/create.js';
import { loadHypernetwork, type Hypernetwork } from '../../src/networks/hypernetworks/hypernetwork.js';
import { float32 } from '../../src/tensor.js';
import type { AdamWState } from '../../src/training/adamw-state.js';
import { adamwStateDict, adamwStateFromDict } from '../../src/training/optimizer-state-dict.js';
import {
  embeddingResumeState,
  embeddingSaveNaming,
  embeddingTrainingOptim,
  embeddingTrainingPt,
  hypernetworkFileHash,
  hypernetworkOptimHash,
  hypernetworkParameterShapes,
  hypernetworkResumeState,
  hypernetworkSaveNaming,
  hypernetworkTrainingOptim,
  hypernetworkTrainingPt,
  isIntermediateSave,
  readOptimFile,
  type EmbeddingSave,
  type HypernetworkSave,
} from '../../src/training/saved-files.js';

const checkpoint = { shorthash: 'bfcd16918c', modelName: 'tiny-sd1' };

function vec(n = 2, width = 6, seed = 1): ReturnType<typeof float32> {
  return float32([n, width], Float32Array.from({ length: n * width }, (_, i) => Math.sin((i + seed) * 1.3) * 0.04));
}

function state(sizes: readonly number[], lr = 0.005, weightDecay = 0): AdamWState {
  return {
    lr,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay,
    params: sizes.map((n, j) => ({
      step: 6,
      expAvg: Float32Array.from({ length: n }, (_, i) => (i - j) * 1e-3),
      expAvgSq: Float32Array.from({ length: n }, (_, i) => (i + j) * 1e-7),
    })),
  };
}

function smallHypernetwork(): Hypernetwork {
  let s = 7;
  const uniform = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return createHypernetwork({
    name: 'hnT',
    sizes: [8, 16],
    layerStructure: '1, 2, 1',
    activationFunc: 'relu',
    addLayerNorm: true,
    random: { uniform, normal: () => uniform() - 0.5 },
  });
}

test('intermediate saves happen when step + 1 is a multiple of the interval, and carry that number in their name', () => {
  assert.deepEqual([4, 5, 6, 11].map((s) => isIntermediateSave(s, 6)), [false, true, false, true]);
  assert.equal(isIntermediateSave(5, 0), false);
  assert.deepEqual(embeddingSaveNaming('tiobj', 5, 'intermediate'), { fileName: 'tiobj-6.pt', storedName: 'tiobj-6', step: 5 });
  assert.deepEqual(embeddingSaveNaming('tiobj', 12, 'final'), { fileName: 'tiobj.pt', storedName: 'tiobj', step: 12 });
  assert.deepEqual(hypernetworkSaveNaming('hnA', 4, 'intermediate'), { fileName: 'hnA-5.pt', storedName: 'hnA', step: 4 });
  assert.deepEqual(hypernetworkSaveNaming('hnA', 10, 'final'), { fileName: 'hnA.pt', storedName: 'hnA', step: 10 });
  assert.throws(() => embeddingSaveNaming('x', -1, 'final'), (e) => isDarkroomError(e, 'TRAINING_BAD_STEP'));
});

test('an intermediate embedding .pt stores name-N, step N-1, the checkpoint and a requires_grad tensor', async () => {
  const s: EmbeddingSave = { baseName: 'tiobj', vec: vec(), step: 5, kind: 'intermediate', checkpoint };
  const file = embeddingTrainingPt(s);
  assert.equal(file.fileName, 'tiobj-6.pt');
  const { value, members } = await readTorch(file.bytes, file.fileName);
  assert.ok(members.includes('tiobj-6/data.pkl'));
  assert.ok(value instanceof PyDict);
  assert.deepEqual([...value.keys()], ['string_to_token', 'string_to_param', 'name', 'step', 'sd_checkpoint', 'sd_checkpoint_name']);
  assert.equal(value.get('name'), 'tiobj-6');
  assert.equal(value.get('step'), 5);
  assert.equal(value.get('sd_checkpoint'), 'bfcd16918c');
  assert.equal(value.get('sd_checkpoint_name'), 'tiny-sd1');
  const t = (value.get('string_to_param') as PyDict).get('*');
  assert.ok(t instanceof TorchTensor && t.requiresGrad && !t.isParameter);
  const back = await loadEmbedding(file.bytes, file.fileName);
  assert.deepEqual(back.vec.data, s.vec.data);
  assert.equal(back.step, 5);
});

test('an embedding .optim carries the vector checksum and torch 1.13 AdamW layout, and resumes only for the same vectors', async () => {
  const s: EmbeddingSave = { baseName: 'tiobj', vec: vec(), step: 12, kind: 'final', checkpoint };
  const st = state([12]);
  const file = embeddingTrainingOptim(s, st);
  assert.equal(file.fileName, 'tiobj.pt.optim');
  const { value, members } = await readTorch(file.bytes, file.fileName, { keepFloats: true });
  assert.ok(members.includes('tiobj.pt/data.pkl'));
  assert.ok(value instanceof PyDict);
  assert.deepEqual([...value.keys()], ['hash', 'optimizer_state_dict']);
  assert.equal(value.get('hash'), embeddingChecksum(s.vec));
  const sd = value.get('optimizer_state_dict') as PyDict;
  const perParam = (sd.get('state') as PyDict).get(0) as PyDict;
  assert.deepEqual([...perParam.keys()], ['step', 'exp_avg', 'exp_avg_sq']);
  const step = perParam.get('step') as TorchTensor;
  assert.deepEqual([step.dtype, step.shape, step.data[0]], ['float32', [], 6]);
  assert.deepEqual((perParam.get('exp_avg') as TorchTensor).shape, [2, 6]);
  const group = (sd.get('param_groups') as PyValueList)[0] as PyDict;
  assert.deepEqual([...group.keys()], ['lr', 'betas', 'eps', 'weight_decay', 'amsgrad', 'foreach', 'maximize', 'capturable', 'params']);
  assert.ok(group.get('weight_decay') instanceof PyFloat, 'weight_decay 0.0 stays a float');
  assert.deepEqual(group.get('params'), [0]);

  const optim = await readOptimFile(file.bytes, file.fileName);
  const resumed = embeddingResumeState(optim, s.vec);
  assert.ok(resumed);
  assert.equal(resumed.lr, 0.005);
  assert.deepEqual(resumed.betas, [0.9, 0.999]);
  assert.equal(resumed.eps, 1e-8);
  assert.equal(resumed.weightDecay, 0);
  assert.deepEqual(resumed.params[0], st.params[0]);
  assert.equal(embeddingResumeState(optim, vec(2, 6, 9)), null, 'other vectors, other checksum: a fresh optimizer');
});

type PyValueList = readonly unknown[];

test('a hypernetwork .pt keeps the base name in intermediate saves and records step and checkpoint', async () => {
  const hn = smallHypernetwork();
  const s: HypernetworkSave = { hn, baseName: 'hnT', step: 4, kind: 'intermediate', checkpoint };
  const file = hypernetworkTrainingPt(s);
  assert.equal(file.fileName, 'hnT-5.pt');
  const { value } = await readTorch(file.bytes, file.fileName, { keepFloats: true });
  assert.ok(value instanceof PyDict);
  assert.equal(value.get('name'), 'hnT');
  assert.equal(value.get('step'), 4);
  assert.equal(value.get('sd_checkpoint'), 'bfcd16918c');
  assert.deepEqual(value.get('dropout_structure'), [0, 0, 0], 'ints when dropout is off, as A1111 creates them');
  assert.ok((value.get('layer_structure') as PyValueList).every((x) => x instanceof PyFloat));
  const back = await loadHypernetwork(file.bytes, file.fileName);
  assert.equal(back.step, 4);
  assert.equal(back.sdCheckpointName, 'tiny-sd1');
  assert.deepEqual(back.layers.get(16)![1].params.get(0)!.weight.data, hn.layers.get(16)![1].params.get(0)!.weight.data);
});

test('hypernetwork .optim hash: the loaded file for intermediate saves, the new .pt when the final save overwrites it', async () => {
  const hn = smallHypernetwork();
  const shapes = hypernetworkParameterShapes(hn);
  // Per width, k then v, each Linear/LayerNorm weight then bias: 2 linears + 2 norms -> 8 tensors per module.
  assert.equal(shapes.length, 2 * 2 * 8);
  assert.deepEqual(shapes.slice(0, 3), [[16, 8], [16], [16]]);
  const st = state(shapes.map((sh) => sh.reduce((a, b) => a * b, 1)), 0.001, 0.01);
  const loadedHash = 'abcdef0123456789';

  const inter: HypernetworkSave = { hn, baseName: 'hnT', step: 4, kind: 'intermediate', checkpoint };
  const interPt = hypernetworkTrainingPt(inter);
  const interHash = hypernetworkOptimHash({ loadedPath: 'hn/hnT.pt', loadedHash, savedPath: 'logs/hnT-5.pt', savedBytes: interPt.bytes });
  assert.equal(interHash, 'abcdef0123');
  const interOptim = hypernetworkTrainingOptim(inter, st, interHash);
  assert.equal(interOptim.fileName, 'hnT-5.pt.optim');
  const interRead = await readOptimFile(interOptim.bytes, interOptim.fileName);
  assert.equal(interRead.optimizerName, 'AdamW');
  assert.equal(hypernetworkResumeState(interRead, hypernetworkFileHash(interPt.bytes), hn), null, 'an intermediate save never resumes');

  const fin: HypernetworkSave = { hn, baseName: 'hnT', step: 10, kind: 'final', checkpoint };
  const finPt = hypernetworkTrainingPt(fin);
  const finHash = hypernetworkOptimHash({ loadedPath: 'hn/./hnT.pt', loadedHash, savedPath: 'hn/hnT.pt', savedBytes: finPt.bytes });
  assert.equal(finHash, hypernetworkFileHash(finPt.bytes));
  const finOptim = hypernetworkTrainingOptim(fin, st, finHash);
  const { value } = await readTorch(finOptim.bytes, finOptim.fileName);
  assert.deepEqual([...(value as PyDict).keys()], ['optimizer_name', 'hash', 'optimizer_state_dict']);
  const resumed = hypernetworkResumeState(await readOptimFile(finOptim.bytes, 'x.optim'), hypernetworkFileHash(finPt.bytes), hn);
  assert.ok(resumed);
  assert.equal(resumed.weightDecay, 0.01);
  assert.deepEqual(resumed.params.map((p) => p.expAvg), st.params.map((p) => p.expAvg));
});

test('a hypernetwork .optim of another optimizer class is refused when it would apply', async () => {
  const hn = smallHypernetwork();
  const shapes = hypernetworkParameterShapes(hn);
  const st = state(shapes.map((sh) => sh.reduce((a, b) => a * b, 1)));
  const dict = new PyDict([
    ['optimizer_name', 'SGD'],
    ['hash', 'abcdef0123'],
    ['optimizer_state_dict', adamwStateDict(st, shapes)],
  ]);
  const { writeTorchFile } = await import('../../src/formats/torch.js');
  const optim = await readOptimFile(writeTorchFile(dict), 'sgd.optim');
  assert.throws(() => hypernetworkResumeState(optim, 'abcdef0123ffff', hn), (e) => isDarkroomError(e, 'TRAINING_OPTIMIZER_UNSUPPORTED'));
  assert.equal(hypernetworkResumeState(optim, '0000000000', hn), null);
});

test('optimizer_state_dict parsing: missing per-parameter state is fresh, a different parameter count is refused', () => {
  const st = state([3, 2]);
  const dict = adamwStateDict(st, [[3], [2]]);
  (dict.get('state') as PyDict).delete(1);
  const back = adamwStateFromDict(dict, 'test', [3, 2]);
  assert.deepEqual(back.params[1], { step: 0, expAvg: new Float32Array(2), expAvgSq: new Float32Array(2) });
  assert.throws(() => adamwStateFromDict(dict, 'test'), (e) => isDarkroomError(e, 'TRAINING_BAD_OPTIM'));
  assert.throws(() => adamwStateFromDict(dict, 'test', [3]), (e) => isDarkroomError(e, 'TRAINING_OPTIM_MISMATCH'));
  assert.throws(() => adamwStateFromDict(dict, 'test', [4, 2]), (e) => isDarkroomError(e, 'TRAINING_OPTIM_MISMATCH'));
  assert.throws(() => adamwStateDict(st, [[3]]), (e) => isDarkroomError(e, 'TRAINING_OPTIM_MISMATCH'));
});

test('reading with keepFloats tells Python floats from ints; the default reader does not', async () => {
  const { writeTorchFile } = await import('../../src/formats/torch.js');
  const bytes = writeTorchFile(new PyDict([['f', new PyFloat(2)], ['i', 2]]));
  const kept = (await readTorch(bytes, 'x', { keepFloats: true })).value as PyDict;
  assert.ok(kept.get('f') instanceof PyFloat);
  assert.equal(kept.get('i'), 2);
  const plain = (await readTorch(bytes, 'x')).value as PyDict;
  assert.equal(plain.get('f'), 2);
});
