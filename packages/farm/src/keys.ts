/**
 * Every Redis key the farm writes besides BullMQ's own lives under `<prefix>:darkroom:`, next to the queues,
 * so one prefix isolates a whole deployment (and each test run).
 */
export function farmKeys(prefix: string) {
  const base = `${prefix}:darkroom`;
  return {
    events: (jobId: string) => `${base}:events:${jobId}`,
    /** Pub/sub channel carrying the id of each job whose event log just grew (the API's one subscriber fans it out). */
    eventsChannel: `${base}:events`,
    /** A job's terminal event and outcome, written once by whichever run finished it (see terminal-events.ts). */
    terminal: (jobId: string) => `${base}:terminal:${jobId}`,
    cancel: (jobId: string) => `${base}:cancel:${jobId}`,
    cancelChannel: `${base}:cancel`,
    tombstone: (jobId: string) => `${base}:cancelled:${jobId}`,
    trainingTombstone: (jobId: string) => `${base}:training-cancelled:${jobId}`,
    /** The checkpoints a training stored, oldest first (JSON per entry). */
    trainingSaves: (jobId: string) => `${base}:training-saves:${jobId}`,
    /** The files a training stored, `files/<name>` or `images/<name>` -> the step they belong to. */
    trainingFiles: (jobId: string) => `${base}:training-files:${jobId}`,
    deliveries: (jobId: string) => `${base}:deliveries:${jobId}`,
    /** A tenant's webhook deliveries in flight across the farm: lease token -> lease expiry (ms). */
    webhookSlots: (tenant: string) => `${base}:webhook-slots:${tenant}`,
    rateLimit: (tenant: string, window: number) => `${base}:rl:${tenant}:${window}`,
    assets: (tenant: string, kind: string) => `${base}:assets:${tenant}:${kind}`,
    /** Who names the stored bytes of an asset (`<tenant>\n<name>` members): the bytes go when nobody does. */
    assetRefs: (kind: string, sha256: string) => `${base}:asset-refs:${kind}:${sha256}`,
    /** Held while deciding whether stored asset bytes are still needed, and while deleting them. */
    assetLock: (kind: string, sha256: string) => `${base}:asset-lock:${kind}:${sha256}`,
    /** Set once every tenant's existing asset names have been counted into assetRefs. */
    assetRefsReady: `${base}:asset-refs-ready`,
    /** Pattern of every tenant's asset hashes (for counting references kept before assetRefs existed). */
    assetsPattern: `${base}:assets:*`,
    /** Workers drop the cached copy of deleted asset bytes (`<kind>/<sha256>`). */
    assetDeletedChannel: `${base}:asset-deleted`,
    options: (tenant: string) => `${base}:options:${tenant}`,
    /** A tenant's saved prompt styles (A1111's styles.csv), as one JSON list in file order. */
    styles: (tenant: string) => `${base}:styles:${tenant}`,
    sdapiCurrent: (tenant: string) => `${base}:sdapi-current:${tenant}`,
    /** A pending A1111 interrupt or skip of a running job, taken once by its worker. */
    stop: (jobId: string) => `${base}:stop:${jobId}`,
    /** The tenant's /sdapi job that `interrupt` stopped (A1111's state.interrupted for /sdapi/v1/progress). */
    sdapiInterrupted: (tenant: string) => `${base}:sdapi-interrupted:${tenant}`,
    tenantWaiting: (tenant: string) => `${base}:tenant-waiting:${tenant}`,
    idempotencyClaim: (jobId: string) => `${base}:idem-claim:${jobId}`,
    webhookMaster: `${base}:webhook-master-secret`,
    /** A worker's or trainer's advert, alive while its TTL lasts. */
    heartbeat: (queue: string, name: string) => `${base}:heartbeat:${queue}:${name}`,
    /** When a job was first handed back for a warm worker (warm-routing.ts): its wait for one is bounded from then. */
    routing: (jobId: string) => `${base}:routing:${jobId}`,
    /** A worker rendering this waiting job in its batch (batch-leases.ts): value = the holder, short TTL. */
    batchLease: (jobId: string) => `${base}:batch-lease:${jobId}`,
    /** Names that have sent a heartbeat on a queue (the heartbeat keys say which are still alive). */
    heartbeats: (queue: string) => `${base}:heartbeats:${queue}`,
  };
}
export type FarmKeys = ReturnType<typeof farmKeys>;
