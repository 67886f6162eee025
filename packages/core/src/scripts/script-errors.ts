/** Typed errors of the scripts: a field (`script_args[N]`, or the request field) a client can act on. */
import { DarkroomError } from '../errors.js';
import { fixedSeed } from '../pipeline/seeds.js';
import type { PlanContext } from './types.js';

/** A script argument of the wrong type or outside what the script takes. */
export function scriptArgError(field: string, message: string, value: unknown): never {
  throw new DarkroomError('SCRIPT_ARGS_INVALID', `${field}: ${message}`, { field, value });
}

/** An X/Y/Z axis value A1111 would refuse (its ValueError / RuntimeError), naming the axis and the value. */
export function axisError(field: string, axis: string, value: string, message: string): never {
  throw new DarkroomError('SCRIPT_AXIS_INVALID', `${field}: ${axis} value ${JSON.stringify(value)}: ${message}`, { field, axis, value });
}

/** A1111's get_fixed_seed with the plan's random source: plans never draw randomness of their own. */
export function fixSeed(seed: number | undefined | null, ctx: PlanContext, what: string): number {
  const s = seed ?? -1;
  if (s !== -1) return s;
  const random = ctx.randomSeed;
  if (!random) throw new DarkroomError('SCRIPT_SEED_UNRESOLVED', `${what} is -1 and the plan was given no random seed source`, { field: what });
  return fixedSeed(s, random);
}

/** The cell count guard. */
export function checkCellCount(count: number, ctx: PlanContext, what: string): void {
  const max = ctx.maxCells ?? 4096;
  if (count > max) throw new DarkroomError('SCRIPT_TOO_MANY_CELLS', `${what} would make ${count} images, more than the ${max} a script may`, { count, max });
}
