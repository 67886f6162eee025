/**
 * LoRA / LyCORIS networks as A1111 v1.10.1's built-in Lora extension reads and applies them.
 *
 * ```ts
 * const file = await loadLoraFile(bytes, 'style.safetensors');             // model-independent
 * const table = loraModuleTable(checkpointIndex, 'sd1');                    // A1111's module names for this model
 * const { applications, notFound, hashes } = activateLoras(loraUses(calls).uses, new LoraLibrary([file]), table);
 * const { weights, errors } = mergeLoras(originalWeights, table, applications); // patched tensors by checkpoint key
 * ```
 */
export { loadLoraFile, loadLoraFilePath, isLoraFileName, addnetHash, type LoraFile, type LoraSdVersion } from './file.js';
export { loraModuleTable, convertDiffusersName, matchModule, type LoraModuleTable, type LoraTarget, type LoraTargetKind } from './mapping.js';
export { bindLora, MODULE_CLASS, type BoundLora, type LoraModule, type LoraModuleType } from './bind.js';
export { moduleUpdown, LoraLayerError, F64Scratch } from './updown.js';
export { mergeLoras, moduleMultiplier, targetedKeys, type LoraApplication, type LoraMergeResult } from './merge.js';
export { activateLoras, loraComments, LoraLibrary, type LoraActivation, type LoraUseRequest } from './activate.js';
export { LORA_HASHES_KEY, loraHashesValue, parseLoraHashes, relinkLoraPrompt } from './hashes.js';
