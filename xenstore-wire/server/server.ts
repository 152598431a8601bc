/**
 * The in-memory xenstored as a daemon: a Unix socket listener (every client privileged, as on
 * the real daemon's socket), per-domain sockets and in-process streams for connections *as*
 * an unprivileged domain, a simulated hypervisor (which domains exist), `--persist`, traces,
 * and fault injection for tests.
 */
import { mkdtempSync, mkdirSync, rmSync, unlinkSync, existsSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { encodeFrame, Frame } from '../codec';
import { XENSTORE_PAYLOAD_MAX, XS_HEADER_SIZE } from '../constants';
import { FrameDecoder } from '../framing';
import { DomainOracle, Quotas, ServerConnection, XenstoredCore } from './core';
import { DEFAULT_RELEASE, isXenRelease, XEN_RELEASES, XenRelease } from './release';
import { XenstoredServerError } from './errors';
import { loadTree, saveTree, TreeJournal } from './persist';

export interface FaultOptions {
  /** Seed of the fault generator (default 1): the same seed fails the same commits. */
  seed?: number;
  /** Fraction (0..1) of commits that would succeed but fail with EAGAIN instead. */
  commitEagainRate?: number;
  /** Delay every reply and event by this many ms, or a random amount in [min, max]. */
  replyDelayMs?: number | [number, number];
  /** Close each connection once it has sent this many messages (they are answered first). */
  dropAfterMessages?: number;
}

export interface ServerOptions {
  /** Folder for the socket (default: a fresh folder under the OS temp dir, removed on close). */
  rundir?: string;
  /** Socket path (default `<rundir>/socket`). */
  socketPath?: string;
  quotas?: Partial<Quotas>;
  /**
   * Which Xen release's C xenstored to model: '4.17', '4.20', '4.21' or '4.22' (default
   * DEFAULT_RELEASE, the newest verified against a real daemon). Newer message types, watch
   * depth and per-domain special watches are refused below the release that has them.
   */
  release?: XenRelease;
  /**
   * Domains that exist in the simulated hypervisor besides dom0 (INTRODUCE works for them,
   * permissions naming them count): a list of domids or an oracle. Default: none, like the
   * real daemons under the test harness. introduceDomain()/createDomain() add to the list.
   */
  domains?: number[] | DomainOracle;
  /** Log each message: true for stderr, or a function taking one line. */
  trace?: boolean | ((line: string) => void);
  /**
   * Keep the tree in this JSON file (and `<file>.log`) across restarts. Every change is on
   * disk before the reply that acknowledges it is sent (write-ahead log, persist.ts).
   */
  persist?: string;
  /**
   * Called when the daemon cannot go on (the log cannot be written: nothing more can be
   * acknowledged). Every connection has been dropped and the sockets closed. Default: none.
   */
  onFatal?: (err: XenstoredServerError) => void;
  faults?: FaultOptions;
  /**
   * Serve `<rundir>/domain-<domid>.socket` for every introduced guest, created at INTRODUCE
   * and removed at release: each client of it is that (unprivileged) domain.
   */
  domainSockets?: boolean;
}

/** Replies of a long burst leave at least every this many requests. */
const FLUSH_EVERY_REQUESTS = 256;

const headerWords = new Uint32Array(4);
const headerBytes = new Uint8Array(headerWords.buffer);

/**
 * Replies (and events) of a burst in one buffer: one allocation and one copy per frame, where
 * encodeFrame() per frame and a concat made two buffers and two copies of each. The fields are
 * the daemon's own (a request's ids, a reply type), uint32 by construction; host byte order.
 */
function encodeFrames(frames: readonly Frame[]): Buffer {
  let size = 0;
  for (const f of frames) size += XS_HEADER_SIZE + f.payload.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const f of frames) {
    headerWords[0] = f.type;
    headerWords[1] = f.reqId;
    headerWords[2] = f.txId;
    headerWords[3] = f.payload.length;
    out.set(headerBytes, at);
    out.set(f.payload, at + XS_HEADER_SIZE);
    at += XS_HEADER_SIZE + f.payload.length;
  }
  return out;
}

/** mulberry32: a small seeded generator, enough for reproducible fault injection. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What each transport gives the server: write frames out, stop and restart input, close. */
interface Endpoint {
  /** Returns false when the transport's buffer is full ('drain' follows). */
  write(buf: Buffer): boolean;
  /** Stop delivering input (the daemon will not read this connection for now). */
  pause(): void;
  resume(): void;
  destroy(): void;
  readonly destroyed: boolean;
}

/** Requests received and not yet processed: the daemon stopped reading this connection. */
interface Input {
  frames: Frame[];
  next: number;
  paused: boolean;
}

export class XenstoreServer {
  readonly rundir: string;
  readonly socketPath: string;
  /** For child processes: XENSTORED_PATH and XENSTORED_RUNDIR point here. */
  readonly env: NodeJS.ProcessEnv;
  core: XenstoredCore;
  private listener: Server | null = null;
  private readonly domainListeners = new Map<number, { server: Server; path: string }>();
  private readonly domainListening = new Map<number, Promise<string>>();
  private readonly endpoints = new Map<ServerConnection, Endpoint>();
  private readonly inputs = new Map<ServerConnection, Input>();
  /** Connections not being read (their domain's quota, or their own unread output). */
  private readonly paused = new Set<ServerConnection>();
  private readonly existing: Set<number>;
  private readonly oracle?: DomainOracle;
  private faults: FaultOptions;
  private random: () => number;
  private readonly ownRundir: boolean;
  private readonly traceFn?: (line: string) => void;
  private journal: TreeJournal | null = null;
  /** Set when the log failed: the daemon no longer serves anyone. */
  private failed: XenstoredServerError | null = null;
  private closed = false;
  /** Requests processed since the last flush (see FLUSH_EVERY_REQUESTS). */
  private sinceFlush = 0;
  /** Per connection: the time before which no delayed output may be written (keeps order). */
  private readonly delayedUntil = new WeakMap<ServerConnection, number>();
  private readonly delayed = new WeakMap<ServerConnection, { due: number; buf: Buffer }[]>();

  constructor(private readonly opts: ServerOptions = {}) {
    this.ownRundir = opts.rundir === undefined;
    this.rundir = opts.rundir ?? mkdtempSync(join(tmpdir(), 'xen-sshm-xenstored-'));
    if (!this.ownRundir) mkdirSync(this.rundir, { recursive: true });
    this.socketPath = opts.socketPath ?? join(this.rundir, 'socket');
    this.env = { ...process.env, XENSTORED_PATH: this.socketPath, XENSTORED_RUNDIR: this.rundir };
    if (Array.isArray(opts.domains) || opts.domains === undefined) {
      this.existing = new Set(opts.domains ?? []);
    } else {
      this.existing = new Set();
      this.oracle = opts.domains;
    }
    this.faults = { ...(opts.faults ?? {}) };
    this.random = seededRandom(this.faults.seed ?? 1);
    this.traceFn = opts.trace === true ? (l) => process.stderr.write(l + '\n') : opts.trace || undefined;
    try {
      if (opts.release !== undefined && !isXenRelease(opts.release)) {
        throw new XenstoredServerError('options', 'EINVAL', `release ${JSON.stringify(opts.release)} is not one of ${XEN_RELEASES.join(', ')}`);
      }
      this.core = this.newCore();
    } catch (e) {
      if (this.ownRundir) rmSync(this.rundir, { recursive: true, force: true });
      throw e;
    }
  }

  private newCore(): XenstoredCore {
    const core = new XenstoredCore({
      quotas: this.opts.quotas,
      release: this.opts.release ?? DEFAULT_RELEASE,
      domains: { exists: (d) => this.existing.has(d) || (this.oracle?.exists(d) ?? false) },
      trace: this.traceFn,
      onDomain: (domid, event) => this.domainEvent(domid, event),
      injectCommitFailure: () => {
        const rate = this.faults.commitEagainRate ?? 0;
        return rate > 0 && this.random() < rate;
      },
    });
    if (this.opts.persist) {
      this.journal?.close();
      this.journal = null;
      loadTree(core, this.opts.persist);
      // Fold what was loaded into one snapshot, then log every change from an empty log.
      const journal = new TreeJournal(this.opts.persist);
      journal.compact(core);
      core.discardChanges();
      journal.open();
      this.journal = journal;
      core.journal = (change) => {
        journal.append(change);
        if (journal.wantsCompaction) journal.compact(core);
      };
    }
    return core;
  }

  /** Start listening on the socket. */
  async listen(): Promise<void> {
    if (existsSync(this.socketPath)) {
      // A stale socket from a previous run: refuse to steal a live one.
      const live = await new Promise<boolean>((resolve) => {
        const s = new Socket();
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
        s.connect(this.socketPath);
      });
      if (live) throw new XenstoredServerError('listen', 'EADDRINUSE', `a xenstore daemon already answers on ${this.socketPath}`, this.socketPath);
      unlinkSync(this.socketPath);
    }
    this.listener = await this.listenOn(this.socketPath, null);
  }

  private listenOn(path: string, domid: number | null): Promise<Server> {
    return new Promise((resolve, reject) => {
      const server = createServer((sock) => this.accept(sock, domid));
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new XenstoredServerError('listen', e.code ?? 'EIO', `cannot listen on ${path}: ${e.message}`, path)),
      );
      server.listen(path, () => resolve(server));
    });
  }

  private accept(sock: Socket, domid: number | null): void {
    sock.setNoDelay?.(true);
    let conn: ServerConnection;
    try {
      conn = this.attach(domid, sock);
    } catch {
      // The domain was released (or never introduced): nothing to talk to.
      sock.destroy();
      return;
    }
    const decoder = new FrameDecoder({ maxPayload: XENSTORE_PAYLOAD_MAX });
    sock.on('data', (chunk: Buffer) => this.receive(conn, decoder, chunk));
    sock.on('drain', () => this.drained(conn));
    sock.on('error', () => undefined);
    sock.on('close', () => this.detach(conn));
  }

  /** Registers a connection whose output goes to `ep`. */
  private attach(domid: number | null, ep: Endpoint): ServerConnection {
    const conn = this.core.openConnection(
      domid,
      (frames) => this.output(conn, frames),
      () => ep.destroy(),
    );
    this.endpoints.set(conn, ep);
    return conn;
  }

  private detach(conn: ServerConnection): void {
    this.endpoints.delete(conn);
    this.inputs.delete(conn);
    this.paused.delete(conn);
    this.core.closeConnection(conn);
    // Its queued output no longer counts against its domain: others may be read again.
    this.pumpPaused();
  }

  /** The transport took what it had: write what waited, read who waited. */
  private drained(conn: ServerConnection): void {
    if (conn.closed) return;
    this.core.drained(conn);
    this.pumpPaused();
  }

  private pumpPaused(): void {
    for (const c of [...this.paused]) this.pump(c);
  }

  private receive(conn: ServerConnection, decoder: FrameDecoder, chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = decoder.push(chunk);
    } catch {
      // "Client tried to feed us" more than XENSTORE_PAYLOAD_MAX: the daemon drops the client.
      this.core.dropConnection(conn);
      return;
    }
    let input = this.inputs.get(conn);
    if (!input) {
      input = { frames: [], next: 0, paused: false };
      this.inputs.set(conn, input);
    }
    for (const f of frames) input.frames.push(f);
    this.pump(conn);
  }

  /**
   * Process received requests while the daemon may read this connection (conn_can_read). The
   * replies of what arrived together leave together: one flush (one socket write per
   * connection) after the burst, or before the connection's own queued output would stop it.
   */
  private pump(conn: ServerConnection): void {
    const input = this.inputs.get(conn);
    if (!input) return;
    try {
      this.pumpFrames(conn, input);
    } finally {
      this.flushGuarded();
    }
  }

  private pumpFrames(conn: ServerConnection, input: Input): void {
    while (input.next < input.frames.length) {
      if (conn.closed) return;
      if (!this.core.canRead(conn)) {
        // Our own unflushed replies may be what holds it: write them, then ask again.
        this.flushGuarded();
        if (this.failed) return;
      }
      if (!this.core.canRead(conn)) {
        if (!input.paused) {
          input.paused = true;
          this.paused.add(conn);
          this.endpoints.get(conn)?.pause();
        }
        return;
      }
      const f = input.frames[input.next++];
      this.processGuarded(conn, f);
      if (this.failed) return;
      conn.received++;
      // A long burst is answered in parts: the client works on the first replies while the
      // daemon goes on with the rest (on two cores the two overlap instead of taking turns).
      if (++this.sinceFlush >= FLUSH_EVERY_REQUESTS) this.flushGuarded();
      const limit = this.faults.dropAfterMessages;
      if (limit !== undefined && conn.received >= limit) {
        // Answered first: what is queued goes out before the connection is closed.
        this.flushGuarded();
        this.dropSoon(conn);
        return;
      }
    }
    input.frames = [];
    input.next = 0;
    if (input.paused) {
      input.paused = false;
      this.paused.delete(conn);
      this.endpoints.get(conn)?.resume();
    }
  }

  /** Drop after the queued (possibly delayed) output has gone out. */
  private dropSoon(conn: ServerConnection): void {
    const wait = Math.max(0, (this.delayedUntil.get(conn) ?? 0) - Date.now());
    const ep = this.endpoints.get(conn);
    this.core.closeConnection(conn);
    setTimeout(() => ep?.destroy(), wait);
  }

  /** The connection's sink: false when the transport is backed up (output waits in the core). */
  private output(conn: ServerConnection, frames: Frame[]): boolean {
    const ep = this.endpoints.get(conn);
    if (!ep || ep.destroyed) return true;
    const buf = frames.length === 1 ? encodeFrame(frames[0]) : encodeFrames(frames);
    const d = this.faults.replyDelayMs;
    if (d === undefined || d === 0) return ep.write(buf);
    // Delayed output goes through one queue per connection, so it leaves in order whatever
    // the individual delays.
    const ms = Array.isArray(d) ? d[0] + this.random() * (d[1] - d[0]) : d;
    const due = Math.max(Date.now() + ms, this.delayedUntil.get(conn) ?? 0);
    this.delayedUntil.set(conn, due);
    let q = this.delayed.get(conn);
    if (!q) {
      q = [];
      this.delayed.set(conn, q);
    }
    q.push({ due, buf });
    if (q.length === 1) this.armDelayed(conn, ep);
    return true;
  }

  private armDelayed(conn: ServerConnection, ep: Endpoint): void {
    const q = this.delayed.get(conn);
    if (!q || q.length === 0) return;
    setTimeout(() => {
      const now = Date.now();
      while (q.length > 0 && q[0].due <= now) {
        const item = q.shift()!;
        if (!ep.destroyed) ep.write(item.buf);
      }
      this.armDelayed(conn, ep);
    }, Math.max(0, q[0].due - Date.now()));
  }

  // ------------------------------------------------------------------------------------
  // Connections as a domain

  /**
   * A Unix socket whose every client is domain `domid` (unprivileged unless 0), so any tool,
   * xenstore-utils and pyxs included, can act as that guest. The domain must be introduced.
   */
  domainSocketPath(domid: number): Promise<string> {
    this.requireIntroduced(domid);
    const known = this.domainListeners.get(domid);
    if (known) return Promise.resolve(known.path);
    let p = this.domainListening.get(domid);
    if (!p) {
      p = (async () => {
        const path = join(this.rundir, `domain-${domid}.socket`);
        try {
          if (existsSync(path)) unlinkSync(path);
          const server = await this.listenOn(path, domid);
          this.domainListeners.set(domid, { server, path });
          return path;
        } finally {
          this.domainListening.delete(domid);
        }
      })();
      this.domainListening.set(domid, p);
    }
    return p;
  }

  /** An in-process stream speaking the wire protocol as domain `domid` (null: privileged). */
  openStream(domid: number | null = null): Duplex {
    if (domid !== null) this.requireIntroduced(domid);
    const decoder = new FrameDecoder({ maxPayload: XENSTORE_PAYLOAD_MAX });
    let conn: ServerConnection | null = null;
    // While the daemon does not read this connection, the writer's callback waits (backpressure).
    let paused = false;
    let heldWrite: (() => void) | null = null;
    const stream = new Duplex({
      read: () => {
        if (conn && !conn.writable) this.drained(conn);
      },
      write: (chunk: Buffer, _enc, cb) => {
        if (conn) this.receive(conn, decoder, chunk);
        if (paused) heldWrite = cb;
        else cb();
      },
      final: (cb) => {
        stream.push(null);
        cb();
      },
      destroy: (err, cb) => {
        if (conn) this.detach(conn);
        cb(err);
      },
    });
    conn = this.attach(domid, {
      write: (buf) => stream.push(buf),
      pause: () => {
        paused = true;
      },
      resume: () => {
        paused = false;
        const cb = heldWrite;
        heldWrite = null;
        cb?.();
      },
      destroy: () => stream.destroy(),
      get destroyed() {
        return stream.destroyed;
      },
    });
    return stream;
  }

  private domainEvent(domid: number, event: 'introduced' | 'released'): void {
    if (event === 'released') {
      const l = this.domainListeners.get(domid);
      if (l) {
        this.domainListeners.delete(domid);
        l.server.close();
      }
      return;
    }
    if (this.opts.domainSockets && !this.closed) {
      this.domainSocketPath(domid).catch((e: Error) => this.traceFn?.(`domain ${domid} socket: ${e.message}`));
    }
  }

  private requireIntroduced(domid: number): void {
    const d = this.core.domains.get(domid);
    if (!d || !d.introduced) {
      throw new XenstoredServerError('domain', 'ENOENT', `domain ${domid} is not introduced (call introduceDomain(${domid}) first)`, undefined, domid);
    }
  }

  // ------------------------------------------------------------------------------------
  // The simulated hypervisor

  /** The domain now exists in the hypervisor (as after `xl create`, before INTRODUCE). */
  createDomain(domid: number): void {
    if (!Number.isInteger(domid) || domid <= 0 || domid >= 0x7ff0) {
      throw new XenstoredServerError('domain', 'EINVAL', `domid ${domid} is not a guest domid (1..32751)`, undefined, domid);
    }
    this.existing.add(domid);
  }

  /** Create (if needed) and introduce a domain, as the toolstack's INTRODUCE does. */
  introduceDomain(domid: number): void {
    this.createDomain(domid);
    const d = this.core.introduceDomain(domid);
    if (!d) throw new XenstoredServerError('domain', 'EINVAL', `domain ${domid} cannot be introduced`, undefined, domid);
    if (d.port === 0) d.port = 1;
    this.core.flush();
  }

  /** The domain died: its connections close, its nodes go, @releaseDomain fires. */
  destroyDomain(domid: number): void {
    this.existing.delete(domid);
    const d = this.core.domains.get(domid);
    if (d) {
      this.core.releaseDomain(d);
      this.core.flush();
    }
    const l = this.domainListeners.get(domid);
    if (l) {
      l.server.close();
      this.domainListeners.delete(domid);
    }
  }

  // ------------------------------------------------------------------------------------
  // Faults and lifecycle

  setFaults(faults: FaultOptions): void {
    this.faults = { ...faults };
    this.random = seededRandom(this.faults.seed ?? 1);
  }

  /**
   * Restart the daemon: every connection is dropped, the socket re-created. The tree is kept
   * (as by live update, or --persist); `fresh: true` starts from an empty tree instead.
   */
  async restart(opts: { fresh?: boolean } = {}): Promise<void> {
    this.dropAll();
    await this.closeListeners();
    if (this.opts.persist) this.saveNow();
    if (opts.fresh) {
      if (this.opts.persist) {
        this.journal?.close();
        this.journal = null;
        rmSync(this.opts.persist, { force: true });
        rmSync(`${this.opts.persist}.log`, { force: true });
      }
      this.core = this.newCore();
    } else {
      const snap = this.core.snapshot();
      const special = new Map(this.core.specialPerms);
      const domains = [...this.core.domains.values()].filter((d) => d.introduced && d.domid !== 0).map((d) => d.domid);
      this.core = this.newCore();
      this.core.restore(snap);
      for (const [k, v] of special) this.core.setSpecialPerms(k, v);
      for (const domid of domains) this.core.introduceDomain(domid);
    }
    await this.listen();
  }

  private dropAll(): void {
    for (const [conn, ep] of [...this.endpoints]) {
      this.core.closeConnection(conn);
      ep.destroy();
    }
    this.endpoints.clear();
  }

  private async closeListeners(): Promise<void> {
    const all = [this.listener, ...[...this.domainListeners.values()].map((l) => l.server)].filter((s): s is Server => s !== null);
    this.listener = null;
    this.domainListeners.clear();
    await Promise.all(all.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  /** Fold the --persist log into a fresh snapshot now (changes are durable without this). */
  saveNow(): void {
    if (this.failed || !this.opts.persist) return;
    if (this.journal) this.journal.compact(this.core);
    else saveTree(this.core, this.opts.persist);
  }

  /** The log cannot be written: acknowledge nothing more, drop everyone, stop listening. */
  private fatal(err: XenstoredServerError): void {
    if (this.failed) return;
    this.failed = err;
    this.traceFn?.(`fatal: ${err.message}`);
    // Queued replies were not sent (the journal runs first): dropping the connections now
    // discards them, so no client is told that an unlogged change happened.
    this.dropAll();
    void this.closeListeners();
    this.journal?.close();
    this.journal = null;
    this.opts.onFatal?.(err);
  }

  /** The error that stopped the daemon, if any (see ServerOptions.onFatal). */
  get failure(): XenstoredServerError | null {
    return this.failed;
  }

  /** core.process() without its flush (pump() flushes), with a failing log turned into fatal(). */
  private processGuarded(conn: ServerConnection, f: Frame): void {
    try {
      this.core.process(conn, f, { flush: false });
    } catch (e) {
      if (e instanceof XenstoredServerError && e.step === 'persist') this.fatal(e);
      else throw e;
    }
  }

  /** core.flush(): journal, then hand the queued replies and events out; a failing log is fatal(). */
  private flushGuarded(): void {
    this.sinceFlush = 0;
    if (this.failed) return;
    try {
      this.core.flush();
    } catch (e) {
      if (e instanceof XenstoredServerError && e.step === 'persist') this.fatal(e);
      else throw e;
    }
  }

  /** Stop: connections dropped, sockets removed, the tree saved (with --persist). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.dropAll();
    await this.closeListeners();
    if (this.opts.persist) this.saveNow();
    this.journal?.close();
    this.journal = null;
    if (this.ownRundir) rmSync(this.rundir, { recursive: true, force: true });
  }
}

/** Create a server and start listening; resolves once the socket accepts connections. */
export async function startServer(opts: ServerOptions = {}): Promise<XenstoreServer> {
  const server = new XenstoreServer(opts);
  try {
    await server.listen();
  } catch (e) {
    await server.close();
    throw e;
  }
  return server;
}
