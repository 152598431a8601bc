/**
 * Seeded random xenstore requests for the differential test: every message type, valid and
 * invalid paths and payloads, values with any bytes up to and over the payload limit,
 * transactions, watches, domain operations. The generator keeps a little state (open
 * transactions, watches) from the replies so that most requests are meaningful.
 */
import { MessageType } from '../../xenstore-wire/constants';
import { atou, longToU32, strtol } from '../../xenstore-wire/server/cstr';

export interface Op {
  /** Which connection sends it. */
  conn: number;
  type: number;
  payload: Buffer;
  txId: number;
  /** Close this connection and open a new one instead of sending anything. */
  reconnect?: boolean;
}

export interface ConnState {
  transactions: number[];
}

const NAMES = ['a', 'b', 'c', 'd', 'e'];
const TOKENS = ['t1', 't2', 'tok\xff', 'x'];

export class OpGenerator {
  readonly conns: ConnState[];
  /**
   * Domains named by a successful SET_TARGET are never RELEASEd: C xenstored 4.17 keeps a
   * pointer to the target's connection, and releasing one side (once the talloc references
   * are used up) leaves the other with a dangling pointer that crashes the daemon on its own
   * release (docs/server-differences.md).
   */
  private readonly targetDomains = new Set<number>();
  /**
   * Every domain SET_PERMS ever made owner of a special node (inside transactions too, whether
   * they committed or not): such a domain is never RELEASEd. C
   * xenstored 4.20 deletes a special node its released domain owns with rm_node(), whose
   * basename() of "@releaseDomain" (no '/') is a wild pointer: the daemon segfaults
   * (docs/server-differences.md).
   */
  private readonly specialOwners = new Set<number>();

  constructor(
    private readonly rnd: () => number,
    nconns: number,
    /** Guest domids that exist in both daemons' hypervisors. */
    private readonly fakeDomains: number[],
    /**
     * Connections that are guests (unprivileged, over a ring with C xenstored): no oversized
     * requests (a ring is not closed, it stalls), no reconnects (a ring connection cannot
     * be replaced), and domain management only from them (refused with EACCES).
     */
    private readonly guestConns: ReadonlySet<number> = new Set(),
  ) {
    this.conns = Array.from({ length: nconns }, () => ({ transactions: [] }));
  }

  private int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  private pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }

  private chance(p: number): boolean {
    return this.rnd() < p;
  }

  /** A node path: mostly a small tree under /t so requests collide, sometimes odd ones. */
  path(): string {
    const r = this.rnd();
    if (r < 0.72) {
      const depth = 1 + this.int(3);
      let p = '/t';
      for (let i = 0; i < depth; i++) p += '/' + this.pick(NAMES);
      return p;
    }
    if (r < 0.78) return '/t';
    if (r < 0.81) return `/t/big/${this.longName()}`;
    if (r < 0.83) return '/t/big';
    if (r < 0.86) return this.pick(NAMES) + (this.chance(0.5) ? '/' + this.pick(NAMES) : ''); // relative to /local/domain/0
    if (r < 0.88) return this.pick(['/', '/tool', '/tool/xenstored', '/local/domain/0', '/local']);
    if (r < 0.9 || (this.guestConns.size > 0 && r < 0.96)) {
      return `/local/domain/${this.pick(this.fakeDomains)}` + (this.chance(0.85) ? `/${this.pick(NAMES)}` : '') + (this.chance(0.4) ? `/${this.pick(NAMES)}` : '');
    }
    return this.badPath();
  }

  private longName(): string {
    return 'child-' + String(this.int(260)).padStart(3, '0') + '-abcdefghijklmnop';
  }

  private badPath(): string {
    return this.pick([
      '',
      '/t/',
      '//t',
      '/t//a',
      '/t/a b',
      '/t/\xe9',
      'a/',
      '@introduceDomain',
      '@releaseDomain',
      '@other',
      '/t/a@b',
      '/' + 'x'.repeat(2047),
      '/' + 'x'.repeat(2048),
      `/local/domain/${this.pick(this.fakeDomains)}/` + 'y'.repeat(2048),
      '/local/domain/123456/' + 'z'.repeat(2040),
      '/t/-_@',
    ]);
  }

  private value(path: string): Buffer {
    const r = this.rnd();
    if (r < 0.6) return Buffer.from(String(this.int(1000)), 'latin1');
    if (r < 0.75) return Buffer.alloc(0);
    if (r < 0.85) return Buffer.from(Array.from({ length: 1 + this.int(40) }, () => this.int(256)));
    if (r < 0.9) return Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    // At the payload limit (path NUL value = 4096) or one byte over it (the daemon drops us).
    const max = 4096 - Buffer.byteLength(path, 'latin1') - 1;
    const over = this.guestConns.size === 0 && this.chance(0.3) ? 1 : 0;
    return Buffer.alloc(Math.max(0, max + over), 0x41 + this.int(26));
  }

  private permsList(): string[] {
    const owner = this.pick(['n0', 'r0', 'b0', 'w0', 'n0', `n${this.pick(this.fakeDomains)}`, 'b7', 'n0x0', 'r-1', 'x0', 'n', 'n0z']);
    const out = [owner];
    const extra = this.int(4);
    for (let i = 0; i < extra; i++) out.push(this.pick(['r', 'w', 'b', 'n']) + this.pick(['0', '1', '2', '3', '9', '010', '0x2', '65535']));
    return out;
  }

  private domidString(): string {
    return this.pick(['1', '2', '3', '5', '0', '32752', '-1', 'abc', '2x', ...this.fakeDomains.map(String)]);
  }

  private issued = 0;

  /** The next request. */
  next(): Op {
    // Warm-up: a directory whose listing is over 4096 bytes (27-byte names), for E2BIG and
    // DIRECTORY_PART paging.
    if (this.issued < 170 && this.guestConns.size === 0) {
      const name = 'child-' + String(this.issued++).padStart(3, '0') + '-abcdefghijklmnop';
      return { conn: 0, type: MessageType.WRITE, txId: 0, payload: Buffer.from(`/t/big/${name}\0v`, 'latin1') };
    }
    const conn = this.int(this.conns.length);
    const st = this.conns[conn];
    let txId = 0;
    if (st.transactions.length > 0 && this.chance(0.4)) txId = this.pick(st.transactions);
    else if (this.chance(0.01)) txId = 999;
    const op = (type: number, ...parts: (string | Buffer)[]): Op => ({ conn, type, txId, payload: nul(...parts) });
    let r = this.int(1000);
    const guest = this.guestConns.has(conn);
    // With guests about, dom0 never RELEASEs one (its ring would go; the bridge would hang).
    if (this.guestConns.size > 0 && !guest && r >= 845 && r < 860) r = 100;
    if (guest && r >= 915 && r < 920) r = 100;
    if (r < 180) {
      const p = this.path();
      return { conn, type: MessageType.WRITE, txId, payload: Buffer.concat([Buffer.from(p + '\0', 'latin1'), this.value(p)]) };
    }
    if (r < 290) return op(MessageType.READ, this.path());
    if (r < 340) return op(MessageType.MKDIR, this.path());
    if (r < 410) {
      // Removing /t or /t/big wipes most of the state: keep it rare.
      let p = this.path();
      while ((p === '/t' || p === '/t/big') && this.chance(0.85)) p = this.path();
      return op(MessageType.RM, p);
    }
    if (r < 480) return op(MessageType.DIRECTORY, this.path());
    if (r < 510) return op(MessageType.DIRECTORY_PART, this.pick(['/t/big', '/t', this.path()]), this.pick(['0', '0', String(this.int(7000)), '-3', 'x', '4096']));
    if (r < 540) return op(MessageType.GET_PERMS, this.path());
    if (r < 590) {
      // SET_PERMS of an unknown @name, or of any @name from a guest: C xenstored answers a
      // stale errno, and aborts when that errno is 0 (docs/server-differences.md).
      let p = this.path();
      if (p === '@other') p = '@releaseDomain';
      if (guest && p.startsWith('@')) p = '/t';
      return op(MessageType.SET_PERMS, p, ...this.permsList());
    }
    if (r < 650) {
      const special = this.chance(0.15);
      return op(MessageType.WATCH, special ? this.pick(['@introduceDomain', '@releaseDomain', '@other']) : this.path(), this.pick(TOKENS));
    }
    if (r < 680) return op(MessageType.UNWATCH, this.path(), this.pick(TOKENS));
    if (r < 730) return { ...op(MessageType.TRANSACTION_START, ''), txId: this.chance(0.05) ? txId : 0 };
    if (r < 790) {
      const id = st.transactions.length > 0 ? this.pick(st.transactions) : this.chance(0.5) ? 0 : 77;
      return { conn, type: MessageType.TRANSACTION_END, txId: id, payload: nul(this.pick(['T', 'T', 'T', 'F', 'X'])) };
    }
    if (r < 810) return op(MessageType.GET_DOMAIN_PATH, this.domidString());
    if (r < 825) return op(MessageType.IS_DOMAIN_INTRODUCED, this.domidString());
    if (r < 845) return op(MessageType.INTRODUCE, this.domidString(), '1234', this.pick(['1', '0', '17', '-2']));
    if (r < 860) {
      const d = this.domidString();
      const keep = this.targetDomains.has(atou(d)) || this.specialOwners.has(atou(d));
      return op(MessageType.RELEASE, keep ? '5' : d);
    }
    if (r < 870) return op(MessageType.SET_TARGET, this.domidString(), this.domidString());
    if (r < 876) return op(MessageType.RESUME, this.domidString());
    if (r < 881) return op(MessageType.RESET_WATCHES, '');
    if (r < 890) return op(MessageType.CONTROL, ...this.pick([['check'], ['help'], ['print', 'hi'], ['quota'], ['quota-soft'], ['nope'], ['check', 'x'], ['log']]));
    if (r < 905) {
      // Malformed payloads: missing NULs, extra strings. Single-argument requests (READ,
      // DIRECTORY, GET_PERMS, MKDIR, RM) only get the empty string: for a payload without
      // exactly one trailing NUL, C xenstored answers with a stale errno (whatever an earlier
      // request left there), which is not a behaviour to copy (docs/server-differences.md).
      if (this.chance(0.3)) {
        const t = this.pick([MessageType.READ, MessageType.DIRECTORY, MessageType.GET_PERMS, MessageType.MKDIR, MessageType.RM]);
        return { conn, type: t, txId, payload: Buffer.from('\0', 'latin1') };
      }
      const t = this.pick([MessageType.WRITE, MessageType.WATCH, MessageType.UNWATCH, MessageType.DIRECTORY_PART, MessageType.SET_PERMS, MessageType.TRANSACTION_END, MessageType.INTRODUCE, MessageType.SET_TARGET]);
      return { conn, type: t, txId, payload: Buffer.from(this.pick(['/t/a', '/t/a\0\0', '', '\0', '/t/a\0x\0y\0', '/t\0r0']), 'latin1') };
    }
    if (r < 915) return op(this.pick([15, 16, 20, 23, 24, 25, 26, 1000]), '/t');
    if (r < 920) return { conn, type: 0, txId: 0, payload: Buffer.alloc(0), reconnect: true };
    return op(MessageType.READ, this.path());
  }

  /** Update the generator's view from the reply the reference daemon gave. */
  observe(op: Op, reply: { type: number; payload: Buffer } | null): void {
    const st = this.conns[op.conn];
    if (op.reconnect || reply === null) {
      st.transactions = [];
      return;
    }
    if (op.type === MessageType.TRANSACTION_START && reply.type === MessageType.TRANSACTION_START) {
      st.transactions.push(Number(reply.payload.toString('latin1').replace(/\0$/, '')));
    }
    if (op.type === MessageType.TRANSACTION_END && op.txId !== 0) {
      st.transactions = st.transactions.filter((t) => t !== op.txId);
    }
    if (op.type === MessageType.RESET_WATCHES && reply.type === MessageType.RESET_WATCHES) st.transactions = [];
    if (op.type === MessageType.SET_PERMS && reply.type === MessageType.SET_PERMS) {
      const [path, owner] = op.payload.toString('latin1').split('\0');
      if (path.startsWith('@')) this.specialOwners.add(longToU32(strtol(owner.slice(1), 0).value));
    }
    if (op.type === MessageType.SET_TARGET && reply.type === MessageType.SET_TARGET) {
      const [a, b] = op.payload.toString('latin1').split('\0');
      this.targetDomains.add(atou(a));
      this.targetDomains.add(atou(b ?? ''));
    }
  }
}

function nul(...parts: (string | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.concat([typeof p === 'string' ? Buffer.from(p, 'latin1') : p, Buffer.from([0])])));
}
