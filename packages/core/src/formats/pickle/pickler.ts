/**
 * A protocol-2 pickle writer for the values torch.save writes: dicts, OrderedDicts, lists, tuples, numbers,
 * strings and tensors. Tensors are written as torch does — `_rebuild_tensor_v2` over a storage named by a
 * persistent id `('storage', torch.<Type>Storage, '<key>', 'cpu', numel)` — and their bytes are returned
 * separately, one storage per tensor, in the order the keys were assigned.
 */
import { DarkroomError } from '../../errors.js';
import type { DType } from '../../tensor.js';
import { STORAGE_DTYPES } from './unpickler.js';
import {
  PyDict,
  PyFloat,
  PyGlobal,
  PyObject,
  PyOrderedDict,
  PySet,
  PyTuple,
  TorchStorage,
  TorchTensor,
  type PyValue,
} from './values.js';

const STORAGE_CLASS: Partial<Record<DType, string>> = Object.fromEntries(
  Object.entries(STORAGE_DTYPES).map(([cls, dtype]) => [dtype, cls]),
);

class ByteWriter {
  private buf = new Uint8Array(1024);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.length++] = b;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  u16(v: number): void {
    this.byte(v & 0xff);
    this.byte((v >>> 8) & 0xff);
  }
  u32(v: number): void {
    this.u16(v & 0xffff);
    this.u16((v >>> 16) & 0xffff);
  }
  f64be(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, false);
    this.bytes(b);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const enc = new TextEncoder();

export function pickle(value: PyValue): { bytes: Uint8Array; storages: Uint8Array[] } {
  const w = new ByteWriter();
  const memoByObject = new Map<object, number>();
  const memoByString = new Map<string, number>();
  const storages: Uint8Array[] = [];
  let memoCount = 0;

  const put = (): number => {
    const id = memoCount++;
    if (id < 256) {
      w.byte(0x71); // BINPUT
      w.byte(id);
    } else {
      w.byte(0x72); // LONG_BINPUT
      w.u32(id);
    }
    return id;
  };
  const get = (id: number): void => {
    if (id < 256) {
      w.byte(0x68);
      w.byte(id);
    } else {
      w.byte(0x6a);
      w.u32(id);
    }
  };

  const int = (v: number | bigint): void => {
    if (typeof v === 'number' && v >= 0 && v < 256) {
      w.byte(0x4b);
      w.byte(v);
    } else if (typeof v === 'number' && v >= 0 && v < 65536) {
      w.byte(0x4d);
      w.u16(v);
    } else if (typeof v === 'number' && v >= -(2 ** 31) && v < 2 ** 31) {
      w.byte(0x4a);
      w.u32(v >>> 0);
    } else {
      // LONG1: little-endian two's complement, as short as possible
      let b = BigInt(v);
      const out: number[] = [];
      for (;;) {
        out.push(Number(b & 0xffn));
        b >>= 8n;
        const sign = out[out.length - 1]! & 0x80;
        if ((b === 0n && !sign) || (b === -1n && sign)) break;
      }
      w.byte(0x8a);
      w.byte(out.length);
      w.bytes(Uint8Array.from(out));
    }
  };

  const global = (g: PyGlobal): void => {
    const key = `global:${g.qualifiedName}`;
    const seen = memoByString.get(key);
    if (seen !== undefined) return get(seen);
    w.byte(0x63);
    w.bytes(enc.encode(`${g.module}\n${g.name}\n`));
    memoByString.set(key, put());
  };

  const str = (s: string): void => {
    const seen = memoByString.get(s);
    if (seen !== undefined) return get(seen);
    const b = enc.encode(s);
    w.byte(0x58);
    w.u32(b.length);
    w.bytes(b);
    memoByString.set(s, put());
  };

  const tuple = (items: readonly PyValue[]): void => {
    if (items.length === 0) return w.byte(0x29);
    if (items.length <= 3) {
      for (const it of items) save(it);
      w.byte([0x85, 0x86, 0x87][items.length - 1]!);
    } else {
      w.byte(0x28);
      for (const it of items) save(it);
      w.byte(0x74);
    }
    put();
  };

  const emptyOrderedDict = (): void => {
    global(new PyGlobal('collections', 'OrderedDict'));
    w.byte(0x29);
    w.byte(0x52);
    put();
  };

  const tensor = (t: TorchTensor): void => {
    const cls = STORAGE_CLASS[t.dtype];
    if (!cls) throw new DarkroomError('TORCH_UNSUPPORTED', `cannot write a ${t.dtype} tensor to a torch file`);
    const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
    const key = String(storages.length);
    storages.push(data);
    if (t.isParameter) global(new PyGlobal('torch._utils', '_rebuild_parameter'));
    global(new PyGlobal('torch._utils', '_rebuild_tensor_v2'));
    w.byte(0x28); // MARK: the 6 arguments of _rebuild_tensor_v2
    tuple(['storage', new PyGlobal('torch', cls), key, 'cpu', t.data.length]);
    w.byte(0x51); // BINPERSID
    int(0);
    tuple([...t.shape]);
    const stride: number[] = [];
    let s = 1;
    for (let d = t.shape.length - 1; d >= 0; d--) {
      stride.unshift(s);
      s *= t.shape[d]!;
    }
    tuple(stride);
    save(t.isParameter ? false : t.requiresGrad);
    emptyOrderedDict();
    w.byte(0x74);
    put();
    w.byte(0x52);
    put();
    if (t.isParameter) {
      save(t.requiresGrad);
      emptyOrderedDict();
      w.byte(0x87);
      put();
      w.byte(0x52);
      put();
    }
  };

  const save = (v: PyValue): void => {
    if (v === null) return w.byte(0x4e);
    if (v === true) return w.byte(0x88);
    if (v === false) return w.byte(0x89);
    if (typeof v === 'number') {
      if (Number.isInteger(v) && !Object.is(v, -0)) return int(v);
      w.byte(0x47);
      return w.f64be(v);
    }
    if (typeof v === 'bigint') return int(v);
    if (typeof v === 'string') return str(v);
    if (v instanceof PyFloat) {
      w.byte(0x47);
      return w.f64be(v.value);
    }
    if (v instanceof PyGlobal) return global(v);
    const seen = memoByObject.get(v);
    if (seen !== undefined) return get(seen);
    if (v instanceof Uint8Array) {
      // Protocol 2 has no bytes opcode: Python writes _codecs.encode(latin-1 text, 'latin1').
      global(new PyGlobal('_codecs', 'encode'));
      tuple([String.fromCharCode(...v), 'latin1']);
      w.byte(0x52);
      memoByObject.set(v, put());
      return;
    }
    if (Array.isArray(v)) {
      w.byte(0x5d);
      memoByObject.set(v, put());
      // Python batches 1000 items per MARK ... APPENDS, and a batch of one is a bare APPEND.
      for (let i = 0; i < v.length; i += 1000) {
        const batch = v.slice(i, i + 1000);
        if (batch.length === 1) {
          save(batch[0]!);
          w.byte(0x61);
        } else {
          w.byte(0x28);
          for (const it of batch) save(it);
          w.byte(0x65);
        }
      }
      return;
    }
    if (v instanceof PyTuple) return tuple(v.items);
    if (v instanceof PyDict) {
      if (v instanceof PyOrderedDict) {
        global(new PyGlobal('collections', 'OrderedDict'));
        w.byte(0x29);
        w.byte(0x52);
      } else w.byte(0x7d);
      memoByObject.set(v, put());
      const items = [...v];
      for (let i = 0; i < items.length; i += 1000) {
        const batch = items.slice(i, i + 1000);
        if (batch.length === 1) {
          save(batch[0]![0]);
          save(batch[0]![1]);
          w.byte(0x73);
        } else {
          w.byte(0x28);
          for (const [k, val] of batch) {
            save(k);
            save(val);
          }
          w.byte(0x75);
        }
      }
      // An OrderedDict's instance attributes (torch state dicts: `_metadata`) follow its items, as Python writes.
      if (v instanceof PyOrderedDict && v.attributes !== undefined) {
        save(v.attributes);
        w.byte(0x62);
      }
      return;
    }
    if (v instanceof TorchTensor) {
      tensor(v);
      memoByObject.set(v, memoCount - 1);
      return;
    }
    if (v instanceof PySet) {
      global(new PyGlobal('__builtin__', 'set'));
      save(v.items);
      w.byte(0x85);
      put();
      w.byte(0x52);
      memoByObject.set(v, put());
      return;
    }
    if (v instanceof PyObject || v instanceof TorchStorage) {
      throw new DarkroomError('TORCH_UNSUPPORTED', 'the torch writer only writes plain data and tensors');
    }
    throw new DarkroomError('TORCH_UNSUPPORTED', `cannot pickle ${String(v)}`);
  };

  w.byte(0x80);
  w.byte(2);
  save(value);
  w.byte(0x2e);
  return { bytes: w.result(), storages };
}
