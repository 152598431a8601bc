/**
 * The tracing proxy: the only part of xs-trace that touches sockets.
 *
 * It listens on a Unix socket, opens one upstream connection to the real daemon per client,
 * and forwards every chunk as received, before looking at it. Decoding reads the same bytes
 * (never modifying them) through a FrameDecoder per direction and hands whole frames to the
 * I/O-free TraceSession. When a direction stops being decodable (a length field over the
 * bound), that direction is still forwarded untouched: the client never notices the tracer.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { FrameDecoder, REPLY_PAYLOAD_BOUND } from '../../xenstore-wire/framing';
import { TraceError, fromSystemError } from './errors';
import { PartialTracker } from './partial';
import { TraceRecord } from './record';
import { Side, TraceSession } from './session';

/** connect() attempts to the daemon after EAGAIN (backoff 1, 2, 4 ... 50 ms: about 1.5 s). */
const UPSTREAM_CONNECT_RETRIES = 35;

/** Read buffer of the daemon side: a whole maximal message and more. */
const READ_BUFFER_SIZE = 64 * 1024;

/** Microseconds since the Unix epoch, from a monotonic clock anchored once. */
export function makeClock(): () => number {
  const anchorUs = Date.now() * 1000;
  const hr0 = process.hrtime.bigint();
  return () => anchorUs + Number((process.hrtime.bigint() - hr0) / 1000n);
}

export interface ProxyOptions {
  /** Unix socket the clients connect to. */
  listenPath: string;
  /** The real daemon's Unix socket. */
  upstreamPath: string;
  /** Every display record, in order. Exceptions thrown here are ignored (never break a client). */
  onRecord: (r: TraceRecord) => void;
  /** Every chunk forwarded, by connection and sender: for recording the raw streams. */
  onBytes?: (conn: number, from: Side, chunk: Buffer) => void;
  /** Time source in microseconds since the epoch (default: makeClock()). */
  clock?: () => number;
  /** Largest payload decoded before a direction is declared undecodable (default 1 MiB). */
  maxPayload?: number;
  /**
   * Decode in batches, at most this many milliseconds after the bytes were forwarded, so the
   * forwarding path only takes a timestamp and queues the chunk. 0 (default): decode at once.
   * Records keep the time the bytes passed, whatever the delay.
   */
  decodeDelayMs?: number;
}

/** Chunks queued before decoding happens regardless of decodeDelayMs. */
const DECODE_BACKLOG_MAX = 256;

interface Link {
  n: number;
  client: net.Socket;
  /** null until the daemon side is connected. */
  upstream: net.Socket | null;
  decoders: Record<Side, FrameDecoder | null>;
  /** The message each direction is in the middle of, to report one cut by a close. */
  partial: Record<Side, PartialTracker>;
  closed: number;
  finished: boolean;
}

/** Removes a stale socket file (no listener) so listen() can bind; refuses anything else. */
async function clearStaleSocket(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new TraceError('EEXIST', `${path} exists and is not a socket`, { path });
  const live = await new Promise<boolean>((resolve) => {
    const s = net.createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new TraceError('EADDRINUSE', `${path} is in use by a listening process`, { path });
  fs.unlinkSync(path);
}

export class TraceProxy {
  readonly session = new TraceSession();
  readonly listenPath: string;
  readonly upstreamPath: string;
  private readonly server: net.Server;
  private readonly links = new Set<Link>();
  private readonly clock: () => number;
  private nextConn = 1;
  private idleWaiters: Array<() => void> = [];
  private backlog: Array<{ link: Link; side: Side; chunk: Buffer; ts: number }> = [];
  private drainTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly opts: ProxyOptions) {
    this.listenPath = opts.listenPath;
    this.upstreamPath = opts.upstreamPath;
    this.clock = opts.clock ?? makeClock();
    this.server = net.createServer({ allowHalfOpen: true }, (s) => this.accept(s));
  }

  /** Starts listening; resolves once clients can connect. */
  static async listen(opts: ProxyOptions): Promise<TraceProxy> {
    await clearStaleSocket(opts.listenPath);
    const p = new TraceProxy(opts);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', (e) => reject(fromSystemError(e, 'cannot listen on', opts.listenPath)));
      p.server.listen(opts.listenPath, () => resolve());
    });
    p.server.on('error', () => undefined);
    return p;
  }

  /** Connections currently proxied. */
  get activeConnections(): number {
    return this.links.size;
  }

  /** Connections accepted so far. */
  get connectionCount(): number {
    return this.nextConn - 1;
  }

  private emit(r: TraceRecord): void {
    try {
      this.opts.onRecord(r);
    } catch {
      // Output trouble (a closed pipe...) must not disturb the proxied traffic.
    }
  }

  private accept(client: net.Socket): void {
    const n = this.nextConn++;
    this.drain();
    this.emit(this.session.connect(n, this.clock()));
    const maxPayload = this.opts.maxPayload ?? REPLY_PAYLOAD_BOUND;
    const link: Link = {
      n,
      client,
      upstream: null,
      decoders: { client: new FrameDecoder({ maxPayload }), daemon: new FrameDecoder({ maxPayload }) },
      partial: { client: new PartialTracker(), daemon: new PartialTracker() },
      closed: 0,
      finished: false,
    };
    this.links.add(link);
    // The client's bytes wait (in its socket) until the daemon side is connected.
    client.pause();
    client.on('error', () => undefined);
    const clientGone = (): void => {
      // Closed before the daemon side was up: nothing to forward.
      if (link.upstream === null) {
        link.closed = 2;
        this.finish(link);
      }
    };
    client.once('close', clientGone);
    this.connectUpstream(link, 0, () => {
      client.off('close', clientGone);
      this.wire(link);
    });
  }

  /**
   * Opens the daemon side. C xenstored listens with a backlog of 1, so when several clients
   * connect at once a connect() can fail with EAGAIN: retried for a while, so that the
   * proxy itself never turns a busy moment into a lost client.
   */
  private connectUpstream(link: Link, attempt: number, connected: () => void): void {
    if (link.finished) return;
    // The daemon side reads into one reused buffer (`onread`) instead of a stream of fresh
    // chunks: measured on the 2-core bench machine, this saves a good part of the latency a
    // Node hop adds (bench/trace.ts). Each chunk is copied out before forwarding, because a
    // write the kernel does not take at once keeps a reference to its bytes.
    const upstream: net.Socket = net.createConnection({
      path: this.upstreamPath,
      allowHalfOpen: true,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER_SIZE),
        callback: (n: number, buf: Uint8Array): boolean => this.forward(link, upstream, link.client, 'daemon', Buffer.from(buf.subarray(0, n))),
      },
    });
    upstream.once('connect', () => {
      upstream.removeAllListeners('error');
      link.upstream = upstream;
      connected();
    });
    upstream.once('error', (e: NodeJS.ErrnoException) => {
      upstream.destroy();
      if (e.code === 'EAGAIN' && attempt < UPSTREAM_CONNECT_RETRIES && !link.client.destroyed) {
        setTimeout(() => this.connectUpstream(link, attempt + 1, connected), Math.min(50, 1 << attempt));
        return;
      }
      const text = `daemon connection failed: ${e.code ?? 'EIO'} (${this.upstreamPath})`;
      this.drain();
      this.emit(this.session.note(link.n, this.clock(), text, { code: 'daemon-unreachable', message: text }));
      link.client.destroy();
      link.closed = 2;
      this.finish(link);
    });
  }

  /** Both sides are up: forward both ways, and end each side when the other ends. */
  private wire(link: Link): void {
    const client = link.client;
    const upstream = link.upstream as net.Socket;
    this.pipe(link, client, upstream, 'client');
    upstream.on('end', () => client.end());
    upstream.on('error', () => undefined);
    const onClose = (other: net.Socket) => (hadError: boolean): void => {
      link.closed++;
      if (link.closed === 1) {
        // One side is gone. After a clean close the other side has already been ended (and
        // its queued bytes still flush); after an error, cut it too, so a daemon dropping the
        // connection reaches the client as it would without the proxy.
        if (hadError) other.destroy();
        else other.end();
        return;
      }
      this.finish(link);
    };
    if (client.destroyed) {
      // The client left while we were connecting.
      link.closed = 1;
      upstream.destroy();
      upstream.once('close', () => this.finish(link));
      return;
    }
    client.once('close', onClose(upstream));
    upstream.once('close', onClose(client));
    client.resume();
  }

  /** Client side: an ordinary stream of chunks. */
  private pipe(link: Link, from: net.Socket, to: net.Socket, side: Side): void {
    from.on('data', (chunk: Buffer) => {
      this.forward(link, from, to, side, chunk);
    });
    from.on('end', () => {
      to.end();
    });
  }

  /**
   * Forwards one chunk untouched, then looks at it. Returns false when `to` is full: `from`
   * is paused until it drains (an onread callback returning false pauses too).
   */
  private forward(link: Link, from: net.Socket, to: net.Socket, side: Side, chunk: Buffer): boolean {
    const ts = this.clock();
    const ok = to.write(chunk);
    if (!ok) {
      from.pause();
      to.once('drain', () => from.resume());
    }
    this.observe(link, side, chunk, ts);
    return ok;
  }

  private observe(link: Link, side: Side, chunk: Buffer, ts: number): void {
    if (this.opts.onBytes) {
      try {
        this.opts.onBytes(link.n, side, chunk);
      } catch {
        // Recording is best effort; forwarding already happened.
      }
    }
    if (!link.decoders[side]) return;
    const defer = this.opts.decodeDelayMs ?? 0;
    if (defer <= 0) {
      this.decode(link, side, chunk, ts);
      return;
    }
    // Decoding waits for a quiet moment: the forwarding path only queues the chunk.
    this.backlog.push({ link, side, chunk, ts });
    if (this.backlog.length >= DECODE_BACKLOG_MAX) this.drain();
    else this.drainTimer ??= setTimeout(() => this.drain(), defer);
  }

  /** Decodes every queued chunk, in arrival order. Called before any other record is made. */
  private drain(): void {
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    const q = this.backlog;
    if (q.length === 0) return;
    this.backlog = [];
    for (const o of q) this.decode(o.link, o.side, o.chunk, o.ts);
  }

  private decode(link: Link, side: Side, chunk: Buffer, ts: number): void {
    const dec = link.decoders[side];
    if (!dec) return;
    let frames;
    try {
      frames = dec.push(chunk);
    } catch (e) {
      link.decoders[side] = null;
      const msg = (e as Error).message;
      this.emit(
        this.session.note(link.n, ts, `${side === 'client' ? 'client -> daemon' : 'daemon -> client'} stream no longer decodable: ${msg}; still forwarding`, {
          code: 'undecodable-stream',
          message: msg,
        }),
      );
      return;
    }
    link.partial[side].update(chunk, dec.pendingBytes);
    for (const f of frames) {
      for (const r of this.session.frame(link.n, side, f, ts)) this.emit(r);
    }
  }

  private finish(link: Link): void {
    if (link.finished) return;
    link.finished = true;
    this.drain();
    this.links.delete(link);
    // A direction no longer decodable has already been reported; it has no message boundary.
    const cut = (side: Side) => (link.decoders[side] ? link.partial[side].current() : null);
    for (const r of this.session.disconnect(link.n, this.clock(), undefined, { client: cut('client'), daemon: cut('daemon') })) this.emit(r);
    if (this.links.size === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves when no connection is open (at once if none is), or after `timeoutMs`. */
  whenIdle(timeoutMs = Infinity): Promise<boolean> {
    if (this.links.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          this.idleWaiters = this.idleWaiters.filter((f) => f !== done);
          resolve(false);
        }, timeoutMs);
      }
    });
  }

  /**
   * Stops accepting, waits up to `graceMs` for open connections to end by themselves, then
   * cuts the rest, and removes the socket file.
   */
  async close(graceMs = 0): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (graceMs > 0) await this.whenIdle(graceMs);
    for (const l of [...this.links]) {
      l.client.destroy();
      l.upstream?.destroy();
    }
    await this.whenIdle(1000);
    this.drain();
    await closed;
    try {
      fs.unlinkSync(this.listenPath);
    } catch {
      // Already removed by the server.
    }
  }
}
