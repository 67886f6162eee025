/**
 * X/Y/Z plot value lists as A1111's process_axis reads them: the text is read as CSV (Python's csv module,
 * skipinitialspace, every field stripped, rows chained), ints take `a-b`, `a-b (+step)` and `a-b [count]`,
 * floats the same with numpy's arange and linspace, Prompt order takes every permutation, and each value is
 * then converted with Python's int() / float().
 */
import { isDarkroomError } from '../errors.js';
import { readCsvRows } from '../text/prompt-styles.js';
import { parsePyFloat, parsePyInt } from '../text/python-compat.js';
import { axisError } from './script-errors.js';
import type { AxisValue, XyzAxis } from './xyz-axes.js';

const RE_RANGE = /^\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*$/u;
const RE_RANGE_FLOAT = /^\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*$/u;
const RE_RANGE_COUNT = /^\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\[(\d+)\s*\])?\s*$/u;
const RE_RANGE_COUNT_FLOAT = /^\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)(?:\s*\[(\d+(?:.\d*)?)\s*\])?\s*$/u;

/** csv_string_to_list_strip. */
export function csvValues(text: string): string[] {
  // Python's reader yields nothing for a blank line, and readCsvRows drops those rows too.
  return readCsvRows(text).flat().map((v) => v.trim());
}

/** list_to_csv_string: csv.writer's minimal quoting of one row, line end stripped. */
export function csvLine(values: readonly string[]): string {
  const quoted = values.map((v) => (/[",\r\n]/.test(v) || (values.length === 1 && v === '') ? `"${v.replace(/"/g, '""')}"` : v));
  return quoted.join(',').trim();
}

/** numpy.arange(start, stop, step) in float64: length ceil((stop - start) / step), element i = start + i * delta. */
export function npArange(start: number, stop: number, step: number): number[] {
  const length = Math.ceil((stop - start) / step);
  if (!Number.isFinite(length)) throw new RangeError('Maximum allowed size exceeded');
  if (length <= 0) return [];
  // numpy fills element 1 as start + step, then every later one from the difference of the first two.
  const delta = start + step - start;
  return Array.from({ length }, (_, i) => (i === 0 ? start : i === 1 ? start + step : start + i * delta));
}

/** numpy.linspace(start, stop, num) with the endpoint: i * step + start, the last element exactly stop. */
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (num < 0) throw new RangeError(`Number of samples, ${num}, must be non-negative.`);
  const div = num - 1;
  const delta = stop - start;
  const step = div > 0 ? delta / div : NaN;
  const out = Array.from({ length: num }, (_, i) => (div > 0 ? (step === 0 ? (i / div) * delta : i * step) : i * delta) + start);
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** Every ordering of the values, in itertools.permutations order. */
export function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  const out: T[][] = [];
  items.forEach((item, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([item, ...rest]);
  });
  return out;
}

function py<T>(field: string, axis: string, value: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isDarkroomError(e, 'PY_VALUE_ERROR') || e instanceof RangeError) axisError(field, axis, value, e.message);
    throw e;
  }
}

/**
 * The typed values of one axis. `field` names the script argument for errors; `maxValues` stops a range such
 * as `1-100000000` before it is built.
 */
export function axisValues(axis: XyzAxis, values: readonly string[], field: string, maxValues: number): AxisValue[] {
  if (axis.label === 'Nothing') return [0];
  const check = (n: number, value: string): void => {
    if (n > maxValues) axisError(field, axis.label, value, `makes more than ${maxValues} values`);
  };
  if (axis.type === 'int') {
    const out: number[] = [];
    for (const val of values) {
      const m = RE_RANGE.exec(val);
      const mc = RE_RANGE_COUNT.exec(val);
      if (m) {
        const start = py(field, axis.label, val, () => parsePyInt(m[1]!));
        const end = py(field, axis.label, val, () => parsePyInt(m[2]!)) + 1;
        const step = m[3] === undefined ? 1 : py(field, axis.label, val, () => parsePyInt(m[3]!));
        if (step === 0) axisError(field, axis.label, val, 'range() arg 3 must not be zero');
        const n = Math.max(0, Math.ceil((end - start) / step));
        check(out.length + n, val);
        for (let i = 0; i < n; i++) out.push(start + i * step);
      } else if (mc) {
        const start = py(field, axis.label, val, () => parsePyInt(mc[1]!));
        const end = py(field, axis.label, val, () => parsePyInt(mc[2]!));
        const num = mc[3] === undefined ? 1 : py(field, axis.label, val, () => parsePyInt(mc[3]!));
        check(out.length + num, val);
        out.push(...npLinspace(start, end, num).map(Math.trunc));
      } else {
        check(out.length + 1, val);
        out.push(py(field, axis.label, val, () => parsePyInt(val)));
      }
    }
    return out;
  }
  if (axis.type === 'float') {
    const out: number[] = [];
    for (const val of values) {
      const m = RE_RANGE_FLOAT.exec(val);
      const mc = RE_RANGE_COUNT_FLOAT.exec(val);
      if (m) {
        const start = py(field, axis.label, val, () => parsePyFloat(m[1]!));
        const end = py(field, axis.label, val, () => parsePyFloat(m[2]!));
        const step = m[3] === undefined ? 1 : py(field, axis.label, val, () => parsePyFloat(m[3]!));
        if (step === 0) axisError(field, axis.label, val, 'float division by zero');
        const n = Math.ceil((end + step - start) / step);
        check(out.length + Math.max(0, n), val);
        out.push(...py(field, axis.label, val, () => npArange(start, end + step, step)));
      } else if (mc) {
        const start = py(field, axis.label, val, () => parsePyFloat(mc[1]!));
        const end = py(field, axis.label, val, () => parsePyFloat(mc[2]!));
        const num = mc[3] === undefined ? 1 : py(field, axis.label, val, () => parsePyInt(mc[3]!));
        check(out.length + num, val);
        out.push(...npLinspace(start, end, num));
      } else {
        check(out.length + 1, val);
        out.push(py(field, axis.label, val, () => parsePyFloat(val)));
      }
    }
    return out;
  }
  if (axis.type === 'permutations') {
    let count = 1;
    for (let i = 2; i <= values.length; i++) count *= i;
    check(count, values.join(','));
    return permutations(values);
  }
  return [...values];
}

/** Python's round(x, 8) for a legend: correctly rounded, exact ties to the even neighbour. */
export function round8(x: number): number {
  if (!Number.isFinite(x)) return x;
  // An exact tie at the 8th decimal is an odd multiple of 1/512 (x * 1e8 = j * 195312.5 with j odd);
  // toFixed would break it away from zero.
  const j = x * 512;
  if (Number.isInteger(j) && Math.abs(j) % 2 === 1 && Math.abs(j) < 2 ** 40) {
    const lower = Math.floor(j * 195312.5);
    return (lower % 2 === 0 ? lower : lower + 1) / 1e8;
  }
  return Number(x.toFixed(8));
}
