/**
 * Where the first call of a lazily built graph spends its time: graph construction (our builder, autodiff
 * included), serialization to ONNX, and onnxruntime's session creation. Code that builds on first use (the
 * training objectives) is timed without changing it, by wrapping three shared methods: the first `input()` of a
 * builder marks its start, `toModel()` its serialization, and `InferenceSession.create` on the bytes that
 * `toModel()` returned the session creation. Only builders whose name passes `watch` are recorded.
 */
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../packages/core/src/graph/builder.js';
import type { BuiltModel } from '../../packages/core/src/graph/ir.js';
import { peakRssBytes, resetPeakRss } from './memory.js';
import { nowMs } from './stats.js';

export interface GraphPhases {
  readonly graph: string;
  /** First input() of the builder (graph construction starts with its inputs). */
  readonly buildStart: number;
  readonly serializeStart: number;
  readonly serializeEnd: number;
  createStart?: number;
  createEnd?: number;
  /** Size of what was handed to onnxruntime: the protobuf plus its external weights. */
  readonly modelBytes: number;
  /** The process's peak resident set size (VmHWM) when serialization ended and when the session was created. */
  readonly peakRssAfterSerialize: number;
  peakRssAfterCreate?: number;
  /** The resident set size once the session exists (our copy of the graph may still be referenced then). */
  rssAfterCreate?: number;
}

export class GraphPhaseLog {
  readonly phases: GraphPhases[] = [];

  /** Phases of the graphs recorded at or after `since` (a nowMs() value). */
  since(since: number): GraphPhases[] {
    return this.phases.filter((p) => p.buildStart >= since);
  }
}

type InputFn = GraphBuilder['input'];
type ToModelFn = GraphBuilder['toModel'];
type CreateFn = (...args: unknown[]) => Promise<ort.InferenceSession>;

let installed: GraphPhaseLog | undefined;

/**
 * `splitPeak`: after a watched session is created, the kernel's peak-RSS mark is reset (its value kept in the
 * log first), so a later `peakRssBytes()` is the peak of the runs alone.
 */
export function graphPhaseLog(watch: (graphName: string) => boolean, opts: { splitPeak?: boolean } = {}): GraphPhaseLog {
  if (installed) return installed;
  const log = new GraphPhaseLog();
  const started = new WeakMap<GraphBuilder, number>();
  const pending = new WeakMap<Uint8Array, GraphPhases>();

  const proto = GraphBuilder.prototype;
  const input: InputFn = proto.input;
  proto.input = function timedInput(this: GraphBuilder, ...args: Parameters<InputFn>) {
    if (!started.has(this)) started.set(this, nowMs());
    return input.apply(this, args);
  };
  const toModel: ToModelFn = proto.toModel;
  proto.toModel = function timedToModel(this: GraphBuilder, ...args: Parameters<ToModelFn>): BuiltModel {
    const serializeStart = nowMs();
    const model = toModel.apply(this, args);
    if (watch(this.name)) {
      const p: GraphPhases = {
        graph: this.name,
        buildStart: started.get(this) ?? serializeStart,
        serializeStart,
        serializeEnd: nowMs(),
        modelBytes: model.bytes.byteLength + model.externalData.reduce((s, e) => s + e.data.byteLength, 0),
        peakRssAfterSerialize: peakRssBytes(),
      };
      log.phases.push(p);
      pending.set(model.bytes, p);
    }
    return model;
  };

  // The factory's static create() is a plain writable property of the class every session comes from.
  const factory = ort.InferenceSession as unknown as { create: CreateFn };
  const create = factory.create;
  factory.create = async function timedCreate(this: unknown, ...args: unknown[]) {
    const first = args[0];
    const p = first instanceof Uint8Array ? pending.get(first) : undefined;
    if (p) p.createStart = nowMs();
    try {
      return await create.apply(this, args);
    } finally {
      if (p) {
        p.createEnd = nowMs();
        p.peakRssAfterCreate = peakRssBytes();
        p.rssAfterCreate = process.memoryUsage().rss;
        if (opts.splitPeak) resetPeakRss();
      }
    }
  };
  installed = log;
  return log;
}
