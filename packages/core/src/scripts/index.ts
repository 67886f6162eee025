export { SCRIPT_NAMES, SCRIPT_TITLES, scriptByName, type ScriptName } from './names.js';
export type {
  GenerationParams,
  GridAnnotation,
  GridLayout,
  GridLegend,
  GridSource,
  GridSpec,
  ImageRGB,
  PlanContext,
  ScriptCell,
  ScriptOutput,
  ScriptPlan,
} from './types.js';
export { planScript } from './plan.js';
export { scriptArgsFromA1111, type ScriptArgsContext, type ScriptOptions, type ScriptOptionsByName } from './script-args.js';
export { scriptInfos, type ScriptArgInfo, type ScriptInfo } from './script-info.js';
export { PROMPT_MATRIX_DEFAULTS, type PromptMatrixOptions } from './prompt-matrix.js';
export { XYZ_PLOT_DEFAULTS, XYZ_AXIS_NOTHING, type XyzAxisOptions, type XyzPlotOptions } from './xyz-options.js';
export { XYZ_AXES, xyzAxesFor, type XyzAxis } from './xyz-axes.js';
export { PROMPTS_FROM_FILE_DEFAULTS, type PromptsFromFileOptions } from './prompts-from-file-options.js';
export { composeScriptGrids, scriptGridInfotexts, withExtraParams } from './compose.js';
export { drawGridAnnotations } from './grid-annotations.js';
