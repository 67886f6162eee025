/**
 * `networks.load_networks` for one generation: the names a prompt uses are looked up among the available
 * files by name or alias, bound to the model, and given their multipliers; what A1111 reports about them
 * (`Lora not found: ...`, `Networks with errors: ...`, `Lora hashes`) comes back as data.
 */
import { isDarkroomError } from '../../errors.js';
import { bindLora, type BoundLora } from './bind.js';
import type { LoraFile } from './file.js';
import { loraHashesValue } from './hashes.js';
import type { LoraModuleTable } from './mapping.js';
import type { LoraApplication } from './merge.js';

/** The files a generation may use, in A1111's listing order. Later files win a shared name or alias. */
export class LoraLibrary {
  private readonly byName = new Map<string, LoraFile>();

  constructor(files: Iterable<LoraFile>) {
    for (const f of files) {
      this.byName.set(f.name, f);
      this.byName.set(f.alias, f);
    }
  }

  get(name: string): LoraFile | undefined {
    return this.byName.get(name);
  }

  /** The alias of the file whose shorthash is `shorthash` (for reading `Lora hashes` back). */
  aliasForShorthash(shorthash: string): string | undefined {
    for (const f of new Set(this.byName.values())) if (f.shorthash === shorthash) return f.alias;
    return undefined;
  }
}

export interface LoraUseRequest {
  readonly name: string;
  readonly te: number;
  readonly unet: number;
  readonly dyn: number | null;
}

export interface LoraActivation {
  /** In prompt order; a name used twice is applied twice, both times with its last multipliers (one object in A1111). */
  readonly applications: LoraApplication[];
  /** Per application: the file it came from. */
  readonly files: LoraFile[];
  /** Names with no file, or whose file failed to load. */
  readonly notFound: string[];
  /** Why a file failed to load, by name (A1111 prints these to its console). */
  readonly loadErrors: ReadonlyMap<string, string>;
  /** The `Lora hashes` infotext value, or null. */
  readonly hashes: string | null;
}

/**
 * Binds the requested networks. `bind` may be given to reuse bound networks across jobs (bindings depend only
 * on the file and the model's table).
 */
export function activateLoras(
  uses: readonly LoraUseRequest[],
  library: LoraLibrary,
  table: LoraModuleTable,
  bind: (file: LoraFile, table: LoraModuleTable) => BoundLora = bindLora,
): LoraActivation {
  const last = new Map<string, LoraUseRequest>();
  for (const u of uses) last.set(u.name, u);
  const applications: LoraApplication[] = [];
  const files: LoraFile[] = [];
  const notFound: string[] = [];
  const loadErrors = new Map<string, string>();
  for (const u of uses) {
    const file = library.get(u.name);
    if (!file) {
      notFound.push(u.name);
      continue;
    }
    let network: BoundLora;
    try {
      network = bind(file, table);
    } catch (e) {
      if (!isDarkroomError(e)) throw e;
      loadErrors.set(u.name, e.message);
      notFound.push(u.name);
      continue;
    }
    const m = last.get(u.name)!;
    applications.push({ name: u.name, network, te: m.te, unet: m.unet, dyn: m.dyn });
    files.push(file);
  }
  const hashes = loraHashesValue(applications.map((a, i) => ({ name: a.name, shorthash: files[i]!.shorthash })));
  return { applications, files, notFound, loadErrors, hashes };
}

/** The infotext comments A1111 adds: `Lora not found: a, b` then `Networks with errors: name (count), ...`. */
export function loraComments(notFound: readonly string[], errors: ReadonlyMap<string, number>): string[] {
  const out: string[] = [];
  if (notFound.length) out.push(`Lora not found: ${notFound.join(', ')}`);
  if (errors.size) out.push(`Networks with errors: ${[...errors].map(([k, v]) => `${k} (${v})`).join(', ')}`);
  return out;
}
