/** The typed options of A1111's "X/Y/Z plot" script (its run() arguments after `p`). */

export interface XyzAxisOptions {
  /** The axis type by A1111's label ("Steps", "CFG Scale", "Prompt S/R", ...; "Nothing" for an unused axis). */
  readonly type: string;
  /** The values text box: a CSV list with ranges such as `1-5`, `1-10 (+2)`, `1-10 [5]`. */
  readonly values: string;
  /** The values dropdown, read instead of the text for axes with choices unless csvMode is set. */
  readonly valuesDropdown: readonly string[];
}

export interface XyzPlotOptions {
  readonly x: XyzAxisOptions;
  readonly y: XyzAxisOptions;
  readonly z: XyzAxisOptions;
  /** "Draw legend". */
  readonly drawLegend: boolean;
  /** "Include Sub Images": every cell's image after the grids. */
  readonly includeLoneImages: boolean;
  /** "Include Sub Grids": the X/Y grid of each Z value after the main grid. */
  readonly includeSubGrids: boolean;
  /** "Keep -1 for seeds": leave -1 seeds for each cell to draw, instead of fixing them once for the plot. */
  readonly noFixedSeeds: boolean;
  /** "Vary seeds for X/Y/Z": add the cell's position along those axes to its seed. */
  readonly varySeedsX: boolean;
  readonly varySeedsY: boolean;
  readonly varySeedsZ: boolean;
  /** "Grid margins (px)". */
  readonly marginSize: number;
  /** "Use text inputs instead of dropdowns". */
  readonly csvMode: boolean;
}

export const XYZ_AXIS_NOTHING: XyzAxisOptions = { type: 'Nothing', values: '', valuesDropdown: [] };

export const XYZ_PLOT_DEFAULTS: XyzPlotOptions = {
  x: { type: 'Seed', values: '', valuesDropdown: [] },
  y: XYZ_AXIS_NOTHING,
  z: XYZ_AXIS_NOTHING,
  drawLegend: true,
  includeLoneImages: false,
  includeSubGrids: false,
  noFixedSeeds: false,
  varySeedsX: false,
  varySeedsY: false,
  varySeedsZ: false,
  marginSize: 0,
  csvMode: false,
};
