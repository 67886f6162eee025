import {
  readJobEvents, throttledErrorLog, type FarmKeys, type Logger, type Redis, type StoredEvent,
} from '@darkroom/farm';

/**
 * The API's one subscriber to job events. Publishers append to a job's event log and announce the job id on the
 * events channel; the hub tells every reader watching that job, and each reader fetches what follows its own
 * cursor with a plain XRANGE on the shared connection. So any number of SSE streams and waiting /sdapi calls
 * cost one Redis connection, not one each.
 *
 * Pub/sub drops messages while the subscriber is reconnecting, so after a reconnection every reader fetches
 * again, and readers also fetch on their own every few seconds (`JobEventReader.pollMs`).
 */
export class EventHub {
  private readonly watchers = new Map<string, Set<() => void>>();

  private constructor(private readonly sub: Redis) {}

  static async open(sub: Redis, keys: FarmKeys): Promise<EventHub> {
    const hub = new EventHub(sub);
    sub.on('message', (_channel: string, jobId: string) => hub.notify(jobId));
    let subscribedOnce = false;
    sub.on('ready', () => {
      if (subscribedOnce) hub.notifyAll();
    });
    await sub.subscribe(keys.eventsChannel);
    subscribedOnce = true;
    return hub;
  }

  /** Calls `onChange` whenever the job's log may have grown; returns the function that stops it. */
  watch(jobId: string, onChange: () => void): () => void {
    let set = this.watchers.get(jobId);
    if (!set) this.watchers.set(jobId, (set = new Set()));
    set.add(onChange);
    return () => {
      set.delete(onChange);
      if (set.size === 0 && this.watchers.get(jobId) === set) this.watchers.delete(jobId);
    };
  }

  /** Readers registered now (for metrics and tests). */
  get watching(): number {
    let n = 0;
    for (const s of this.watchers.values()) n += s.size;
    return n;
  }

  private notify(jobId: string): void {
    for (const f of this.watchers.get(jobId) ?? []) f();
  }

  private notifyAll(): void {
    for (const set of this.watchers.values()) for (const f of set) f();
  }

  async close(): Promise<void> {
    this.watchers.clear();
    await this.sub.quit().catch(() => undefined);
  }
}

/**
 * Reads one job's events in order, from a cursor, whenever the hub says there may be more (and every `pollMs`).
 * Fetches never overlap: a change announced during one is fetched right after it, so every event is delivered
 * once and in log order. A failed fetch (Redis away) is logged once a minute and tried again at the next change
 * or poll.
 */
export class JobEventReader {
  static readonly pollMs = 10_000;
  private fetching = false;
  private again = false;
  private stopped = false;
  private readonly unwatch: () => void;
  private readonly timer: NodeJS.Timeout;
  private readonly onError: (e: Error) => void;

  constructor(
    private readonly opts: {
      hub: EventHub;
      redis: Redis;
      keys: FarmKeys;
      jobId: string;
      after: string;
      log: Logger;
      /** Receives each batch in order; return false to stop reading (a terminal event). */
      onEvents: (events: StoredEvent[]) => boolean;
      /** Called every poll interval before the fetch (SSE keep-alives). */
      onTick?: () => void;
    },
  ) {
    this.onError = throttledErrorLog(opts.log, 'could not read job events; retrying');
    this.unwatch = opts.hub.watch(opts.jobId, () => this.fetch());
    this.timer = setInterval(() => {
      opts.onTick?.();
      this.fetch();
    }, JobEventReader.pollMs);
    this.timer.unref();
    this.fetch();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.unwatch();
  }

  fetch(): void {
    if (this.stopped) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = true;
    void (async () => {
      try {
        do {
          this.again = false;
          try {
            const events = await readJobEvents(this.opts.redis, this.opts.keys, this.opts.jobId, this.opts.after);
            if (this.stopped) return;
            if (events.length > 0) {
              this.opts.after = events.at(-1)!.id;
              if (!this.opts.onEvents(events)) {
                this.stop();
                return;
              }
            }
          } catch (e) {
            this.onError(e as Error);
          }
        } while (this.again && !this.stopped);
      } finally {
        // In the same turn as the loop's last check, so a change announced after it starts a new fetch.
        this.fetching = false;
      }
    })();
  }
}
