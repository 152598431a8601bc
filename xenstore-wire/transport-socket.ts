/**
 * The Unix socket transport (xenstored's `$XENSTORED_RUNDIR/socket`). A socket connection is
 * dom0's and privileged.
 *
 * Messages sent in one run of JavaScript go out as one write (flushed from a microtask), so
 * `Promise.all` of many requests is one burst on the wire (pipelining) rather than one syscall
 * per request.
 *
 * The byte path avoids Node's stream machinery, which measured as most of the client's cost per
 * request (docs/notes/xenstore-client-wave2.md, client-wave3.md): in a fresh process it runs as
 * unoptimised bytecode for the first hundreds of requests, and warm it allocates several objects
 * and schedules ticks per read and per write, feeding the garbage collector.
 * - Reads use net.Socket's `onread` option: libuv reads into one buffer owned by this
 *   transport. A sink with onBytes() parses it in place (copying out only the payloads it
 *   keeps); otherwise each read is copied out once, exactly sized, for onData().
 * - Writes: every message of a run of JavaScript is appended to one output buffer owned by the
 *   transport (path requests are encoded straight into it, sendPath()), which a promise job
 *   writes with one fs.writeSync on the socket's file descriptor while nothing is queued in the
 *   stream (the descriptor is non-blocking: a full socket buffer gives EAGAIN or a short write,
 *   and the rest then goes through socket.write(), after which writes stay on that path until
 *   it has drained, so bytes never overtake each other). Where the descriptor is not available
 *   (`_handle.fd`, Node's handle property) every write uses socket.write().
 */
import { writeSync } from 'node:fs';
import { Socket, createConnection } from 'node:net';
import { XENSTORE_PAYLOAD_MAX } from './constants';
import { pathFrameSize, writePathFrame } from './codec';
import { ConnectionError } from './errors';
import { Transport, TransportSink } from './transport';

export interface SocketTransportOptions {
  /** Give up connecting after this long (ConnectionError ETIMEDOUT). Default 10 s. */
  connectTimeoutMs?: number;
}

const RESOLVED = Promise.resolve();

/** The read buffer: xenstored replies are at most a few KiB; oxenstored's listings more. */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * The output buffer's usual size: a pipelined burst of 1000 reads is about 30 KiB. It grows for
 * larger bursts and goes back to this size once one larger than OUTPUT_KEEP_BYTES is written.
 */
const OUTPUT_BYTES = 64 * 1024;
const OUTPUT_KEEP_BYTES = 1024 * 1024;

export class SocketTransport implements Transport {
  readonly kind = 'socket' as const;
  readonly maxPayload = XENSTORE_PAYLOAD_MAX;
  readonly eventIdsMeaningful = true;
  private sink: TransportSink | null = null;
  /** Messages waiting for the flush: out[0..outLength). */
  private out = Buffer.allocUnsafeSlow(OUTPUT_BYTES);
  private outLength = 0;
  private flushScheduled = false;
  /** True after a write went through the stream, until the stream is seen drained. */
  private streamUsed = false;
  private ended = false;
  private closing: Promise<void> | null = null;
  private earlyData: Buffer[] = [];
  private pendingEnd: ConnectionError | null | undefined;
  private readonly readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  private readonly socket: Socket;
  /** The socket's descriptor once connected, or -1 (then writes use the stream). */
  private fd = -1;

  private constructor(readonly path: string) {
    this.socket = createConnection({
      path,
      onread: {
        buffer: this.readBuffer,
        // Parenthesized: compiled with the constructor, not inside the first reply.
        callback: (function onRead(this: SocketTransport, n: number): boolean {
          const sink = this.sink;
          if (sink !== null && sink.onBytes !== undefined) sink.onBytes(this.readBuffer, n);
          else this.deliver(n);
          return true; // keep reading
        }).bind(this),
      },
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.end(err));
    this.socket.on('close', () => this.end(null));
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
      const t = new SocketTransport(path);
      const socket = t.socket;
      const timer = setTimeout(() => {
        t.ended = true;
        socket.destroy();
        reject(new ConnectionError('ETIMEDOUT', `connecting to xenstored at ${path} timed out after ${timeoutMs} ms`, { path }));
      }, remainingMs);
      const onError = (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        t.ended = true;
        socket.destroy();
        reject(new ConnectionError(err.code ?? 'EIO', `cannot connect to xenstored at ${path}: ${err.message}`, { path, cause: err }));
      };
      socket.prependOnceListener('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        t.fd = descriptorOf(socket);
        resolve(t);
      });
    });
  }

  /** libuv read `n` bytes into readBuffer: hand a copy on (the buffer is reused at once). */
  private deliver(n: number): void {
    const chunk = Buffer.allocUnsafe(n);
    this.readBuffer.copy(chunk, 0, 0, n);
    if (this.sink) this.sink.onData(chunk);
    else this.earlyData.push(chunk);
  }

  start(sink: TransportSink): void {
    this.sink = sink;
    for (const c of this.earlyData.splice(0)) sink.onData(c);
    if (this.ended && this.pendingEnd !== undefined) sink.onClose(this.pendingEnd);
  }

  send(message: Buffer, _reqId?: number): void {
    if (this.ended) return; // the owner has been or will be told through onClose
    const at = this.reserve(message.length);
    this.out.set(message, at);
    this.outLength = at + message.length;
  }

  declare sendPath: (type: number, reqId: number, txId: number, path: string) => void;

  // The request path, as parenthesized function expressions: V8 compiles those when it compiles
  // the code around them (its heuristic for immediately invoked functions), here when the
  // module loads, instead of lazily inside the first request (docs/notes/client-wave3.md).
  static {
    SocketTransport.prototype.sendPath = (function sendPath(this: SocketTransport, type: number, reqId: number, txId: number, path: string): void {
      if (this.ended) return;
      const at = this.reserve(pathFrameSize(path)); // first: it may replace `out`
      this.outLength = writePathFrame(this.out, at, type, reqId, txId, path);
    });
    SocketTransport.prototype.reserve = (function reserve(this: SocketTransport, n: number): number {
      const at = this.outLength;
      if (at + n > this.out.length) {
        const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.out.length, at + n));
        this.out.copy(bigger, 0, 0, at);
        this.out = bigger;
      }
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // A plain promise job: queueMicrotask() wraps each callback in an async resource.
        RESOLVED.then(this.flush);
      }
      return at;
    });
  }

  /** Makes room for `n` more bytes in the output buffer, schedules the flush; returns where they go. */
  declare private reserve: (n: number) => number;

  /** Writes what the run of JavaScript queued (a promise job; parenthesized: compiled with the constructor). */
  private readonly flush = (function flush(this: SocketTransport): void {
    this.flushScheduled = false;
    const n = this.outLength;
    if (this.ended || n === 0) return;
    this.outLength = 0;
    let written = 0;
    if (this.fd >= 0 && (!this.streamUsed || this.socket.writableLength === 0)) {
      this.streamUsed = false;
      try {
        // A view of the n bytes rather than (out, 0, n): one argument check less in Node.
        written = writeSync(this.fd, new Uint8Array(this.out.buffer, this.out.byteOffset, n));
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code !== 'EAGAIN') {
          // EPIPE, ECONNRESET...: the connection is gone; the socket reports it (once).
          this.socket.destroy(err);
          return;
        }
      }
    }
    if (written < n) {
      // The stream keeps what it is given until written: a copy, as `out` is reused.
      this.streamUsed = true;
      const rest = Buffer.allocUnsafe(n - written);
      this.out.copy(rest, 0, written, n);
      this.socket.write(rest);
    }
    if (this.out.length > OUTPUT_KEEP_BYTES) this.out = Buffer.allocUnsafeSlow(OUTPUT_BYTES);
  }).bind(this);

  private end(err: NodeJS.ErrnoException | null): void {
    if (this.ended) return;
    this.ended = true;
    this.fd = -1;
    this.outLength = 0;
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
      this.fd = -1; // never write to a descriptor number that may be reused after close
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

/** The connected socket's file descriptor, or -1 where Node does not expose it. */
function descriptorOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}
