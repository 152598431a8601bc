/**
 * The in-memory xenstored: C xenstored semantics (Xen 4.17, and the newer releases behind
 * `release`), no I/O.
 *
 * A model of tools/xenstore/xenstored_{core,transaction,watch,domain,control}.c, held to the
 * real daemon by the differential test in test/server/. This file is the façade: it builds
 * the rooms, each with one job, and dispatches requests through a typed table.
 *
 *  - database.ts     the key/value database with transaction copies, the generation
 *                    counter, node access and permission rules, node creation and removal;
 *  - transactions.ts TRANSACTION_START/END: first-access copies, generation checks, commit;
 *  - watches.ts      WATCH/UNWATCH/RESET_WATCHES, permission filtering, special watches;
 *  - domains.ts      domain structs, node accounting, INTRODUCE/RELEASE/..., quotas per domain;
 *  - output.ts       connections and their queued replies and events;
 *  - nodes.ts        READ/WRITE/MKDIR/RM/DIRECTORY/DIRECTORY_PART/GET_PERMS/SET_PERMS;
 *  - control.ts      CONTROL;
 *  - dispatch.ts     wire_funcs[]: message type -> room method, flags;
 *  - release.ts      what differs between the modelled Xen releases.
 *
 * What is not modelled is listed in docs/server-differences.md.
 */
import type { Frame } from '../codec';
import { Control } from './control';
import { Database } from './database';
import { wireTable, WireTable } from './dispatch';
import { Domains } from './domains';
import { Domain, DomainOracle, isUnprivileged, Quotas, DEFAULT_QUOTAS, ServerConnection, StoredNode, XsErrno, XsPerm } from './model';
import { NodeRequests } from './nodes';
import { Output } from './output';
import { releaseRules, XenRelease } from './release';
import type { CoreState, Rooms } from './rooms';
import { Transactions } from './transactions';
import { Watches } from './watches';

export {
  XS_PERM_NONE,
  XS_PERM_READ,
  XS_PERM_WRITE,
  XS_PERM_OWNER,
  XS_PERM_IGNORE,
  DOMID_SELF,
  DEFAULT_QUOTAS,
  Transaction,
  Domain,
  ServerConnection,
  XsErrno,
} from './model';
export type { XsPerm, Quotas, StoredNode, DomainOracle } from './model';

export interface CoreOptions {
  quotas?: Partial<Quotas>;
  /** Which domains exist in the (simulated) hypervisor besides dom0. Default: none. */
  domains?: DomainOracle;
  /** Which Xen release's xenstored to model (default: release.ts DEFAULT_RELEASE). */
  release?: XenRelease;
  /** Called with one line per message in and out (the daemon's -T trace). */
  trace?: (line: string) => void;
  /** Fault injection: returns true when this commit must fail with EAGAIN. */
  injectCommitFailure?: () => boolean;
  /** Called after every request that may have changed the tree (for --persist). */
  onChange?: () => void;
  /** Called when a domain is introduced or released (domain sockets follow these). */
  onDomain?: (domid: number, event: 'introduced' | 'released') => void;
  /**
   * Called with the tree's changes before any reply that acknowledges them is handed out
   * (for --persist: write them durably). If it throws, those replies are never sent.
   */
  journal?: (change: TreeChange) => void;
}

/** What one flush changed in the global tree: records written (null: deleted). */
export interface TreeChange {
  generation: number;
  nodes: Map<string, StoredNode | null>;
  /** All special watch permissions, when they changed. */
  specialPerms: [string, readonly XsPerm[]][] | null;
}

/** The xenstored model. Transports feed it frames with process(); it answers through sinks. */
export class XenstoredCore {
  private readonly state: CoreState;
  private readonly rooms: Rooms;
  private readonly wire: WireTable;
  /** See CoreOptions.journal. */
  journal?: (change: TreeChange) => void;

  constructor(opts: CoreOptions = {}) {
    this.state = {
      quotas: { ...DEFAULT_QUOTAS, ...(opts.quotas ?? {}) },
      oracle: opts.domains ?? { exists: () => false },
      release: releaseRules(opts.release),
      trace: opts.trace,
      injectCommitFailure: opts.injectCommitFailure,
      onChange: opts.onChange,
      onDomain: opts.onDomain,
      changed: false,
      afterReply: [],
    };
    const rooms = { state: this.state } as { -readonly [K in keyof Rooms]: Rooms[K] };
    rooms.db = new Database(rooms);
    rooms.domains = new Domains(rooms);
    rooms.watches = new Watches(rooms);
    rooms.transactions = new Transactions(rooms);
    rooms.output = new Output(rooms);
    rooms.control = new Control(rooms);
    rooms.nodes = new NodeRequests(rooms);
    this.rooms = rooms;
    this.journal = opts.journal;
    this.wire = wireTable(this.state.release);
    // dom0_init() + setup_structure(): dom0 introduced, then "/", "/tool", "/tool/xenstored".
    rooms.domains.init();
    // 4.18+: the special nodes are created next, "@releaseDomain" then "@introduceDomain",
    // taking a generation each (core.c setup_structure(), domain_nbentry_fix(dom0, 5)).
    rooms.db.init();
    rooms.domains.domains.get(0)!.nbentry += this.state.release.specialNodesInDatabase ? 5 : 3;
  }

  // ------------------------------------------------------------------------------------
  // State, for the transports, persistence and tests

  get quotas(): Quotas {
    return this.state.quotas;
  }
  get release(): XenRelease {
    return this.state.release.release;
  }
  /** The database: global nodes by name, transaction copies by "<gen>/<name>". */
  get db(): Map<string, StoredNode> {
    return this.rooms.db.db;
  }
  get generation(): number {
    return this.rooms.db.generation;
  }
  set generation(g: number) {
    this.rooms.db.generation = g;
  }
  /** Domain structs by domid. */
  get domains(): Map<number, Domain> {
    return this.rooms.domains.domains;
  }
  /** Every connection, in creation order (watch events are generated in this order). */
  get connections(): ServerConnection[] {
    return this.rooms.output.connections;
  }
  /** The special watch paths' permissions (a copy: change them with setSpecialPerms()). */
  get specialPerms(): Map<string, readonly XsPerm[]> {
    return this.rooms.watches.allSpecialPerms();
  }

  /** Set a special watch path's permissions (persistence restores them with this). */
  setSpecialPerms(name: string, perms: readonly XsPerm[]): void {
    if (this.rooms.watches.specialPermsOf(name)) this.rooms.watches.setSpecialPerms(name, perms);
  }
  get onChange(): (() => void) | undefined {
    return this.state.onChange;
  }
  set onChange(f: (() => void) | undefined) {
    this.state.onChange = f;
  }
  get onDomain(): ((domid: number, event: 'introduced' | 'released') => void) | undefined {
    return this.state.onDomain;
  }
  set onDomain(f: ((domid: number, event: 'introduced' | 'released') => void) | undefined) {
    this.state.onDomain = f;
  }

  /** Domain existence as the hypervisor reports it: dom0 always, others per the oracle. */
  domainExists(domid: number): boolean {
    return this.rooms.domains.domainExists(domid);
  }

  isUnprivileged(conn: ServerConnection | null): boolean {
    return isUnprivileged(conn);
  }

  permForConn(conn: ServerConnection | null, perms: readonly XsPerm[]): number {
    return this.rooms.db.permForConn(conn, perms);
  }

  isValidNodename(node: string): boolean {
    return this.rooms.db.isValidNodename(node);
  }

  // ------------------------------------------------------------------------------------
  // Connections

  /** A new connection: `domid` null for the privileged socket, else an introduced domain. */
  openConnection(domid: number | null, sink: (frames: Frame[]) => boolean | void, onClose: () => void): ServerConnection {
    return this.rooms.output.openConnection(domid, sink, onClose);
  }

  /** The client went away: drop its watches and transactions (destroy_conn). */
  closeConnection(conn: ServerConnection): void {
    this.rooms.output.closeConnection(conn);
  }

  /** The daemon drops a connection itself (ignore_connection() for a socket). */
  dropConnection(conn: ServerConnection): void {
    this.rooms.output.dropConnection(conn);
  }

  // ------------------------------------------------------------------------------------
  // Request processing

  /**
   * Process one request from `conn` (process_message) and flush every queued output.
   * `flush: false` leaves the output queued (and counted against canRead()) until the caller's
   * flush(): a transport that received a burst of requests answers it in one write, not one
   * write per reply. The tree's changes are still journaled before any reply leaves, by flush().
   */
  process(conn: ServerConnection, frame: Frame, opts?: { flush?: boolean }): void {
    if (conn.closed) return;
    const output = this.rooms.output;
    output.traceIo(conn, frame, 'IN');
    // Map.clear() allocates a fresh table even when empty: once per request, so only when needed.
    if (conn.accList.size > 0) conn.accList.clear();
    try {
      this.processMessage(conn, frame);
    } finally {
      conn.transaction = null;
      if (this.state.afterReply.length > 0) for (const f of this.state.afterReply.splice(0)) f();
      if (opts?.flush !== false) this.flush();
      if (this.state.changed) {
        this.state.changed = false;
        this.state.onChange?.();
      }
    }
  }

  private processMessage(conn: ServerConnection, frame: Frame): void {
    const output = this.rooms.output;
    const spec = this.wire[frame.type as keyof WireTable];
    if (spec === undefined) {
      output.sendError(conn, frame, 'ENOSYS');
      return;
    }
    if (spec.priv && isUnprivileged(conn)) {
      output.sendError(conn, frame, 'EACCES');
      return;
    }
    if (!spec.notid && frame.txId !== 0) {
      const t = conn.transactions.find((x) => x.id === frame.txId);
      if (!t) {
        output.sendError(conn, frame, 'ENOENT');
        return;
      }
      conn.transaction = t;
    } else {
      conn.transaction = null;
    }
    try {
      spec.handler(this.rooms, conn, frame);
    } catch (e) {
      if (e instanceof XsErrno) output.sendError(conn, frame, e.code);
      else throw e;
    }
  }

  /**
   * Journal the tree's changes (CoreOptions.journal), then hand queued frames to their
   * connections' sinks (as far as each transport takes them): nothing is acknowledged
   * before it is journaled.
   */
  flush(): void {
    const nodes = this.rooms.db.takeChanges();
    const specialPerms = this.rooms.watches.takeSpecialChange();
    if (this.journal && (nodes || specialPerms)) {
      this.journal({ generation: this.rooms.db.generation, nodes: nodes ?? new Map(), specialPerms });
    }
    this.rooms.output.flush();
  }

  /**
   * Forget the changes not yet journaled: after loading, the snapshot just written holds them
   * (restoring special permissions marks them changed; they are not a client's change).
   */
  discardChanges(): void {
    this.rooms.db.takeChanges();
    this.rooms.watches.takeSpecialChange();
  }

  /** The connection's transport can take output again (after its sink returned false). */
  drained(conn: ServerConnection): void {
    this.rooms.output.drained(conn);
  }

  /**
   * Whether the next request of this connection may be processed now: not while its domain
   * is over its memory or outstanding-request quota, nor while its own output is backed up.
   */
  canRead(conn: ServerConnection): boolean {
    return this.rooms.output.canRead(conn);
  }

  // ------------------------------------------------------------------------------------
  // Domains (the simulated hypervisor's side)

  /** introduce_domain(): `null` when the domain's ring cannot be mapped (no such domain). */
  introduceDomain(domid: number): Domain | null {
    return this.rooms.domains.introduceDomain(domid);
  }

  /** The domain goes: connections, nodes, special-watch permissions; @releaseDomain fires. */
  releaseDomain(d: Domain): void {
    this.rooms.domains.releaseDomain(d);
  }

  // ------------------------------------------------------------------------------------
  // Whole-tree access, for persistence and tests (global nodes only)

  /** The global tree, without transaction copies. */
  snapshot(): { generation: number; nodes: [string, StoredNode][] } {
    return this.rooms.db.snapshot();
  }

  /** Replace the tree (on start with --persist). Domain node counts are recomputed. */
  restore(snap: { generation: number; nodes: [string, StoredNode][] }): void {
    this.rooms.db.restore(snap);
  }
}
