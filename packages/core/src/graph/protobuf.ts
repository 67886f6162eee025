/**
 * Minimal protobuf wire-format writer: just what the ONNX messages need (varints, length-delimited fields,
 * fixed32 floats). Messages are written bottom-up: a nested message is encoded first and embedded as bytes,
 * which keeps the writer stateless and the output a pure function of the input (the compile cache hashes it).
 */
const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const textEncoder = new TextEncoder();

export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private scratch = new Uint8Array(64);
  private scratchUsed = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  private flushScratch(): void {
    if (this.scratchUsed > 0) {
      this.chunks.push(this.scratch.slice(0, this.scratchUsed));
      this.scratchUsed = 0;
    }
  }

  private byte(b: number): void {
    if (this.scratchUsed === this.scratch.length) this.flushScratch();
    this.scratch[this.scratchUsed++] = b;
    this.total++;
  }

  /** Unsigned or two's-complement (negative int64) varint. */
  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    if (v < 0x80n) {
      this.byte(Number(v));
      return;
    }
    while (v >= 0x80n) {
      this.byte(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.byte(Number(v));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    for (const x of b) this.byte(x);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    this.flushScratch();
    if (data.length > 0) this.chunks.push(data);
    this.total += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, textEncoder.encode(s));
  }

  /** Embeds a nested message by reference: large raw tensors are copied once, in the final finish(). */
  message(field: number, m: ProtoWriter): this {
    m.flushScratch();
    this.tag(field, WIRE_LEN);
    this.varint(m.total);
    this.flushScratch();
    for (const c of m.chunks) this.chunks.push(c);
    this.total += m.total;
    return this;
  }

  /** Packed repeated int64/int32. */
  packedInts(field: number, values: readonly number[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(v);
    return this.bytes(field, inner.finish());
  }

  /** Packed repeated float. */
  packedFloats(field: number, values: readonly number[]): this {
    const b = new Uint8Array(values.length * 4);
    const dv = new DataView(b.buffer);
    values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    return this.bytes(field, b);
  }

  finish(): Uint8Array {
    this.flushScratch();
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.total);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}
