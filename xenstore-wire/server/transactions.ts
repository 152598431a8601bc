/**
 * Transactions (xenstored_transaction.c): TRANSACTION_START / TRANSACTION_END. A transaction
 * sees the live tree for nodes it has not touched yet and its own copy from its first access
 * on (database.ts access_node), and fails with EAGAIN at commit when any node it *read*
 * changed generation; a commit publishes its copies and fires the queued watches in the order
 * the nodes were first touched.
 */
import type { Frame } from '../codec';
import { MessageType } from '../constants';
import { onearg } from './cstr';
import { Errno, isUnprivileged, NO_GENERATION, ServerConnection, Transaction, XsErrno } from './model';
import type { Rooms } from './rooms';

export class Transactions {
  constructor(private readonly r: Rooms) {}

  destroyTransaction(conn: ServerConnection, trans: Transaction): void {
    for (const i of trans.accessed.values()) if (i.taNode) this.r.db.deleteKey(i.transName);
    trans.accessed.clear();
    const idx = conn.transactions.indexOf(trans);
    if (idx >= 0) conn.transactions.splice(idx, 1);
  }

  deleteAllTransactions(conn: ServerConnection): void {
    for (const t of conn.transactions.slice()) this.destroyTransaction(conn, t);
    conn.transaction = null;
  }

  doTransactionStart(conn: ServerConnection, req: Frame): void {
    if (conn.transaction) throw new XsErrno('EBUSY');
    if (isUnprivileged(conn)) {
      const quota = this.r.domains.quota(conn, 'transactions');
      const rules = this.r.state.release;
      // From 4.20 a domain's transactions are counted over all its connections (ACC_TRANS).
      const d = conn.domain!;
      const open = rules.transactionsPerDomain ? [...(d.ring ? [d.ring] : []), ...d.conns].reduce((n, c) => n + c.transactions.length, 0) : conn.transactions.length;
      if (rules.quotaCountsNext) {
        if (open + 1 >= quota) throw new XsErrno('ENOSPC');
      } else if (open > quota) {
        throw new XsErrno('ENOSPC');
      }
    }
    const generation = ++this.r.db.generation;
    let id: number;
    for (;;) {
      id = conn.nextTransactionId;
      conn.nextTransactionId = (conn.nextTransactionId + 1) >>> 0;
      // transaction_lookup(0) is "no transaction", not "unknown": 0 is never handed out.
      if (id !== 0 && !conn.transactions.some((t) => t.id === id)) break;
    }
    conn.transactions.push(new Transaction(id, generation));
    this.r.output.sendReply(conn, req, MessageType.TRANSACTION_START, Buffer.from(`${id}\0`, 'latin1'));
  }

  /** transaction_fix_domains(): check (update false) or apply the node-count changes. */
  private transactionFixDomains(trans: Transaction, chkQuota: boolean, update: boolean): Errno | 0 {
    const domains = this.r.domains;
    for (const [domid, n] of trans.changedDomains) {
      const cnt = domains.domainEntryFix(domid, n, update);
      if (!update) {
        if (chkQuota && cnt >= domains.nodesQuotaOf(domid)) return 'ENOSPC';
        if (cnt < 0) return 'ENOMEM';
      }
    }
    return 0;
  }

  /** finalize_transaction(): EAGAIN if anything read changed, else publish and fire. */
  private finalizeTransaction(conn: ServerConnection, trans: Transaction): Errno | 0 {
    const db = this.r.db;
    for (const i of [...trans.accessed.values()]) {
      if (i.checkGen) {
        const rec = db.db.get(i.node);
        const gen = rec ? rec.generation : NO_GENERATION;
        if (i.generation !== gen) return 'EAGAIN';
      }
      if (!i.modified) {
        if (i.taNode) db.deleteKey(i.transName);
        trans.accessed.delete(i.node);
      }
    }
    for (const i of [...trans.accessed.values()]) {
      if (i.taNode) {
        const rec = db.db.get(i.transName);
        if (rec) {
          db.put(i.node, { ...rec, generation: ++db.generation });
          db.deleteKey(i.transName);
        }
      } else if (i.generation !== NO_GENERATION) {
        db.deleteKey(i.node);
      }
      if (i.fireWatch) this.r.watches.fireWatches(conn, i.node, null, i.watchExact, i.perms);
      trans.accessed.delete(i.node);
    }
    this.r.state.changed = true;
    return 0;
  }

  doTransactionEnd(conn: ServerConnection, req: Frame): void {
    const arg = onearg(req.payload);
    if (arg === null || (arg !== 'T' && arg !== 'F')) throw new XsErrno('EINVAL');
    const trans = conn.transaction;
    if (!trans) throw new XsErrno('ENOENT');
    conn.transaction = null;
    const chkQuota = trans.nodeCreated && isUnprivileged(conn);
    try {
      if (arg === 'T') {
        if (trans.fail) throw new XsErrno('ENOMEM');
        const q = this.transactionFixDomains(trans, chkQuota, false);
        if (q !== 0) throw new XsErrno(q);
        if (this.r.state.injectCommitFailure?.()) throw new XsErrno('EAGAIN');
        const r = this.finalizeTransaction(conn, trans);
        if (r !== 0) throw new XsErrno(r);
        this.transactionFixDomains(trans, false, true);
      }
      this.r.output.sendAck(conn, req, MessageType.TRANSACTION_END);
    } finally {
      this.destroyTransaction(conn, trans);
    }
  }
}
