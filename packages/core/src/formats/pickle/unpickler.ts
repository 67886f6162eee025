/**
 * A restricted pickle reader. It interprets the opcodes of protocols 0-5 as data operations only: a GLOBAL
 * is looked up in an allow-list the moment it is read (so a forbidden callable is refused before any REDUCE
 * could reach it), and REDUCE/NEWOBJ/BUILD dispatch to small TypeScript rebuilders for the allowed names.
 * Nothing is ever imported or executed.
 */
import { DarkroomError } from '../../errors.js';
import type { DType } from '../../tensor.js';
import { PyDict, PyFloat, PyGlobal, PyOrderedDict, PyObject, PySet, PyTuple, TorchStorage, TorchTensor, type PyValue } from './values.js';

/** Storage classes torch pickles in persistent ids, by the dtype of their elements. */
export const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ByteStorage: 'uint8',
};

/**
 * Exactly the globals A1111's modules/safe.py admits (v1.10.1), so a file refused there is refused here.
 * Everything else (os.system, builtins.eval, torch.load, ...) is refused with TORCH_FORBIDDEN_GLOBAL.
 */
const ALLOWED_GLOBALS = new Set<string>([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_device_tensor_from_numpy',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
  'torch.float32',
  'torch.nn.modules.container.ParameterDict',
  'numpy.core.multiarray.scalar',
  'numpy.core.multiarray._reconstruct',
  'numpy.dtype',
  'numpy.ndarray',
  '_codecs.encode',
  'pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint',
  'pytorch_lightning.callbacks.model_checkpoint',
  '__builtin__.set',
]);

export function isAllowedGlobal(module: string, name: string): boolean {
  return ALLOWED_GLOBALS.has(`${module}.${name}`);
}

/** A tensor whose data waits for its storage bytes. */
export interface PendingView {
  readonly tensor: TorchTensor;
  readonly storage: TorchStorage;
  readonly offset: number;
  readonly stride: readonly number[];
}

export interface UnpickleOptions {
  /** Named in every error. */
  readonly source: string;
  /** Turns a persistent id (torch: a storage tuple) into a value. */
  readonly persistentLoad?: (pid: PyValue) => PyValue;
  /**
   * Returns Python floats as PyFloat rather than plain numbers, so that `1.0` and `1` stay apart (checks of a
   * file's exact layout need this; loaders do not).
   */
  readonly keepFloats?: boolean;
}

export interface UnpickleResult {
  readonly value: PyValue;
  /** Bytes consumed, for streams of several pickles (torch's legacy format). */
  readonly end: number;
  readonly globals: readonly string[];
  readonly views: readonly PendingView[];
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

const EMPTY = new Float32Array(0);

function pyInt(b: bigint): number | bigint {
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

function readLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  if (bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(bytes.length * 8);
  return pyInt(v);
}

/** Python 2 `repr` string literal (opcode STRING): quotes and backslash escapes. */
function parseStringLiteral(s: string): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) throw new Error('bad STRING literal');
  const body = s.slice(1, -1);
  return body.replace(/\\(x[0-9a-fA-F]{2}|[\\'"nrt0])/g, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    return ({ n: '\n', r: '\r', t: '\t', '0': '\0' } as Record<string, string>)[e] ?? e;
  });
}

export function unpickle(bytes: Uint8Array, opts: UnpickleOptions, start = 0): UnpickleResult {
  const { source } = opts;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: StackItem[] = [];
  const metastack: StackItem[][] = [];
  const memo = new Map<number, PyValue>();
  const globals = new Set<string>();
  const views: PendingView[] = [];
  let pos = start;
  let cur = stack;

  const bad = (reason: string): never => {
    throw new DarkroomError('TORCH_BAD_PICKLE', `${source}: malformed pickle data (${reason} at byte ${pos})`, {
      file: source,
    });
  };
  const need = (n: number): void => {
    if (pos + n > bytes.length) {
      throw new DarkroomError('TORCH_TRUNCATED', `${source}: pickle data ends early (byte ${bytes.length})`, {
        file: source,
      });
    }
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const float = (v: number): PyValue => (opts.keepFloats ? new PyFloat(v) : v);
  const u8 = (): number => (need(1), bytes[pos++]!);
  const u16 = (): number => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const i32 = (): number => (need(4), (pos += 4), dv.getInt32(pos - 4, true));
  const u32 = (): number => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const u64 = (): number => {
    need(8);
    const n = dv.getBigUint64(pos, true);
    pos += 8;
    if (n > BigInt(bytes.length)) bad('length beyond the data');
    return Number(n);
  };
  const line = (): string => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) {
      need(bytes.length - pos + 1);
    }
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const utf8 = (b: Uint8Array): string => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      return bad('invalid UTF-8 string');
    }
  };
  const push = (v: PyValue): void => void cur.push(v);
  const pop = (): PyValue => {
    if (cur.length === 0) bad('stack underflow');
    const v = cur.pop()!;
    if (v === MARK) bad('unexpected MARK');
    return v as PyValue;
  };
  const top = (): PyValue => {
    const v = cur[cur.length - 1];
    if (v === undefined || v === MARK) bad('stack underflow');
    return v as PyValue;
  };
  const popMark = (): PyValue[] => {
    const items = cur as PyValue[];
    const prev = metastack.pop();
    if (!prev) bad('could not find MARK');
    cur = prev!;
    return items;
  };

  const findClass = (module: string, name: string): PyGlobal => {
    const qualified = `${module}.${name}`;
    globals.add(qualified);
    if (!isAllowedGlobal(module, name)) {
      throw new DarkroomError(
        'TORCH_FORBIDDEN_GLOBAL',
        `${source}: refusing to load: the pickle references the global '${qualified}', which is not one of the ` +
          `tensor-rebuilding names a model or embedding file may use (the file may be malicious)`,
        { file: source, global: qualified },
      );
    }
    return new PyGlobal(module, name);
  };

  const unsupported = (what: string): never => {
    throw new DarkroomError('TORCH_UNSUPPORTED', `${source}: ${what} is not supported`, { file: source });
  };

  const intArgs = (v: PyValue, what: string): number[] => {
    const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : bad(`${what} is not a tuple`);
    return (items as PyValue[]).map((x) => (typeof x === 'number' && Number.isSafeInteger(x) ? x : bad(`${what} is not ints`)));
  };

  const rebuildTensor = (args: PyValue[]): TorchTensor => {
    const [storage, offset, size, stride, requiresGrad] = args;
    if (!(storage instanceof TorchStorage)) return bad('_rebuild_tensor_v2 without a storage');
    if (typeof offset !== 'number') return bad('tensor storage offset is not an int');
    const shape = intArgs(size!, 'tensor size');
    const strides = intArgs(stride!, 'tensor stride');
    if (shape.length !== strides.length) bad('tensor size and stride differ in rank');
    const t = new TorchTensor(storage.dtype, shape, EMPTY, requiresGrad === true);
    views.push({ tensor: t, storage, offset, stride: strides });
    return t;
  };

  /** What REDUCE (callable(*args)) does for each allowed callable. */
  const call = (fn: PyValue, argv: PyValue): PyValue => {
    if (!(fn instanceof PyGlobal)) return bad('REDUCE on a value that is not a global');
    const args = argv instanceof PyTuple ? argv.items : bad('REDUCE arguments are not a tuple');
    switch (fn.qualifiedName) {
      case 'collections.OrderedDict': {
        const d = new PyOrderedDict();
        const init = args[0];
        if (Array.isArray(init)) {
          for (const pair of init) {
            if (!(pair instanceof PyTuple) || pair.items.length !== 2) bad('OrderedDict item is not a pair');
            d.set((pair as PyTuple).items[0]!, (pair as PyTuple).items[1]!);
          }
        }
        return d;
      }
      case 'torch._utils._rebuild_tensor_v2':
        return rebuildTensor(args);
      case 'torch._utils._rebuild_parameter': {
        const [data, requiresGrad] = args;
        if (!(data instanceof TorchTensor)) return bad('_rebuild_parameter without a tensor');
        data.requiresGrad = requiresGrad === true;
        data.isParameter = true;
        return data;
      }
      case '__builtin__.set':
        return new PySet(Array.isArray(args[0]) ? args[0] : []);
      case '_codecs.encode': {
        const [text, encoding] = args;
        if (typeof text !== 'string') return bad('_codecs.encode of a non-string');
        if (encoding !== 'latin1' && encoding !== 'latin-1') unsupported(`_codecs.encode with ${String(encoding)}`);
        return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
      }
      case 'torch.nn.modules.container.ParameterDict':
      case 'pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint':
      case 'numpy.dtype':
      case 'numpy.core.multiarray._reconstruct':
        return new PyObject(fn, args);
      case 'numpy.core.multiarray.scalar':
        return numpyScalar(args);
      default:
        return unsupported(`calling ${fn.qualifiedName}`);
    }
  };

  const numpyScalar = (args: PyValue[]): PyValue => {
    const [dtype, raw] = args;
    const code = dtype instanceof PyObject && typeof dtype.args[0] === 'string' ? dtype.args[0] : undefined;
    const data = raw instanceof Uint8Array ? raw : undefined;
    if (!code || !data) return unsupported('this numpy scalar');
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const n = data.length;
    switch (code) {
      case 'f8':
        return n === 8 ? v.getFloat64(0, true) : bad('numpy f8 size');
      case 'f4':
        return n === 4 ? v.getFloat32(0, true) : bad('numpy f4 size');
      case 'i8':
        return n === 8 ? pyInt(v.getBigInt64(0, true)) : bad('numpy i8 size');
      case 'i4':
        return n === 4 ? v.getInt32(0, true) : bad('numpy i4 size');
      case 'b1':
        return n === 1 ? data[0] !== 0 : bad('numpy b1 size');
      default:
        return unsupported(`numpy scalar of dtype ${code}`);
    }
  };

  const setItems = (target: PyValue, items: PyValue[]): void => {
    if (items.length % 2) bad('odd number of dict items');
    if (target instanceof PyDict) {
      for (let i = 0; i < items.length; i += 2) target.set(items[i]!, items[i + 1]!);
    } else if (target instanceof PyObject) {
      // ParameterDict and friends: item assignment goes into their own mapping.
      if (!(target.state instanceof PyDict)) target.state = new PyDict();
      for (let i = 0; i < items.length; i += 2) (target.state as PyDict).set(items[i]!, items[i + 1]!);
    } else bad('SETITEM on a value that is not a dict');
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) bad('unsupported pickle protocol');
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x2e: // STOP
        return { value: pop(), end: pos, globals: [...globals].sort(), views };
      case 0x28: // MARK
        metastack.push(cur);
        cur = [];
        break;
      case 0x30: // POP
        if (cur.length && cur[cur.length - 1] === MARK) cur.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x49: {
        // INT (text); "I01"/"I00" are protocol-0 booleans
        const s = line();
        if (s === '01' || s === '00') push(s === '01');
        else if (/^[-+]?\d+$/.test(s)) push(pyInt(BigInt(s)));
        else bad('bad INT');
        break;
      }
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x4c: {
        // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(s)) bad('bad LONG');
        push(pyInt(BigInt(s)));
        break;
      }
      case 0x8a: // LONG1
        push(readLong(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) bad('negative LONG4 length');
        push(readLong(take(n)));
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const v = Number(line());
        if (Number.isNaN(v)) bad('bad FLOAT');
        push(float(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        push(float(dv.getFloat64(pos, false)));
        pos += 8;
        break;
      case 0x53: // STRING
        try {
          push(parseStringLiteral(line()));
        } catch {
          bad('bad STRING');
        }
        break;
      case 0x54: {
        // BINSTRING (py2 str: bytes, read as latin-1 text)
        const n = i32();
        if (n < 0) bad('negative BINSTRING length');
        push(new TextDecoder('latin1').decode(take(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        push(new TextDecoder('latin1').decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        push(Uint8Array.from(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        push(Uint8Array.from(take(u8())));
        break;
      case 0x8e: // BINBYTES8
        push(Uint8Array.from(take(u64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text)
        push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
        break;
      case 0x58: // BINUNICODE
        push(utf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(take(u64())));
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) bad('APPEND to a non-list');
        (list as PyValue[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) bad('APPENDS to a non-list');
        (list as PyValue[]).push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        const d = new PyDict();
        setItems(d, items);
        push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        push(new PyTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PyTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(new PyTuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push(new PyTuple([pop(), b, c]));
        break;
      }
      case 0x8f: // EMPTY_SET
        push(new PySet([]));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet)) bad('ADDITEMS to a non-set');
        (s as PySet).items.push(...items);
        break;
      }
      case 0x91: // FROZENSET
        push(new PySet(popMark()));
        break;
      case 0x67: {
        // GET
        const k = Number(line());
        if (!memo.has(k)) bad('memo key not found');
        push(memo.get(k)!);
        break;
      }
      case 0x68: {
        // BINGET
        const k = u8();
        if (!memo.has(k)) bad('memo key not found');
        push(memo.get(k)!);
        break;
      }
      case 0x6a: {
        // LONG_BINGET
        const k = u32();
        if (!memo.has(k)) bad('memo key not found');
        push(memo.get(k)!);
        break;
      }
      case 0x70: // PUT
        memo.set(Number(line()), top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x63: {
        // GLOBAL: refused here, before anything could call it
        const module = line();
        const name = line();
        push(findClass(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL needs two strings');
        push(findClass(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args); only allowed classes reach here
        const args = pop();
        const cls = pop();
        if (!(cls instanceof PyGlobal)) bad('NEWOBJ on a value that is not a class');
        push(new PyObject(cls as PyGlobal, args instanceof PyTuple ? args.items : []));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        pop();
        const args = pop();
        const cls = pop();
        if (!(cls instanceof PyGlobal)) bad('NEWOBJ_EX on a value that is not a class');
        push(new PyObject(cls as PyGlobal, args instanceof PyTuple ? args.items : []));
        break;
      }
      case 0x62: {
        // BUILD: set an allowed object's state; tensors and dicts ignore/merge it as torch does
        const state = pop();
        const target = top();
        if (target instanceof PyObject) {
          if (target.state instanceof PyDict && state instanceof PyDict) {
            for (const [k, v] of state) target.state.set(k, v);
          } else target.state = state;
        } else if (target instanceof PyDict) {
          // An OrderedDict's pickled state is its __dict__ (e.g. `_metadata`), never its items.
          target.attributes = state;
        } else if (!(target instanceof TorchTensor)) bad('BUILD on a value without state');
        break;
      }
      case 0x69: {
        // INST: like GLOBAL + call, so the same allow-list applies first
        const cls = findClass(line(), line());
        push(call(cls, new PyTuple(popMark())));
        break;
      }
      case 0x6f: {
        // OBJ
        const items = popMark();
        const cls = items.shift();
        push(call(cls ?? null, new PyTuple(items)));
        break;
      }
      case 0x50: // PERSID
        if (!opts.persistentLoad) bad('persistent id without a loader');
        push(opts.persistentLoad!(line()));
        break;
      case 0x51: // BINPERSID
        if (!opts.persistentLoad) bad('persistent id without a loader');
        push(opts.persistentLoad!(pop()));
        break;
      case 0x82:
      case 0x83:
      case 0x84: // EXT1/2/4: the copyreg extension registry could name anything
        bad('extension-registry opcodes are not allowed');
        break;
      case 0x96:
      case 0x97:
      case 0x98: // BYTEARRAY8 / NEXT_BUFFER / READONLY_BUFFER
        unsupported('out-of-band pickle buffers');
        break;
      default:
        bad(`unknown opcode 0x${op.toString(16)}`);
    }
  }
}

