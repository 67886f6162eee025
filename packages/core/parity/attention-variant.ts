/**
 * The attention variant the parity suites build their graphs with: `DARKROOM_ATTENTION=split npm run
 * parity:model` checks the oracle against the split graphs instead of the default ones. The oracle's models are
 * tiny (64-token attentions), so with a chunked variant the chunk target defaults to a few KiB: every attention
 * then really is cut into several chunks, which is what the run is meant to check.
 * `DARKROOM_ATTENTION_CHUNK_BYTES` overrides the target.
 */
import { attentionBuild, parseAttentionMode, type AttentionBuild, type AttentionMode } from '../src/planning/attention.js';

/**
 * Small enough that the tiny models' 64-token UNet attentions (batch 2) are cut into 4 to 11 query slices or
 * 7 to 16 key blocks, and the VAE's one-head attention into 3 slices (96 tokens) or 2 to 4 key blocks.
 */
export const PARITY_CHUNK_BYTES = 32 * 1024;

export interface ParityAttention {
  readonly mode: AttentionMode;
  readonly chunkBytes: number;
  /** What the suites' own graphs (gradient cases) are built with. */
  readonly build: AttentionBuild;
  /** What `loadModel` is given. */
  readonly loadOptions: { readonly attention: string; readonly attentionChunkBytes: number };
}

export function parityAttention(mode: string, chunkBytes = PARITY_CHUNK_BYTES): ParityAttention {
  const parsed = parseAttentionMode(mode);
  return {
    mode: parsed,
    chunkBytes,
    build: attentionBuild(parsed, 'cpu', chunkBytes),
    loadOptions: { attention: parsed, attentionChunkBytes: chunkBytes },
  };
}

/** The variant named by the environment, or undefined for the default graphs. */
export function attentionFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): ParityAttention | undefined {
  const mode = env.DARKROOM_ATTENTION;
  if (!mode) return undefined;
  const bytes = env.DARKROOM_ATTENTION_CHUNK_BYTES;
  return parityAttention(mode, bytes ? Number(bytes) : PARITY_CHUNK_BYTES);
}

export function describeAttention(a: ParityAttention | undefined): string {
  return a ? `attention ${a.mode}, chunks of at most ${a.chunkBytes} bytes` : 'attention: default graphs';
}
