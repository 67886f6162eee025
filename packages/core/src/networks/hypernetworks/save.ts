/**
 * Writing hypernetworks as A1111's `Hypernetwork.save` does: per width a (k, v) pair of torch state dicts
 * (OrderedDicts of `linear.<i>.weight/bias`, with the `_metadata` torch attaches), then the settings in
 * A1111's key order. A1111 and torch.load read the result like their own files.
 */
import { PyDict, PyFloat, PyOrderedDict, PyTuple, type PyValue } from '../../formats/pickle/values.js';
import { torchTensor, writeTorchFile } from '../../formats/torch.js';
import type { Hypernetwork, HypernetworkModule } from './hypernetwork.js';

function stateDict(m: HypernetworkModule): PyOrderedDict {
  const sd = new PyOrderedDict();
  for (const l of m.layers) {
    const p = m.params.get(l.index);
    if (!p) continue;
    sd.set(`linear.${l.index}.weight`, torchTensor(p.weight));
    if (p.bias) sd.set(`linear.${l.index}.bias`, torchTensor(p.bias));
  }
  // torch's state_dict() records a version for the module and each submodule of the Sequential.
  const meta = new PyOrderedDict();
  for (const name of ['', 'linear', ...m.layers.map((l) => `linear.${l.index}`)]) meta.set(name, new PyDict([['version', 1]]));
  sd.attributes = new PyDict([['_metadata', meta]]);
  return sd;
}

function numbers(xs: readonly number[]): PyValue[] {
  return xs.map((x) => new PyFloat(x));
}

/** The dict `Hypernetwork.save` pickles. */
export function hypernetworkPayload(hn: Hypernetwork): PyDict {
  const d = new PyDict();
  for (const [width, [k, v]] of hn.layers) d.set(width, new PyTuple([stateDict(k), stateDict(v)]));
  const ds = hn.dropoutStructure;
  d.set('step', hn.step);
  d.set('name', hn.name);
  d.set('layer_structure', numbers(hn.layerStructure));
  d.set('activation_func', hn.activationFunc);
  d.set('is_layer_norm', hn.addLayerNorm);
  d.set('weight_initialization', hn.weightInit);
  d.set('sd_checkpoint', hn.sdCheckpoint);
  d.set('sd_checkpoint_name', hn.sdCheckpointName);
  d.set('activate_output', hn.activateOutput);
  d.set('use_dropout', hn.useDropout);
  // A1111 stores `[0] * n` (ints) when dropout is off and the UI text parsed with float() when it is on.
  d.set('dropout_structure', hn.useDropout ? numbers(ds) : [...ds]);
  d.set('last_layer_dropout', ds.length >= 2 ? ds[ds.length - 2] !== 0 : hn.lastLayerDropout);
  d.set('optional_info', hn.optionalInfo ? hn.optionalInfo : null);
  return d;
}

export function saveHypernetworkPt(hn: Hypernetwork, opts: { archiveName?: string } = {}): Uint8Array {
  return writeTorchFile(hypernetworkPayload(hn), { archiveName: opts.archiveName ?? hn.name });
}
