/**
 * The tracing logic, free of I/O: frames and timestamps in, display records out.
 *
 * Per connection it pairs requests with replies, follows transactions from
 * TRANSACTION_START through each operation to commit, abort or EAGAIN, and links watch
 * events to the WATCH that registered them by token.
 *
 * Pairing: a reply carries its request's req_id (xs_wire.h), so outstanding requests are
 * kept per req_id in arrival order and a reply takes the oldest one with its req_id. Clients
 * that number their requests get exact matching; clients that always send req_id 0
 * (libxenstore) get matching by order, which is right because a daemon answers one
 * connection's requests in order (C xenstored does; oxenstored too).
 * WATCH_EVENT is never a reply: it is recognised by type (FACTS.md section 1 and 2).
 */
import { Frame } from '../../xenstore-wire/codec';
import { MessageType, messageTypeName } from '../../xenstore-wire/constants';
import { decodeReply, decodeRequest } from './decode';
import { PartialMessage } from './partial';
import { RecordKind, TraceRecord, TraceWarning, TxInfo, WarningCode } from './record';

export type Side = 'client' | 'daemon';

export interface SessionOptions {
  /**
   * False when req_id and tx_id are not visible (C xenstored trace files): records show
   * them as null, and operations cannot be checked against open transactions.
   */
  idsVisible?: boolean;
  /** 's' for sources with whole-second timestamps: latencies are then not computed. */
  tsPrecision?: 'us' | 's';
}

interface PendingRequest {
  seq: number;
  reqId: number;
  tsUs: number;
  type: number;
  txId: number;
  path?: string;
  token?: string;
  domid?: number;
  /** TRANSACTION_END: commit asked. */
  commit?: boolean;
  /** GET_QUOTA: the quota named (its reply is its value, not the list of names). */
  quota?: string;
  /** The transaction this request ran in, when known. */
  tx?: OpenTransaction;
  /** Its 1-based position in that transaction. */
  opIndex?: number;
}

interface OpenTransaction {
  /** null when ids are not visible. */
  id: number | null;
  startSeq: number;
  startUs: number;
  ops: number;
}

interface Watch {
  id: number;
  path: string;
  token: string;
  seq: number;
  confirmed: boolean;
}

interface ConnState {
  /** Outstanding requests by req_id, oldest first. */
  pending: Map<number, PendingRequest[]>;
  txs: Map<number, OpenTransaction>;
  /** With invisible ids, open transactions in start order. */
  anonTxs: OpenTransaction[];
  watches: Watch[];
}

function newConn(): ConnState {
  return { pending: new Map(), txs: new Map(), anonTxs: [], watches: [] };
}

/** Is `path` the watched node or below it? (a watch fires for the node and its children) */
function watchCovers(watchPath: string, path: string): boolean {
  if (watchPath === path) return true;
  if (watchPath.startsWith('@')) return false;
  return path.startsWith(watchPath.endsWith('/') ? watchPath : watchPath + '/');
}

export class TraceSession {
  private seq = 0;
  private nextWatchId = 1;
  private readonly conns = new Map<number, ConnState>();
  private readonly idsVisible: boolean;
  private readonly tsPrecision: 'us' | 's';

  constructor(opts: SessionOptions = {}) {
    this.idsVisible = opts.idsVisible ?? true;
    this.tsPrecision = opts.tsPrecision ?? 'us';
  }

  private conn(n: number): ConnState {
    let c = this.conns.get(n);
    if (!c) {
      c = newConn();
      this.conns.set(n, c);
    }
    return c;
  }

  private record(conn: number, tsUs: number, kind: RecordKind): TraceRecord {
    const r: TraceRecord = { seq: ++this.seq, tsUs, conn, kind, warnings: [] };
    if (this.tsPrecision === 's') r.tsPrecision = 's';
    return r;
  }

  /** A new client connection. */
  connect(conn: number, tsUs: number, text?: string): TraceRecord {
    this.conns.set(conn, newConn());
    const r = this.record(conn, tsUs, 'connect');
    if (text !== undefined) r.text = text;
    return r;
  }

  /** A warning or note not attached to a message. */
  note(conn: number, tsUs: number, text: string, warning?: { code: WarningCode; message?: string }): TraceRecord {
    const r = this.record(conn, tsUs, warning ? 'warning' : 'note');
    r.text = text;
    if (warning) r.warnings.push({ code: warning.code, message: warning.message ?? text });
    return r;
  }

  /** One whole message seen on connection `conn`, sent by `from`. */
  frame(conn: number, from: Side, frame: Frame, tsUs: number): TraceRecord[] {
    return from === 'client' ? [this.request(conn, frame, tsUs)] : [this.fromDaemon(conn, frame, tsUs)];
  }

  /**
   * The connection ended: a disconnect record, plus warnings for requests left unanswered
   * and transactions left open (the daemon discards those with the connection).
   */
  disconnect(conn: number, tsUs: number, text?: string, cut: Partial<Record<Side, PartialMessage | null>> = {}): TraceRecord[] {
    const c = this.conn(conn);
    const r = this.record(conn, tsUs, 'disconnect');
    if (text !== undefined) r.text = text;
    for (const side of ['client', 'daemon'] as const) {
      const p = cut[side];
      if (p) r.warnings.push({ code: 'truncated-message', message: this.cutText(side, p) });
    }
    const unanswered: PendingRequest[] = [];
    for (const q of c.pending.values()) unanswered.push(...q);
    unanswered.sort((a, b) => a.seq - b.seq);
    for (const p of unanswered) {
      r.warnings.push({
        code: 'unanswered-request',
        message: `${messageTypeName(p.type)}${p.path !== undefined ? ` ${p.path}` : ''} (#${p.seq}${this.idsVisible ? `, req_id ${p.reqId}` : ''}) never answered`,
      });
    }
    const open = [...c.txs.values(), ...c.anonTxs];
    const out = [r];
    for (const t of open) {
      const a = this.record(conn, tsUs, 'note');
      a.tx = this.txInfo(t, 'abandoned', tsUs);
      a.text = `transaction ${t.id ?? '?'} left open at disconnect: the daemon discards it`;
      out.push(a);
    }
    this.conns.delete(conn);
    return out;
  }

  /** "WRITE (req_id 0, tx_id 0) cut short: 20 of 30 bytes sent, never seen whole by the daemon". */
  private cutText(side: Side, p: PartialMessage): string {
    const what = side === 'client' ? 'request' : 'reply';
    const verb = side === 'client' ? 'sent' : 'received';
    const end = side === 'client' ? 'the daemon never saw it whole' : 'the client never saw it whole';
    if (!p.header) return `the connection closed after ${p.bytes} of the 16 header bytes of a ${what} were ${verb}`;
    const h = p.header;
    const total = 16 + h.len;
    return `${messageTypeName(h.type)} ${what} (req_id ${h.reqId}, tx_id ${h.txId}) cut short: ${p.bytes} of ${total} bytes ${verb} before the connection closed; ${end}`;
  }

  private duration(fromUs: number, toUs: number): number | undefined {
    return this.tsPrecision === 'us' ? toUs - fromUs : undefined;
  }

  private request(conn: number, frame: Frame, tsUs: number): TraceRecord {
    const c = this.conn(conn);
    const r = this.record(conn, tsUs, 'request');
    this.header(r, frame);
    decodeRequest(r, frame);
    const p: PendingRequest = { seq: r.seq, reqId: frame.reqId, tsUs, type: frame.type, txId: frame.txId };
    if (r.path !== undefined) p.path = r.path;
    if (r.token !== undefined) p.token = r.token;
    if (r.domid !== undefined) p.domid = r.domid;
    if (frame.type === MessageType.GET_QUOTA && r.args?.length === 1) p.quota = r.args[0];

    if (frame.type === MessageType.TRANSACTION_END) {
      // decodeRequest put the raw argument ("T"/"F") in result; show it as a word.
      const asked = r.result;
      delete r.result;
      if (asked === 'T' || asked === 'F') {
        p.commit = asked === 'T';
        r.result = p.commit ? 'commit' : 'abort';
      }
      const t = this.findTx(c, frame.txId);
      if (t) {
        p.tx = t;
        r.tx = this.txInfo(t, 'end');
      } else if (this.idsVisible) {
        this.unknownTx(r, frame.txId);
      }
    } else if (this.idsVisible && frame.txId !== 0) {
      const t = c.txs.get(frame.txId);
      if (t) {
        t.ops++;
        p.tx = t;
        p.opIndex = t.ops;
        r.tx = { id: t.id, event: 'op', opIndex: t.ops };
      } else {
        this.unknownTx(r, frame.txId);
      }
    }

    if (frame.type === MessageType.WATCH && r.path !== undefined && r.token !== undefined) {
      const w: Watch = { id: this.nextWatchId++, path: r.path, token: r.token, seq: r.seq, confirmed: false };
      c.watches.push(w);
      r.watch = { id: w.id, path: w.path, token: w.token, event: 'register' };
    } else if (frame.type === MessageType.UNWATCH && r.path !== undefined && r.token !== undefined) {
      const w = c.watches.find((x) => x.path === r.path && x.token === r.token);
      r.watch = { id: w ? w.id : null, path: r.path, token: r.token, event: 'unregister' };
    }

    const q = c.pending.get(frame.reqId);
    if (q) q.push(p);
    else c.pending.set(frame.reqId, [p]);
    return r;
  }

  private unknownTx(r: TraceRecord, txId: number): void {
    r.warnings.push({
      code: 'unknown-transaction',
      message: `tx_id ${txId} was not returned by a TRANSACTION_START on this connection (or has ended)`,
    });
  }

  /** The open transaction a TRANSACTION_END names (by id, or the only open one when ids are hidden). */
  private findTx(c: ConnState, txId: number): OpenTransaction | undefined {
    if (this.idsVisible) return c.txs.get(txId);
    return c.anonTxs.length === 1 ? c.anonTxs[0] : undefined;
  }

  private header(r: TraceRecord, frame: Frame): void {
    r.type = messageTypeName(frame.type);
    r.typeNum = frame.type;
    r.reqId = this.idsVisible ? frame.reqId : null;
    r.txId = this.idsVisible ? frame.txId : null;
    r.len = frame.payload.length;
  }

  private fromDaemon(conn: number, frame: Frame, tsUs: number): TraceRecord {
    const c = this.conn(conn);
    if (frame.type === MessageType.WATCH_EVENT) return this.event(conn, c, frame, tsUs);
    const r = this.record(conn, tsUs, 'reply');
    this.header(r, frame);
    const q = c.pending.get(frame.reqId);
    const p = q?.shift();
    if (q && q.length === 0) c.pending.delete(frame.reqId);
    if (!p) {
      r.warnings.push({
        code: 'unknown-request',
        message: this.idsVisible
          ? `no request with req_id ${frame.reqId} is outstanding on this connection`
          : 'no request is outstanding on this connection',
      });
      decodeReply(r, frame, undefined);
      return r;
    }
    r.op = messageTypeName(p.type);
    r.requestSeq = p.seq;
    const lat = this.duration(p.tsUs, tsUs);
    if (lat !== undefined) r.latencyUs = lat;
    if (p.path !== undefined) r.path = p.path;
    if (p.domid !== undefined) r.domid = p.domid;
    decodeReply(r, frame, p.type, p.quota !== undefined);
    // A quota's value reads with its name: "nodes = 1000".
    if (p.quota !== undefined && r.result !== undefined && r.error === undefined) r.result = `${p.quota} = ${r.result}`;
    this.followTransaction(c, r, p, tsUs);
    this.followWatch(c, r, p);
    return r;
  }

  private followTransaction(c: ConnState, r: TraceRecord, p: PendingRequest, tsUs: number): void {
    if (p.type === MessageType.TRANSACTION_START) {
      if (r.error !== undefined) {
        r.tx = { id: null, event: 'start-failed' };
        return;
      }
      const id = r.result !== undefined && /^\d+$/.test(r.result) ? Number(r.result) : null;
      if (id === null && this.idsVisible) return; // malformed reply, already warned
      const t: OpenTransaction = { id, startSeq: r.seq, startUs: tsUs, ops: 0 };
      if (this.idsVisible && id !== null) c.txs.set(id, t);
      else c.anonTxs.push(t);
      r.tx = { id, event: 'start' };
      return;
    }
    const t = p.tx;
    if (p.type === MessageType.TRANSACTION_END) {
      if (!t) return;
      let event: TxInfo['event'];
      if (r.error === undefined) event = p.commit === false ? 'abort' : 'commit';
      else if (r.error === 'EAGAIN') event = 'eagain';
      else event = 'failed';
      r.tx = this.txInfo(t, event, tsUs);
      // C xenstored frees the transaction on success and on EAGAIN; EINVAL (bad argument)
      // leaves it open. ENOENT means it was already gone.
      if (r.error === undefined || r.error === 'EAGAIN' || r.error === 'ENOENT') this.dropTx(c, t);
      return;
    }
    if (t) {
      r.tx = { id: t.id, event: 'op' };
      if (p.opIndex !== undefined) r.tx.opIndex = p.opIndex;
    }
  }

  /** End-of-transaction info; operation counts only when tx ids are visible. */
  private txInfo(t: OpenTransaction, event: TxInfo['event'], endUs?: number): TxInfo {
    const info: TxInfo = { id: t.id, event };
    if (this.idsVisible) info.ops = t.ops;
    info.startSeq = t.startSeq;
    if (endUs !== undefined) {
      const d = this.duration(t.startUs, endUs);
      if (d !== undefined) info.durationUs = d;
    }
    return info;
  }

  private dropTx(c: ConnState, t: OpenTransaction): void {
    if (t.id !== null) c.txs.delete(t.id);
    const i = c.anonTxs.indexOf(t);
    if (i >= 0) c.anonTxs.splice(i, 1);
  }

  private followWatch(c: ConnState, r: TraceRecord, p: PendingRequest): void {
    if (p.path === undefined || p.token === undefined) return;
    if (p.type === MessageType.WATCH) {
      const w = c.watches.find((x) => x.seq === p.seq);
      r.token = p.token;
      if (!w) return;
      if (r.error !== undefined) {
        c.watches.splice(c.watches.indexOf(w), 1);
        r.watch = { id: w.id, path: w.path, token: w.token, event: 'register' };
      } else {
        w.confirmed = true;
        r.watch = { id: w.id, path: w.path, token: w.token, event: 'registered' };
      }
    } else if (p.type === MessageType.UNWATCH) {
      r.token = p.token;
      const i = c.watches.findIndex((x) => x.path === p.path && x.token === p.token);
      const w = i >= 0 ? c.watches[i] : undefined;
      if (r.error === undefined && i >= 0) c.watches.splice(i, 1);
      r.watch = { id: w ? w.id : null, path: p.path, token: p.token, event: r.error === undefined ? 'unregistered' : 'unregister' };
    }
  }

  private event(conn: number, c: ConnState, frame: Frame, tsUs: number): TraceRecord {
    const r = this.record(conn, tsUs, 'event');
    this.header(r, frame);
    decodeReply(r, frame, undefined);
    if (r.path !== undefined && r.token !== undefined) {
      const byToken = c.watches.filter((w) => w.token === r.token);
      // Relative watch paths fire with relative event paths, so fall back to the token alone.
      const w = byToken.find((x) => watchCovers(x.path, r.path as string)) ?? byToken[0];
      if (w) {
        r.watch = { id: w.id, path: w.path, token: w.token, event: 'fire', registeredSeq: w.seq };
      } else {
        const warning: TraceWarning = {
          code: 'unknown-watch',
          message: `no watch with token ${JSON.stringify(r.token)} is registered on this connection`,
        };
        r.warnings.push(warning);
      }
    }
    return r;
  }
}
