/** AdamW's state as torch keeps it: the param group's settings and, per trained tensor, the step count and moments. */
export interface AdamWParamState {
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

export interface AdamWState {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
  params: AdamWParamState[];
}
