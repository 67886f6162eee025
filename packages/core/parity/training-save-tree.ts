/**
 * save/save.json describes each file A1111 wrote as the tree `torch.load` returns: types, dict key order and key
 * types, tensors with dtype, shape, requires_grad, is_parameter and a `ref` to their values. This module compares
 * a tree our torch reader returned (read with floats kept apart from ints) against such a description.
 */
import { PyDict, PyFloat, PyOrderedDict, PyTuple, TorchTensor, type PyValue } from '../src/formats/pickle/values.js';

/** One node of save.json's `object`. */
export interface TreeNode {
  readonly type: string;
  readonly value?: unknown;
  readonly items?: ReadonlyArray<TreeNode | readonly [unknown, TreeNode]>;
  readonly key_types?: readonly string[];
  readonly dtype?: string;
  readonly shape?: readonly number[];
  readonly requires_grad?: boolean;
  readonly is_parameter?: boolean;
  readonly ref?: string | null;
}

/** A position in a tree: dict keys (as read) and list/tuple indices. Keys may contain dots (`linear.0.weight`). */
export type TreePath = readonly unknown[];

/** How a tensor's values are judged; returns a problem or undefined. */
export type TensorCheck = (path: TreePath, actual: TorchTensor, node: TreeNode) => string | undefined;
/** A scalar whose value follows a rule rather than a recorded value (a file hash); returns a problem or undefined. */
export type ScalarRule = (actual: PyValue) => string | undefined;

export interface TreeCompareOptions {
  readonly tensor: TensorCheck;
  /** Rules by path, written as in messages (`hash`, `optimizer_state_dict.state.0.step`). */
  readonly rules?: ReadonlyMap<string, ScalarRule>;
}

export function pythonType(v: PyValue): string {
  if (v === null) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string') return 'str';
  if (v instanceof PyFloat) return 'float';
  if (v instanceof PyOrderedDict) return 'OrderedDict';
  if (v instanceof PyDict) return 'dict';
  if (v instanceof PyTuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof TorchTensor) return 'tensor';
  return 'unknown';
}

function scalarOf(v: PyValue): unknown {
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'bigint') return Number(v);
  return v;
}

export function pathText(path: TreePath): string {
  return path.length ? path.map(String).join('.') : '(root)';
}

/** Every difference between `actual` and `expected`, as `path: what` lines (empty when they agree). */
export function compareTree(actual: PyValue, expected: TreeNode, opts: TreeCompareOptions, path: TreePath = []): string[] {
  const at = pathText(path);
  const type = pythonType(actual);
  if (type !== expected.type) return [`${at}: type ${type}, A1111 ${expected.type}`];
  const rule = opts.rules?.get(at);
  if (rule) {
    const problem = rule(actual);
    return problem ? [`${at}: ${problem}`] : [];
  }
  switch (expected.type) {
    case 'dict':
    case 'OrderedDict': {
      const d = actual as PyDict;
      const items = (expected.items ?? []) as ReadonlyArray<readonly [unknown, TreeNode]>;
      const ours = [...d];
      const keysOurs = ours.map(([k]) => scalarOf(k));
      const keysTheirs = items.map(([k]) => k);
      if (keysOurs.length !== keysTheirs.length || keysOurs.some((k, i) => k !== keysTheirs[i])) {
        return [`${at}: keys [${keysOurs.map(String).join(', ')}], A1111 [${keysTheirs.map(String).join(', ')}]`];
      }
      const out: string[] = [];
      ours.forEach(([k, v], i) => {
        const kt = pythonType(k);
        const sub = [...path, scalarOf(k)];
        if (expected.key_types && kt !== expected.key_types[i]) out.push(`${pathText(sub)}: key type ${kt}, A1111 ${expected.key_types[i]}`);
        out.push(...compareTree(v, items[i]![1], opts, sub));
      });
      return out;
    }
    case 'list':
    case 'tuple': {
      const list = actual instanceof PyTuple ? actual.items : (actual as PyValue[]);
      const items = (expected.items ?? []) as readonly TreeNode[];
      if (list.length !== items.length) return [`${at}: ${list.length} items, A1111 ${items.length}`];
      return list.flatMap((v, i) => compareTree(v, items[i]!, opts, [...path, i]));
    }
    case 'tensor': {
      const t = actual as TorchTensor;
      const out: string[] = [];
      if (t.dtype !== expected.dtype) out.push(`${at}: dtype ${t.dtype}, A1111 ${expected.dtype}`);
      if (t.shape.join(',') !== (expected.shape ?? []).join(',')) out.push(`${at}: shape [${t.shape.join(', ')}], A1111 [${(expected.shape ?? []).join(', ')}]`);
      if (t.requiresGrad !== expected.requires_grad) out.push(`${at}: requires_grad ${t.requiresGrad}, A1111 ${String(expected.requires_grad)}`);
      if (t.isParameter !== expected.is_parameter) out.push(`${at}: is_parameter ${t.isParameter}, A1111 ${String(expected.is_parameter)}`);
      if (out.length) return out;
      const problem = opts.tensor(path, t, expected);
      return problem ? [`${at}: ${problem}`] : [];
    }
    default: {
      const v = scalarOf(actual);
      return v === expected.value ? [] : [`${at}: ${JSON.stringify(v)}, A1111 ${JSON.stringify(expected.value)}`];
    }
  }
}

/** The value at a path of a tree read from a torch file. */
export function valueAt(root: PyValue, path: TreePath): PyValue | undefined {
  let cur: PyValue | undefined = root;
  for (const part of path) {
    if (cur instanceof PyDict) cur = cur.get(part as PyValue);
    else if (cur instanceof PyTuple) cur = cur.items[Number(part)];
    else if (Array.isArray(cur)) cur = cur[Number(part)];
    else return undefined;
  }
  return cur;
}
