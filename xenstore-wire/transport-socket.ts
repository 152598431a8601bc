/**
 * The Unix socket transport (xenstored's `$XENSTORED_RUNDIR/socket`). A socket connection is
 * dom0's and privileged.
 *
 * Messages sent in one tick of the event loop go out as one write, so `Promise.all` of many
 * requests is one burst on the wire (pipelining) rather than one syscall per request.
 */
import { Socket, createConnection } from 'node:net';
import { XENSTORE_PAYLOAD_MAX } from './constants';
import { ConnectionError } from './errors';
import { Transport, TransportSink } from './transport';

export interface SocketTransportOptions {
  /** Give up connecting after this long (ConnectionError ETIMEDOUT). Default 10 s. */
  connectTimeoutMs?: number;
}

export class SocketTransport implements Transport {
  readonly kind = 'socket' as const;
  readonly maxPayload = XENSTORE_PAYLOAD_MAX;
  readonly eventIdsMeaningful = true;
  private sink: TransportSink | null = null;
  private queue: Buffer[] = [];
  private flushScheduled = false;
  private ended = false;
  private closing: Promise<void> | null = null;
  private earlyData: Buffer[] = [];

  private constructor(
    readonly path: string,
    private readonly socket: Socket,
  ) {
    socket.on('data', (chunk: Buffer) => this.deliver(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.end(err));
    socket.on('close', () => this.end(null));
  }

  /**
   * Connects to the socket at `path`; rejects with a ConnectionError (ENOENT, ECONNREFUSED ...).
   *
   * A non-blocking connect() to a Unix socket whose listen backlog is full fails with EAGAIN
   * where libxenstore's blocking connect() would wait; C xenstored accepts one connection per
   * pass of its main loop, so a burst of clients hits this. EAGAIN is retried with a short
   * backoff until the timeout.
   */
  static async connect(path: string, opts: SocketTransportOptions = {}): Promise<SocketTransport> {
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await SocketTransport.connectOnce(path, Math.max(1, deadline - Date.now()), timeoutMs);
      } catch (e) {
        const err = e as ConnectionError;
        if (err.code !== 'EAGAIN' || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(50, 1 + attempt * 2) * Math.random() + 1));
      }
    }
  }

  private static connectOnce(path: string, remainingMs: number, timeoutMs: number): Promise<SocketTransport> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionError('ETIMEDOUT', `connecting to xenstored at ${path} timed out after ${timeoutMs} ms`, { path }));
      }, remainingMs);
      const onError = (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new ConnectionError(err.code ?? 'EIO', `cannot connect to xenstored at ${path}: ${err.message}`, { path, cause: err }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new SocketTransport(path, socket));
      });
    });
  }

  private deliver(chunk: Buffer): void {
    if (this.sink) this.sink.onData(chunk);
    else this.earlyData.push(chunk);
  }

  start(sink: TransportSink): void {
    this.sink = sink;
    for (const c of this.earlyData.splice(0)) sink.onData(c);
    if (this.ended && this.pendingEnd !== undefined) sink.onClose(this.pendingEnd);
  }

  send(message: Buffer): void {
    if (this.ended) return; // the owner has been or will be told through onClose
    this.queue.push(message);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.ended || this.queue.length === 0) return;
    const out = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue);
    this.queue = [];
    this.socket.write(out);
  };

  private pendingEnd: ConnectionError | null | undefined;

  private end(err: NodeJS.ErrnoException | null): void {
    if (this.ended) return;
    this.ended = true;
    this.queue = [];
    const byUs = this.closing !== null;
    const e = byUs
      ? null
      : new ConnectionError(err?.code ?? 'ECONNRESET', `connection to xenstored at ${this.path} lost${err ? `: ${err.message}` : ''}`, {
          path: this.path,
          cause: err ?? undefined,
        });
    this.socket.destroy();
    if (this.sink) this.sink.onClose(e);
    else this.pendingEnd = e;
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      if (this.socket.destroyed && this.socket.closed) {
        this.end(null);
        resolve();
        return;
      }
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
    return this.closing;
  }
}
