/**
 * One training inside the training thread: the model from the engine's cache, the subject, the run from a fresh
 * start, this job's own stored checkpoint or the checkpoint of the training it continues; previews and A1111's
 * files at the steps the job asks for. Storing is the main thread's: `store` resolves once a checkpoint is in
 * storage, and the run continues only then (a checkpoint counts once it is stored).
 */
import { DarkroomError } from '@darkroom/core/errors.js';
import { decodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import type { Engine } from '@darkroom/core/pipeline/engine.js';
import type { Provider } from '@darkroom/core/runtime/session.js';
import { decodeCheckpoint, encodeCheckpoint } from '@darkroom/core/training/checkpoint-file.js';
import { embeddingPreviewPng } from '@darkroom/core/training/preview-image.js';
import { isIntermediateSave, type SavedFile } from '@darkroom/core/training/saved-files.js';
import { lossCsv, prepareTraining, type PreparedTraining } from '@darkroom/core/training/train-job.js';
import type { CheckpointReason, TrainingCheckpoint } from '@darkroom/core/training/trainer.js';
import { trainingJobOptions } from '@darkroom/farm/training-options.js';
import type { TrainingRequest } from '@darkroom/farm/training-schemas.js';
import { lossCsvName } from '@darkroom/farm/trainings.js';
import { plainImage, renderPreview } from './previews.js';
import { loadedSubject, newSubject, subjectAt } from './subjects.js';
import type { CheckpointMessage, RollbackMessage, StepMessage, TrainRequest } from './train-protocol.js';

export interface SessionIo {
  step(m: StepMessage): void;
  rollback(m: RollbackMessage): void;
  preview(step: number, png: Uint8Array, infotext: string): void;
  store(m: CheckpointMessage): Promise<void>;
  /** Read after every optimizer step: true once the job was cancelled or the trainer is stopping. */
  stopRequested(): boolean;
}

export interface SessionResult {
  status: 'completed' | 'stopped';
  step: number;
  startStep: number;
  finalStep: number;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * The run calls its checkpoint hook at A1111's save steps for an interval N (steps done plus one a multiple of
 * N); saves and previews each come at their own multiples, so N is their greatest common divisor. (The run also
 * keeps the states it passed at those hooks to roll back to, so previews add rollback points too.)
 */
export function hookInterval(saveEvery: number, imageEvery: number): number {
  if (saveEvery > 0 && imageEvery > 0) return gcd(saveEvery, imageEvery);
  return Math.max(saveEvery, imageEvery, 0);
}

/** What identifies a run in its checkpoints, checked before resuming from one. */
function runInfo(jobId: string, req: TrainingRequest, prepared: PreparedTraining): Record<string, unknown> {
  return { job: jobId, kind: req.kind, name: req.name, startStep: prepared.run.startStep, finalStep: prepared.run.finalStep };
}

function ownStart(bytes: Uint8Array, expected: Record<string, unknown>): TrainingCheckpoint {
  const { checkpoint, run } = decodeCheckpoint(bytes);
  for (const [k, v] of Object.entries(expected)) {
    if (run[k] !== v) {
      throw new DarkroomError('TRAINING_CHECKPOINT_MISMATCH', `the stored checkpoint belongs to another run (${k}: ${String(run[k])}, expected ${String(v)})`);
    }
  }
  return checkpoint;
}

export async function runTrainingSession(engine: Engine, provider: Provider, t: TrainRequest, io: SessionIo): Promise<SessionResult> {
  const req = t.request;
  const held = await engine.acquireForTraining(t.checkpoint ?? undefined);
  try {
    let subject = t.continueFrom ? await loadedSubject(req, t.continueFrom) : newSubject(req, held.sd, held.model);
    let start: TrainingCheckpoint | undefined;
    let optimizerLr: number | undefined;
    if (t.parentCheckpoint) {
      // A continued training starts where the other ended, its schedule re-read from that step (A1111's resume),
      // with the optimizer state and the rate it held.
      const parent = decodeCheckpoint(t.parentCheckpoint).checkpoint;
      subject = subjectAt(subject, parent);
      start = { ...parent, lrScale: 1, rollbacks: 0 };
      optimizerLr = parent.optimizer.lr;
    }
    const opts = trainingJobOptions(req, optimizerLr);
    const every = hookInterval(req.save_every, req.create_image_every);
    const prepared = await prepareTraining(held.sd, held.model, subject, t.files, {
      ...opts, settings: { ...opts.settings, saveEvery: every }, runtime: { provider },
    });
    try {
      const info = runInfo(t.jobId, req, prepared);
      if (t.ownCheckpoint) start = ownStart(t.ownCheckpoint, info);
      const attemptStart = (start ??= prepared.start()).step;
      const stop = new AbortController();
      const caption = prepared.dataset.entries[0]?.condText ?? '';
      const checkpointInfo = { shorthash: held.sd.sha256.slice(0, 10), modelName: held.sd.name };
      let seq = 0;
      let lastPreview: { step: number; raster: RasterImage } | null = null;

      const preview = async (c: TrainingCheckpoint): Promise<void> => {
        if (!isIntermediateSave(c.step, req.create_image_every) || c.step <= attemptStart || lastPreview?.step === c.step || stop.signal.aborted) return;
        try {
          const r = await renderPreview(held.model, prepared.trained(c, 'intermediate'), req, caption, stop.signal, () => {
            if (io.stopRequested()) stop.abort();
          });
          lastPreview = { step: c.step, raster: decodePng(r.png) };
          io.preview(c.step, r.png, r.infotext);
        } catch (e) {
          // A cancel that lands during a preview ends the preview, not the save that follows.
          if (!stop.signal.aborted) throw e;
        }
      };

      const files = (c: TrainingCheckpoint, reason: CheckpointReason): SavedFile[] => {
        const kind = reason === 'final' ? 'final' : 'intermediate';
        const out = [...prepared.files(c, kind)];
        const trained = prepared.trained(c, kind);
        if (trained.kind === 'embedding' && req.kind === 'embedding' && req.save_image_with_stored_embedding) {
          const raster = lastPreview?.step === c.step ? lastPreview.raster : plainImage(req.training_width, req.training_height);
          // A1111 labels an intermediate save with the steps done plus one (`name-6.pt` after 5 steps).
          const stepsDone = kind === 'final' ? c.step : c.step + 1;
          const png = embeddingPreviewPng(trained.embedding, raster, { checkpoint: checkpointInfo, stepsDone });
          out.push({ fileName: kind === 'final' ? `${req.name}.png` : `${req.name}-${stepsDone}.png`, bytes: png });
        }
        out.push({ fileName: lossCsvName(req.kind), bytes: new TextEncoder().encode(lossCsv(c.lossLog)) });
        return out;
      };

      const result = await prepared.run.run(start, {
        signal: stop.signal,
        onStep: (e) => {
          io.step({ step: e.step, steps: e.steps, loss: e.loss, learnRate: e.learnRate, epoch: e.epoch, epochStep: e.epochStep });
          if (io.stopRequested()) stop.abort();
        },
        onRollback: (e) => io.rollback({ ...e }),
        onCheckpoint: async (c, reason) => {
          const checkpoint = (): Uint8Array => encodeCheckpoint(c, info);
          // A rollback is stored so that a restart goes on from the rolled-back state; it has no A1111 files.
          if (reason === 'rollback') {
            await io.store({ seq: ++seq, step: c.step, reason, checkpoint: checkpoint(), files: [], last: false });
            return;
          }
          await preview(c);
          if (reason === 'interval' && !isIntermediateSave(c.step, req.save_every)) return;
          await io.store({ seq: ++seq, step: c.step, reason, checkpoint: checkpoint(), files: files(c, reason), last: reason !== 'interval' });
        },
      });
      return { status: result.status, step: result.checkpoint.step, startStep: prepared.run.startStep, finalStep: prepared.run.finalStep };
    } finally {
      await prepared.release();
    }
  } finally {
    held.release();
  }
}
