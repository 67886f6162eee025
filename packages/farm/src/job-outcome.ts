import { Job, type JobState, type Queue } from 'bullmq';

/** What reading an outcome needs of a queue: its state lookup, and what Job.fromId reads jobs through. */
export type OutcomeQueue = Parameters<typeof Job.fromId>[0] & Pick<Queue, 'getJobState'>;

/** A queued job as a waiting caller sees it: still on its way, finished (read with its result), or gone. */
export type JobOutcome<D, R> =
  | { state: 'completed' | 'failed'; job: Job<D, R> }
  | { state: Exclude<JobState, 'completed' | 'failed'> }
  | { state: 'gone' };

/**
 * Where a job stands, with the job itself once it has finished. The state is read first: BullMQ sets a job's
 * return value (or failed reason) in the same script that moves it to completed (or failed), so a job read after
 * its state said finished always carries its outcome. Read the other way round, a job that finishes between the
 * two reads looks completed with no return value.
 */
export async function readJobOutcome<D, R>(queue: OutcomeQueue, id: string): Promise<JobOutcome<D, R>> {
  const state = await queue.getJobState(id);
  if (state === 'unknown') return { state: 'gone' };
  if (state !== 'completed' && state !== 'failed') return { state };
  const job = await Job.fromId<D, R>(queue, id);
  return job ? { state, job } : { state: 'gone' };
}
