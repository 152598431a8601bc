/**
 * A watch as an async iterable of events. docs/misc/xenstore.txt "WATCH": every new watch
 * fires once at once (the initial firing), then on changes to the path or anything below it;
 * events may be spurious and several changes may be reported as one, so consumers re-read.
 */
import { WatchEvent } from './payload';

export type { WatchEvent } from './payload';

export type WatchListener = (event: WatchEvent) => void;

/**
 * C xenstored 4.22 is_child(): an event on the watched path itself always matches; one below
 * it matches when it lies at most `depth` levels down. Paths that are not below the watched
 * one (the daemon reports the watched path for a removed parent) are left to the daemon.
 */
export function withinDepth(eventPath: string, watchPath: string, depth: number): boolean {
  if (eventPath === watchPath) return true;
  const prefix = watchPath === '/' ? '/' : `${watchPath}/`;
  if (!eventPath.startsWith(prefix)) return true;
  let levels = 1;
  for (let i = prefix.length; i < eventPath.length; i++) if (eventPath.charCodeAt(i) === 0x2f) levels++;
  return levels <= depth;
}

/** What a Watch needs from its client: unregistering itself. */
export interface WatchOwner {
  unwatch(watch: Watch): Promise<void>;
}

export class Watch implements AsyncIterableIterator<WatchEvent> {
  /** Resolves once the daemon accepted the WATCH; rejects with its error otherwise. */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private queue: WatchEvent[] = [];
  private waiters: { resolve: (r: IteratorResult<WatchEvent>) => void; reject: (e: Error) => void }[] = [];
  /** Set once the watch has ended: `error` undefined for a normal end. */
  private endState: { error?: Error; reported: boolean } | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    readonly path: string,
    readonly token: string,
    private readonly owner: WatchOwner,
    private readonly listener?: WatchListener,
    private readonly onError?: (err: Error) => void,
    /** Levels below `path` that fire (Xen 4.22 watch depth); undefined = all. */
    readonly depth?: number,
  ) {
    this.ready = new Promise<void>((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    // Failures are delivered through the iterator (or onError); nobody has to await `ready`.
    this.ready.catch(() => undefined);
  }

  /** True once the watch will deliver no more events. */
  get ended(): boolean {
    return this.endState !== null;
  }

  /** Events received but not yet taken by the iterator. */
  get queued(): number {
    return this.queue.length;
  }

  /** @internal the daemon acknowledged the WATCH. */
  _registered(): void {
    this.resolveReady();
  }

  /** @internal an event routed here by token. */
  _deliver(ev: WatchEvent): void {
    if (this.endState) return;
    // The daemon applies the depth itself; /dev/xen/xenbus does not pass it on (the kernel
    // registers the watch with path and token only), so it is applied here as well.
    if (this.depth !== undefined && !withinDepth(ev.path, this.path, this.depth)) return;
    if (this.listener) {
      try {
        this.listener(ev);
      } catch (e) {
        // A throwing listener must not break the dispatch of the other replies in this chunk:
        // hand it to onError, or rethrow it on its own tick like an EventEmitter listener.
        if (this.onError) this.onError(e as Error);
        else
          process.nextTick(() => {
            throw e;
          });
      }
      return;
    }
    const w = this.waiters.shift();
    if (w) w.resolve({ value: ev, done: false });
    else this.queue.push(ev);
  }

  /**
   * @internal no more events: a normal end (close, reset) when `error` is undefined, else the
   * registration failed or the connection was lost.
   */
  _end(error?: Error): void {
    if (this.endState) return;
    this.endState = { error, reported: false };
    if (error) {
      this.rejectReady(error);
      this.onError?.(error);
    } else {
      this.resolveReady();
    }
    const waiters = this.waiters.splice(0);
    for (const w of waiters) {
      if (error && !this.endState.reported) {
        this.endState.reported = true;
        w.reject(error);
      } else {
        w.resolve({ value: undefined, done: true });
      }
    }
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.queue.length > 0) return Promise.resolve({ value: this.queue.shift()!, done: false });
    if (this.endState) {
      // Report a failure once, then behave as an ordinary finished iterator.
      if (this.endState.error && !this.endState.reported) {
        this.endState.reported = true;
        return Promise.reject(this.endState.error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Called by `break` in a for-await loop: unwatches. */
  async return(): Promise<IteratorResult<WatchEvent>> {
    await this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * Sends UNWATCH (if the connection is still up) and ends the iterator. Never rejects: a
   * watch on a lost connection is already gone in the daemon.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const wasEnded = this.ended;
      this.queue = [];
      this._end();
      if (!wasEnded) {
        try {
          await this.owner.unwatch(this);
        } catch {
          // The connection went away: the daemon dropped the watch with it.
        }
      }
    })();
    return this.closing;
  }
}
