/**
 * Connections and their output (xenstored_core.c: new_connection, destroy_conn, send_reply,
 * send_error, send_event, write_messages, trace_io): the connection list in creation order,
 * replies and watch events queued per connection and handed to the transport at the end of
 * each request.
 */
import type { Frame } from '../codec';
import { isKnownMessageType, MessageType, XENSTORE_PAYLOAD_MAX, XS_HEADER_SIZE } from '../constants';
import { DEFAULT_BUFFER_SIZE, Domain, isUnprivileged, OK_PAYLOAD, Queued, READ_PAUSE_BYTES, ServerConnection, XsErrno } from './model';
import type { Rooms } from './rooms';

/** Frames handed to a transport at once: enough to fill a socket buffer, not a whole backlog. */
const FLUSH_BATCH_BYTES = 64 * 1024;

/** What an entry counts against the bounds: payload + header, as C accounts it. */
function queuedBytes(q: Queued): number {
  return (typeof q === 'string' ? q.length : q.payload.length) + XS_HEADER_SIZE;
}

export class Output {
  /** Every connection, in creation order (watch events are generated in this order). */
  readonly connections: ServerConnection[] = [];
  /** Connections with queued output, flushed at the end of each request. */
  private readonly dirty = new Set<ServerConnection>();

  constructor(private readonly r: Rooms) {}

  /** A domain's ring connection: it only holds a place in the connection list here. */
  newRing(d: Domain): ServerConnection {
    const ring = new ServerConnection(d.domid, d, () => undefined, () => undefined);
    this.connections.push(ring);
    return ring;
  }

  /** A new connection: `domid` null for the privileged socket, else an introduced domain. */
  openConnection(domid: number | null, sink: (frames: Frame[]) => boolean | void, onClose: () => void): ServerConnection {
    let domain: Domain | null = null;
    if (domid !== null) {
      const d = this.r.domains.domains.get(domid);
      if (!d || !d.introduced) throw new XsErrno('ENOENT');
      domain = d;
    }
    const conn = new ServerConnection(domid ?? 0, domain, sink, onClose);
    domain?.conns.add(conn);
    this.connections.push(conn);
    this.r.state.trace?.(`CREATE connection ${conn.serial}${domid !== null ? ` domain ${domid}` : ''}`);
    return conn;
  }

  /** The client went away: drop its watches and transactions (destroy_conn). */
  closeConnection(conn: ServerConnection): void {
    if (conn.closed) return;
    conn.closed = true;
    for (const q of conn.out) this.written(conn, q);
    conn.out = [];
    this.r.watches.deleteAllWatches(conn);
    this.r.transactions.deleteAllTransactions(conn);
    const i = this.connections.indexOf(conn);
    if (i >= 0) this.connections.splice(i, 1);
    conn.domain?.conns.delete(conn);
    this.dirty.delete(conn);
    this.r.state.trace?.(`DESTROY connection ${conn.serial}`);
  }

  /** The daemon drops a connection itself (ignore_connection() for a socket). */
  dropConnection(conn: ServerConnection): void {
    if (conn.closed) return;
    this.closeConnection(conn);
    conn.onClose();
  }

  /** Hand queued frames to their connections' sinks, as far as each transport takes them. */
  flush(): void {
    for (const c of this.dirty) this.flushConn(c);
    this.dirty.clear();
  }

  /**
   * write_messages(): frames go to the sink in batches until it reports that it is backed
   * up; the rest stay queued (and count against the bounds) until drained() is called.
   */
  private flushConn(c: ServerConnection): void {
    if (c.closed) return;
    this.expireEvents(c);
    while (c.writable && c.out.length > 0) {
      let n = 0;
      let bytes = 0;
      while (n < c.out.length && bytes < FLUSH_BATCH_BYTES) bytes += queuedBytes(c.out[n++]);
      const batch = n === c.out.length ? c.out : c.out.slice(0, n);
      c.out = n === c.out.length ? [] : c.out.slice(n);
      const frames = batch.map((q): Frame => {
        this.written(c, q);
        const f = typeof q === 'string' ? { type: MessageType.WATCH_EVENT, reqId: 0, txId: 0, payload: Buffer.from(q, 'latin1') } : q;
        this.traceIo(c, f, 'OUT');
        return f;
      });
      if (c.sink(frames) === false) c.writable = false;
    }
  }

  /** The transport has room again (socket 'drain'): write what waited. */
  drained(c: ServerConnection): void {
    c.writable = true;
    this.flushConn(c);
  }

  /**
   * conn_can_read(): may the daemon take the next request from this connection? Not while
   * the domain is over its memory or outstanding-request quota (domain_can_read(), C), nor
   * while the connection's own unwritten output reaches READ_PAUSE_BYTES (ours).
   */
  canRead(c: ServerConnection): boolean {
    if (c.outBytes >= READ_PAUSE_BYTES) return false;
    const d = this.accounted(c);
    if (!d) return true;
    const domains = this.r.domains;
    if (d.outstanding >= domains.quotaOf(d, 'outstanding')) return false;
    const memory = domains.quotaOf(d, 'memory');
    return !(memory && d.memory >= memory);
  }

  traceIo(conn: ServerConnection, f: Frame, dir: 'IN' | 'OUT'): void {
    const trace = this.r.state.trace;
    if (!trace) return;
    const name = isKnownMessageType(f.type) ? MessageType[f.type] : '**UNKNOWN**';
    const text = f.payload.toString('latin1').replace(/\0/g, ' ');
    trace(`${dir} ${conn.serial} ${new Date().toISOString()} ${name} (${text})`);
  }

  /** The domain whose memory and outstanding quotas this connection's output counts against. */
  private accounted(c: ServerConnection): Domain | null {
    return isUnprivileged(c) ? c.domain : null;
  }

  private queue(conn: ServerConnection, q: Queued): void {
    if (conn.closed) return;
    const bytes = queuedBytes(q);
    const d = this.accounted(conn);
    conn.out.push(q);
    conn.outBytes += bytes;
    if (typeof q === 'string') {
      if (q[0] !== '@') conn.pendingEvents.add(q);
      if (d) conn.eventDeadlines.push(this.r.state.quotas.watchEventTimeoutMs > 0 ? Date.now() + this.r.state.quotas.watchEventTimeoutMs : Infinity);
    }
    if (d) {
      d.memory += bytes;
      if (typeof q !== 'string') d.outstanding++;
    }
    this.dirty.add(conn);
  }

  /** The entry left the queue (written, expired or dropped): undo its accounting. */
  private written(conn: ServerConnection, q: Queued): void {
    const bytes = queuedBytes(q);
    conn.outBytes -= bytes;
    const d = this.accounted(conn);
    if (typeof q === 'string') {
      if (q[0] !== '@') conn.pendingEvents.delete(q);
      if (d && ++conn.deadlineHead >= 1024) {
        conn.eventDeadlines = conn.eventDeadlines.slice(conn.deadlineHead);
        conn.deadlineHead = 0;
      }
    }
    if (d) {
      d.memory -= bytes;
      if (typeof q !== 'string') d.outstanding--;
    }
  }

  /** check_event_timeout(): unprivileged watch events unwritten past their deadline go. */
  private expireEvents(c: ServerConnection): void {
    if (!this.accounted(c) || c.deadlineHead >= c.eventDeadlines.length) return;
    const now = Date.now();
    // Deadlines grow with queue order, so the expired events are the oldest ones.
    let expired = 0;
    while (c.deadlineHead + expired < c.eventDeadlines.length && c.eventDeadlines[c.deadlineHead + expired] <= now) expired++;
    if (expired === 0) return;
    c.out = c.out.filter((q) => {
      if (expired === 0 || typeof q !== 'string') return true;
      expired--;
      this.written(c, q);
      this.r.state.trace?.(`watch event path ${q.split('\0')[0]} for domain ${c.id} timed out`);
      return false;
    });
  }

  /** send_reply(): the request's header with the reply type; over-long replies become E2BIG. */
  sendReply(conn: ServerConnection, req: Frame, type: number, payload: Buffer): void {
    // 4.20 acc_commit(): the request's node-count changes stand once it is answered.
    if (this.r.state.release.accountingPerRequest) this.r.domains.accCommit(conn);
    if (payload.length > XENSTORE_PAYLOAD_MAX) {
      this.sendError(conn, req, 'E2BIG');
      return;
    }
    // Replies beyond the default buffer are checked against the memory quota (C).
    const d = this.accounted(conn);
    const quota = d ? this.r.domains.quotaOf(d, 'memory') : 0;
    if (d && quota && payload.length > DEFAULT_BUFFER_SIZE && d.memory + payload.length + XS_HEADER_SIZE >= quota) {
      this.sendError(conn, req, 'ENOMEM');
      return;
    }
    this.queue(conn, { type, reqId: req.reqId, txId: req.txId, payload });
  }

  sendError(conn: ServerConnection, req: Frame, code: string): void {
    // 4.20 acc_drop(): a failed request changes no node count.
    if (conn.accList.size > 0) conn.accList.clear();
    this.queue(conn, { type: MessageType.ERROR, reqId: req.reqId, txId: req.txId, payload: Buffer.from(code + '\0', 'latin1') });
  }

  sendAck(conn: ServerConnection, req: Frame, type: number): void {
    this.sendReply(conn, req, type, OK_PAYLOAD);
  }

  /**
   * send_event(): dropped when over-long, identical to one still queued (non-@ paths), or
   * over the domain's memory quota (C). A privileged connection whose queue passes
   * `privilegedOutput` is dropped (ours: C queues without limit).
   */
  sendEvent(conn: ServerConnection, path: string, token: string): void {
    if (conn.closed) return;
    const len = path.length + 1 + token.length + 1;
    if (len > XENSTORE_PAYLOAD_MAX) return;
    const text = `${path}\0${token}\0`;
    if (!path.startsWith('@') && conn.pendingEvents.has(text)) return;
    const quotas = this.r.state.quotas;
    const d = this.accounted(conn);
    const memory = d ? this.r.domains.quotaOf(d, 'memory') : 0;
    if (d && memory && d.memory + len + XS_HEADER_SIZE >= memory) return;
    this.queue(conn, text);
    if (!d && quotas.privilegedOutput && conn.outBytes > quotas.privilegedOutput) {
      this.r.state.trace?.(`connection ${conn.serial} dropped: ${conn.outBytes} bytes of output unread`);
      this.dropConnection(conn);
    }
  }
}
