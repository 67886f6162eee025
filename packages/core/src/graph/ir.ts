/** The in-memory graph the builder grows: values, nodes in topological (creation) order, and initializers. */
import type { DType, HostTensor } from '../tensor.js';

/** A tensor flowing through the graph. Shapes are always static. */
export interface Value {
  readonly id: number;
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export type Attr =
  | { i: number }
  | { f: number }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { s: string }
  | { t: HostTensor };

export interface Node {
  readonly opType: string;
  readonly domain: string;
  /** Missing optional inputs are undefined (serialized as empty names). */
  readonly inputs: ReadonlyArray<Value | undefined>;
  readonly outputs: readonly Value[];
  readonly attrs: Readonly<Record<string, Attr>>;
}

export interface Initializer {
  readonly value: Value;
  readonly tensor: HostTensor;
}

export interface BuiltModel {
  readonly bytes: Uint8Array;
  readonly externalData: ReadonlyArray<{ path: string; data: Uint8Array }>;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

export function attrInt(attrs: Readonly<Record<string, Attr>>, name: string, fallback: number): number {
  const a = attrs[name];
  return a && 'i' in a ? a.i : fallback;
}

export function attrFloat(attrs: Readonly<Record<string, Attr>>, name: string, fallback: number): number {
  const a = attrs[name];
  return a && 'f' in a ? a.f : fallback;
}

export function attrInts(
  attrs: Readonly<Record<string, Attr>>,
  name: string,
  fallback?: readonly number[],
): readonly number[] | undefined {
  const a = attrs[name];
  return a && 'ints' in a ? a.ints : fallback;
}

export function attrString(attrs: Readonly<Record<string, Attr>>, name: string, fallback: string): string {
  const a = attrs[name];
  return a && 's' in a ? a.s : fallback;
}
