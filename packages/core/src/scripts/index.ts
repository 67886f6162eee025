export { SCRIPT_NAMES, SCRIPT_TITLES, scriptByName, scriptNamesFor, type ScriptName } from './names.js';
export type {
  AnimationSpec,
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
export { planScript, type PlanByName } from './plan.js';
export { scriptArgsFromA1111, type ScriptArgsContext, type ScriptOptions, type ScriptOptionsByName } from './script-args.js';
export { scriptInfos, type ScriptArgInfo, type ScriptInfo } from './script-info.js';
export { PROMPT_MATRIX_DEFAULTS, type PromptMatrixOptions } from './prompt-matrix.js';
export { XYZ_PLOT_DEFAULTS, XYZ_AXIS_NOTHING, type XyzAxisOptions, type XyzPlotOptions } from './xyz-options.js';
export { XYZ_AXES, xyzAxesFor, type XyzAxis } from './xyz-axes.js';
export { PROMPTS_FROM_FILE_DEFAULTS, type PromptsFromFileOptions } from './prompts-from-file-options.js';
export { composeScriptGrids, scriptGridInfotexts, withExtraParams } from './compose.js';
export { drawGridAnnotations } from './grid-annotations.js';
export { SEED_TRAVEL_DEFAULTS, SEED_TRAVEL_RATES, type SeedTravelOptions, type SeedTravelRate } from './seed-travel-options.js';
export { parseDestinationSeeds, seedTravelStrength, travelKeys, type TravelKey } from './seed-travel.js';
export { SEED_BLENDING_DEFAULTS, type SeedBlendingOptions } from './seed-blending.js';
export {
  TXT2IMG2IMG_DEFAULTS,
  img2imgStageBase,
  img2imgStageParams,
  type CellsStage,
  type Img2ImgStage,
  type ScriptStage,
  type StagedScriptPlan,
  type Txt2Img2ImgOptions,
} from './txt2img2img.js';
export { FLOW_SCRIPT_NAMES, flowScriptName, type FlowScriptName } from './names.js';
export { IMG2IMG_VIDEO_DEFAULTS, planImg2ImgVideo, VIDEO_SEED_MODES, type Img2ImgVideoOptions, type VideoSeedMode } from './img2img-video.js';
export {
  ANIMATOR_DEFAULTS, animatorMove, parsePromptKeyframes, parseSchedule, planAnimator, promptAt, scheduleAt, type AnimatorOptions, type Keyframe, type Schedule,
} from './animator.js';
