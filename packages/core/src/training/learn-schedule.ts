/**
 * A1111's learn-rate schedule text ("0.005:100, 1e-4:1000, 1e-5") and the scheduler that walks it
 * (modules/textual_inversion/learn_schedule.py). The same parser reads the clip-grad value field.
 */
import { DarkroomError, isDarkroomError } from '../errors.js';
import { PY_SPACE, parsePyFloat, parsePyInt } from '../text/python-compat.js';

/** A1111's message, word for word: clients show it as the reason the field was rejected. */
export const INVALID_SCHEDULE_MESSAGE =
  'Invalid learning rate schedule. It should be a number or, for example, like "0.001:100, 0.00001:1000, 1e-5:10000" ' +
  'to have lr of 0.001 until step 100, 0.00001 until 1000, and 1e-5 until 10000.';

/** One schedule item: the rate, and the optimizer step up to which it holds. */
export type ScheduleItem = readonly [rate: number, endStep: number];

export interface ScheduleOptions {
  /** The request field the text came from (`learn_rate`, `clip_grad_value`), named in the error details. */
  readonly field?: string;
}

const BLANK = new RegExp(`^[${PY_SPACE}]*$`, 'u');

/** The Python exception A1111 chains its own from: its type and message. */
function scheduleError(text: string, field: string, causeType: string, causeMessage: string): DarkroomError {
  return new DarkroomError('TRAINING_SCHEDULE_INVALID', INVALID_SCHEDULE_MESSAGE, { field, value: text, causeType, causeMessage });
}

function pyNumber<T>(parse: (s: string) => T, s: string, text: string, field: string): T {
  try {
    return parse(s);
  } catch (e) {
    if (isDarkroomError(e, 'PY_VALUE_ERROR')) throw scheduleError(text, field, 'ValueError', e.message);
    throw e;
  }
}

/**
 * `LearnScheduleIterator(text, maxSteps, curStep).rates`. Parsing stops at the first item that runs to the end
 * (no step, step -1, or a step past `maxSteps`), so what follows it is never read; items whose step is not
 * past `curStep` are dropped unread except for their step, which is how a resumed run skips finished items.
 */
export function parseLearnSchedule(text: string, maxSteps: number, curStep: number, opts: ScheduleOptions = {}): ScheduleItem[] {
  const field = opts.field ?? 'learn_rate';
  const rates: ScheduleItem[] = [];
  for (const item of text.split(',')) {
    if (BLANK.test(item)) continue;
    const parts = item.split(':');
    if (parts.length !== 2) {
      // Two colons count as "no step" too: only the rate before the first one is read.
      rates.push([pyNumber(parsePyFloat, parts[0]!, text, field), maxSteps]);
      return rates;
    }
    // The step is converted before the rate, so a bad step is the error reported even when the rate is bad too.
    const step = pyNumber(parsePyInt, parts[1]!, text, field);
    if (step > curStep) {
      rates.push([pyNumber(parsePyFloat, parts[0]!, text, field), Math.min(step, maxSteps)]);
      if (step > maxSteps) return rates;
    } else if (step === -1) {
      rates.push([pyNumber(parsePyFloat, parts[0]!, text, field), maxSteps]);
      return rates;
    }
  }
  if (rates.length === 0) throw scheduleError(text, field, 'AssertionError', '');
  return rates;
}

/**
 * `LearnRateScheduler`: holds the current item; `step(n)` moves to the next item (one per call) once `n`
 * reaches the current end step, and marks the schedule finished when there is none left.
 */
export class LearnRateScheduler {
  private readonly items: readonly ScheduleItem[];
  private current = 0;
  private done = false;

  constructor(text: string, maxSteps: number, curStep = 0, opts: ScheduleOptions = {}) {
    this.items = parseLearnSchedule(text, maxSteps, curStep, opts);
  }

  /** The items parsed from the text (A1111's `schedules.rates`). */
  get rates(): readonly ScheduleItem[] {
    return this.items;
  }

  get learnRate(): number {
    return this.items[this.current]![0];
  }

  get endStep(): number {
    return this.items[this.current]![1];
  }

  /** Set once a step reached the last item's end; the rate and end step stay those of the last item. */
  get finished(): boolean {
    return this.done;
  }

  /** True when it moved to a new item (the trainer then writes the new rate into the optimizer). */
  step(stepNumber: number): boolean {
    if (stepNumber < this.endStep) return false;
    if (this.current + 1 >= this.items.length) {
      this.done = true;
      return false;
    }
    this.current++;
    return true;
  }
}

export interface LearnRatePlanOptions {
  readonly learnRate: string;
  /** The clip-grad value text when clipping is on (A1111 parses it only then). */
  readonly clipGradValue?: string;
  readonly maxSteps: number;
  /** Optimizer steps already done (the embedding's or hypernetwork's step on resume). */
  readonly curStep: number;
  /** Micro-batches per optimizer step, as the dataset settled it. */
  readonly gradientStep: number;
  /**
   * The rate the optimizer starts with when its saved state was loaded: `load_state_dict` restores the saved
   * rate and the scheduler only writes one when it advances. Without it the optimizer starts at the first item.
   */
  readonly optimizerLr?: number;
}

export interface PlannedStep {
  /** Optimizer steps done before this one. */
  readonly step: number;
  readonly lr: number;
  /** The clip value in force, and whether the clip schedule had run out (which changes nothing). */
  readonly clip?: { readonly value: number; readonly finished: boolean };
}

export interface LearnRatePlan {
  readonly steps: readonly PlannedStep[];
  readonly optimizerSteps: number;
  /** The step count training ends at: the last item's end step, which can come before `maxSteps`. */
  readonly finalStep: number;
}

/**
 * The rates a training run uses, step by step. A1111 calls `apply` before every micro-batch, not once per
 * optimizer step, so with gradient accumulation the schedule can advance twice within one step, and a
 * schedule that finishes on a later micro-batch abandons the step it was accumulating.
 */
export function planLearnRates(opts: LearnRatePlanOptions): LearnRatePlan {
  const { maxSteps, curStep, gradientStep } = opts;
  if (!Number.isInteger(gradientStep) || gradientStep < 1) {
    throw new DarkroomError('BAD_PARAMS', `gradient_step must be a positive integer, got ${gradientStep}`, { field: 'gradient_step' });
  }
  const lrSched = new LearnRateScheduler(opts.learnRate, maxSteps, curStep, { field: 'learn_rate' });
  const clipSched =
    opts.clipGradValue === undefined ? undefined : new LearnRateScheduler(opts.clipGradValue, maxSteps, curStep, { field: 'clip_grad_value' });
  let lr = opts.optimizerLr ?? lrSched.learnRate;
  const steps: PlannedStep[] = [];
  for (let step = curStep; ; step++) {
    for (let micro = 0; micro < gradientStep; micro++) {
      if (lrSched.step(step)) lr = lrSched.learnRate;
      if (lrSched.finished) return { steps, optimizerSteps: steps.length, finalStep: step };
      clipSched?.step(step);
    }
    steps.push(clipSched ? { step, lr, clip: { value: clipSched.learnRate, finished: clipSched.finished } } : { step, lr });
  }
}
