/**
 * Training oracle, `lr_schedule/`: A1111's learn-rate schedule parser and scheduler on every recorded schedule
 * text (the parsed items or the exact error), the scheduler stepped once and twice per step, the training
 * loop's use with gradient_step 1 and 2, and the clip-grad schedule beside it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDarkroomError } from '../src/errors.js';
import { LearnRateScheduler, parseLearnSchedule, planLearnRates, type LearnRatePlan } from '../src/training/learn-schedule.js';
import type { CaseResult } from './report.js';
import type { TrainingGroup } from './training-support.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Row = Json[];

interface ScheduleCase {
  readonly id?: string;
  readonly learn_rate?: string;
  readonly max_steps?: number;
  readonly cur_step?: number;
  readonly constructor?: {
    readonly ok: boolean;
    readonly rates?: Row[];
    readonly learn_rate?: number;
    readonly end_step?: number;
    readonly finished?: boolean;
    readonly exception_type?: string;
    readonly message?: string;
    readonly cause_type?: string;
    readonly cause_message?: string;
  };
  readonly step_calls_x1?: Row[];
  readonly step_calls_x2?: Row[];
  readonly loop_gs1?: LoopRecord;
  readonly loop_gs2?: LoopRecord;
  readonly first_finished_step?: number | null;
}

interface LoopRecord {
  readonly optimizer_steps: number;
  readonly final_step: number;
  readonly lr_change_points: Row[];
}

interface ClipCase {
  readonly id?: string;
  readonly learn_rate?: string;
  readonly clip_grad_value?: string;
  readonly max_steps?: number;
  readonly cur_step?: number;
  readonly per_optimizer_step_gs1?: Row[];
  readonly per_optimizer_step_gs2?: Row[];
}

interface ScheduleJson {
  readonly cases?: ScheduleCase[];
  readonly clip_cases?: ClipCase[];
}

const PY_FLOAT_TOKEN = '\u0000pyfloat:';

/** JSON as Python's json module writes it, which may hold the bare tokens NaN, Infinity and -Infinity. */
function parsePythonJson(text: string): Json {
  const quoted = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (tok) => (tok.startsWith('"') ? tok : JSON.stringify(PY_FLOAT_TOKEN + tok)));
  return JSON.parse(quoted, (_key, value: Json) =>
    typeof value === 'string' && value.startsWith(PY_FLOAT_TOKEN) ? Number(value.slice(PY_FLOAT_TOKEN.length)) : value,
  ) as Json;
}

/** Deep equality with Python's view of floats: equal when both are the same value, NaN included. */
function same(a: Json | undefined, b: Json | undefined): boolean {
  if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b) || a === b;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = Object.keys(b);
    return keys.length === Object.keys(a).length && keys.every((k) => same(a[k], b[k]));
  }
  return a === b;
}

function show(x: Json | undefined): string {
  const s = JSON.stringify(x, (_k, v: Json) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
  return s.length > 160 ? s.slice(0, 157) + '...' : s;
}

/** The scheduler's state after each call, one row when it changed or advanced, plus the first call. */
function stepCalls(text: string, maxSteps: number, curStep: number, callsPerStep: number): Row[] {
  const s = new LearnRateScheduler(text, maxSteps, curStep);
  const rows: Row[] = [];
  let prev: Row | undefined;
  for (let n = curStep; n <= maxSteps; n++) {
    for (let call = 0; call < callsPerStep; call++) {
      const returned = s.step(n);
      const state: Row = [s.learnRate, s.endStep, s.finished];
      if (!prev || returned || !same([...state], [...prev])) rows.push([n, call, ...state, returned]);
      prev = state;
    }
  }
  return rows;
}

function firstFinishedStep(text: string, maxSteps: number, curStep: number): number | null {
  const s = new LearnRateScheduler(text, maxSteps, curStep);
  for (let n = curStep; n <= maxSteps; n++) {
    s.step(n);
    if (s.finished) return n;
  }
  return null;
}

function loopRecord(plan: LearnRatePlan): LoopRecord {
  const changes: Row[] = [];
  for (const [i, p] of plan.steps.entries()) if (i === 0 || !same(p.lr, plan.steps[i - 1]!.lr)) changes.push([p.step, p.lr]);
  return { optimizer_steps: plan.optimizerSteps, final_step: plan.finalStep, lr_change_points: changes };
}

function missing(c: object, fields: readonly string[]): string[] {
  // Own properties only: `constructor` is one of the fixture's fields and every object inherits one.
  return fields.filter((f) => !Object.hasOwn(c, f) || (c as Record<string, unknown>)[f] === undefined);
}

function compareInto(problems: string[], label: string, actual: Json | undefined, ref: Json | undefined): void {
  if (!same(actual, ref)) problems.push(`${label}: got ${show(actual)}, expected ${show(ref)}`);
}

function scheduleCase(c: ScheduleCase, index: number): CaseResult {
  const name = `schedule/${c.id ?? `#${index}`}`;
  const absent = missing(c, ['learn_rate', 'max_steps', 'cur_step', 'constructor']);
  if (absent.length) return { name, status: 'skip', detail: `fixture lacks ${absent.join(', ')}` };
  const text = c.learn_rate!;
  const maxSteps = c.max_steps!;
  const curStep = c.cur_step!;
  const ref = c.constructor!;
  const problems: string[] = [];
  let rates: Json[] | undefined;
  try {
    rates = parseLearnSchedule(text, maxSteps, curStep).map((r) => [...r]);
  } catch (e) {
    if (!isDarkroomError(e, 'TRAINING_SCHEDULE_INVALID')) throw e;
    if (ref.ok) return { name, status: 'fail', detail: `rejected: ${String(e.details.causeType)}: ${String(e.details.causeMessage)}` };
    compareInto(problems, 'message', e.message, ref.message);
    compareInto(problems, 'cause_type', e.details.causeType as string, ref.cause_type);
    compareInto(problems, 'cause_message', e.details.causeMessage as string, ref.cause_message);
    if (ref.exception_type !== 'Exception') problems.push(`fixture raises ${show(ref.exception_type)}, A1111 raises Exception`);
    if (e.details.field !== 'learn_rate') problems.push(`details name field ${show(e.details.field as Json)}`);
    return { name, status: problems.length ? 'fail' : 'pass', ...(problems.length ? { detail: problems.join('; ') } : { detail: 'rejected as A1111 does' }) };
  }
  if (!ref.ok) return { name, status: 'fail', detail: `accepted as ${show(rates)}; A1111 raises ${ref.cause_type}: ${ref.cause_message}` };
  const s = new LearnRateScheduler(text, maxSteps, curStep);
  compareInto(problems, 'rates', rates, ref.rates);
  compareInto(problems, 'constructor', [s.learnRate, s.endStep, s.finished], [ref.learn_rate ?? null, ref.end_step ?? null, ref.finished ?? null]);
  const checked = ['rates'];
  for (const [field, calls] of [
    ['step_calls_x1', 1],
    ['step_calls_x2', 2],
  ] as const) {
    if (c[field] === undefined) continue;
    compareInto(problems, field, stepCalls(text, maxSteps, curStep, calls), c[field]);
    checked.push(field);
  }
  for (const [field, gs] of [
    ['loop_gs1', 1],
    ['loop_gs2', 2],
  ] as const) {
    const loop = c[field];
    if (loop === undefined) continue;
    const actual = loopRecord(planLearnRates({ learnRate: text, maxSteps, curStep, gradientStep: gs }));
    compareInto(problems, field, actual as unknown as Json, loop as unknown as Json);
    checked.push(field);
  }
  if (c.first_finished_step !== undefined) {
    compareInto(problems, 'first_finished_step', firstFinishedStep(text, maxSteps, curStep), c.first_finished_step);
    checked.push('first_finished_step');
  }
  return problems.length ? { name, status: 'fail', detail: problems.join('; ') } : { name, status: 'pass', detail: checked.join(', ') };
}

function clipCase(c: ClipCase, index: number): CaseResult {
  const name = `clip/${c.id ?? `#${index}`}`;
  const absent = missing(c, ['learn_rate', 'clip_grad_value', 'max_steps', 'cur_step']);
  if (absent.length) return { name, status: 'skip', detail: `fixture lacks ${absent.join(', ')}` };
  const problems: string[] = [];
  const checked: string[] = [];
  for (const [field, gs] of [
    ['per_optimizer_step_gs1', 1],
    ['per_optimizer_step_gs2', 2],
  ] as const) {
    if (c[field] === undefined) continue;
    const plan = planLearnRates({ learnRate: c.learn_rate!, clipGradValue: c.clip_grad_value!, maxSteps: c.max_steps!, curStep: c.cur_step!, gradientStep: gs });
    const rows: Row[] = plan.steps.map((p) => [p.step, p.lr, p.clip!.value, p.clip!.finished]);
    compareInto(problems, field, rows, c[field]);
    checked.push(field);
  }
  if (!checked.length) return { name, status: 'skip', detail: 'fixture has no per_optimizer_step rows' };
  return problems.length ? { name, status: 'fail', detail: problems.join('; ') } : { name, status: 'pass', detail: checked.join(', ') };
}

function guarded(name: string, run: () => CaseResult): CaseResult {
  try {
    return run();
  } catch (e) {
    return { name, status: 'fail', detail: e instanceof Error ? e.message : String(e) };
  }
}

export const runGroup: TrainingGroup = async function* (groupFolder) {
  const json = parsePythonJson(await readFile(join(groupFolder, 'lr_schedule.json'), 'utf8')) as ScheduleJson;
  if (!json.cases) yield { name: 'schedule', status: 'skip', detail: 'lr_schedule.json has no cases' };
  for (const [i, c] of (json.cases ?? []).entries()) yield guarded(`schedule/${c.id ?? `#${i}`}`, () => scheduleCase(c, i));
  if (!json.clip_cases) yield { name: 'clip', status: 'skip', detail: 'lr_schedule.json has no clip_cases' };
  for (const [i, c] of (json.clip_cases ?? []).entries()) yield guarded(`clip/${c.id ?? `#${i}`}`, () => clipCase(c, i));
};
