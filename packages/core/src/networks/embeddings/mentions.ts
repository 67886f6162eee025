/**
 * Which embeddings a prompt can use, decided as A1111's EmbeddingDatabase decides it: by token ids, not by text.
 * A name is tokenized and found wherever its ids occur as a run in a prompt's ids, so an embedding "x" is used by
 * "a x-wing" (tokens a, x, -, wing) but not by "xylophone" (one token). Looking before loading means a file a job's
 * prompts never name is not read, and so cannot fail the job.
 */
import type { TokenEncoder } from './database.js';
import { parsePromptAttention } from '../../text/prompt-attention.js';

function containsRun(tokens: readonly number[], run: readonly number[]): boolean {
  if (run.length === 0) return false;
  outer: for (let i = 0; i + run.length <= tokens.length; i++) {
    for (let j = 0; j < run.length; j++) if (tokens[i + j] !== run[j]) continue outer;
    return true;
  }
  return false;
}

/**
 * The ids each prompt is searched in: the whole text and each attention fragment (A1111 tokenizes fragments one
 * by one, and a match never spans two), so the answer covers every place the chunker can find a name.
 */
export function promptTokenRuns(tokenizer: TokenEncoder, prompts: readonly string[]): number[][] {
  const runs: number[][] = [];
  for (const p of prompts) {
    if (!p) continue;
    runs.push(tokenizer.encode(p));
    let fragments: ReturnType<typeof parsePromptAttention> = [];
    try {
      fragments = parsePromptAttention(p);
    } catch {
      // A malformed weight fails the job when the prompt is conditioned; the whole text is enough here.
    }
    for (const [text] of fragments) if (text) runs.push(tokenizer.encode(text));
  }
  return runs;
}

/** Whether `name` (an embedding's lookup name) occurs by token in any of `runs` (from promptTokenRuns). */
export function mentionsEmbedding(tokenizer: TokenEncoder, runs: readonly (readonly number[])[], name: string): boolean {
  const ids = tokenizer.encode(name);
  return runs.some((r) => containsRun(r, ids));
}
