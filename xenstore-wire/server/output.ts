/**
 * Connections and their output (xenstored_core.c: new_connection, destroy_conn, send_reply,
 * send_error, send_event, write_messages, trace_io): the connection list in creation order,
 * replies and watch events queued per connection and handed to the transport at the end of
 * each request.
 */
import type { Frame } from '../codec';
import { isKnownMessageType, MessageType, XENSTORE_PAYLOAD_MAX } from '../constants';
import { Domain, OK_PAYLOAD, ServerConnection, XsErrno } from './model';
import type { Rooms } from './rooms';

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
  openConnection(domid: number | null, sink: (frames: Frame[]) => void, onClose: () => void): ServerConnection {
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
    conn.out.length = 0;
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

  /** Hand every queued frame to its connection's sink. */
  flush(): void {
    for (const c of this.dirty) {
      if (c.out.length === 0 || c.closed) continue;
      const frames = c.out.splice(0, c.out.length);
      for (const f of frames) this.traceIo(c, f, 'OUT');
      c.sink(frames);
    }
    this.dirty.clear();
  }

  traceIo(conn: ServerConnection, f: Frame, dir: 'IN' | 'OUT'): void {
    const trace = this.r.state.trace;
    if (!trace) return;
    const name = isKnownMessageType(f.type) ? MessageType[f.type] : '**UNKNOWN**';
    const text = f.payload.toString('latin1').replace(/\0/g, ' ');
    trace(`${dir} ${conn.serial} ${new Date().toISOString()} ${name} (${text})`);
  }

  private queue(conn: ServerConnection, frame: Frame): void {
    if (conn.closed) return;
    conn.out.push(frame);
    this.dirty.add(conn);
  }

  /** send_reply(): the request's header with the reply type; over-long replies become E2BIG. */
  sendReply(conn: ServerConnection, req: Frame, type: number, payload: Buffer): void {
    if (payload.length > XENSTORE_PAYLOAD_MAX) {
      this.sendError(conn, req, 'E2BIG');
      return;
    }
    this.queue(conn, { type, reqId: req.reqId, txId: req.txId, payload });
  }

  sendError(conn: ServerConnection, req: Frame, code: string): void {
    this.queue(conn, { type: MessageType.ERROR, reqId: req.reqId, txId: req.txId, payload: Buffer.from(code + '\0', 'latin1') });
  }

  sendAck(conn: ServerConnection, req: Frame, type: number): void {
    this.sendReply(conn, req, type, OK_PAYLOAD);
  }

  /** send_event(): dropped when over-long or identical to one still pending (non-@ paths). */
  sendEvent(conn: ServerConnection, path: string, token: string): void {
    const len = path.length + 1 + token.length + 1;
    if (len > XENSTORE_PAYLOAD_MAX) return;
    const payload = Buffer.from(`${path}\0${token}\0`, 'latin1');
    if (!path.startsWith('@')) {
      for (const f of conn.out) {
        if (f.type === MessageType.WATCH_EVENT && f.payload.equals(payload)) return;
      }
    }
    this.queue(conn, { type: MessageType.WATCH_EVENT, reqId: 0, txId: 0, payload });
  }
}
