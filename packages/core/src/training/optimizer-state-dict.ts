/**
 * torch's `Optimizer.state_dict()` of an AdamW with one param group, as A1111 pickles it into `.optim` files, and
 * the way back to an AdamWState.
 *
 * One layout is written, torch 1.13's (the version the training oracle ran): per parameter `step` as a float32
 * 0-d tensor, `exp_avg`, `exp_avg_sq`; group keys `lr, betas, eps, weight_decay, amsgrad, foreach, maximize,
 * capturable, params`. torch 2.x writes `differentiable` and `fused` as well, and loads this layout (its
 * `__setstate__` fills the missing keys with their defaults), so it serves both.
 */
import { DarkroomError } from '../errors.js';
import { PyDict, PyFloat, PyTuple, TorchTensor, type PyValue } from '../formats/pickle/values.js';
import { numel, toFloat32 } from '../tensor.js';
import type { AdamWParamState, AdamWState } from './adamw-state.js';

export function adamwStateDict(state: AdamWState, shapes: readonly (readonly number[])[]): PyDict {
  if (shapes.length !== state.params.length) {
    throw new DarkroomError('TRAINING_OPTIM_MISMATCH', `AdamW state has ${state.params.length} parameters, ${shapes.length} shapes were given`);
  }
  const perParam = new PyDict();
  state.params.forEach((p, i) => {
    const shape = shapes[i]!;
    if (numel(shape) !== p.expAvg.length || numel(shape) !== p.expAvgSq.length) {
      throw new DarkroomError('TRAINING_OPTIM_MISMATCH', `AdamW state of parameter ${i} does not have the shape [${shape.join(', ')}]`);
    }
    perParam.set(
      i,
      new PyDict([
        ['step', new TorchTensor('float32', [], Float32Array.of(p.step))],
        ['exp_avg', new TorchTensor('float32', [...shape], p.expAvg.slice())],
        ['exp_avg_sq', new TorchTensor('float32', [...shape], p.expAvgSq.slice())],
      ]),
    );
  });
  const group = new PyDict([
    ['lr', new PyFloat(state.lr)],
    ['betas', new PyTuple([new PyFloat(state.betas[0]), new PyFloat(state.betas[1])])],
    ['eps', new PyFloat(state.eps)],
    ['weight_decay', new PyFloat(state.weightDecay)],
    ['amsgrad', false],
    ['foreach', null],
    ['maximize', false],
    ['capturable', false],
    ['params', state.params.map((_, i) => i)],
  ]);
  return new PyDict([
    ['state', perParam],
    ['param_groups', [group]],
  ]);
}

function bad(source: string, reason: string): never {
  throw new DarkroomError('TRAINING_BAD_OPTIM', `${source}: not an AdamW optimizer state (${reason})`, { file: source });
}

function asNumber(v: PyValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof PyFloat) return v.value;
  if (v instanceof TorchTensor && v.data.length === 1) return Number(v.data[0]);
  return undefined;
}

function floatTensor(v: PyValue | undefined, source: string, what: string): Float32Array {
  if (!(v instanceof TorchTensor)) bad(source, `${what} is not a tensor`);
  try {
    return toFloat32(v).data.slice();
  } catch {
    return bad(source, `${what} has dtype ${v.dtype}`);
  }
}

function paramState(entry: PyValue | undefined, source: string, index: number, size: number | undefined): AdamWParamState {
  // torch creates a parameter's state on its first step, so a parameter that never had a gradient has none.
  if (entry === undefined) {
    if (size === undefined) bad(source, `parameter ${index} has no state`);
    return { step: 0, expAvg: new Float32Array(size), expAvgSq: new Float32Array(size) };
  }
  if (!(entry instanceof PyDict)) bad(source, `state ${index} is not a dict`);
  const step = asNumber(entry.get('step'));
  if (step === undefined) bad(source, `state ${index} has no step`);
  const expAvg = floatTensor(entry.get('exp_avg'), source, `state ${index} exp_avg`);
  const expAvgSq = floatTensor(entry.get('exp_avg_sq'), source, `state ${index} exp_avg_sq`);
  if (expAvg.length !== expAvgSq.length || (size !== undefined && expAvg.length !== size)) {
    throw new DarkroomError(
      'TRAINING_OPTIM_MISMATCH',
      `${source}: optimizer state ${index} holds ${expAvg.length} values, the parameter has ${size ?? expAvgSq.length}`,
      { file: source },
    );
  }
  return { step, expAvg, expAvgSq };
}

/**
 * An AdamWState from an `optimizer_state_dict`. `sizes`, when given, are the element counts of the parameters
 * the state will be loaded into; a different parameter count is refused as torch's load_state_dict refuses it.
 */
export function adamwStateFromDict(v: PyValue | undefined, source: string, sizes?: readonly number[]): AdamWState {
  if (!(v instanceof PyDict)) bad(source, 'optimizer_state_dict is not a dict');
  const state = v.get('state');
  const groups = v.get('param_groups');
  if (!(state instanceof PyDict)) bad(source, 'no state dict');
  if (!Array.isArray(groups) || groups.length !== 1 || !(groups[0] instanceof PyDict)) bad(source, 'expected one param group');
  const group = groups[0];
  const ids = group.get('params');
  if (!Array.isArray(ids)) bad(source, 'the param group lists no params');
  if (sizes !== undefined && sizes.length !== ids.length) {
    throw new DarkroomError(
      'TRAINING_OPTIM_MISMATCH',
      `${source}: the optimizer state is for ${ids.length} parameters, training has ${sizes.length}`,
      { file: source },
    );
  }
  const betas = group.get('betas');
  const betaItems = betas instanceof PyTuple ? betas.items : Array.isArray(betas) ? betas : [];
  const [b1, b2] = betaItems.map(asNumber);
  const lr = asNumber(group.get('lr'));
  const eps = asNumber(group.get('eps'));
  const weightDecay = asNumber(group.get('weight_decay'));
  if (lr === undefined || eps === undefined || weightDecay === undefined || b1 === undefined || b2 === undefined) {
    bad(source, 'the param group lacks lr, betas, eps or weight_decay');
  }
  const params = ids.map((id, i) => paramState(state.get(id), source, i, sizes?.[i]));
  return { lr, betas: [b1, b2], eps, weightDecay, params };
}
