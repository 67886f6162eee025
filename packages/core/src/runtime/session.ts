/**
 * onnxruntime-node sessions over builder models or .onnx files, with HostTensor feeds and results.
 * A missing GPU provider is a typed error (PROVIDER_UNAVAILABLE) unless the caller opted into a CPU fallback,
 * because ORT itself never falls back silently: it throws while loading the provider library.
 */
import { basename } from 'node:path';
import ort from 'onnxruntime-node';
import type { DType, HostTensor } from '../tensor.js';
import { DarkroomError } from '../errors.js';
import type { BuiltModel } from '../graph/ir.js';
import { GraphBuilder } from '../graph/builder.js';

export type Provider = 'cpu' | 'cuda' | 'webgpu';

export interface SessionOptions {
  readonly provider?: Provider;
  readonly deviceId?: number;
  readonly threads?: number;
  readonly fallbackToCpu?: boolean;
  readonly optimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * onnxruntime's CPU arena and memory pattern (default both on: fastest). Off, each run allocates and frees its
   * intermediates instead of keeping the largest blocks it ever needed (and, from the second run of a shape, a
   * planned pattern beside them), so an idle session holds little beyond its weights. The values are the same.
   */
  readonly cpuMemArena?: boolean;
  /**
   * Also write onnxruntime's optimized model here while opening the session: the graph after its optimizations, with
   * the weights (the prepacked forms included) in `<file>.weights` beside it. A later session opens that model with
   * optimization `disabled` and has nothing left to optimize or prepack; its runs compute what this session's do.
   */
  readonly saveOptimizedModel?: string;
}

export interface EngineSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly provider: Provider;
  /** Runs the model; `outputs` limits what is computed and returned (default: every output). */
  run(feeds: Readonly<Record<string, HostTensor>>, outputs?: readonly string[]): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}

type OrtType = 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

const ORT_TYPES: Partial<Record<DType, OrtType>> = {
  float32: 'float32',
  float16: 'float16',
  float64: 'float64',
  int64: 'int64',
  int32: 'int32',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

export function toOrtTensor(t: HostTensor): ort.Tensor {
  const type = ORT_TYPES[t.dtype];
  if (!type) {
    throw new DarkroomError('RUNTIME_DTYPE_UNSUPPORTED', `onnxruntime-node cannot take ${t.dtype} tensors; convert first`);
  }
  // The Tensor constructor's overloads pair each type name with its typed array; HostTensor already does.
  return new ort.Tensor(type, t.data as Float32Array, [...t.shape]);
}

export function fromOrtTensor(t: ort.Tensor): HostTensor {
  const dtype = t.type as DType;
  if (!(dtype in ORT_TYPES)) {
    throw new DarkroomError('RUNTIME_DTYPE_UNSUPPORTED', `unsupported output type ${t.type}`);
  }
  let data = t.data as HostTensor['data'];
  // ORT may hand back a Float16Array where the runtime has one; HostTensor keeps raw half bits.
  if (dtype === 'float16' && !(data instanceof Uint16Array)) {
    const view = data as unknown as { buffer: ArrayBuffer; byteOffset: number; length: number };
    data = new Uint16Array(view.buffer, view.byteOffset, view.length);
  }
  return { dtype, shape: [...t.dims], data } as HostTensor;
}

/** Initializers at least this large go to the saved optimized model's weights file, prepacked forms included. */
const SAVED_EXTERNAL_MIN_BYTES = 1 << 20;

function sessionOptions(
  provider: Provider,
  opts: SessionOptions,
  external: BuiltModel['externalData'] | undefined,
): ort.InferenceSession.SessionOptions {
  const ep: ort.InferenceSession.ExecutionProviderConfig =
    provider === 'cuda' ? { name: 'cuda', deviceId: opts.deviceId ?? 0 } : provider;
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: [ep],
    graphOptimizationLevel: opts.optimizationLevel ?? 'all',
  };
  if (opts.threads !== undefined) o.intraOpNumThreads = opts.threads;
  if (opts.cpuMemArena === false) {
    o.enableCpuMemArena = false;
    o.enableMemPattern = false;
  }
  if (external && external.length > 0) o.externalData = external.map((e) => ({ path: e.path, data: e.data }));
  if (opts.saveOptimizedModel !== undefined) {
    o.optimizedModelFilePath = opts.saveOptimizedModel;
    // onnxruntime warns that a model optimized at level 'all' fits this CPU only: the caller keys it by the CPU
    o.logSeverityLevel = 3;
    o.extra = {
      session: {
        // Weights leave the protobuf (a full-size UNet is past its 2 GB limit), and their prepacked forms are kept
        // beside them. Only those of 1 MiB and more: 1.30 writes the prepacked forms of small matrices (a 32x64
        // MatMul weight) in a way that crashes the process opening the model (SIGSEGV), while the SD-sized ones
        // (320 and more on a side) load and compute the same bits. Smaller weights are prepacked again on opening.
        optimized_model_external_initializers_file_name: `${basename(opts.saveOptimizedModel)}.weights`,
        optimized_model_external_initializers_min_size_in_bytes: String(SAVED_EXTERNAL_MIN_BYTES),
        save_external_prepacked_constant_initializers: '1',
      },
    };
  }
  return o;
}

async function createOrt(model: BuiltModel | string, o: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  return typeof model === 'string' ? ort.InferenceSession.create(model, o) : ort.InferenceSession.create(model.bytes, o);
}

/** Probes (one tiny model per provider/device) tell "the provider does not load" from "this model is bad". */
const providerProbe = new Map<string, Promise<unknown>>();

async function probeProvider(provider: Provider, opts: SessionOptions): Promise<unknown> {
  const key = `${provider}:${opts.deviceId ?? 0}`;
  let p = providerProbe.get(key);
  if (!p) {
    const g = new GraphBuilder('probe');
    g.output(g.input('x', 'float32', [1]), 'y');
    p = createOrt(g.toModel(), sessionOptions(provider, opts, undefined)).then(
      async (s) => {
        await s.release();
        return undefined;
      },
      (e: unknown) => e,
    );
    providerProbe.set(key, p);
  }
  return p;
}

class OrtEngineSession implements EngineSession {
  constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: Provider,
  ) {}

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async run(feeds: Readonly<Record<string, HostTensor>>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.session.inputNames) {
      const t = feeds[name];
      if (!t) throw new DarkroomError('RUNTIME_MISSING_INPUT', `no feed for model input "${name}"`, { name });
      ortFeeds[name] = toOrtTensor(t);
    }
    for (const name of outputs ?? []) {
      if (!this.session.outputNames.includes(name)) {
        throw new DarkroomError('RUNTIME_UNKNOWN_OUTPUT', `the model has no output "${name}"`, { name, outputs: this.session.outputNames });
      }
    }
    const results = outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(results)) out[name] = fromOrtTensor(t);
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

let created = 0;

/** Sessions this process has created: what a check that some work opens no session counts. */
export function sessionsCreated(): number {
  return created;
}

export async function createSession(model: BuiltModel | string, opts: SessionOptions = {}): Promise<EngineSession> {
  created++;
  const provider = opts.provider ?? 'cpu';
  const external = typeof model === 'string' ? undefined : model.externalData;
  try {
    return new OrtEngineSession(await createOrt(model, sessionOptions(provider, opts, external)), provider);
  } catch (err) {
    if (provider === 'cpu') throw err;
    const probeError = await probeProvider(provider, opts);
    if (probeError === undefined) throw err; // the provider loads; the model itself is the problem
    if (!opts.fallbackToCpu) {
      throw new DarkroomError(
        'PROVIDER_UNAVAILABLE',
        `the ${provider} execution provider could not be loaded (${String((probeError as Error).message ?? probeError).split('\n')[0]}); ` +
          'install its libraries or allow falling back to the CPU',
        { provider, deviceId: opts.deviceId ?? 0 },
      );
    }
    return new OrtEngineSession(await createOrt(model, sessionOptions('cpu', opts, external)), 'cpu');
  }
}
