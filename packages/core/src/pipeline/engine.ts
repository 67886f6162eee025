/**
 * The Engine: what a worker or the CLI holds for its lifetime. It loads checkpoints (by path, identified by
 * content hash through the model loader), keeps the loaded models and their onnxruntime sessions in an LRU
 * within a memory budget, loads the embeddings and hypernetworks a job names, and runs txt2img / img2img.
 * With no checkpoint configured it uses Darkroom's built-in model (catalog/built-in-model.ts), shipped in the repository.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { DarkroomError } from '../errors.js';
import { pngInfo, type PngInfo } from '../formats/png-info.js';
import { loadModel, type StableDiffusionModel } from '../models/load.js';
import { DEFAULT_CACHE_DIR } from '../models/cache.js';
import { attentionBuild, parseAttentionMode } from '../planning/attention.js';
import { vaeTiling, type VaeTilingOption } from '../planning/vae-tiles.js';
import type { ComputeDType } from '../models/layers.js';
import { checkWeightsDtype } from '../models/weights-dtype.js';
import type { MemoryMode } from '../models/memory-mode.js';
import type { Provider } from '../runtime/session.js';
import { EmbeddingDatabase } from '../networks/embeddings/database.js';
import { loadEmbeddingFile } from '../networks/embeddings/load.js';
import { mentionsEmbedding, promptTokenRuns } from '../networks/embeddings/mentions.js';
import type { Hypernetwork } from '../networks/hypernetworks/hypernetwork.js';
import { LoraLibrary } from '../networks/lora/activate.js';
import { loadLoraFilePath, type LoraFile } from '../networks/lora/file.js';
import { LoraRunner } from '../networks/lora/runner.js';
import { prepareLoraJob } from './loras.js';
import { checkpointFiles } from './checkpoint-files.js';
import { hypernetworkProvider } from './hypernetworks.js';
import { loadModelUpscaler } from './upscalers.js';
import { RecentFiles } from './recent-files.js';
import { chunkLookup } from './embedding-adapter.js';
import { img2img } from './img2img.js';
import type { GenerateOptions, GenerationResult } from './job.js';
import { pipelineModel, tokenizerFor, withModelFacts } from './model.js';
import { vaeByName, vaeNearCheckpoint } from './vae-files.js';
import type { Img2ImgParams, Txt2ImgParams } from './params.js';
import { txt2img } from './txt2img.js';

export { pngInfo, type PngInfo };
import type { HypernetworkProvider, JobNetworks, PipelineModel, UpscalerLookup } from './types.js';

export interface EngineOptions {
  /** Checkpoint used when a job names none; absent = the built-in model. */
  readonly checkpoint?: string;
  /** Folder of checkpoints that `override_settings.sd_model_checkpoint` names are looked up in (A1111's models/Stable-diffusion). */
  readonly modelsDir?: string;
  /** Folder of VAE files that `override_settings.sd_vae` names are looked up in (A1111's models/VAE). */
  readonly vaeDir?: string;
  /** Where `.darkroom/` (the compile cache) lives; default the working directory. */
  readonly root?: string;
  /** Compiled graphs, keyed by checkpoint hash; default `<root>/.darkroom/cache`. */
  readonly cacheDir?: string;
  readonly provider?: Provider;
  readonly fallbackToCpu?: boolean;
  readonly threads?: number;
  /** Models are evicted least-recently-used first when their estimated memory passes this (default 8 GiB). */
  readonly memoryBudgetBytes?: number;
  /**
   * Folder with the CLIP vocabulary (vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz) for real
   * checkpoints. Default: `<checkpoint stem>.vocab/` or `vocab/` beside the checkpoint, then $DARKROOM_CLIP_VOCAB.
   */
  readonly vocabulary?: string;
  /** The infotext's Version (default v1.10.1). */
  readonly version?: string;
  /**
   * Attention form for every model this engine loads: auto (default), plain, split, subquad, fused, or A1111's
   * flags (opt-split-attention, opt-sub-quad-attention, xformers). Never written into infotexts.
   */
  readonly attention?: string;
  /** Memory target of one attention chunk in bytes (split and sub-quadratic chunk sizes). */
  readonly attentionChunkBytes?: number;
  /** VAE tiling for large images: auto (default: above 1024x1024), always, never, or tile settings. */
  readonly vaeTiling?: VaeTilingOption;
  /** A1111's memory mode for every model this engine loads: normal (default) or medvram (models/memory-mode.ts). */
  readonly memoryMode?: MemoryMode;
  /** onnxruntime's CPU arena and memory pattern (default: on in normal mode, off in medvram and lowvram). */
  readonly cpuMemArena?: boolean;
  /**
   * Weights and compute in float16 (float32 inputs and outputs): GPU providers only, refused on the CPU provider
   * with WEIGHTS_DTYPE_UNSUPPORTED (models/weights-dtype.ts). Default float32.
   */
  readonly weightsDtype?: ComputeDType;
}

/** A file and the name it goes by in prompts and infotexts. */
export interface NamedFile {
  readonly path: string;
  readonly name?: string;
}

function pathOf(f: string | NamedFile): string {
  return typeof f === 'string' ? f : f.path;
}

function nameOf(f: string | NamedFile): string {
  return typeof f === 'string' || f.name === undefined ? basename(pathOf(f), extname(pathOf(f))) : f.name;
}

/** Per-job choices on top of the generation parameters. */
export interface EngineJobOptions extends Omit<GenerateOptions, 'networks'> {
  /**
   * Checkpoint for this job (default: the engine's): a path, or a path with the name the infotext's `Model`
   * shows (for files stored under another name, e.g. by content hash).
   */
  readonly checkpoint?: string | NamedFile;
  /**
   * A VAE file (`.safetensors`, `.pt`, `.ckpt`) in place of the checkpoint's own VAE; `name` is the infotext's
   * `VAE` (default the file name). `null` keeps the checkpoint's own (A1111's "None"). Absent: the request's
   * `override_settings.sd_vae` decides ("Automatic", "None" or a name in `vaeDir`).
   */
  readonly vae?: string | NamedFile | null;
  /**
   * Embedding files or folders (A1111's embeddings directory) this job may use. A prompt names an embedding by
   * its file stem, or by `name` where one is given.
   */
  readonly embeddings?: ReadonlyArray<string | NamedFile>;
  /** Hypernetwork files this job may name in `<hypernet:name:m>` (name = file stem, or `name` where given). */
  readonly hypernetworks?: ReadonlyArray<string | NamedFile>;
  /** Upscaler model files (ESRGAN / Real-ESRGAN `.pth`, `.safetensors`) that `hr_upscaler` may name by file stem (or `name`). */
  readonly upscalers?: ReadonlyArray<string | NamedFile>;
  /**
   * LoRA / LyCORIS files this job may name in `<lora:name:te:unet>` / `<lyco:...>` (name = file stem, or `name`
   * where given, or the alias in the file's `ss_output_name`). A job whose prompt names none runs the plain graphs.
   */
  readonly loras?: ReadonlyArray<string | NamedFile>;
  /**
   * Called for each embedding file the prompts name that cannot be used (it does not load, or its width does not
   * fit the model): A1111 skips such an embedding and renders without it, and so does the engine.
   */
  readonly onEmbeddingSkipped?: (name: string, reason: { code: string; message: string }) => void;
}

/** The prompt texts of a job's parameters (the hires ones too), where embeddings are looked for. */
function promptsOf(params: object): string[] {
  const p = params as Record<string, unknown>;
  return [p.prompt, p.negative_prompt, p.hr_prompt, p.hr_negative_prompt].filter((x): x is string => typeof x === 'string' && x !== '');
}

interface Loaded {
  /** Map key: the checkpoint, with the VAE file after a NUL when one replaces its own. */
  readonly id: string;
  readonly key: string;
  readonly sd: StableDiffusionModel;
  readonly model: PipelineModel;
  readonly bytes: number;
  lastUsed: number;
  inUse: number;
}

const GIB = 1024 ** 3;

export class Engine {
  private readonly loaded = new Map<string, Loaded>();
  private readonly loading = new Map<string, Promise<Loaded>>();
  // Parsed files kept for later jobs, bounded (a LoRA holds its tensors; a worker meets many over its life).
  private readonly embeddingFiles = new RecentFiles<Promise<import('../networks/embeddings/embedding.js').Embedding>>(256);
  private readonly hypernetworkFiles = new RecentFiles<Promise<Hypernetwork>>(16);
  private readonly loraFiles = new RecentFiles<Promise<LoraFile>>(32);
  /** The LoRA graphs of each loaded model, released with it. */
  private readonly loraRunners = new Map<StableDiffusionModel, LoraRunner>();
  private clock = 0;

  constructor(readonly options: EngineOptions = {}) {
    // A mistyped mode fails when the engine is made, not at the first job.
    if (options.attention !== undefined) parseAttentionMode(options.attention);
    if (options.vaeTiling !== undefined) vaeTiling(options.vaeTiling);
    if (options.weightsDtype !== undefined) checkWeightsDtype(options.weightsDtype, options.provider ?? 'cpu');
  }

  private get root(): string {
    return resolve(this.options.root ?? process.cwd());
  }

  private get cacheDir(): string {
    return this.options.cacheDir ?? join(this.root, DEFAULT_CACHE_DIR);
  }

  /** The checkpoint a job runs on: its own, the engine's, or the built-in model (''). */
  private checkpointFor(job?: string): string {
    return job ?? this.options.checkpoint ?? '';
  }

  private async load(checkpoint: string, vae: string | undefined): Promise<Loaded> {
    const { path, config, tokenizer } = await checkpointFiles(checkpoint, this.options.vocabulary);
    const sd = await loadModel({
      checkpoint: path,
      ...(vae !== undefined ? { vae } : {}),
      ...(config !== undefined ? { config } : {}),
      cacheDir: this.cacheDir,
      ...(this.options.provider ? { provider: this.options.provider } : {}),
      ...(this.options.fallbackToCpu !== undefined ? { fallbackToCpu: this.options.fallbackToCpu } : {}),
      ...(this.options.threads !== undefined ? { threads: this.options.threads } : {}),
      ...(this.options.attention !== undefined ? { attention: this.options.attention } : {}),
      ...(this.options.attentionChunkBytes !== undefined ? { attentionChunkBytes: this.options.attentionChunkBytes } : {}),
      ...(this.options.vaeTiling !== undefined ? { vaeTiling: this.options.vaeTiling } : {}),
      ...(this.options.memoryMode !== undefined ? { memoryMode: this.options.memoryMode } : {}),
      ...(this.options.cpuMemArena !== undefined ? { cpuMemArena: this.options.cpuMemArena } : {}),
      ...(this.options.weightsDtype === 'float16' ? { fp16: true } : {}),
    });
    // weights are held by the host copy and by each session: about three times the file
    const bytes = statSync(path).size * 3;
    return { id: loadedId(checkpoint, vae), key: checkpoint, sd, model: pipelineModel(sd, tokenizerFor(sd.kind, tokenizer)), bytes, lastUsed: 0, inUse: 0 };
  }

  private async evictFor(incoming: number): Promise<void> {
    const budget = this.options.memoryBudgetBytes ?? 8 * GIB;
    let used = [...this.loaded.values()].reduce((s, l) => s + l.bytes, 0);
    const idle = [...this.loaded.values()].filter((l) => l.inUse === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const l of idle) {
      if (used + incoming <= budget) break;
      this.loaded.delete(l.id);
      used -= l.bytes;
      await this.releaseLoraRunner(l.sd);
      await l.sd.release();
    }
  }

  /** The loaded model for a checkpoint (loading it, within the memory budget, on first use). */
  async acquire(checkpoint?: string): Promise<{ model: PipelineModel; release: () => void }> {
    const { model, release } = await this.acquireLoaded(checkpoint);
    return { model, release };
  }

  /**
   * Training needs the checkpoint's weights (`sd`) beside the pipeline that encodes and renders previews: both
   * from the same cache entry, held until `release`, under the name the job gives the checkpoint.
   */
  async acquireForTraining(checkpoint?: string | NamedFile): Promise<{ sd: StableDiffusionModel; model: PipelineModel; release: () => void }> {
    const path = checkpoint === undefined ? undefined : pathOf(checkpoint);
    const { sd, model, release } = await this.acquireLoaded(path);
    const name = typeof checkpoint === 'object' ? checkpoint.name : undefined;
    return name === undefined ? { sd, model, release } : { sd: { ...sd, name }, model: { ...model, name }, release };
  }

  /**
   * A checkpoint with a separate VAE is its own entry (its own VAE graphs and sessions), so switching between
   * VAEs keeps the checkpoint's plain entry loaded; the UNet and text graphs are shared through the compile cache.
   */
  private async acquireLoaded(checkpoint?: string, vae?: string): Promise<{ sd: StableDiffusionModel; model: PipelineModel; release: () => void }> {
    const key = this.checkpointFor(checkpoint);
    const id = loadedId(key, vae);
    let entry = this.loaded.get(id);
    if (!entry) {
      let pending = this.loading.get(id);
      if (!pending) {
        pending = (async () => {
          const estimate = key === '' || !existsSync(key) ? 0 : statSync(key).size * 3;
          await this.evictFor(estimate);
          const l = await this.load(key, vae);
          this.loaded.set(id, l);
          return l;
        })();
        this.loading.set(id, pending);
        pending.finally(() => this.loading.delete(id)).catch(() => undefined);
      }
      entry = await pending;
    }
    entry.inUse++;
    entry.lastUsed = ++this.clock;
    const held = entry;
    let released = false;
    return {
      sd: held.sd,
      model: held.model,
      release: () => {
        if (!released) held.inUse--;
        released = true;
      },
    };
  }

  /**
   * The embeddings a job's prompts use, as A1111 finds them: a file is read only when its name occurs in a prompt
   * by token (see networks/embeddings/mentions.ts); one that does not load or does not fit the model is skipped
   * (reported through `onSkipped`) and the prompt keeps its plain tokens, instead of failing the job.
   */
  private async embeddingsFor(
    model: PipelineModel, items: ReadonlyArray<string | NamedFile>, prompts: readonly string[], onSkipped?: EngineJobOptions['onEmbeddingSkipped'],
  ): Promise<JobNetworks['embeddings']> {
    if (items.length === 0) return undefined;
    const db = new EmbeddingDatabase(model.tokenizer, model.textEncoder.width);
    const runs = promptTokenRuns(model.tokenizer, prompts);
    const skip = (name: string, e: DarkroomError): void => onSkipped?.(name, { code: e.code, message: e.message });
    for (const item of items) {
      const p = pathOf(item);
      if (!existsSync(p)) throw new DarkroomError('EMBEDDING_NOT_FOUND', `embedding ${p} does not exist`, { path: p });
      if (statSync(p).isDirectory()) {
        for (const f of await db.loadDirectory(p)) skip(basename(f.file, extname(f.file)), f.error);
        continue;
      }
      const name = nameOf(item);
      // An image embedding without a given name goes by the name in its payload, known only once it is read.
      const namedByPayload = (typeof item === 'string' || item.name === undefined) && /\.(png|webp|jpe?g|avif)$/i.test(p);
      if (!namedByPayload && !mentionsEmbedding(model.tokenizer, runs, name)) continue;
      let e = this.embeddingFiles.get(p);
      if (!e) {
        e = loadEmbeddingFile(p);
        this.embeddingFiles.set(p, e);
        e.catch(() => this.embeddingFiles.delete(p));
      }
      let embedding;
      try {
        embedding = await e;
      } catch (err) {
        if (!(err instanceof DarkroomError)) throw err;
        skip(name, err);
        continue;
      }
      const named = typeof item === 'string' || item.name === undefined ? embedding : { ...embedding, name: item.name };
      if (!db.add(named, { onMismatch: 'skip' })) {
        skip(name, new DarkroomError('EMBEDDING_WIDTH_MISMATCH', `embedding "${name}" has vectors of width ${named.width}, but this model's text encoder uses ${db.expectedWidth}`));
      }
    }
    return db.list().length > 0 ? chunkLookup(db) : undefined;
  }

  private async networksFor(model: PipelineModel, job: EngineJobOptions, prompts: readonly string[]): Promise<JobNetworks> {
    const embeddings = await this.embeddingsFor(model, job.embeddings ?? [], prompts, job.onEmbeddingSkipped);
    let hypernetworks: HypernetworkProvider | undefined;
    if (job.hypernetworks && job.hypernetworks.length > 0) {
      const files = new Map(job.hypernetworks.map((f) => [nameOf(f), pathOf(f)]));
      hypernetworks = hypernetworkProvider(files, this.hypernetworkFiles);
    }
    let upscalers: UpscalerLookup | undefined;
    if (job.upscalers && job.upscalers.length > 0) {
      const files = new Map(job.upscalers.map((f) => [nameOf(f), pathOf(f)]));
      const session = this.options.provider ? { provider: this.options.provider } : {};
      upscalers = (name) => {
        const path = files.get(name);
        return path === undefined ? undefined : loadModelUpscaler(path, session);
      };
    }
    return { ...(embeddings ? { embeddings } : {}), ...(hypernetworks ? { hypernetworks } : {}), ...(upscalers ? { upscalers } : {}) };
  }

  private generateOptions(job: EngineJobOptions, networks: JobNetworks): GenerateOptions {
    const { checkpoint: _c, vae: _v, embeddings: _e, hypernetworks: _h, upscalers: _u, loras: _l, onEmbeddingSkipped: _s, ...rest } = job;
    return { ...rest, networks, ...(this.options.version && !rest.version ? { version: this.options.version } : {}) };
  }

  /**
   * A checkpoint named as A1111 clients name it (`override_settings.sd_model_checkpoint`): its path relative to
   * the models folder, with or without extension, or its file stem, optionally followed by " [hash]".
   */
  async checkpointByName(name: string): Promise<string> {
    const dir = this.options.modelsDir;
    if (!dir) {
      throw new DarkroomError('MODEL_NOT_FOUND', `checkpoint "${name}" was requested by name, but no models folder is configured`, { name });
    }
    const wanted = name.replace(/\s*\[[0-9a-fA-F]{8,64}\]\s*$/, '').replaceAll('\\', '/');
    const files = (await readdir(dir, { recursive: true }))
      .map((f) => f.replaceAll('\\', '/'))
      // `.vae.*` files beside checkpoints are VAEs, not checkpoints (A1111's ext_blacklist)
      .filter((f) => /\.(safetensors|ckpt)$/i.test(f) && !/\.vae\.(safetensors|ckpt)$/i.test(f))
      .sort();
    const strip = (f: string): string => f.slice(0, f.length - extname(f).length);
    const found =
      files.find((f) => f === wanted) ??
      files.find((f) => strip(f) === wanted) ??
      files.find((f) => basename(strip(f)) === wanted);
    if (!found) {
      throw new DarkroomError('MODEL_NOT_FOUND', `no checkpoint named "${name}" in ${dir}`, { name, available: files });
    }
    return join(dir, found);
  }

  private async checkpointForJob(params: { override_settings?: { sd_model_checkpoint?: string } }, job: EngineJobOptions): Promise<string | undefined> {
    if (job.checkpoint !== undefined) return pathOf(job.checkpoint);
    const named = params.override_settings?.sd_model_checkpoint;
    return named ? this.checkpointByName(named) : undefined;
  }

  /**
   * The VAE file a job uses instead of its checkpoint's, as A1111's resolve_vae picks it: the job's own file,
   * else `override_settings.sd_vae` — a name wins over a file beside the checkpoint, "Automatic" takes a
   * `<checkpoint stem>.vae.*` file beside it, "None" (and "Automatic" without such a file) the checkpoint's own.
   */
  private async vaeForJob(
    params: { override_settings?: { sd_vae?: string } },
    job: EngineJobOptions,
    checkpoint: string | undefined,
  ): Promise<{ path: string; name: string } | undefined> {
    if (job.vae === null) return undefined;
    if (job.vae !== undefined) {
      const path = pathOf(job.vae);
      return { path, name: typeof job.vae === 'object' && job.vae.name !== undefined ? job.vae.name : basename(path) };
    }
    const setting = params.override_settings?.sd_vae ?? 'Automatic';
    if (typeof setting !== 'string') {
      throw new DarkroomError('BAD_PARAMS', 'override_settings.sd_vae must be a string', { field: 'override_settings.sd_vae' });
    }
    if (setting === 'None') return undefined;
    // A1111 takes "auto" as "Automatic" too (sd_vae.is_automatic)
    if (setting === 'Automatic' || setting === 'auto') {
      const ck = this.checkpointFor(checkpoint);
      const near = ck === '' ? undefined : vaeNearCheckpoint(ck);
      return near === undefined ? undefined : { path: near, name: basename(near) };
    }
    const path = await vaeByName(this.options.vaeDir, setting);
    return { path, name: basename(path) };
  }

  /** The loaded model for a job: its checkpoint with the VAE it asks for, under the names the job gives them. */
  private async acquireForJob(
    params: { override_settings?: { sd_model_checkpoint?: string; sd_vae?: string } },
    job: EngineJobOptions,
  ): Promise<{ sd: StableDiffusionModel; model: PipelineModel; release: () => void }> {
    const checkpoint = await this.checkpointForJob(params, job);
    const vae = await this.vaeForJob(params, job, checkpoint);
    const held = await this.acquireLoaded(checkpoint, vae?.path);
    return vae && held.sd.vaeSha256 ? { ...held, model: withModelFacts(held.model, { vaeFile: { name: vae.name, sha256: held.sd.vaeSha256 } }) } : held;
  }

  /** The model as this job sees it: under the name the job gives its checkpoint, if any. */
  private asNamed(model: PipelineModel, job: EngineJobOptions): PipelineModel {
    const c = job.checkpoint;
    return typeof c === 'object' && c.name !== undefined ? withModelFacts(model, { name: c.name }) : model;
  }

  async txt2img(params: Txt2ImgParams, job: EngineJobOptions = {}): Promise<GenerationResult> {
    const held = await this.acquireForJob(params, job);
    const { release } = held;
    try {
      const { model, extraGenerationParams } = await this.withLoras(held, params, job);
      // a batch of requests (job.perImage) looks for embeddings in every image's prompts
      const prompts = [...promptsOf(params), ...(job.perImage ?? []).flatMap((r) => promptsOf(r))];
      const opts = { ...this.generateOptions(job, await this.networksFor(model, job, prompts)), ...(extraGenerationParams.length ? { extraGenerationParams } : {}) };
      return await txt2img(this.asNamed(model, job), params, opts);
    } finally {
      release();
    }
  }

  async img2img(params: Img2ImgParams, job: EngineJobOptions = {}): Promise<GenerationResult> {
    const held = await this.acquireForJob(params, job);
    const { release } = held;
    try {
      const { model, extraGenerationParams } = await this.withLoras(held, params, job);
      const opts = { ...this.generateOptions(job, await this.networksFor(model, job, promptsOf(params))), ...(extraGenerationParams.length ? { extraGenerationParams } : {}) };
      return await img2img(this.asNamed(model, job), params, opts);
    } finally {
      release();
    }
  }

  /** Checkpoints currently loaded ('' is the built-in model), least recently used first. */
  loadedCheckpoints(): string[] {
    return [...new Set([...this.loaded.values()].sort((a, b) => a.lastUsed - b.lastUsed).map((l) => l.key))];
  }

  pngInfo(bytes: Uint8Array): PngInfo {
    return pngInfo(bytes);
  }

  /** Releases every loaded model and its sessions. */
  async close(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    for (const l of all) {
      await this.releaseLoraRunner(l.sd);
      await l.sd.release();
    }
  }

  private async releaseLoraRunner(sd: StableDiffusionModel): Promise<void> {
    const r = this.loraRunners.get(sd);
    this.loraRunners.delete(sd);
    await r?.release();
  }

  /**
   * The model a job runs with and the infotext fields its LoRAs add: the first prompt's `<lora:...>` tags
   * activated against the job's files (pipeline/loras.ts), or the loaded model as it is.
   */
  private async withLoras(
    held: { sd: StableDiffusionModel; model: PipelineModel },
    params: { prompt?: string },
    job: EngineJobOptions,
  ): Promise<{ model: PipelineModel; extraGenerationParams: Array<[string, string]> }> {
    if (!job.loras || job.loras.length === 0) return { model: held.model, extraGenerationParams: [] };
    const files: LoraFile[] = [];
    for (const item of job.loras) {
      const p = pathOf(item);
      let f = this.loraFiles.get(p);
      if (!f) {
        f = loadLoraFilePath(p);
        this.loraFiles.set(p, f);
        f.catch(() => this.loraFiles.delete(p));
      }
      const file = await f;
      const name = typeof item === 'object' ? item.name : undefined;
      files.push(name === undefined ? file : { ...file, name, alias: file.alias === file.name ? name : file.alias });
    }
    let runner = this.loraRunners.get(held.sd);
    if (!runner) {
      // The LoRA graphs take the attention form the model's own graphs take, so large images fit alike.
      const provider = this.options.provider ?? 'cpu';
      runner = new LoraRunner(held.sd, {
        cacheDir: this.cacheDir,
        provider,
        attention: attentionBuild(parseAttentionMode(this.options.attention ?? 'auto'), provider, this.options.attentionChunkBytes),
        ...(this.options.threads !== undefined ? { threads: this.options.threads } : {}),
      });
      this.loraRunners.set(held.sd, runner);
    }
    const lj = await prepareLoraJob(held.model, [params.prompt ?? ''], new LoraLibrary(files), runner);
    return { model: lj.model, extraGenerationParams: [...lj.generationParams] };
  }
}

function loadedId(checkpoint: string, vae: string | undefined): string {
  return vae === undefined ? checkpoint : `${checkpoint}\u0000${vae}`;
}
