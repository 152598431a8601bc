/**
 * The xenstore client: requests matched to replies by req_id (many in flight at once),
 * transactions with a retry helper, watches routed by token.
 *
 *   const xs = await connect();
 *   await xs.write('/local/domain/0/x', 'hello');
 *   await xs.transaction(async (tx) => { ... });
 *   for await (const ev of xs.watch('/local/domain/0/x')) { ... }
 *   await xs.close();
 */
import { MessageType, XS_HEADER_SIZE, XENSTORE_ABS_PATH_MAX, XenstoreFeature, XenstoreFeatureName, messageTypeName } from './constants';
import { frameOf, HOST_LITTLE_ENDIAN } from './codec';
import { REPLY_PAYLOAD_BOUND, checkPayloadBound, oversizedFrameError } from './framing';
import {
  request,
  parseOk,
  parseString,
  parseDirectory,
  parseDirectoryPart,
  parseTransactionStart,
  parseBool,
  parseGetPerms,
  parseWatchEvent,
  parseErrorName,
  parseDecimal,
  parseQuotaNames,
} from './payload';
import { PLAIN_ABSOLUTE, validatePath } from './paths';
import { Permission, PermissionLike, formatPerms } from './perms';
import { ConnectionError, ProtocolError, XenstoreError, XenstoreWireError, isEagain } from './errors';
import { Transport, TransportKind, TransportSink, discoverEndpoint, endpointKind } from './transport';
import { SocketTransport } from './transport-socket';
import { XenbusTransport } from './transport-xenbus';
import { Watch, WatchListener } from './watch';

export interface ConnectOptions {
  /** A socket or device path; default: discovery in libxenstore's order (see transport.ts). */
  path?: string;
  /** Force the transport for `path` instead of deciding by stat() (a socket or not). */
  transport?: TransportKind;
  /** Environment used for discovery (XENSTORED_PATH, XENSTORED_RUNDIR). Default process.env. */
  env?: NodeJS.ProcessEnv;
  connectTimeoutMs?: number;
  /** Largest reply payload accepted. Default REPLY_PAYLOAD_BOUND (1 MiB). */
  maxReplyPayload?: number;
  /** Defaults for `transaction()`. */
  transactionDefaults?: TransactionOptions;
  /** Called before each request is sent (fault and crash injection, tracing): see RequestInterceptor. */
  interceptor?: RequestInterceptor;
}

/** A request about to be sent, as an interceptor sees it. */
export interface InterceptedRequest {
  type: MessageType;
  /** 'READ', 'TRANSACTION_END'... */
  op: string;
  /** The node, for requests about one. */
  path?: string;
  txId: number;
  payload: Buffer;
}

/**
 * Called before each request is sent. It may throw (the request is then not sent and fails
 * with that error; a refused TRANSACTION_END is sent as an abort instead, so the daemon does not
 * keep the transaction) or return a promise (the request waits for it; requests stay in order).
 * It may return a function, called with the outcome once the answer came back and before the
 * caller sees it.
 */
export type RequestInterceptor = (req: InterceptedRequest) => void | RequestAfter | Promise<void | RequestAfter>;
export type RequestAfter = (outcome: { reply?: Buffer; error?: unknown }) => void;

export interface TransactionOptions {
  /** Attempts before giving up with EAGAIN. Default 32. */
  maxAttempts?: number;
  /** Backoff after the n-th conflict: random in [0, min(maxDelayMs, baseDelayMs * 2^n)). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called before each retry, e.g. for logging or counting. */
  onRetry?: (attempt: number, err: XenstoreError) => void;
}

/** Options of `watch()`. */
export interface WatchOptions {
  /** Default: `xs1`, `xs2`... (unique on the connection). */
  token?: string;
  /**
   * Xen 4.22: how many levels below the path fire (0 = the node itself only). Needs the
   * daemon's XENSTORE_SERVER_FEATURE_WATCHDEPTH; without it the watch ends with XenstoreError
   * ENOSYS (source 'client') and nothing is sent.
   */
  depth?: number;
}

/** A watch path that only a daemon with watch depth understands, e.g. `@releaseDomain/5`. */
const SPECIAL_WITH_COMPONENT = /^@[^/]+\//;

const TX_DEFAULTS: Required<Omit<TransactionOptions, 'onRetry'>> = { maxAttempts: 32, baseDelayMs: 1, maxDelayMs: 200 };

const READ_RULES = { op: 'READ' } as const;

/** DIRECTORY_PART restarts allowed when the node keeps changing under us. */
const DIRECTORY_PART_MAX_RESTARTS = 64;

interface Pending {
  reqId: number;
  type: MessageType;
  path?: string;
  txId: number;
  resolve(payload: Buffer): void;
  reject(err: Error): void;
}

/**
 * Requests in flight, by req_id: a power-of-two table indexed by the id's low bits. A Map
 * keyed by ever-increasing ids reallocates its backing store every few insert/delete pairs,
 * which measured as a sixth of the client's allocation per sequential request (and so of its
 * scavenges); this table allocates only when it grows. Ids are chosen so that their slot is
 * free (see XenstoreClient.allocReqId), so two requests never share a slot.
 */
class PendingTable {
  private slots: (Pending | undefined)[] = new Array<Pending | undefined>(16).fill(undefined);
  private mask = 15;
  size = 0;

  declare slotFree: (reqId: number) => boolean;

  // The request path, as parenthesized function expressions: V8 compiles those when it compiles
  // the code around them (its heuristic for immediately invoked functions), here when the
  // module loads, instead of lazily inside the first request (docs/notes/client-wave3.md).
  static {
    PendingTable.prototype.slotFree = (function slotFree(this: PendingTable, reqId: number): boolean {
      return this.slots[reqId & this.mask] === undefined;
    });
    PendingTable.prototype.get = (function get(this: PendingTable, reqId: number): Pending | undefined {
      const p = this.slots[reqId & this.mask];
      return p !== undefined && p.reqId === reqId ? p : undefined;
    });
    PendingTable.prototype.add = (function add(this: PendingTable, p: Pending): void {
      this.slots[p.reqId & this.mask] = p;
      this.size++;
    });
    PendingTable.prototype.delete = (function remove(this: PendingTable, reqId: number): void {
      const i = reqId & this.mask;
      const p = this.slots[i];
      if (p !== undefined && p.reqId === reqId) {
        this.slots[i] = undefined;
        this.size--;
      }
    });
    PendingTable.prototype.reserve = (function reserve(this: PendingTable): void {
      while (this.size * 2 >= this.slots.length) {
        const old = this.slots;
        this.slots = new Array<Pending | undefined>(old.length * 2).fill(undefined);
        this.mask = this.slots.length - 1;
        // Ids with distinct low bits under the old mask stay distinct under the wider one.
        for (const p of old) if (p !== undefined) this.slots[p.reqId & this.mask] = p;
      }
    });
  }

  declare get: (reqId: number) => Pending | undefined;

  /** `p.reqId` must have a free slot (slotFree). */
  declare add: (p: Pending) => void;

  declare delete: (reqId: number) => void;

  /** Doubles the table while it is at least half full, so that free slots stay easy to find. */
  declare reserve: () => void;

  values(): Pending[] {
    return this.slots.filter((p): p is Pending => p !== undefined);
  }

  clear(): void {
    this.slots.fill(undefined);
    this.size = 0;
  }
}

/** The operations a client and a transaction share (read, write, directory ...). */
export abstract class XenstoreOps {
  /** 0 for the client itself, the transaction id for a Transaction. */
  abstract readonly txId: number;
  protected abstract readonly conn: XenstoreClient;

  protected call(type: MessageType, payload: Buffer, path?: string): Promise<Buffer> {
    return this.conn._request(type, payload, this.txId, path);
  }

  /** A request whose payload is `path` and a NUL; `path` is already validated. */
  protected callPath(type: MessageType, path: string): Promise<Buffer> {
    return this.conn._requestPath(type, path, this.txId);
  }

  /** The node's value as bytes (ENOENT if it does not exist). */
  declare read: (path: string) => Promise<Buffer>;

  // The request path, as parenthesized function expressions: V8 compiles those when it compiles
  // the code around them (its heuristic for immediately invoked functions), here when the
  // module loads, instead of lazily inside the first request (docs/notes/client-wave3.md).
  static {
    XenstoreOps.prototype.read = (function read(this: XenstoreOps, path: string): Promise<Buffer> {
      // Not an async function: the most frequent request stays one promise deep. The usual
      // absolute path is checked by one regular expression here; anything else by the rules.
      if (typeof path !== 'string' || path.length > XENSTORE_ABS_PATH_MAX || !PLAIN_ABSOLUTE.test(path)) {
        try {
          validatePath(path, READ_RULES);
        } catch (e) {
          return Promise.reject(e);
        }
      }
      return this.callPath(MessageType.READ, path);
    });
  }

  /** The node's value decoded as UTF-8. */
  async readString(path: string): Promise<string> {
    return (await this.read(path)).toString('utf8');
  }

  /** True if the node exists (READ answered), false on ENOENT. */
  async exists(path: string): Promise<boolean> {
    try {
      await this.read(path);
      return true;
    } catch (e) {
      if (e instanceof XenstoreError && e.code === 'ENOENT') return false;
      throw e;
    }
  }

  /** Creates or replaces the value (bytes; strings are UTF-8), creating missing parents. */
  async write(path: string, value: string | Uint8Array): Promise<void> {
    validatePath(path, { op: 'WRITE' });
    parseOk(await this.call(MessageType.WRITE, request.write(path, value), path), MessageType.WRITE);
  }

  /** Creates the node with an empty value if it does not exist (no error if it does). */
  async mkdir(path: string): Promise<void> {
    validatePath(path, { op: 'MKDIR' });
    parseOk(await this.callPath(MessageType.MKDIR, path), MessageType.MKDIR);
  }

  /** Removes the node and everything below it. */
  async rm(path: string): Promise<void> {
    validatePath(path, { op: 'RM' });
    parseOk(await this.callPath(MessageType.RM, path), MessageType.RM);
  }

  /**
   * Names of the node's children. A listing too large for one reply (C xenstored answers
   * E2BIG) is fetched with DIRECTORY_PART, restarting whenever the node's generation changes;
   * oxenstored's single oversized reply is accepted up to maxReplyPayload.
   */
  async directory(path: string): Promise<string[]> {
    validatePath(path, { op: 'DIRECTORY' });
    try {
      return parseDirectory(await this.callPath(MessageType.DIRECTORY, path));
    } catch (e) {
      if (e instanceof XenstoreError && e.code === 'E2BIG' && e.source === 'daemon') return this.directoryParts(path);
      throw e;
    }
  }

  /** The whole listing through DIRECTORY_PART (see directory()). */
  async directoryParts(path: string): Promise<string[]> {
    validatePath(path, { op: 'DIRECTORY_PART' });
    for (let restart = 0; restart <= DIRECTORY_PART_MAX_RESTARTS; restart++) {
      let offset = 0;
      let generation: string | undefined;
      const children: string[] = [];
      let changed = false;
      for (;;) {
        const part = parseDirectoryPart(await this.call(MessageType.DIRECTORY_PART, request.directoryPart(path, offset), path));
        if (generation === undefined) generation = part.generation;
        else if (part.generation !== generation) {
          changed = true; // the node changed between chunks: the offsets no longer line up
          break;
        }
        children.push(...part.children);
        if (part.done) return children;
        if (part.consumed === 0) {
          throw new ProtocolError('malformed-payload', `DIRECTORY_PART of ${path} at offset ${offset} made no progress`, {
            op: 'DIRECTORY_PART',
            path,
          });
        }
        offset += part.consumed;
      }
      if (!changed) break;
    }
    throw new XenstoreError('EAGAIN', {
      op: 'DIRECTORY_PART',
      path,
      txId: this.txId,
      source: 'client',
      detail: `the directory changed during ${DIRECTORY_PART_MAX_RESTARTS + 1} listings in a row`,
    });
  }

  /** The node's permissions: owner (with the default access for others) first. */
  async getPerms(path: string): Promise<Permission[]> {
    validatePath(path, { op: 'GET_PERMS' });
    return parseGetPerms(await this.callPath(MessageType.GET_PERMS, path), path);
  }

  /** Sets the node's permissions, e.g. ['n0', 'r5'] or [{ domid: 0, access: 'n' }, ...]. */
  async setPerms(path: string, perms: readonly PermissionLike[]): Promise<void> {
    validatePath(path, { op: 'SET_PERMS' });
    formatPerms(perms); // typed EINVAL for a bad entry, before anything is sent
    parseOk(await this.call(MessageType.SET_PERMS, request.setPerms(path, perms), path), MessageType.SET_PERMS);
  }
}

/** An open transaction: the client's node operations, inside the transaction, then commit or abort. */
export class Transaction extends XenstoreOps {
  private endedBy: 'commit' | 'abort' | null = null;

  /** @internal use client.transactionStart() or client.transaction(). */
  constructor(
    protected readonly conn: XenstoreClient,
    readonly txId: number,
  ) {
    super();
  }

  /** The transaction id the daemon gave. */
  get id(): number {
    return this.txId;
  }

  get ended(): boolean {
    return this.endedBy !== null;
  }

  protected override call(type: MessageType, payload: Buffer, path?: string): Promise<Buffer> {
    if (this.endedBy) return Promise.reject(this.endedError(type, path));
    return super.call(type, payload, path);
  }

  protected override callPath(type: MessageType, path: string): Promise<Buffer> {
    if (this.endedBy) return Promise.reject(this.endedError(type, path));
    return super.callPath(type, path);
  }

  private endedError(type: MessageType, path: string | undefined): XenstoreError {
    return new XenstoreError('ENOENT', { op: messageTypeName(type), path, txId: this.txId, source: 'client', detail: `transaction ${this.txId} already ended (${this.endedBy})` });
  }

  /** Commits; rejects with XenstoreError EAGAIN when it conflicted (redo the whole transaction). */
  async commit(): Promise<void> {
    await this.end(true);
  }

  /** Discards every change made in the transaction. */
  async abort(): Promise<void> {
    await this.end(false);
  }

  private async end(commit: boolean): Promise<void> {
    const payload = request.transactionEnd(commit);
    const reply = this.call(MessageType.TRANSACTION_END, payload);
    // Ended whatever the answer: the daemon forgets the transaction on every reply.
    this.endedBy = commit ? 'commit' : 'abort';
    parseOk(await reply, MessageType.TRANSACTION_END);
  }
}

/**
 * The settling functions of the promise being made: new Promise(captureSettlers) hands them over
 * without a closure per request.
 */
let capturedResolve: (payload: Buffer) => void = () => undefined;
let capturedReject: (err: Error) => void = () => undefined;
const captureSettlers = (function captureSettlers(resolve: (payload: Buffer) => void, reject: (err: Error) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
});

/**
 * Reply payloads are copied out of the transport's read buffer into slices of a shared pool, as
 * Node's Buffer.allocUnsafe() does (a kept payload keeps its pool alive, at most 8 KiB), but
 * through the built-in subarray: no Node JavaScript on the way.
 */
const PAYLOAD_POOL_BYTES = 8 * 1024;
const u8subarray = Uint8Array.prototype.subarray;
let payloadPool = Buffer.allocUnsafeSlow(PAYLOAD_POOL_BYTES);
let payloadPoolUsed = 0;
const payloadBuffer = (function payloadBuffer(len: number): Buffer {
  if (len > PAYLOAD_POOL_BYTES >>> 2) return Buffer.allocUnsafeSlow(len);
  if (len > PAYLOAD_POOL_BYTES - payloadPoolUsed) {
    payloadPool = Buffer.allocUnsafeSlow(PAYLOAD_POOL_BYTES);
    payloadPoolUsed = 0;
  }
  // A Buffer (Node makes subarrays of a Buffer Buffers), sharing the pool's memory.
  const b = u8subarray.call(payloadPool, payloadPoolUsed, payloadPoolUsed + len) as Buffer;
  payloadPoolUsed = (payloadPoolUsed + len + 7) & ~7;
  return b;
});

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class XenstoreClient extends XenstoreOps implements TransportSink {
  readonly txId = 0;
  protected readonly conn = this;
  private readonly maxReplyPayload: number;
  /** The transport's sendPath(), when it has one and no interceptor needs to see payloads. */
  private readonly sendPath: ((type: number, reqId: number, txId: number, path: string) => void) | null;
  // The reply being read across reads: its header (while incomplete: headerBytes), then its
  // fields and payload (once the header is known: partPayload is set).
  private readonly partHeader = new Uint8Array(XS_HEADER_SIZE);
  private readonly partHeaderView = new DataView(this.partHeader.buffer);
  private partHeaderHave = 0;
  private partType = 0;
  private partReqId = 0;
  private partTxId = 0;
  private partPayload: Buffer | null = null;
  private partHave = 0;
  /** A DataView of the last buffer parsed (the socket transport passes the same one each time). */
  private view: DataView | null = null;
  private viewOf: Uint8Array | null = null;
  private readonly pending = new PendingTable();
  private readonly watches = new Map<string, Watch>();
  private nextReqId = 1;
  private nextToken = 1;
  private failure: XenstoreWireError | null = null;
  private closeRequested = false;
  private closing: Promise<void> | null = null;
  private resolveClosed!: (err: XenstoreWireError | null) => void;
  private drainWaiters: (() => void)[] = [];
  private readonly txDefaults: TransactionOptions;
  private readonly interceptor?: RequestInterceptor;
  /** The last request held by an interceptor's promise: later ones go after it. */
  private held: Promise<unknown> = Promise.resolve();
  private holding = 0;
  /** This connection's feature bitmap (GET_FEATURE), asked once; 0 when the daemon lacks it. */
  private featureBits: Promise<number> | null = null;
  /** Watches waiting for the feature check before their WATCH is sent. */
  private readonly unsentWatches = new Set<Watch>();
  /**
   * Resolves when the connection has ended: with null after close(), with the ConnectionError
   * (or the ProtocolError) that ended it otherwise. Never rejects.
   */
  readonly closed: Promise<XenstoreWireError | null>;

  /** Wraps an already connected transport; `connect()` is the usual way in. */
  constructor(
    readonly transport: Transport,
    opts: { maxReplyPayload?: number; transactionDefaults?: TransactionOptions; interceptor?: RequestInterceptor } = {},
  ) {
    super();
    this.interceptor = opts.interceptor;
    this.maxReplyPayload = opts.maxReplyPayload ?? REPLY_PAYLOAD_BOUND;
    checkPayloadBound(this.maxReplyPayload);
    this.sendPath = transport.sendPath !== undefined && this.interceptor === undefined ? transport.sendPath.bind(transport) : null;
    this.txDefaults = opts.transactionDefaults ?? {};
    this.closed = new Promise((r) => (this.resolveClosed = r));
    transport.start(this);
  }

  /** 'socket' or 'xenbus'. */
  get transportKind(): TransportKind {
    return this.transport.kind;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** True until close() is called or the connection is lost. */
  get isOpen(): boolean {
    return this.failure === null && !this.closeRequested;
  }

  // ------------------------------------------------------------------------- requests

  /** @internal sends one request (through the interceptor, if any) and resolves with the reply payload. */
  _request(type: MessageType, payload: Buffer, txId: number, path?: string): Promise<Buffer> {
    if (!this.interceptor) return this.send(type, payload, txId, path);
    const refused = (e: unknown): Promise<Buffer> =>
      type === MessageType.TRANSACTION_END && txId !== 0
        ? this.send(type, request.transactionEnd(false), txId, path).then(() => Promise.reject(e), () => Promise.reject(e))
        : Promise.reject(e);
    const withAfter = (after: void | RequestAfter): Promise<Buffer> => {
      const p = this.send(type, payload, txId, path);
      if (typeof after !== 'function') return p;
      return p.then(
        (reply) => (after({ reply }), reply),
        (error) => {
          after({ error });
          throw error;
        },
      );
    };
    let verdict: ReturnType<RequestInterceptor>;
    try {
      verdict = this.interceptor({ type, op: messageTypeName(type), path, txId, payload });
    } catch (e) {
      return refused(e);
    }
    if (!(verdict instanceof Promise) && this.holding === 0) return withAfter(verdict);
    this.holding++;
    const gate = this.held.then(() => verdict);
    // Sent (or refused) in the first callback of `gate`; the next request's turn comes after.
    const turn = gate.then(withAfter, refused);
    this.held = gate.then(
      () => this.holding--,
      () => this.holding--,
    );
    return turn;
  }

  /**
   * @internal A request whose payload is `path` and a NUL (READ, DIRECTORY ...), `path` already
   * validated. The common case goes the shortest way: encoded straight into the transport's
   * output, one promise, no payload buffer. Everything else (an interceptor, a transport without
   * sendPath, a closed connection) goes through _request() like any other request.
   */
  declare _requestPath: (type: MessageType, path: string, txId: number) => Promise<Buffer>;

  // The request path, as parenthesized function expressions: V8 compiles those when it compiles
  // the code around them (its heuristic for immediately invoked functions), here when the
  // module loads, instead of lazily inside the first request (docs/notes/client-wave3.md).
  static {
    XenstoreClient.prototype._requestPath = (function _requestPath(this: XenstoreClient, type: MessageType, path: string, txId: number): Promise<Buffer> {
      const sendPath = this.sendPath;
      if (sendPath === null || this.failure !== null || this.closeRequested || path.length >= this.transport.maxPayload) {
        return this._request(type, request.read(path), txId, path);
      }
      const reqId = this.allocReqId();
      const promise = new Promise<Buffer>(captureSettlers);
      this.pending.add({ reqId, type, path, txId, resolve: capturedResolve, reject: capturedReject });
      sendPath(type, reqId, txId, path);
      return promise;
    });
    XenstoreClient.prototype.allocReqId = (function allocReqId(this: XenstoreClient): number {
      // uint32, wrapping; skips ids still in flight, and ids whose slot in the table is taken
      // (a request answered late keeps its slot; later ids step past it).
      this.pending.reserve();
      for (;;) {
        const id = this.nextReqId;
        this.nextReqId = (this.nextReqId + 1) >>> 0;
        if (this.pending.slotFree(id)) return id;
      }
    });
    XenstoreClient.prototype.onBytes = (function onBytes(this: XenstoreClient, buf: Uint8Array, n: number): void {
      if (this.failure !== null) return;
      let at = 0;
      if (this.partPayload !== null || this.partHeaderHave > 0) {
        at = this.continuePart(buf, n);
        if (at < 0) return;
      }
      if (n - at < XS_HEADER_SIZE) {
        if (at < n) this.holdHeader(buf, at, n);
        return;
      }
      let view = this.view;
      if (this.viewOf !== buf || view === null) {
        view = this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
        this.viewOf = buf;
      }
      const le = HOST_LITTLE_ENDIAN;
      while (n - at >= XS_HEADER_SIZE) {
        const type = view.getUint32(at, le);
        const reqId = view.getUint32(at + 4, le);
        const len = view.getUint32(at + 12, le);
        if (len > this.maxReplyPayload) {
          this.fail(oversizedFrameError(type, reqId, len, this.maxReplyPayload));
          return;
        }
        const start = at + XS_HEADER_SIZE;
        const payload = payloadBuffer(len);
        if (n - start < len) {
          // The rest of this reply comes with the next reads.
          payload.set(new Uint8Array(buf.buffer, buf.byteOffset + start, n - start));
          this.partType = type;
          this.partReqId = reqId;
          this.partTxId = view.getUint32(at + 8, le);
          this.partPayload = payload;
          this.partHave = n - start;
          return;
        }
        if (len > 0) payload.set(new Uint8Array(buf.buffer, buf.byteOffset + start, len));
        at = start + len;
        this.dispatch(type, reqId, payload);
        if (this.failure !== null) return;
      }
      if (at < n) this.holdHeader(buf, at, n);
    });
    XenstoreClient.prototype.holdHeader = (function holdHeader(this: XenstoreClient, buf: Uint8Array, at: number, n: number): void {
      this.partHeader.set(new Uint8Array(buf.buffer, buf.byteOffset + at, n - at), this.partHeaderHave);
      this.partHeaderHave += n - at;
    });
    XenstoreClient.prototype.continuePart = (function continuePart(this: XenstoreClient, buf: Uint8Array, n: number): number {
      let at = 0;
      if (this.partPayload === null) {
        at = Math.min(XS_HEADER_SIZE - this.partHeaderHave, n);
        this.holdHeader(buf, 0, at);
        if (this.partHeaderHave < XS_HEADER_SIZE) return -1;
        this.partHeaderHave = 0;
        const v = this.partHeaderView;
        const le = HOST_LITTLE_ENDIAN;
        const len = v.getUint32(12, le);
        this.partType = v.getUint32(0, le);
        this.partReqId = v.getUint32(4, le);
        this.partTxId = v.getUint32(8, le);
        if (len > this.maxReplyPayload) {
          this.fail(oversizedFrameError(this.partType, this.partReqId, len, this.maxReplyPayload));
          return -1;
        }
        this.partPayload = payloadBuffer(len);
        this.partHave = 0;
      }
      const payload = this.partPayload;
      const want = Math.min(payload.length - this.partHave, n - at);
      if (want > 0) payload.set(new Uint8Array(buf.buffer, buf.byteOffset + at, want), this.partHave);
      this.partHave += want;
      at += want;
      if (this.partHave < payload.length) return -1;
      this.partPayload = null;
      this.dispatch(this.partType, this.partReqId, payload);
      return this.failure !== null || at === n ? -1 : at;
    });
    XenstoreClient.prototype.dispatch = (function dispatch(this: XenstoreClient, type: number, reqId: number, payload: Buffer): void {
      // Events are recognised by type: over /dev/xen/xenbus their ids are not meaningful.
      if (type === MessageType.WATCH_EVENT) {
        let ev;
        try {
          ev = parseWatchEvent(payload);
        } catch (e) {
          this.fail(e as ProtocolError);
          return;
        }
        this.watches.get(ev.token)?._deliver(ev);
        return;
      }
      const p = this.pending.get(reqId);
      if (p === undefined) {
        this.fail(
          new ProtocolError('unsolicited-reply', `${messageTypeName(type)} reply with req_id ${reqId} matches no request in flight`, {
            op: messageTypeName(type),
          }),
        );
        return;
      }
      this.settle(reqId);
      if (type === p.type) {
        p.resolve(payload);
        return;
      }
      const op = messageTypeName(p.type);
      if (type === MessageType.ERROR) {
        let name: string;
        try {
          name = parseErrorName(payload, op, p.path);
        } catch (e) {
          p.reject(e as ProtocolError);
          return;
        }
        p.reject(daemonError(name, op, p.path, p.txId));
        return;
      }
      p.reject(
        new ProtocolError('unexpected-reply-type', `${op} request (req_id ${reqId}) answered with ${messageTypeName(type)}`, {
          op,
          path: p.path,
        }),
      );
    });
    XenstoreClient.prototype.settle = (function settle(this: XenstoreClient, reqId: number): void {
      this.pending.delete(reqId);
      if (this.pending.size === 0 && this.drainWaiters.length > 0) for (const w of this.drainWaiters.splice(0)) w();
    });
  }

  private send(type: MessageType, payload: Buffer, txId: number, path?: string): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure instanceof ConnectionError ? this.failure.forRequest(type, path) : this.failure);
    if (this.closeRequested) {
      return Promise.reject(
        new ConnectionError('ECONNABORTED', `connection to ${this.transport.path} is closing`, { path: this.transport.path, op: messageTypeName(type), nodePath: path }),
      );
    }
    if (payload.length > this.transport.maxPayload) {
      // xenstored would drop the whole connection for an oversized request: refuse it here.
      return Promise.reject(
        new XenstoreError('E2BIG', {
          op: messageTypeName(type),
          path,
          txId,
          source: 'client',
          detail: `payload of ${payload.length} bytes exceeds ${this.transport.maxPayload} over ${this.transport.kind}`,
        }),
      );
    }
    const reqId = this.allocReqId();
    const promise = new Promise<Buffer>(captureSettlers);
    this.pending.add({ reqId, type, path, txId, resolve: capturedResolve, reject: capturedReject });
    this.transport.send(frameOf(type, reqId, txId, payload), reqId);
    if (payload.length === 0) this.nudge();
    return promise;
  }

  /**
   * Sends a request outside any transaction, its payload built by `make`: a number out of range
   * (a domid, a port ...) becomes XenstoreError EINVAL from the client, like a bad path.
   */
  private ask(type: MessageType, make: () => Buffer): Promise<Buffer> {
    let payload: Buffer;
    try {
      payload = make();
    } catch (e) {
      if (!(e instanceof RangeError)) return Promise.reject(e);
      return Promise.reject(new XenstoreError('EINVAL', { op: messageTypeName(type), source: 'client', detail: e.message }));
    }
    return this._request(type, payload, 0);
  }

  /**
   * oxenstored (every release; tools/ocaml/libs/xb/xb.ml `input`) completes a message only when
   * the connection becomes readable again after its header: a request with an empty payload
   * (GET_FEATURE or GET_QUOTA without arguments) stays unanswered until more bytes arrive.
   * Verified on Debian's oxenstored 4.17. So an empty request is followed by a harmless one,
   * GET_DOMAIN_PATH of dom0 (any connection may ask it), whose answer is dropped.
   */
  private nudge(): void {
    const reqId = this.allocReqId();
    const drop = () => undefined;
    this.pending.add({ reqId, type: MessageType.GET_DOMAIN_PATH, txId: 0, resolve: drop, reject: drop });
    this.transport.send(frameOf(MessageType.GET_DOMAIN_PATH, reqId, 0, request.getDomainPath(0)), reqId);
  }

  declare private allocReqId: () => number;

  // ------------------------------------------------------------------------- TransportSink

  /** @internal */
  onData(chunk: Buffer): void {
    this.onBytes(chunk, chunk.length);
  }

  /**
   * @internal Replies, split anywhere: `buf[0..n)`, valid during the call only. Whole replies
   * are parsed in place and only their payloads copied out; a reply cut by the end of the read
   * (C xenstored 4.17 writes a reply's header and payload with two write() calls, so a reader
   * often gets the header alone) keeps its header fields and its payload buffer, filled by the
   * next reads.
   */
  declare onBytes: (buf: Uint8Array, n: number) => void;

  /** Keeps the start of a header cut by the end of a read. */
  declare private holdHeader: (buf: Uint8Array, at: number, n: number) => void;

  /**
   * Continues the reply held from earlier reads with `buf[0..n)`; returns how many bytes it
   * took, or -1 when it took them all (or the connection failed).
   */
  declare private continuePart: (buf: Uint8Array, n: number) => number;

  /** @internal */
  onSendError(reqId: number, err: NodeJS.ErrnoException): void {
    const p = this.pending.get(reqId);
    if (!p) return;
    this.settle(reqId);
    p.reject(
      new XenstoreError(err.code ?? 'EIO', {
        op: messageTypeName(p.type),
        path: p.path,
        txId: p.txId,
        source: 'client',
        detail: `the ${this.transport.kind} transport refused the message: ${err.message}`,
      }),
    );
  }

  /** @internal */
  onClose(err: ConnectionError | null): void {
    if (err) this.fail(err);
    else this.fail(new ConnectionError('ECONNABORTED', `connection to ${this.transport.path} closed`, { path: this.transport.path }), true);
  }

  declare private dispatch: (type: number, reqId: number, payload: Buffer) => void;

  declare private settle: (reqId: number) => void;

  /** Ends the connection state: every pending request rejects, every watch ends. */
  private fail(err: XenstoreWireError, byClose = false): void {
    if (this.failure) return;
    this.failure = err;
    const pending = this.pending.values();
    this.pending.clear();
    for (const p of pending) p.reject(err instanceof ConnectionError ? err.forRequest(p.type, p.path) : err);
    for (const w of this.drainWaiters.splice(0)) w();
    const watches = [...this.watches.values()];
    this.watches.clear();
    this.unsentWatches.clear();
    for (const w of watches) w._end(byClose ? undefined : err);
    if (!byClose) void this.transport.close();
    this.resolveClosed(byClose ? null : err);
  }

  /**
   * Waits for the requests in flight to be answered, ends every watch, and closes the
   * connection. Requests made after close() reject with ConnectionError ECONNABORTED.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closeRequested = true;
      if (this.pending.size > 0 && !this.failure) await new Promise<void>((r) => this.drainWaiters.push(r));
      const watches = [...this.watches.values()];
      this.watches.clear();
      this.unsentWatches.clear();
      for (const w of watches) w._end();
      await this.transport.close();
      // A transport that was already gone has reported itself; make sure we are marked closed.
      this.fail(new ConnectionError('ECONNABORTED', `connection to ${this.transport.path} closed`, { path: this.transport.path }), true);
    })();
    return this.closing;
  }

  /** Closes at once: requests in flight reject with ConnectionError ECONNABORTED. */
  destroy(): Promise<void> {
    this.closeRequested = true;
    this.fail(new ConnectionError('ECONNABORTED', `connection to ${this.transport.path} destroyed`, { path: this.transport.path }), true);
    return this.transport.close();
  }

  // ------------------------------------------------------------------------- transactions

  /** Starts a transaction; end it with commit() or abort(). */
  async transactionStart(): Promise<Transaction> {
    const id = parseTransactionStart(await this._request(MessageType.TRANSACTION_START, request.transactionStart(), 0));
    return new Transaction(this, id);
  }

  /**
   * Runs `fn` in a transaction and commits. On EAGAIN (a conflicting commit, or an operation
   * the daemon refused with EAGAIN) the whole function runs again in a new transaction, up to
   * maxAttempts times with jittered exponential backoff. Any other throw aborts the
   * transaction and propagates. `fn` may run more than once: keep side effects outside it.
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
    const o = { ...TX_DEFAULTS, ...definedOnly(this.txDefaults), ...definedOnly(opts) };
    for (let attempt = 1; ; attempt++) {
      const tx = await this.transactionStart();
      let result: T;
      try {
        result = await fn(tx);
        if (!tx.ended) await tx.commit();
      } catch (e) {
        if (!tx.ended) await tx.abort().catch(() => undefined);
        if (!isEagain(e)) throw e;
        if (attempt >= o.maxAttempts) {
          throw new XenstoreError('EAGAIN', {
            op: e.op ?? 'TRANSACTION_END',
            path: e.path,
            source: e.source,
            detail: `transaction still conflicting after ${attempt} attempts`,
          });
        }
        o.onRetry?.(attempt, e);
        const cap = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (attempt - 1));
        await sleep(Math.random() * cap);
        continue;
      }
      return result;
    }
  }

  // ------------------------------------------------------------------------- watches

  private allocToken(): string {
    for (;;) {
      const t = `xs${this.nextToken++}`;
      if (!this.watches.has(t)) return t;
    }
  }

  private registerWatch(path: string, opts: WatchOptions, listener?: WatchListener, onError?: (e: Error) => void): Watch {
    validatePath(path, { op: 'WATCH', allowSpecial: true });
    const { depth } = opts;
    if (depth !== undefined && (!Number.isInteger(depth) || depth < 0 || depth > 0x7fffffff)) {
      throw new XenstoreError('EINVAL', { op: 'WATCH', path, source: 'client', detail: `watch depth ${depth}: an integer of 0 or more` });
    }
    const tok = opts.token ?? this.allocToken();
    if (tok.includes('\0') || tok === '') {
      throw new XenstoreError('EINVAL', { op: 'WATCH', path, source: 'client', detail: 'a token is a non-empty string without NUL' });
    }
    if (this.watches.has(tok)) {
      // Events are routed by token: two live watches may not share one.
      throw new XenstoreError('EEXIST', { op: 'WATCH', path, source: 'client', detail: `token ${JSON.stringify(tok)} already in use on this connection` });
    }
    const w = new Watch(path, tok, this, listener, onError, depth);
    if (!this.isOpen) {
      w._end(this.failure instanceof ConnectionError ? this.failure.forRequest(MessageType.WATCH, path) : this.failure ?? new ConnectionError('ECONNABORTED', 'connection closed', { path: this.transport.path }));
      return w;
    }
    // Registered before sending: the initial firing may come right behind the acknowledgement.
    this.watches.set(tok, w);
    if (depth === undefined && !SPECIAL_WITH_COMPONENT.test(path)) {
      this.sendWatch(w);
      return w;
    }
    // A daemon without watch depth refuses a depth (EINVAL from C xenstored and oxenstored
    // 4.17) but accepts `@releaseDomain/5` and then never fires it: ask first.
    this.unsentWatches.add(w);
    const pending = (): boolean => this.unsentWatches.delete(w) && !w.ended;
    this.hasFeature('WATCHDEPTH').then(
      (ok) => {
        if (!pending()) return; // closed, reset or disconnected meanwhile
        if (ok) {
          this.sendWatch(w);
          return;
        }
        const what = depth !== undefined ? 'a watch depth' : `the watch path ${path}`;
        this.dropWatch(
          w,
          new XenstoreError('ENOSYS', {
            op: 'WATCH',
            path,
            source: 'client',
            detail: `${what} needs XENSTORE_SERVER_FEATURE_WATCHDEPTH, which this daemon does not offer (C xenstored offers it from Xen 4.22)`,
          }),
        );
      },
      (e: Error) => {
        if (pending()) this.dropWatch(w, e);
      },
    );
    return w;
  }

  private sendWatch(w: Watch): void {
    this._request(MessageType.WATCH, request.watch(w.path, w.token, w.depth), 0, w.path).then(
      (reply) => {
        try {
          parseOk(reply, MessageType.WATCH);
          w._registered();
        } catch (e) {
          this.dropWatch(w, e as Error);
        }
      },
      (e: Error) => this.dropWatch(w, e),
    );
  }

  private dropWatch(w: Watch, err: Error): void {
    if (this.watches.get(w.token) === w) this.watches.delete(w.token);
    w._end(err);
  }

  /**
   * Watches `path` (and everything below it; `@introduceDomain` and `@releaseDomain` too) and
   * returns an async iterable of events, starting with the initial firing. `break` out of a
   * for-await loop, or call `close()`, to unwatch. Invalid paths, tokens and depths throw at
   * once. The second argument is the token, or the options.
   */
  watch(path: string, tokenOrOptions?: string | WatchOptions): Watch {
    return this.registerWatch(path, typeof tokenOrOptions === 'string' ? { token: tokenOrOptions } : tokenOrOptions ?? {});
  }

  /** Callback form of watch(): resolves once the daemon accepted the watch. */
  async onWatch(path: string, listener: WatchListener, opts: WatchOptions & { onError?: (err: Error) => void } = {}): Promise<Watch> {
    const w = this.registerWatch(path, opts, listener, opts.onError);
    await w.ready;
    return w;
  }

  /**
   * Watches the release of one domain: `@releaseDomain/<domid>` (Xen 4.22), which fires when
   * that domain shuts down, crashes or is released, after the initial firing. A daemon without
   * XENSTORE_SERVER_FEATURE_WATCHDEPTH ends it with XenstoreError ENOSYS (source 'client'):
   * watch `@releaseDomain` there (it fires for every domain) and re-check the domain.
   */
  watchDomainRelease(domid: number, opts: { token?: string } = {}): Watch {
    if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) {
      throw new XenstoreError('EINVAL', { op: 'WATCH', source: 'client', detail: `domid ${domid}: an integer in 0..65535` });
    }
    return this.watch(`@releaseDomain/${domid}`, opts);
  }

  /** @internal called by Watch.close(). */
  async unwatch(w: Watch): Promise<void> {
    if (this.watches.get(w.token) !== w) return;
    if (this.unsentWatches.delete(w)) {
      // Closed before its WATCH went out: nothing to undo in the daemon.
      this.watches.delete(w.token);
      return;
    }
    try {
      parseOk(await this._request(MessageType.UNWATCH, request.unwatch(w.path, w.token), 0, w.path), MessageType.UNWATCH);
    } finally {
      // Kept until the UNWATCH answer so late events still find (and are dropped by) the watch.
      if (this.watches.get(w.token) === w) this.watches.delete(w.token);
    }
  }

  /** RESET_WATCHES: the daemon drops every watch of this connection; they all end. */
  async resetWatches(): Promise<void> {
    parseOk(await this._request(MessageType.RESET_WATCHES, request.resetWatches(), 0), MessageType.RESET_WATCHES);
    const watches = [...this.watches.values()];
    this.watches.clear();
    this.unsentWatches.clear();
    for (const w of watches) w._end();
  }

  // ------------------------------------------------------------------------- domains

  /** GET_DOMAIN_PATH: where the domain's home lives, e.g. /local/domain/5. */
  async getDomainPath(domid: number): Promise<string> {
    return parseString(await this.ask(MessageType.GET_DOMAIN_PATH, () => request.getDomainPath(domid)));
  }

  async isDomainIntroduced(domid: number): Promise<boolean> {
    return parseBool(await this.ask(MessageType.IS_DOMAIN_INTRODUCED, () => request.isDomainIntroduced(domid)));
  }

  /** INTRODUCE: tells xenstored about a new domain's ring page (mfn/gfn) and event channel. */
  async introduce(domid: number, mfn: number | bigint, eventChannel: number): Promise<void> {
    parseOk(await this.ask(MessageType.INTRODUCE, () => request.introduce(domid, mfn, eventChannel)), MessageType.INTRODUCE);
  }

  /** RELEASE: xenstored forgets the domain (fires @releaseDomain). */
  async release(domid: number): Promise<void> {
    parseOk(await this.ask(MessageType.RELEASE, () => request.release(domid)), MessageType.RELEASE);
  }

  /** RESUME: clears the domain's "shutdown" flag after a suspend was cancelled. */
  async resume(domid: number): Promise<void> {
    parseOk(await this.ask(MessageType.RESUME, () => request.resume(domid)), MessageType.RESUME);
  }

  /** SET_TARGET: gives `domid` the privileges of a device model over `target`. */
  async setTarget(domid: number, target: number): Promise<void> {
    parseOk(await this.ask(MessageType.SET_TARGET, () => request.setTarget(domid, target)), MessageType.SET_TARGET);
  }

  /** CONTROL (xenstore-control): a daemon command such as 'log' or 'help'; returns the answer text. */
  async control(command: string, ...args: (string | Buffer)[]): Promise<string> {
    return parseString(await this.ask(MessageType.CONTROL, () => request.control(command, ...args)));
  }

  // ------------------------------------------------------------------------- features, quotas
  // GET/SET_FEATURE and GET/SET_QUOTA (docs/misc/xenstore.txt; C xenstored 4.21 and 4.22).
  // Daemons without them (C xenstored 4.17 and 4.20, oxenstored) answer XenstoreError ENOSYS.

  /**
   * GET_FEATURE: the XenstoreFeature bits offered to `domid`, or to this connection when
   * omitted (naming a domain needs dom0).
   */
  async getFeature(domid?: number): Promise<number> {
    return parseDecimal(await this.ask(MessageType.GET_FEATURE, () => request.getFeature(domid)), MessageType.GET_FEATURE);
  }

  /** SET_FEATURE (dom0): the features a domain gets; EBUSY once the domain is introduced. */
  async setFeature(domid: number, features: number): Promise<void> {
    parseOk(await this.ask(MessageType.SET_FEATURE, () => request.setFeature(domid, features)), MessageType.SET_FEATURE);
  }

  /**
   * True if the daemon offers `feature` (a XenstoreFeature name or bit) to this connection.
   * Asked once per connection (a daemon never withdraws a bit); a daemon without GET_FEATURE
   * (ENOSYS) offers none.
   */
  async hasFeature(feature: XenstoreFeatureName | number): Promise<boolean> {
    const bit = typeof feature === 'number' ? feature : XenstoreFeature[feature];
    this.featureBits ??= this.getFeature().catch((e: unknown) => {
      if (e instanceof XenstoreError && e.code === 'ENOSYS' && e.source === 'daemon') return 0;
      this.featureBits = null; // lost connection or refusal: ask again next time
      throw e;
    });
    return ((await this.featureBits) & bit) === bit;
  }

  /**
   * GET_QUOTA (dom0): quota `quota` (e.g. 'nodes', 'watches', 'node-size') of `domid`, or the
   * global default for new domains when omitted. 0 means the quota is not checked.
   */
  async getQuota(quota: string, domid?: number): Promise<number> {
    return parseDecimal(await this.ask(MessageType.GET_QUOTA, () => request.getQuota(domid, quota)), MessageType.GET_QUOTA);
  }

  /** GET_QUOTA without arguments (dom0): the names of the quotas the daemon knows. */
  async getQuotaNames(): Promise<string[]> {
    return parseQuotaNames(await this.ask(MessageType.GET_QUOTA, () => request.getQuota()));
  }

  /** SET_QUOTA (dom0): quota `quota` of `domid`, or the global default when omitted. */
  async setQuota(quota: string, value: number, domid?: number): Promise<void> {
    parseOk(await this.ask(MessageType.SET_QUOTA, () => request.setQuota(domid, quota, value)), MessageType.SET_QUOTA);
  }
}

/** False where the host froze Error (a hardened realm): then errors keep their stack. */
const STACK_LIMIT_WRITABLE = Object.getOwnPropertyDescriptor(Error, 'stackTraceLimit')?.writable === true;

/**
 * The daemon's ERROR answer as a XenstoreError, made without a stack trace: it is made in the
 * transport's read callback, so its frames would name only this file's dispatch path, never the
 * caller's, and capturing them was most of the cost of an answered ENOENT (a common answer:
 * the manager reads optional nodes, `exists()` asks). The message, code, op and path say
 * everything the stack would not.
 */
function daemonError(code: string, op: string, path: string | undefined, txId: number): XenstoreError {
  if (!STACK_LIMIT_WRITABLE) return new XenstoreError(code, { op, path, txId, source: 'daemon' });
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new XenstoreError(code, { op, path, txId, source: 'daemon' });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Connects to xenstored: an explicit `path` (socket or device), or discovery in libxenstore's
 * order. Rejects with ConnectionError when nothing answers.
 */
export async function connect(options: ConnectOptions | string = {}): Promise<XenstoreClient> {
  const opts: ConnectOptions = typeof options === 'string' ? { path: options } : options;
  let path: string;
  let kind: TransportKind;
  if (opts.path !== undefined) {
    path = opts.path;
    if (opts.transport) kind = opts.transport;
    else {
      try {
        kind = await endpointKind(path);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new ConnectionError(err.code ?? 'EIO', `cannot use ${path}: ${err.message}`, { path, cause: err });
      }
    }
  } else {
    ({ path, kind } = await discoverEndpoint(opts.env ?? process.env));
    if (opts.transport) kind = opts.transport;
  }
  const transport = kind === 'socket' ? await SocketTransport.connect(path, { connectTimeoutMs: opts.connectTimeoutMs }) : await XenbusTransport.open(path);
  return new XenstoreClient(transport, { maxReplyPayload: opts.maxReplyPayload, transactionDefaults: opts.transactionDefaults, interceptor: opts.interceptor });
}
