/**
 * The Python values a torch file may hold, as plain TypeScript data. Nothing here can run code: classes that
 * the allow-list admits become inert records (`PyObject`) carrying their pickled state.
 */
import type { DType, HostTensor, TypedArrayFor } from '../../tensor.js';

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | PyFloat
  | PyObject
  | PyGlobal
  | TorchStorage
  | TorchTensor;

/** A Python tuple (lists are plain arrays). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** A Python dict or OrderedDict; keys keep Python's insertion order. */
export class PyDict extends Map<PyValue, PyValue> {
  /** Instance attributes a BUILD gave the dict (torch state dicts carry `_metadata`), apart from its items. */
  attributes: PyValue | undefined;
}

/** collections.OrderedDict (torch state dicts): written back through its constructor, as Python does. */
export class PyOrderedDict extends PyDict {}

export class PySet {
  constructor(readonly items: PyValue[]) {}
}

/** Forces a number to be written as a Python float (1.0 rather than 1). Readers return plain numbers. */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A reference to an allow-listed module global, e.g. `torch.FloatStorage` or `torch.float32`. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of an allow-listed class (ParameterDict, ...): its class and the state BUILD gave it. */
export class PyObject {
  state: PyValue = null;
  constructor(
    readonly cls: PyGlobal,
    readonly args: PyValue[],
  ) {}
}

/** A storage named by a persistent id: where its bytes are and how many elements of which dtype it holds. */
export class TorchStorage {
  bytes: Uint8Array | undefined;
  constructor(
    readonly dtype: DType,
    readonly key: string,
    readonly location: string,
    readonly numel: number,
  ) {}
}

/** A tensor rebuilt from a storage view. `data` is filled once the storage bytes are read. */
export class TorchTensor implements HostTensor {
  data: TypedArrayFor[DType];
  constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    data: TypedArrayFor[DType],
    public requiresGrad = false,
    public isParameter = false,
  ) {
    this.data = data;
  }
}

export function isDict(v: PyValue | undefined): v is PyDict {
  return v instanceof PyDict;
}

export function isTensor(v: PyValue | undefined): v is TorchTensor {
  return v instanceof TorchTensor;
}

/** dict.get for string keys, undefined when absent. */
export function dictGet(d: PyDict, key: string | number): PyValue | undefined {
  return d.get(key);
}

/** A plain-JSON-ish view of a value for messages and tests. */
export function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (v instanceof PyDict) return `dict(${[...v.keys()].map((k) => describe(k)).join(', ')})`;
  if (v instanceof TorchTensor) return `tensor(${v.dtype}, [${v.shape.join(', ')}])`;
  if (v instanceof PyTuple) return `(${v.items.map(describe).join(', ')})`;
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (v instanceof PyGlobal) return v.qualifiedName;
  if (v instanceof PyObject) return `<${v.cls.qualifiedName}>`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}
