/**
 * A training checkpoint as one `.safetensors` file: the trained tensors and AdamW's moments as float32 tensors
 * (bit-exact), everything else (step, optimizer settings and step counts, loss log, rollback state, and what the
 * run was) as JSON in the header's metadata. Reading checks every length against the metadata, so a truncated or
 * foreign file is refused rather than resumed from.
 */
import { DarkroomError } from '../errors.js';
import { parseSafetensors, writeSafetensors } from '../formats/safetensors.js';
import { float32, type HostTensor } from '../tensor.js';
import type { LossEntry, TrainingCheckpoint } from './trainer.js';

const FORMAT = 'darkroom-training-checkpoint';
const VERSION = 1;

interface CheckpointMeta {
  readonly format: typeof FORMAT;
  readonly version: number;
  readonly step: number;
  readonly tensors: number;
  readonly optimizer: { lr: number; betas: [number, number]; eps: number; weightDecay: number; steps: number[] };
  readonly lossLog: readonly LossEntry[];
  readonly lrScale: number;
  readonly rollbacks: number;
  /** What the run is (kind, name, settings hash): the caller checks it matches before resuming. */
  readonly run: Readonly<Record<string, unknown>>;
}

export function encodeCheckpoint(c: TrainingCheckpoint, run: Readonly<Record<string, unknown>>): Uint8Array {
  const tensors = new Map<string, HostTensor>();
  c.params.forEach((p, i) => {
    const st = c.optimizer.params[i]!;
    tensors.set(`param.${i}`, float32([p.length], p));
    tensors.set(`exp_avg.${i}`, float32([st.expAvg.length], st.expAvg));
    tensors.set(`exp_avg_sq.${i}`, float32([st.expAvgSq.length], st.expAvgSq));
  });
  const meta: CheckpointMeta = {
    format: FORMAT,
    version: VERSION,
    step: c.step,
    tensors: c.params.length,
    optimizer: {
      lr: c.optimizer.lr,
      betas: [c.optimizer.betas[0], c.optimizer.betas[1]],
      eps: c.optimizer.eps,
      weightDecay: c.optimizer.weightDecay,
      steps: c.optimizer.params.map((p) => p.step),
    },
    lossLog: c.lossLog,
    lrScale: c.lrScale,
    rollbacks: c.rollbacks,
    run,
  };
  return writeSafetensors(tensors, { darkroom_training: JSON.stringify(meta) });
}

function bad(message: string): DarkroomError {
  return new DarkroomError('TRAINING_CHECKPOINT_INVALID', `not a usable training checkpoint: ${message}`);
}

export function decodeCheckpoint(bytes: Uint8Array): { checkpoint: TrainingCheckpoint; run: Readonly<Record<string, unknown>> } {
  const file = parseSafetensors(bytes, 'training checkpoint');
  const raw = file.metadata?.darkroom_training;
  if (!raw) throw bad('no darkroom_training metadata');
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(raw) as CheckpointMeta;
  } catch {
    throw bad('its metadata is not JSON');
  }
  if (meta.format !== FORMAT || meta.version !== VERSION) throw bad(`format ${String(meta.format)} version ${String(meta.version)}`);
  if (!Number.isInteger(meta.step) || meta.step < 0 || !Number.isInteger(meta.tensors) || meta.tensors < 1) throw bad('bad step or tensor count');
  const vec = (name: string): Float32Array => {
    const t = file.tensors.get(name);
    if (t?.dtype !== 'float32') throw bad(`tensor ${name} is missing`);
    return (t.data as Float32Array).slice();
  };
  const params: Float32Array[] = [];
  const states = [];
  for (let i = 0; i < meta.tensors; i++) {
    const p = vec(`param.${i}`);
    const m = vec(`exp_avg.${i}`);
    const v = vec(`exp_avg_sq.${i}`);
    const step = meta.optimizer.steps[i];
    if (m.length !== p.length || v.length !== p.length || !Number.isInteger(step)) throw bad(`tensor ${i} and its optimizer state disagree`);
    params.push(p);
    states.push({ step: step!, expAvg: m, expAvgSq: v });
  }
  const o = meta.optimizer;
  return {
    checkpoint: {
      step: meta.step,
      params,
      optimizer: { lr: o.lr, betas: [o.betas[0], o.betas[1]], eps: o.eps, weightDecay: o.weightDecay, params: states },
      lossLog: meta.lossLog ?? [],
      lrScale: meta.lrScale ?? 1,
      rollbacks: meta.rollbacks ?? 0,
    },
    run: meta.run ?? {},
  };
}
