/**
 * A1111's "X/Y/Z plot" (scripts/xyz_grid.py run / draw_xyz_grid) as a plan: the axis values parsed and checked
 * before anything renders, -1 seeds fixed once (unless "Keep -1 for seeds"), one cell per (x, y, z) with the
 * axes applied in x, y, z order to a copy of the base request, cells ordered as A1111 iterates them (the
 * costliest axis outermost), an X/Y grid per Z value with the X labels on top and the Y labels on the left,
 * and the main grid of those grids side by side under the Z labels.
 *
 * A cell keeps the base request's batch_size and n_iter; its grid image is its first image. (A1111 with
 * batch_size > 1 and grids saved, save_images on the API, puts the cell's own batch grid there, an accident of
 * process_images returning it first.)
 */
import { DarkroomError } from '../errors.js';
import type { InfotextValue } from '../formats/infotext.js';
import { pyFloatRepr } from '../text/python-compat.js';
import { axisError, checkCellCount, fixSeed, scriptArgError } from './script-errors.js';
import type { GenerationParams, GridSpec, PlanContext, ScriptCell, ScriptOutput, ScriptPlan } from './types.js';
import { xyzAxesFor, type AxisApplyContext, type AxisValue, type CellDraft, type XyzAxis } from './xyz-axes.js';
import type { XyzAxisOptions, XyzPlotOptions } from './xyz-options.js';
import { axisValues, csvLine, csvValues, round8 } from './xyz-values.js';

type AxisKey = 'x' | 'y' | 'z';

/** Where each axis sits in A1111's script_args, for errors. */
const ARG_INDEX: Record<AxisKey, { type: number; values: number; dropdown: number }> = {
  x: { type: 0, values: 1, dropdown: 2 },
  y: { type: 3, values: 4, dropdown: 5 },
  z: { type: 6, values: 7, dropdown: 8 },
};

/** A value as Python's str() writes it: ints plain, floats with their repr. */
function pyValue(axis: XyzAxis, v: AxisValue): string {
  if (typeof v === 'number') return axis.type === 'float' ? pyFloatRepr(v) : String(v);
  return typeof v === 'string' ? v : v.join(', ');
}

/** The legend text of one value (format_value_add_label, format_value, ...); floats rounded to 8 places. */
export function axisLabel(axis: XyzAxis, v: AxisValue): string {
  const shown = typeof v === 'number' && axis.type === 'float' ? pyFloatRepr(round8(v)) : pyValue(axis, v);
  switch (axis.format) {
    case 'nothing':
      return '';
    case 'value':
    case 'join':
      return shown;
    case 'basename':
      return shown.slice(Math.max(shown.lastIndexOf('/'), shown.lastIndexOf('\\')) + 1);
    default:
      return `${axis.label}: ${shown}`;
  }
}

interface ResolvedAxis {
  readonly key: AxisKey;
  readonly axis: XyzAxis;
  readonly values: AxisValue[];
  /** The text the infotext's "X Values" shows (the dropdown written as CSV when it was used). */
  readonly valuesText: string;
}

function resolveAxis(key: AxisKey, o: XyzAxisOptions, opts: XyzPlotOptions, mode: 'txt2img' | 'img2img', ctx: PlanContext, apply: AxisApplyContext): ResolvedAxis {
  const idx = ARG_INDEX[key];
  const axes = xyzAxesFor(mode);
  const axis = axes.find((a) => a.label === o.type);
  if (!axis) scriptArgError(`script_args[${idx.type}]`, `${JSON.stringify(o.type)} is no ${mode} X/Y/Z plot axis`, o.type);
  if (!axis.apply) scriptArgError(`script_args[${idx.type}]`, `the ${axis.label} axis is not supported by Darkroom`, axis.label);
  const fromDropdown = axis.hasChoices && !opts.csvMode;
  const valuesText = fromDropdown ? csvLine(o.valuesDropdown) : o.values;
  const field = `script_args[${fromDropdown ? idx.dropdown : idx.values}]`;
  let raw: string[];
  try {
    raw = fromDropdown ? [...o.valuesDropdown] : csvValues(o.values);
  } catch (e) {
    if (e instanceof DarkroomError && e.code === 'STYLES_BAD_CSV') axisError(field, axis.label, o.values, 'a quoted value is not closed');
    throw e;
  }
  const values = axisValues(axis, raw, field, ctx.maxCells ?? 4096);
  if (axis.label !== 'Nothing' && values.length === 0) axisError(field, axis.label, valuesText, 'no values');
  const problem = axis.confirm?.(values, apply);
  if (problem) axisError(field, axis.label, valuesText, problem);
  return { key, axis, values, valuesText };
}

/** fix_axis_seeds: a -1 (or empty) Seed / Var. seed value becomes one random seed. */
function fixAxisSeeds(a: ResolvedAxis, ctx: PlanContext): ResolvedAxis {
  if (a.axis.label !== 'Seed' && a.axis.label !== 'Var. seed') return a;
  return { ...a, values: a.values.map((v) => (v === -1 ? fixSeed(-1, ctx, `${a.axis.label} axis`) : v)) };
}

/** The order A1111 runs the cells in: [outer, middle, inner] axes by switching cost, z-y-x by default. */
export function iterationOrder(costs: Record<AxisKey, number>): [AxisKey, AxisKey, AxisKey] {
  const { x, y, z } = costs;
  let first: AxisKey = 'z';
  let second: AxisKey = 'y';
  if (x > y && x > z) {
    first = 'x';
    second = y > z ? 'y' : 'z';
  } else if (y > x && y > z) {
    first = 'y';
    second = x > z ? 'x' : 'z';
  } else if (z > x && z > y) {
    first = 'z';
    second = x > y ? 'x' : 'y';
  }
  const third = (['x', 'y', 'z'] as const).find((k) => k !== first && k !== second)!;
  return [first, second, third];
}

export interface XyzCellPosition {
  readonly ix: number;
  readonly iy: number;
  readonly iz: number;
}

export function planXyzPlot<P extends GenerationParams>(o: XyzPlotOptions, base: P, ctx: PlanContext = {}): ScriptPlan<P> & { positions: XyzCellPosition[] } {
  if (!Number.isInteger(o.marginSize) || o.marginSize < 0 || o.marginSize > 500) scriptArgError('script_args[16]', 'grid margins must be an integer from 0 to 500', o.marginSize);
  const mode = ctx.mode ?? ('init_images' in base ? 'img2img' : 'txt2img');
  const warnings: string[] = [];
  const applyCtx: AxisApplyContext = { checkpoints: ctx.checkpoints, vaes: ctx.vaes, warn: (m) => warnings.push(m) };

  let seeded: P = base;
  if (!o.noFixedSeeds) seeded = { ...base, seed: fixSeed(base.seed, ctx, 'seed'), subseed: fixSeed(base.subseed, ctx, 'subseed') };

  let axes = (['x', 'y', 'z'] as const).map((k) => resolveAxis(k, o[k], o, mode, ctx, applyCtx));
  const [nx, ny, nz] = axes.map((a) => a.values.length) as [number, number, number];
  checkCellCount(nx * ny * nz, ctx, 'the X/Y/Z plot');
  const width = seeded.width ?? 512;
  const height = seeded.height ?? 512;
  const megapixels = Math.round((nx * ny * nz * width * height) / 1_000_000);
  const maxMp = ctx.maxGridMegapixels ?? 200;
  if (megapixels >= maxMp) {
    throw new DarkroomError('SCRIPT_GRID_TOO_LARGE', `Resulting grid would be too large (${megapixels} MPixels) (max configured size is ${maxMp} MPixels)`, { megapixels, max: maxMp });
  }
  if (!o.noFixedSeeds) axes = axes.map((a) => fixAxisSeeds(a, ctx));
  const [ax, ay, az] = axes as [ResolvedAxis, ResolvedAxis, ResolvedAxis];

  const index = (p: XyzCellPosition) => p.ix + p.iy * nx + p.iz * nx * ny;
  const order = iterationOrder({ x: ax.axis.cost, y: ay.axis.cost, z: az.axis.cost });
  const sizes = { x: nx, y: ny, z: nz };
  const positions: XyzCellPosition[] = [];
  for (let a = 0; a < sizes[order[0]]; a++) {
    for (let b = 0; b < sizes[order[1]]; b++) {
      for (let c = 0; c < sizes[order[2]]; c++) {
        const at = { x: 0, y: 0, z: 0 };
        at[order[0]] = a;
        at[order[1]] = b;
        at[order[2]] = c;
        positions.push({ ix: at.x, iy: at.y, iz: at.z });
      }
    }
  }

  const cells: ScriptCell<P>[] = positions.map((pos) => {
    const draft: CellDraft = { ...seeded, override_settings: { ...seeded.override_settings } };
    const at: Record<AxisKey, number> = { x: pos.ix, y: pos.iy, z: pos.iz };
    for (const a of axes) {
      const value = a.values[at[a.key]]!;
      const problem = a.axis.apply!(draft, value, a.values, applyCtx);
      if (problem) axisError(`script_args[${ARG_INDEX[a.key].values}]`, a.axis.label, pyValue(a.axis, value), problem);
    }
    const xdim = o.varySeedsX ? nx : 1;
    const ydim = o.varySeedsY ? ny : 1;
    let seed = typeof draft.seed === 'number' ? draft.seed : -1;
    if (o.varySeedsX) seed += pos.ix;
    if (o.varySeedsY) seed += pos.iy * xdim;
    if (o.varySeedsZ) seed += pos.iz * xdim * ydim;
    draft.seed = seed;
    const label = axes.map((a) => axisLabel(a.axis, a.values[at[a.key]]!)).filter((t) => t !== '').join(', ');
    // The draft is a copy of P with axis fields set, each of a type P declares.
    return { params: draft as unknown as P, label };
  });

  // Grid position -> cell (A1111 stores images by position whatever order they ran in).
  const cellAt = new Map(positions.map((p, i) => [index(p), i]));
  const extraFor = (keys: readonly AxisKey[]): [string, InfotextValue][] => {
    const out: [string, InfotextValue][] = [];
    for (const a of axes.filter((x) => keys.includes(x.key))) {
      if (a.axis.label === 'Nothing') continue;
      const K = a.key.toUpperCase();
      out.push([`${K} Type`, a.axis.label], [`${K} Values`, a.valuesText]);
      if ((a.axis.label === 'Seed' || a.axis.label === 'Var. seed') && !o.noFixedSeeds) {
        out.push([`Fixed ${K} Values`, a.values.map((v) => pyValue(a.axis, v)).join(', ')]);
      }
    }
    return out;
  };
  const legend = (columns: string[], rows: string[], margin: number) =>
    o.drawLegend ? { columns: columns.map((text) => [{ text, active: true }]), rows: rows.map((text) => [{ text, active: true }]), margin } : null;
  const xLabels = ax.values.map((v) => axisLabel(ax.axis, v));
  const yLabels = ay.values.map((v) => axisLabel(ay.axis, v));
  const zLabels = az.values.map((v) => axisLabel(az.axis, v));

  const subGrids: GridSpec[] = az.values.map((_, iz) => ({
    source: { kind: 'cells', cells: Array.from({ length: nx * ny }, (_, k) => cellAt.get(k + iz * nx * ny)!) },
    rows: ny,
    legend: legend(xLabels, yLabels, o.marginSize),
    infotext: { cell: cellAt.get(iz * nx * ny)!, extra: [['Script', 'X/Y/Z plot'], ...extraFor(['x', 'y'])] },
  }));
  const mainGrid: GridSpec = {
    source: { kind: 'grids', grids: subGrids.map((_, i) => i + 1) },
    rows: 1,
    legend: legend(zLabels, [''], 0),
    infotext: { cell: cellAt.get(0)!, extra: [['Script', 'X/Y/Z plot'], ...extraFor(['x', 'y', 'z'])] },
  };

  const outputs: ScriptOutput[] = [{ kind: 'grid', grid: 0 }];
  if (o.includeSubGrids) outputs.push(...subGrids.map((_, i) => ({ kind: 'grid' as const, grid: i + 1 })));
  if (o.includeLoneImages) {
    for (let k = 0; k < nx * ny * nz; k++) outputs.push({ kind: 'cell-first', cell: cellAt.get(k)! });
  }
  return { script: 'x/y/z plot', cells, layout: { grids: [mainGrid, ...subGrids] }, outputs, warnings, positions };
}
