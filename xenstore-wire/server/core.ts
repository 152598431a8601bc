/**
 * The in-memory xenstored: Xen 4.17 C xenstored semantics, no I/O.
 *
 * This is a model of tools/xenstore/xenstored_{core,transaction,watch,domain}.c as shipped in
 * Xen 4.17 (Debian 12), held to the real daemon by the differential test in test/server/. It
 * keeps the daemon's own structure where the structure decides what a client sees:
 *
 *  - one key/value "database" with the node name as key, and transaction-private copies under
 *    "<transaction generation>/<name>", exactly as xenstored's TDB layout;
 *  - one global generation counter bumped on every modifying node access, copied into nodes
 *    and transactions (DIRECTORY_PART reports it; commits compare it);
 *  - transactions that see the live tree for nodes they have not touched yet and a private
 *    copy from their first access on (not a snapshot taken at start), and fail with EAGAIN
 *    when any node they *read* changed generation;
 *  - watch events queued per connection, deduplicated against events still pending, fired
 *    before the reply of the request that caused them;
 *  - permission checks (owner, default access, ACL entries, target domains) and the rule that
 *    an error never reveals more than the nearest readable ancestor allows;
 *  - per-domain quotas and "domain structs" whose creation generation decides whether old
 *    ACL entries still apply.
 *
 * What is not modelled (listed in docs/server-differences.md): memory quotas, write rate
 * limiting, outstanding-request flow control, watch-event timeouts, live update.
 */
import { MessageType, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX } from '../constants';
import { Frame } from '../codec';
import { atou, countStrings, firstString, getStrings, longToU32, onearg, strtol, u32AsInt } from './cstr';

// xenstore_lib.h permission bits.
export const XS_PERM_NONE = 0x00;
export const XS_PERM_READ = 0x01;
export const XS_PERM_WRITE = 0x02;
export const XS_PERM_OWNER = 0x08;
export const XS_PERM_IGNORE = 0x10;

/** DOMID_SELF / DOMID_FIRST_RESERVED (xen.h). */
export const DOMID_SELF = 0x7ff0;

/** xenstored_core.h NO_GENERATION (~0ULL): a node that does not exist. */
const NO_GENERATION = -1;

/** Size of `struct xs_tdb_record_hdr` and of one `struct xs_permissions` (node-size quota). */
const RECORD_HEADER_SIZE = 24;
const PERM_RECORD_SIZE = 8;

export interface XsPerm {
  /** Domain id (unsigned int in the daemon; stored as written, even beyond 16 bits). */
  id: number;
  /** XS_PERM_* bits. */
  perms: number;
}

export interface Quotas {
  /** Nodes owned per unprivileged domain (-E). */
  nodes: number;
  /** Watches per unprivileged domain (-W). */
  watches: number;
  /** Transactions per unprivileged connection (-t). */
  transactions: number;
  /** Node record size (-S): header + permissions + value + children. */
  nodeSize: number;
  /** Permission entries per node (-A). */
  permissions: number;
  /** Nodes accessed per transaction. */
  transactionNodes: number;
  /** Node path length beyond /local/domain/<id>/ (-M). */
  pathMax: number;
  /** Not enforced here (flow control); reported by CONTROL quota. */
  outstanding: number;
  /** Not enforced here (memory accounting); reported by CONTROL quota. */
  memory: number;
  memorySoft: number;
}

/** C xenstored 4.17's defaults (xenstored_core.c). */
export const DEFAULT_QUOTAS: Readonly<Quotas> = {
  nodes: 1000,
  watches: 128,
  transactions: 10,
  nodeSize: 2048,
  permissions: 5,
  transactionNodes: 1024,
  pathMax: XENSTORE_REL_PATH_MAX,
  outstanding: 20,
  memory: 2 * 1024 * 1024 + 512 * 1024,
  memorySoft: 2 * 1024 * 1024,
};

/** A record of the database. Arrays and buffers are never mutated in place (copy on write). */
export interface StoredNode {
  generation: number;
  perms: readonly XsPerm[];
  data: Buffer;
  children: readonly string[];
}

/** A node read from the database, with the walk state the daemon keeps on it. */
class Node {
  parent: Node | null = null;
  /** Index of the next child to visit in a tree walk. */
  childoff = 0;
  /** The database key it was last written under. */
  key = '';
  constructor(
    public name: string,
    public generation: number,
    public perms: readonly XsPerm[],
    public data: Buffer,
    public children: readonly string[],
  ) {}
}

class Watch {
  constructor(
    public node: string,
    public token: string,
    /** The connection's home path when the watch was given relative to it. */
    public relativePath: string | null,
  ) {}
}

class AccessedNode {
  generation = 0;
  perms: readonly XsPerm[] | null = null;
  checkGen = false;
  modified = false;
  taNode = false;
  fireWatch = false;
  watchExact = false;
  constructor(
    public transName: string,
    public node: string,
  ) {}
}

export class Transaction {
  nodes = 0;
  readonly accessed = new Map<string, AccessedNode>();
  /** Domain id -> change of its node count, applied at commit. */
  readonly changedDomains = new Map<number, number>();
  nodeCreated = false;
  fail = false;
  constructor(
    public readonly id: number,
    public readonly generation: number,
  ) {}
}

/** A "struct domain": a domain xenstored knows of, introduced or merely referenced. */
export class Domain {
  introduced = false;
  nbentry = 0;
  nbwatch = 0;
  shutdown = false;
  port = 0;
  target: number | null = null;
  /**
   * Domains whose SET_TARGET named this one, most recent last: each holds a talloc reference
   * on this domain's connection, and a RELEASE while one is held only drops the newest
   * reference (talloc_free() of a referenced pointer), leaving the domain introduced.
   */
  readonly referencedBy: number[] = [];
  readonly path: string;
  /** The domain's ring connection (domain->conn): idle here, but it holds a place in the
   *  connection list, which decides when a RELEASE takes effect (see doRelease). */
  ring: ServerConnection | null = null;
  /** Other connections speaking as this domain (domain sockets, in-process streams). */
  readonly conns = new Set<ServerConnection>();
  constructor(
    public readonly domid: number,
    public readonly generation: number,
  ) {
    this.path = `/local/domain/${domid}`;
  }
}

/** One client connection: the Unix socket (dom0, privileged) or a simulated domain's. */
export class ServerConnection {
  private static nextSerial = 1;
  /** For traces: a small number, unique in the process. */
  readonly serial = ServerConnection.nextSerial++;
  readonly watches: Watch[] = [];
  readonly transactions: Transaction[] = [];
  /** conn->next_transaction_id: 0 is skipped, so the first id handed out is 1. */
  nextTransactionId = 0;
  /** The transaction of the request being processed. */
  transaction: Transaction | null = null;
  /** Frames queued and not yet handed to the sink. */
  readonly out: Frame[] = [];
  /** Messages received, for the drop-after-N fault. */
  received = 0;
  closed = false;

  constructor(
    /** conn->id: 0 for the socket, the domid for a domain's connection. */
    public readonly id: number,
    public readonly domain: Domain | null,
    /** Where whole frames go; the transport layer encodes and writes them. */
    public readonly sink: (frames: Frame[]) => void,
    /** Called when the daemon drops the connection (bad frame, release, fault). */
    public readonly onClose: () => void,
  ) {}
}

/** Thrown internally with an errno name; becomes an ERROR reply. */
class XsErrno {
  constructor(public readonly code: string) {}
}

type Errno = string;
type ReadResult = Node | Errno;

function isErr<T>(r: T | Errno): r is Errno {
  return typeof r === 'string';
}

const WALK_TREE_SUCCESS_STOP = -100;
const WALK_TREE_ERROR_STOP = -1;
const WALK_TREE_OK = 0;
const WALK_TREE_SKIP_CHILDREN = 1;
const WALK_TREE_RM_CHILDENTRY = 2;

interface WalkFuncs {
  enter?: (conn: ServerConnection | null, node: Node) => number;
  exit?: (conn: ServerConnection | null, node: Node) => number;
}

const enum Access {
  READ,
  WRITE,
  DELETE,
}

/** The hypervisor as xenstored sees it: which domains exist. */
export interface DomainOracle {
  exists(domid: number): boolean;
}

export interface CoreOptions {
  quotas?: Partial<Quotas>;
  /** Which domains exist in the (simulated) hypervisor besides dom0. Default: none. */
  domains?: DomainOracle;
  /** Called with one line per message in and out (the daemon's -T trace). */
  trace?: (line: string) => void;
  /** Fault injection: returns true when this commit must fail with EAGAIN. */
  injectCommitFailure?: () => boolean;
  /** Called after every request that may have changed the tree (for --persist). */
  onChange?: () => void;
  /** Called when a domain is introduced or released (domain sockets follow these). */
  onDomain?: (domid: number, event: 'introduced' | 'released') => void;
}

const VALID_CHARS = /^[A-Za-z0-9\-/_@]*$/;

/** get_parent(): "/a/b" -> "/a", "/a" -> "/". */
function getParent(name: string): string {
  const slash = name.lastIndexOf('/');
  return slash > 0 ? name.slice(0, slash) : '/';
}

function basename(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

function childName(parent: string, child: string): string {
  return parent === '/' ? `/${child}` : `${parent}/${child}`;
}

/** Is `child` the node `parent` or below it? ("/" contains everything.) */
function isChild(child: string, parent: string): boolean {
  if (parent === '/') return true;
  if (!child.startsWith(parent)) return false;
  return child.length === parent.length || child[parent.length] === '/';
}

function childrenBytes(children: readonly string[]): number {
  let n = 0;
  for (const c of children) n += c.length + 1;
  return n;
}

function childrenBuffer(children: readonly string[]): Buffer {
  return Buffer.from(children.map((c) => c + '\0').join(''), 'latin1');
}

const OK_PAYLOAD = Buffer.from('OK\0', 'latin1');

/** The xenstored model. Transports feed it frames with process(); it answers through sinks. */
export class XenstoredCore {
  readonly quotas: Quotas;
  /** The database: global nodes by name, transaction copies by "<gen>/<name>". */
  readonly db = new Map<string, StoredNode>();
  generation = 0;
  /** Domain structs by domid. */
  readonly domains = new Map<number, Domain>();
  /** Every connection, in creation order (watch events are generated in this order). */
  readonly connections: ServerConnection[] = [];
  readonly specialPerms = new Map<string, readonly XsPerm[]>([
    ['@releaseDomain', [{ id: 0, perms: XS_PERM_NONE }]],
    ['@introduceDomain', [{ id: 0, perms: XS_PERM_NONE }]],
  ]);
  private readonly oracle: DomainOracle;
  private readonly trace?: (line: string) => void;
  private readonly injectCommitFailure?: () => boolean;
  onChange?: () => void;
  onDomain?: (domid: number, event: 'introduced' | 'released') => void;
  /** Connections with queued output, flushed at the end of each request. */
  private readonly dirty = new Set<ServerConnection>();
  private changed = false;
  /** Work the daemon does after the reply is queued (a connection freed later in the loop). */
  private readonly afterReply: (() => void)[] = [];

  constructor(opts: CoreOptions = {}) {
    this.quotas = { ...DEFAULT_QUOTAS, ...(opts.quotas ?? {}) };
    this.oracle = opts.domains ?? { exists: () => false };
    this.trace = opts.trace;
    this.injectCommitFailure = opts.injectCommitFailure;
    this.onChange = opts.onChange;
    this.onDomain = opts.onDomain;
    this.init();
  }

  /** dom0_init() + setup_structure(): dom0 introduced, then "/", "/tool", "/tool/xenstored". */
  private init(): void {
    const dom0 = this.allocDomain(0);
    dom0.introduced = true;
    dom0.port = 1;
    dom0.ring = this.newRing(dom0);
    const perms = [{ id: 0, perms: XS_PERM_NONE }];
    this.manualNode('/', ['tool'], perms);
    this.manualNode('/tool', ['xenstored'], perms);
    this.manualNode('/tool/xenstored', [], perms);
    dom0.nbentry += 3;
  }

  private manualNode(name: string, children: string[], perms: XsPerm[]): void {
    const node = new Node(name, 0, perms, Buffer.alloc(0), children);
    const r = this.writeNode(null, node, false);
    if (r !== 0) throw new Error(`cannot create ${name}: ${r}`);
  }

  private newRing(d: Domain): ServerConnection {
    const ring = new ServerConnection(d.domid, d, () => undefined, () => undefined);
    this.connections.push(ring);
    return ring;
  }

  /** Domain existence as the hypervisor reports it: dom0 always, others per the oracle. */
  domainExists(domid: number): boolean {
    return domid === 0 || this.oracle.exists(domid);
  }

  // ------------------------------------------------------------------------------------
  // Connections

  /** A new connection: `domid` null for the privileged socket, else an introduced domain. */
  openConnection(domid: number | null, sink: (frames: Frame[]) => void, onClose: () => void): ServerConnection {
    let domain: Domain | null = null;
    if (domid !== null) {
      const d = this.domains.get(domid);
      if (!d || !d.introduced) throw new XsErrno('ENOENT');
      domain = d;
    }
    const conn = new ServerConnection(domid ?? 0, domain, sink, onClose);
    domain?.conns.add(conn);
    this.connections.push(conn);
    this.trace?.(`CREATE connection ${conn.serial}${domid !== null ? ` domain ${domid}` : ''}`);
    return conn;
  }

  /** The client went away: drop its watches and transactions (destroy_conn). */
  closeConnection(conn: ServerConnection): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.out.length = 0;
    this.deleteAllWatches(conn);
    this.deleteAllTransactions(conn);
    const i = this.connections.indexOf(conn);
    if (i >= 0) this.connections.splice(i, 1);
    conn.domain?.conns.delete(conn);
    this.dirty.delete(conn);
    this.trace?.(`DESTROY connection ${conn.serial}`);
  }

  /** The daemon drops a connection itself (ignore_connection() for a socket). */
  dropConnection(conn: ServerConnection): void {
    if (conn.closed) return;
    this.closeConnection(conn);
    conn.onClose();
  }

  isUnprivileged(conn: ServerConnection | null): boolean {
    return conn !== null && conn.domain !== null && conn.domain.domid !== 0;
  }

  // ------------------------------------------------------------------------------------
  // Request processing

  /** Process one request from `conn` (process_message) and flush every queued output. */
  process(conn: ServerConnection, frame: Frame): void {
    if (conn.closed) return;
    this.traceIo(conn, frame, 'IN');
    try {
      this.processMessage(conn, frame);
    } finally {
      conn.transaction = null;
      for (const f of this.afterReply.splice(0)) f();
      this.flush();
      if (this.changed) {
        this.changed = false;
        this.onChange?.();
      }
    }
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

  private traceIo(conn: ServerConnection, f: Frame, dir: 'IN' | 'OUT'): void {
    if (!this.trace) return;
    const name = WIRE_NAMES[f.type] ?? '**UNKNOWN**';
    const text = f.payload.toString('latin1').replace(/\0/g, ' ');
    this.trace(`${dir} ${conn.serial} ${new Date().toISOString()} ${name} (${text})`);
  }

  private processMessage(conn: ServerConnection, frame: Frame): void {
    const type = frame.type;
    const spec = WIRE[type];
    if (spec === undefined) {
      this.sendError(conn, frame, 'ENOSYS');
      return;
    }
    if (spec.priv && this.isUnprivileged(conn)) {
      this.sendError(conn, frame, 'EACCES');
      return;
    }
    if (!spec.notid && frame.txId !== 0) {
      const t = conn.transactions.find((x) => x.id === frame.txId);
      if (!t) {
        this.sendError(conn, frame, 'ENOENT');
        return;
      }
      conn.transaction = t;
    } else {
      conn.transaction = null;
    }
    try {
      spec.fn.call(this, conn, frame);
    } catch (e) {
      if (e instanceof XsErrno) this.sendError(conn, frame, e.code);
      else throw e;
    }
  }

  private queue(conn: ServerConnection, frame: Frame): void {
    if (conn.closed) return;
    conn.out.push(frame);
    this.dirty.add(conn);
  }

  /** send_reply(): the request's header with the reply type; over-long replies become E2BIG. */
  private sendReply(conn: ServerConnection, req: Frame, type: number, payload: Buffer): void {
    if (payload.length > XENSTORE_PAYLOAD_MAX) {
      this.sendError(conn, req, 'E2BIG');
      return;
    }
    this.queue(conn, { type, reqId: req.reqId, txId: req.txId, payload });
  }

  private sendError(conn: ServerConnection, req: Frame, code: string): void {
    this.queue(conn, { type: MessageType.ERROR, reqId: req.reqId, txId: req.txId, payload: Buffer.from(code + '\0', 'latin1') });
  }

  private sendAck(conn: ServerConnection, req: Frame, type: number): void {
    this.sendReply(conn, req, type, OK_PAYLOAD);
  }

  /** send_event(): dropped when over-long or identical to one still pending (non-@ paths). */
  private sendEvent(conn: ServerConnection, path: string, token: string): void {
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

  // ------------------------------------------------------------------------------------
  // Domains

  private allocDomain(domid: number): Domain {
    const d = new Domain(domid, this.generation);
    this.domains.set(domid, d);
    return d;
  }

  private findOrAllocExistingDomain(domid: number): Domain | null {
    let d = this.domains.get(domid) ?? null;
    if (!d && this.domainExists(domid)) d = this.allocDomain(domid);
    return d;
  }

  private isUnprivilegedDomid(domid: number): boolean {
    return domid !== 0;
  }

  /** Node-owner accounting (domain_entry_inc): returns an errno name on failure. */
  private domainEntryInc(conn: ServerConnection | null, perms: readonly XsPerm[]): Errno | 0 {
    if (perms.length === 0) return 0;
    const domid = perms[0].id;
    if (conn && conn.transaction) {
      const t = conn.transaction;
      t.changedDomains.set(domid, (t.changedDomains.get(domid) ?? 0) + 1);
      return 0;
    }
    const d = conn && domid === conn.id && conn.domain ? conn.domain : this.findOrAllocExistingDomain(domid);
    if (!d) return 'ENOMEM';
    d.nbentry++;
    return 0;
  }

  private domainEntryDec(conn: ServerConnection | null, perms: readonly XsPerm[]): void {
    if (perms.length === 0) return;
    const domid = perms[0].id;
    if (conn && conn.transaction) {
      const t = conn.transaction;
      t.changedDomains.set(domid, (t.changedDomains.get(domid) ?? 0) - 1);
      return;
    }
    const d = conn && domid === conn.id && conn.domain ? conn.domain : this.domains.get(domid);
    if (d) d.nbentry--;
  }

  /** domain_entry(): the node count quota applies to unprivileged connections only. */
  private domainEntry(conn: ServerConnection | null): number {
    return this.isUnprivileged(conn) ? conn!.domain!.nbentry : 0;
  }

  private domainEntryFix(domid: number, num: number, update: boolean): number {
    let d: Domain | null;
    if (update) {
      d = this.domains.get(domid) ?? null;
      if (!d) return 0;
    } else {
      d = this.findOrAllocExistingDomain(domid);
      if (!d) return -1;
    }
    let cnt = d.nbentry + num;
    if (update) d.nbentry = Math.max(0, cnt);
    else if (cnt < 0) cnt = 0;
    return this.isUnprivilegedDomid(domid) ? cnt : 0;
  }

  /** Entries for domains the hypervisor does not know are marked IGNORE (domain_alloc_permrefs). */
  private allocPermrefs(perms: XsPerm[]): void {
    for (const p of perms) {
      if (!this.domains.has(p.id)) {
        if (!this.domainExists(p.id)) p.perms |= XS_PERM_IGNORE;
        else this.allocDomain(p.id);
      }
    }
  }

  /** ACL entries older than their domain are ignored (domain_adjust_node_perms). */
  private adjustNodePerms(node: Node): void {
    let copy: XsPerm[] | null = null;
    for (let i = 1; i < node.perms.length; i++) {
      const p = node.perms[i];
      if (p.perms & XS_PERM_IGNORE) continue;
      const d = this.domains.get(p.id);
      if (!(d && d.generation <= node.generation)) {
        copy ??= node.perms.map((x) => ({ ...x }));
        copy[i].perms |= XS_PERM_IGNORE;
      }
    }
    if (copy) node.perms = copy;
  }

  // ------------------------------------------------------------------------------------
  // Permissions and paths

  /** perm_for_conn(): what this connection may do with a node of these permissions. */
  permForConn(conn: ServerConnection | null, perms: readonly XsPerm[]): number {
    const mask = XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER;
    const target = conn?.domain?.target ?? null;
    if (!this.isUnprivileged(conn) || perms[0].id === conn!.id || (target !== null && perms[0].id === target)) return mask;
    for (let i = 1; i < perms.length; i++) {
      const p = perms[i];
      if (!(p.perms & XS_PERM_IGNORE) && (p.id === conn!.id || (target !== null && p.id === target))) return p.perms & mask;
    }
    return perms[0].perms & mask;
  }

  /** is_valid_nodename(): absolute, no "//", no trailing "/", path-max beyond /local/domain/N/. */
  isValidNodename(node: string): boolean {
    if (!node.startsWith('/')) return false;
    if (node.endsWith('/') && node !== '/') return false;
    if (node.includes('//')) return false;
    let localOff = 0;
    // sscanf("/local/domain/%5u/%n"): up to five characters of (signed) number, then '/'.
    const m = /^\/local\/domain\/([+-]?\d+)\//.exec(node);
    if (m && m[1].length <= 5) localOff = m[0].length;
    if (node.length > localOff + this.quotas.pathMax) return false;
    return VALID_CHARS.test(node);
  }

  private implicitPath(conn: ServerConnection): string {
    return conn.domain ? conn.domain.path : '/local/domain/0';
  }

  private canonicalize(conn: ServerConnection, node: string): string {
    if (node.startsWith('/') || node.startsWith('@')) return node;
    return `${this.implicitPath(conn)}/${node}`;
  }

  // ------------------------------------------------------------------------------------
  // Node access (read_node / write_node / access_node)

  private keyFor(conn: ServerConnection | null, name: string): string {
    if (conn && conn.transaction) {
      const i = conn.transaction.accessed.get(name);
      if (i) return i.transName;
    }
    return name;
  }

  /**
   * access_node(): bump the generation for modifications, and inside a transaction record
   * the access (a read copies the node into the transaction). Returns the database key, -1
   * for "nothing to delete", or an errno name.
   */
  private accessNode(conn: ServerConnection | null, node: Node, type: Access): string | -1 | { err: Errno } {
    if (type !== Access.READ) node.generation = ++this.generation;
    if (!conn || !conn.transaction) return node.name;
    const trans = conn.transaction;
    let i = trans.accessed.get(node.name);
    let introduce = false;
    if (!i) {
      if (trans.nodes >= this.quotas.transactionNodes && this.isUnprivileged(conn)) {
        trans.fail = true;
        return { err: 'ENOSPC' };
      }
      i = new AccessedNode(`${trans.generation}/${node.name}`, node.name);
      if (node.generation !== NO_GENERATION && node.perms.length > 0) i.perms = node.perms;
      introduce = true;
      if (type === Access.READ) {
        i.generation = node.generation;
        i.checkGen = true;
        if (node.generation !== NO_GENERATION) {
          this.writeNodeRaw(conn, i.transName, node, true);
          i.taNode = true;
        }
      }
      trans.nodes++;
      trans.accessed.set(node.name, i);
    }
    if (type !== Access.READ) i.modified = true;
    if (introduce && type === Access.DELETE) return -1;
    if (type === Access.WRITE) i.taNode = true;
    if (type === Access.DELETE) i.taNode = false;
    return i.transName;
  }

  /** read_node(): the node as this connection's transaction sees it. */
  private readNode(conn: ServerConnection | null, name: string): ReadResult {
    const rec = this.db.get(this.keyFor(conn, name));
    if (!rec) {
      const ghost = new Node(name, NO_GENERATION, [], Buffer.alloc(0), []);
      const r = this.accessNode(conn, ghost, Access.READ);
      return typeof r === 'object' ? r.err : 'ENOENT';
    }
    const node = new Node(name, rec.generation, rec.perms, rec.data, rec.children);
    this.adjustNodePerms(node);
    const r = this.accessNode(conn, node, Access.READ);
    if (typeof r === 'object') return r.err;
    return node;
  }

  /** write_node_raw(): store the record (node-size quota for unprivileged writers). */
  private writeNodeRaw(conn: ServerConnection | null, key: string, node: Node, noQuotaCheck: boolean): Errno | 0 {
    this.adjustNodePerms(node);
    if (!noQuotaCheck && this.isUnprivileged(conn)) {
      const size = RECORD_HEADER_SIZE + node.perms.length * PERM_RECORD_SIZE + node.data.length + childrenBytes(node.children);
      if (size >= this.quotas.nodeSize) return 'ENOSPC';
    }
    this.db.set(key, { generation: node.generation, perms: node.perms, data: node.data, children: node.children });
    this.changed = true;
    return 0;
  }

  private writeNode(conn: ServerConnection | null, node: Node, noQuotaCheck: boolean): Errno | 0 {
    const k = this.accessNode(conn, node, Access.WRITE);
    if (typeof k === 'object') return k.err;
    if (k === -1) return 'EIO'; // not reachable for writes
    node.key = k;
    const r = this.writeNodeRaw(conn, k, node, noQuotaCheck);
    if (r !== 0 && conn && conn.transaction) conn.transaction.fail = true;
    return r;
  }

  private deleteKey(key: string): boolean {
    this.changed = true;
    return this.db.delete(key);
  }

  private static readonly PROPAGATE = new Set(['ENOMEM', 'ENOSPC']);

  /** ask_parents(): the access the nearest existing ancestor grants. */
  private askParents(conn: ServerConnection, name: string): { perm: number } | Errno {
    let node: ReadResult = 'ENOENT';
    do {
      name = getParent(name);
      node = this.readNode(conn, name);
      if (!isErr(node)) break;
      if (XenstoredCore.PROPAGATE.has(node)) return node;
    } while (name !== '/');
    if (isErr(node)) return { perm: XS_PERM_NONE };
    return { perm: this.permForConn(conn, node.perms) };
  }

  /** errno_from_parents(): hide the real error unless the parent would have allowed `perm`. */
  private errnoFromParents(conn: ServerConnection, name: string, errnum: Errno, perm: number): Errno {
    if (errnum === 'ENOMEM') return errnum;
    const p = this.askParents(conn, name);
    if (isErr(p)) return p;
    return p.perm & perm ? errnum : 'EACCES';
  }

  /** get_node(): read with a permission check, errors masked by the parents' permissions. */
  private getNode(conn: ServerConnection, name: string | null, perm: number): ReadResult {
    if (name === null || !this.isValidNodename(name)) return 'EINVAL';
    let r = this.readNode(conn, name);
    if (!isErr(r) && (this.permForConn(conn, r.perms) & perm) !== perm) r = 'EACCES';
    if (isErr(r) && !XenstoredCore.PROPAGATE.has(r)) r = this.errnoFromParents(conn, name, r, perm);
    return r;
  }

  // ------------------------------------------------------------------------------------
  // Node creation and deletion

  /** construct_node(): the missing nodes down to `name`, inheriting the parent's permissions. */
  private constructNode(conn: ServerConnection, name: string): Node | Errno {
    const names: string[] = [];
    let parentname = name;
    let parent: Node | null = null;
    while (!parent) {
      names.push(parentname);
      parentname = getParent(parentname);
      const r = this.readNode(conn, parentname);
      if (isErr(r)) {
        if (r !== 'ENOENT' || parentname === '/') return r;
      } else {
        parent = r;
      }
    }
    let node: Node = parent;
    for (let level = names.length; level > 0; level--) {
      const nm = names[level - 1];
      parent.children = [...parent.children, basename(nm)];
      const perms = parent.perms.map((p) => ({ ...p }));
      if (this.isUnprivileged(conn)) perms[0].id = conn.id;
      node = new Node(nm, 0, perms, Buffer.alloc(0), []);
      node.parent = parent;
      parent = node;
    }
    return node;
  }

  /** create_node(): write the new nodes bottom-up, undoing them if one fails. */
  private createNode(conn: ServerConnection, name: string, data: Buffer): Node | Errno {
    const node = this.constructNode(conn, name);
    if (isErr(node)) return node;
    if (conn.transaction) conn.transaction.nodeCreated = true;
    node.data = data;
    let ret: Errno | 0 = 0;
    let i: Node | null = node;
    for (; i; i = i.parent) {
      if (i.parent && this.domainEntry(conn) >= this.quotas.nodes) {
        ret = 'ENOSPC';
        break;
      }
      ret = this.writeNode(conn, i, false);
      if (ret !== 0) break;
      if (i.parent) {
        if (this.domainEntryInc(conn, i.perms) !== 0) {
          this.deleteKey(i.key);
          return 'ENOMEM';
        }
      }
    }
    if (ret === 0) return node;
    for (let j: Node | null = node; j && j !== i; j = j.parent) {
      // destroy_node(): undo, and a transaction can no longer be committed.
      this.deleteKey(j.key);
      this.domainEntryDec(conn, j.perms);
      if (conn.transaction) conn.transaction.fail = true;
    }
    return ret;
  }

  /** Remove the child entry just visited by a walk and write the parent (rm_from_parent). */
  private rmFromParent(conn: ServerConnection | null, parent: Node | null): number {
    if (!parent) return WALK_TREE_ERROR_STOP;
    const off = parent.childoff - 1;
    const children = parent.children.slice();
    children.splice(off, 1);
    parent.children = children;
    if (this.writeNode(conn, parent, true) !== 0) return WALK_TREE_ERROR_STOP;
    parent.childoff = off;
    return WALK_TREE_OK;
  }

  private walkCallFunc(
    conn: ServerConnection | null,
    node: Node,
    parent: Node | null,
    func: ((conn: ServerConnection | null, node: Node) => number) | undefined,
  ): number {
    if (!func) return WALK_TREE_OK;
    let ret = func(conn, node);
    if (ret === WALK_TREE_RM_CHILDENTRY && parent) ret = this.rmFromParent(conn, parent);
    return ret;
  }

  /** walk_node_tree(): depth first, `enter` before and `exit` after a node's children. */
  private walkNodeTree(conn: ServerConnection | null, root: string, funcs: WalkFuncs): number {
    let ret = 0;
    let node: Node | null = null;
    let parent: Node | null = null;
    let name = root;
    while (ret >= 0) {
      if (node) {
        if (ret || node.childoff >= node.children.length) {
          parent = node.parent;
          ret = this.walkCallFunc(conn, node, parent, funcs.exit);
          if (!parent) break;
          node = parent;
          continue;
        }
        name = childName(node.name, node.children[node.childoff]);
        node.childoff++;
        parent = node;
      }
      const r = this.readNode(conn, name);
      if (isErr(r)) {
        ret = WALK_TREE_ERROR_STOP;
        this.walkErrno = r;
        if (!parent) break;
        if (ret < 0) break;
        node = parent;
        continue;
      }
      node = r;
      node.parent = parent;
      node.childoff = 0;
      ret = this.walkCallFunc(conn, node, parent, funcs.enter);
    }
    return ret < 0 ? ret : WALK_TREE_OK;
  }

  /** errno left behind by a stopped walk (rm_node() returns it). */
  private walkErrno: Errno = 'EIO';

  /** rm_node(): delete a subtree, firing watches for every node, then unlink it. */
  private rmNode(conn: ServerConnection | null, name: string): Errno | 0 {
    const parent = this.readNode(conn, getParent(name));
    if (isErr(parent)) return XenstoredCore.PROPAGATE.has(parent) ? parent : 'EINVAL';
    this.walkErrno = 'EIO';
    const ret = this.walkNodeTree(conn, name, {
      exit: (c, node) => this.delnodeSub(c, node, name),
    });
    if (ret < 0) return ret === WALK_TREE_ERROR_STOP ? 'EIO' : this.walkErrno;
    const base = basename(name);
    const idx = parent.children.indexOf(base);
    if (idx < 0) return 'EIO';
    const children = parent.children.slice();
    children.splice(idx, 1);
    parent.children = children;
    if (this.writeNode(conn, parent, true) !== 0) return 'EIO';
    return 0;
  }

  private delnodeSub(conn: ServerConnection | null, node: Node, root: string): number {
    const k = this.accessNode(conn, node, Access.DELETE);
    if (typeof k === 'object') {
      this.walkErrno = k.err;
      return WALK_TREE_SUCCESS_STOP;
    }
    if (k !== -1 && !this.deleteKey(k)) {
      this.walkErrno = 'EIO';
      return WALK_TREE_SUCCESS_STOP;
    }
    this.fireWatches(conn, node.name, node, root !== node.name, null);
    this.domainEntryDec(conn, node.perms);
    return WALK_TREE_RM_CHILDENTRY;
  }

  // ------------------------------------------------------------------------------------
  // Watches

  private watchPath(watch: Watch, name: string): string {
    if (watch.relativePath === null) return name;
    let path = name.slice(watch.relativePath.length);
    if (path.startsWith('/')) path = path.slice(1);
    return path;
  }

  /** watch_permitted(): the watcher may read the node or its parent (or could before). */
  private watchPermitted(conn: ServerConnection, name: string, node: Node | null, perms: readonly XsPerm[] | null): boolean {
    if (perms && this.permForConn(conn, perms) & XS_PERM_READ) return true;
    if (!node) {
      const r = this.readNode(conn, name);
      if (isErr(r)) return false;
      node = r;
    }
    if (this.permForConn(conn, node.perms) & XS_PERM_READ) return true;
    let parent = node.parent;
    if (!parent) {
      const r = this.readNode(conn, getParent(node.name));
      if (isErr(r)) return false;
      parent = r;
    }
    return (this.permForConn(conn, parent.perms) & XS_PERM_READ) !== 0;
  }

  private checkPermsSpecial(name: string, conn: ServerConnection): boolean {
    const p = this.specialPerms.get(name);
    if (!p) return false;
    return (this.permForConn(conn, p) & XS_PERM_READ) !== 0;
  }

  /** fire_watches(): queue events now, or mark the node when inside a transaction. */
  private fireWatches(
    conn: ServerConnection | null,
    name: string,
    node: Node | null,
    exact: boolean,
    perms: readonly XsPerm[] | null,
  ): void {
    if (conn && conn.transaction) {
      const i = conn.transaction.accessed.get(name);
      if (!i) {
        conn.transaction.fail = true;
        return;
      }
      if (!i.fireWatch) {
        i.fireWatch = true;
        i.watchExact = exact;
      } else if (!exact) {
        i.watchExact = false;
      }
      return;
    }
    const special = name.startsWith('@');
    for (const c of this.connections.slice()) {
      if (c.watches.length === 0) continue;
      if (special) {
        if (!this.checkPermsSpecial(name, c)) continue;
      } else if (!this.watchPermitted(c, name, node, perms)) {
        continue;
      }
      for (const w of c.watches) {
        if (exact ? name === w.node : isChild(name, w.node)) this.sendEvent(c, this.watchPath(w, name), w.token);
      }
    }
  }

  private deleteAllWatches(conn: ServerConnection): void {
    if (conn.domain) conn.domain.nbwatch = Math.max(0, conn.domain.nbwatch - conn.watches.length);
    conn.watches.length = 0;
  }

  private destroyTransaction(conn: ServerConnection, trans: Transaction): void {
    for (const i of trans.accessed.values()) if (i.taNode) this.deleteKey(i.transName);
    trans.accessed.clear();
    const idx = conn.transactions.indexOf(trans);
    if (idx >= 0) conn.transactions.splice(idx, 1);
  }

  private deleteAllTransactions(conn: ServerConnection): void {
    for (const t of conn.transactions.slice()) this.destroyTransaction(conn, t);
    conn.transaction = null;
  }

  // ------------------------------------------------------------------------------------
  // Request handlers (wire_funcs)

  private doDirectory(conn: ServerConnection, req: Frame): void {
    const node = this.getNodeCanon(conn, onearg(req.payload), XS_PERM_READ).node;
    this.sendReply(conn, req, MessageType.DIRECTORY, childrenBuffer(node.children));
  }

  private doDirectoryPart(conn: ServerConnection, req: Frame): void {
    if (countStrings(req.payload) !== 2) throw new XsErrno('EINVAL');
    const strings = getStrings(req.payload);
    const node = this.getNodeCanon(conn, strings[0], XS_PERM_READ).node;
    const off = atou(strings[1]);
    const gen = Buffer.from(`${node.generation}\0`, 'latin1');
    const children = childrenBuffer(node.children);
    const childlen = children.length;
    if (off >= childlen) {
      this.sendReply(conn, req, MessageType.DIRECTORY_PART, Buffer.concat([gen, Buffer.from([0])]));
      return;
    }
    const maxlen = XENSTORE_PAYLOAD_MAX - gen.length - 1;
    let len = 0;
    for (;;) {
      const start = off + len;
      const nul = children.indexOf(0, start);
      const slen = nul - start;
      if (!(len + slen < maxlen)) break;
      len += slen + 1;
      if (off + len === childlen) break;
    }
    const parts = [gen, children.subarray(off, off + len)];
    if (off + len === childlen) parts.push(Buffer.from([0]));
    this.sendReply(conn, req, MessageType.DIRECTORY_PART, Buffer.concat(parts));
  }

  private doRead(conn: ServerConnection, req: Frame): void {
    const node = this.getNodeCanon(conn, onearg(req.payload), XS_PERM_READ).node;
    this.sendReply(conn, req, MessageType.READ, node.data);
  }

  private doGetPerms(conn: ServerConnection, req: Frame): void {
    const node = this.getNodeCanon(conn, onearg(req.payload), XS_PERM_READ).node;
    const strings = node.perms.map((p) => `${permLetter(p.perms)}${u32AsInt(p.id)}\0`).join('');
    this.sendReply(conn, req, MessageType.GET_PERMS, Buffer.from(strings, 'latin1'));
  }

  /** get_node_canonicalized() that throws the errno; the canonical name comes back too. */
  private getNodeCanon(conn: ServerConnection, name: string | null, perm: number): { node: Node; name: string } {
    const canon = name === null ? null : this.canonicalize(conn, name);
    const r = this.getNode(conn, canon, perm);
    if (isErr(r)) throw new XsErrno(r);
    return { node: r, name: canon! };
  }

  private doWrite(conn: ServerConnection, req: Frame): void {
    const nul = req.payload.indexOf(0);
    if (nul < 0) throw new XsErrno('EINVAL');
    const name = this.canonicalize(conn, req.payload.toString('latin1', 0, nul));
    const data = Buffer.from(req.payload.subarray(nul + 1));
    let node = this.getNode(conn, name, XS_PERM_WRITE);
    if (isErr(node)) {
      if (node !== 'ENOENT') throw new XsErrno(node);
      node = this.createNode(conn, name, data);
      if (isErr(node)) throw new XsErrno(node);
    } else {
      node.data = data;
      const r = this.writeNode(conn, node, false);
      if (r !== 0) throw new XsErrno(r);
    }
    this.fireWatches(conn, name, node, false, null);
    this.sendAck(conn, req, MessageType.WRITE);
  }

  private doMkdir(conn: ServerConnection, req: Frame): void {
    const arg = onearg(req.payload);
    const name = arg === null ? null : this.canonicalize(conn, arg);
    const node = this.getNode(conn, name, XS_PERM_WRITE);
    if (isErr(node)) {
      if (node !== 'ENOENT') throw new XsErrno(node);
      const created = this.createNode(conn, name!, Buffer.alloc(0));
      if (isErr(created)) throw new XsErrno(created);
      this.fireWatches(conn, name!, created, false, null);
    }
    this.sendAck(conn, req, MessageType.MKDIR);
  }

  private doRm(conn: ServerConnection, req: Frame): void {
    const arg = onearg(req.payload);
    const name = arg === null ? null : this.canonicalize(conn, arg);
    const node = this.getNode(conn, name, XS_PERM_WRITE);
    if (isErr(node)) {
      let err = node;
      if (err === 'ENOENT') {
        const parent = this.readNode(conn, getParent(name!));
        if (!isErr(parent)) {
          this.sendAck(conn, req, MessageType.RM);
          return;
        }
        if (!XenstoredCore.PROPAGATE.has(parent)) err = 'ENOENT';
        else err = parent;
      }
      throw new XsErrno(err);
    }
    if (name === '/') throw new XsErrno('EINVAL');
    const r = this.rmNode(conn, name!);
    if (r !== 0) throw new XsErrno(r);
    this.sendAck(conn, req, MessageType.RM);
  }

  /** xs_strings_to_perms(): "r5", "b0x10", "n-1"... (strtol with base 0, id truncated). */
  private parsePermStrings(strings: string[]): XsPerm[] {
    return strings.map((s) => {
      const letter = s[0];
      const bits = letter === 'r' ? XS_PERM_READ : letter === 'w' ? XS_PERM_WRITE : letter === 'b' ? XS_PERM_READ | XS_PERM_WRITE : letter === 'n' ? XS_PERM_NONE : -1;
      if (bits < 0) throw new XsErrno('EINVAL');
      const rest = s.slice(1);
      if (rest === '') throw new XsErrno('EINVAL');
      const { value, end } = strtol(rest, 0);
      if (end !== rest.length) throw new XsErrno('EINVAL');
      return { id: longToU32(value), perms: bits };
    });
  }

  private doSetPerms(conn: ServerConnection, req: Frame): void {
    let num = countStrings(req.payload);
    if (num < 2) throw new XsErrno('EINVAL');
    num--;
    if (this.isUnprivileged(conn) && num > this.quotas.permissions) throw new XsErrno('ENOSPC');
    const strings = getStrings(req.payload);
    const perms = this.parsePermStrings(strings.slice(1, 1 + num));
    this.allocPermrefs(perms);
    if (perms[0].perms & XS_PERM_IGNORE) throw new XsErrno('ENOENT');
    const path = strings[0];
    if (path.startsWith('@')) {
      const current = this.specialPerms.get(path);
      if (!current) throw new XsErrno('EINVAL');
      if ((this.permForConn(conn, current) & (XS_PERM_WRITE | XS_PERM_OWNER)) !== (XS_PERM_WRITE | XS_PERM_OWNER)) {
        throw new XsErrno('EACCES');
      }
      this.specialPerms.set(path, perms);
      this.sendAck(conn, req, MessageType.SET_PERMS);
      return;
    }
    const { node, name } = this.getNodeCanon(conn, path, XS_PERM_WRITE | XS_PERM_OWNER);
    if (this.isUnprivileged(conn) && perms[0].id !== node.perms[0].id) throw new XsErrno('EPERM');
    const oldPerms = node.perms;
    this.domainEntryDec(conn, node.perms);
    node.perms = perms;
    if (this.domainEntryInc(conn, node.perms) !== 0) {
      node.perms = oldPerms;
      this.domainEntryInc(conn, node.perms);
      throw new XsErrno('ENOMEM');
    }
    const r = this.writeNode(conn, node, false);
    if (r !== 0) {
      this.domainEntryDec(conn, node.perms);
      node.perms = oldPerms;
      this.domainEntryInc(conn, node.perms);
      throw new XsErrno(r);
    }
    this.fireWatches(conn, name, node, false, oldPerms);
    this.sendAck(conn, req, MessageType.SET_PERMS);
  }

  private doWatch(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    if (vec.length !== 2) throw new XsErrno('EINVAL');
    let path = vec[0];
    const token = vec[1];
    let relative: boolean;
    if (path.startsWith('@')) {
      relative = false;
      if (path.length > XENSTORE_REL_PATH_MAX) throw new XsErrno('EINVAL');
    } else {
      relative = !path.startsWith('/');
      path = this.canonicalize(conn, path);
      if (!this.isValidNodename(path)) throw new XsErrno('EINVAL');
    }
    if (conn.watches.some((w) => w.node === path && w.token === token)) throw new XsErrno('EEXIST');
    if (this.isUnprivileged(conn) && conn.domain!.nbwatch > this.quotas.watches) throw new XsErrno('E2BIG');
    const watch = new Watch(path, token, relative ? this.implicitPath(conn) : null);
    if (conn.domain) conn.domain.nbwatch++;
    conn.watches.push(watch);
    this.sendAck(conn, req, MessageType.WATCH);
    // "We fire once up front: simplifies clients and restart."
    this.sendEvent(conn, this.watchPath(watch, watch.node), watch.token);
  }

  private doUnwatch(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    if (vec.length !== 2) throw new XsErrno('EINVAL');
    const node = this.canonicalize(conn, vec[0]);
    const i = conn.watches.findIndex((w) => w.node === node && w.token === vec[1]);
    if (i < 0) throw new XsErrno('ENOENT');
    conn.watches.splice(i, 1);
    if (conn.domain && conn.domain.nbwatch > 0) conn.domain.nbwatch--;
    this.sendAck(conn, req, MessageType.UNWATCH);
  }

  private doTransactionStart(conn: ServerConnection, req: Frame): void {
    if (conn.transaction) throw new XsErrno('EBUSY');
    if (this.isUnprivileged(conn) && conn.transactions.length > this.quotas.transactions) throw new XsErrno('ENOSPC');
    const generation = ++this.generation;
    let id: number;
    for (;;) {
      id = conn.nextTransactionId;
      conn.nextTransactionId = (conn.nextTransactionId + 1) >>> 0;
      // transaction_lookup(0) is "no transaction", not "unknown": 0 is never handed out.
      if (id !== 0 && !conn.transactions.some((t) => t.id === id)) break;
    }
    conn.transactions.push(new Transaction(id, generation));
    this.sendReply(conn, req, MessageType.TRANSACTION_START, Buffer.from(`${id}\0`, 'latin1'));
  }

  private transactionFixDomains(trans: Transaction, chkQuota: boolean, update: boolean): Errno | 0 {
    for (const [domid, n] of trans.changedDomains) {
      const cnt = this.domainEntryFix(domid, n, update);
      if (!update) {
        if (chkQuota && cnt >= this.quotas.nodes) return 'ENOSPC';
        if (cnt < 0) return 'ENOMEM';
      }
    }
    return 0;
  }

  /** finalize_transaction(): EAGAIN if anything read changed, else publish and fire. */
  private finalizeTransaction(conn: ServerConnection, trans: Transaction): Errno | 0 {
    for (const i of [...trans.accessed.values()]) {
      if (i.checkGen) {
        const rec = this.db.get(i.node);
        const gen = rec ? rec.generation : NO_GENERATION;
        if (i.generation !== gen) return 'EAGAIN';
      }
      if (!i.modified) {
        if (i.taNode) this.deleteKey(i.transName);
        trans.accessed.delete(i.node);
      }
    }
    for (const i of [...trans.accessed.values()]) {
      if (i.taNode) {
        const rec = this.db.get(i.transName);
        if (rec) {
          this.db.set(i.node, { ...rec, generation: ++this.generation });
          this.deleteKey(i.transName);
        }
      } else if (i.generation !== NO_GENERATION) {
        this.deleteKey(i.node);
      }
      if (i.fireWatch) this.fireWatches(conn, i.node, null, i.watchExact, i.perms);
      trans.accessed.delete(i.node);
    }
    this.changed = true;
    return 0;
  }

  private doTransactionEnd(conn: ServerConnection, req: Frame): void {
    const arg = onearg(req.payload);
    if (arg === null || (arg !== 'T' && arg !== 'F')) throw new XsErrno('EINVAL');
    const trans = conn.transaction;
    if (!trans) throw new XsErrno('ENOENT');
    conn.transaction = null;
    const chkQuota = trans.nodeCreated && this.isUnprivileged(conn);
    try {
      if (arg === 'T') {
        if (trans.fail) throw new XsErrno('ENOMEM');
        const q = this.transactionFixDomains(trans, chkQuota, false);
        if (q !== 0) throw new XsErrno(q);
        if (this.injectCommitFailure?.()) throw new XsErrno('EAGAIN');
        const r = this.finalizeTransaction(conn, trans);
        if (r !== 0) throw new XsErrno(r);
        this.transactionFixDomains(trans, false, true);
      }
      this.sendAck(conn, req, MessageType.TRANSACTION_END);
    } finally {
      this.destroyTransaction(conn, trans);
    }
  }

  private doGetDomainPath(conn: ServerConnection, req: Frame): void {
    const arg = onearg(req.payload);
    if (arg === null) throw new XsErrno('EINVAL');
    this.sendReply(conn, req, MessageType.GET_DOMAIN_PATH, Buffer.from(`/local/domain/${atou(arg)}\0`, 'latin1'));
  }

  private doIsDomainIntroduced(conn: ServerConnection, req: Frame): void {
    const arg = onearg(req.payload);
    if (arg === null) throw new XsErrno('EINVAL');
    const domid = atou(arg);
    const d = this.domains.get(domid);
    const result = domid === DOMID_SELF || (d !== undefined && d.introduced);
    this.sendReply(conn, req, MessageType.IS_DOMAIN_INTRODUCED, Buffer.from(result ? 'T\0' : 'F\0', 'latin1'));
  }

  /** introduce_domain(): `null` when the domain's ring cannot be mapped (no such domain). */
  introduceDomain(domid: number): Domain | null {
    let d = this.domains.get(domid);
    let allocated = false;
    if (!d) {
      d = this.allocDomain(domid);
      allocated = true;
    }
    if (!d.introduced) {
      if (!this.domainExists(domid) || domid === 0) {
        // The struct allocated for this request is freed with it (talloc context).
        if (allocated) this.domains.delete(domid);
        return null;
      }
      d.introduced = true;
      d.shutdown = false;
      d.ring = this.newRing(d);
      this.fireWatches(null, '@introduceDomain', null, true, null);
      this.onDomain?.(domid, 'introduced');
    }
    return d;
  }

  private doIntroduce(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    if (vec.length < 3) throw new XsErrno('EINVAL');
    const domid = atou(vec[0]);
    const port = atou(vec[2]);
    if (port === 0) throw new XsErrno('EINVAL');
    const d = this.introduceDomain(domid);
    if (!d) throw new XsErrno('EINVAL');
    d.port = port;
    // domain_conn_reset(): the domain's own connection loses its watches and transactions.
    for (const c of [...(d.ring ? [d.ring] : []), ...d.conns]) {
      this.deleteAllWatches(c);
      this.deleteAllTransactions(c);
    }
    this.sendAck(conn, req, MessageType.INTRODUCE);
  }

  private findConnectedDomain(domid: number): Domain {
    const d = this.domains.get(domid);
    if (!d || !d.introduced) throw new XsErrno('ENOENT');
    return d;
  }

  private onearDomain(req: Frame): Domain {
    const arg = onearg(req.payload);
    if (arg === null) throw new XsErrno('EINVAL');
    const domid = atou(arg);
    if (domid === 0) throw new XsErrno('EINVAL');
    return this.findConnectedDomain(domid);
  }

  private doRelease(conn: ServerConnection, req: Frame): void {
    const d = this.onearDomain(req);
    // xenstored's main loop holds a reference on the connection after the one it is serving:
    // when that is the domain's ring, talloc_free() only drops that reference and the domain
    // goes (nodes removed, @releaseDomain fired) after this reply, in the same loop pass.
    const next = this.connections[this.connections.indexOf(conn) + 1];
    if (next !== undefined && next === d.ring) {
      this.afterReply.push(() => this.freeDomainConn(d));
    } else {
      this.freeDomainConn(d);
    }
    this.sendAck(conn, req, MessageType.RELEASE);
  }

  /** talloc_free(domain->conn): a SET_TARGET reference on it absorbs the free. */
  private freeDomainConn(d: Domain): void {
    if (d.referencedBy.length > 0) d.referencedBy.pop();
    else this.releaseDomain(d);
  }

  /**
   * The domain's connection goes away, its nodes are deleted (domain_tree_remove), it is
   * dropped from the special watches' permissions, and @releaseDomain fires.
   */
  releaseDomain(d: Domain): void {
    if (d.ring) this.closeConnection(d.ring);
    d.ring = null;
    for (const c of [...d.conns]) this.dropConnection(c);
    // Its connection's references on its targets go with it.
    for (const other of this.domains.values()) {
      for (let i = other.referencedBy.indexOf(d.domid); i >= 0; i = other.referencedBy.indexOf(d.domid)) other.referencedBy.splice(i, 1);
    }
    if (d.nbentry > 0) {
      this.walkNodeTree(null, '/', {
        enter: (_c, node) => {
          if (node.perms[0].id !== d.domid) return WALK_TREE_OK;
          this.rmNode(null, node.name);
          return d.nbentry > 0 ? WALK_TREE_SKIP_CHILDREN : WALK_TREE_SUCCESS_STOP;
        },
      });
    }
    for (const name of ['@releaseDomain', '@introduceDomain']) {
      const perms = this.specialPerms.get(name)!;
      const kept = perms.filter((p, i) => i === 0 || p.id !== d.domid).map((p) => ({ ...p }));
      if (kept[0].id === d.domid) kept[0].id = 0;
      this.specialPerms.set(name, kept);
    }
    this.domains.delete(d.domid);
    if (d.introduced) {
      this.fireWatches(null, '@releaseDomain', null, true, null);
      this.onDomain?.(d.domid, 'released');
    }
    this.changed = true;
  }

  private doResume(conn: ServerConnection, req: Frame): void {
    const d = this.onearDomain(req);
    d.shutdown = false;
    this.sendAck(conn, req, MessageType.RESUME);
  }

  private doSetTarget(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    if (vec.length < 2) throw new XsErrno('EINVAL');
    const d = this.findConnectedDomain(atou(vec[0]));
    const t = this.findConnectedDomain(atou(vec[1]));
    d.target = t.domid;
    t.referencedBy.push(d.domid);
    this.sendAck(conn, req, MessageType.SET_TARGET);
  }

  private doResetWatches(conn: ServerConnection, req: Frame): void {
    this.deleteAllWatches(conn);
    this.deleteAllTransactions(conn);
    this.sendAck(conn, req, MessageType.RESET_WATCHES);
  }

  private doControl(conn: ServerConnection, req: Frame): void {
    if (req.payload.indexOf(0) < 0) throw new XsErrno('EINVAL');
    const cmdName = firstString(req.payload);
    const cmd = CONTROL_COMMANDS.find((c) => c.cmd === cmdName);
    if (!cmd) throw new XsErrno('EINVAL');
    let num = countStrings(req.payload);
    if (cmd.maxPars) num = Math.min(num, cmd.maxPars);
    const args = getStrings(req.payload).slice(1, num);
    const reply = (text: string) => this.sendReply(conn, req, MessageType.CONTROL, Buffer.from(text + '\0', 'latin1'));
    const ack = () => this.sendAck(conn, req, MessageType.CONTROL);
    switch (cmd.cmd) {
      case 'check':
        if (args.length) throw new XsErrno('EINVAL');
        return ack();
      case 'log':
        if (args.length !== 1 || (args[0] !== 'on' && args[0] !== 'off')) throw new XsErrno('EINVAL');
        return ack();
      case 'logfile':
      case 'print':
        if (args.length !== 1) throw new XsErrno('EINVAL');
        if (cmd.cmd === 'print') this.trace?.(`control: ${args[0]}`);
        return ack();
      case 'memreport':
        if (args.length > 1) throw new XsErrno('EINVAL');
        return ack();
      case 'live-update':
        // No live update in a process that keeps its tree in memory anyway.
        throw new XsErrno('ENOSYS');
      case 'help':
        if (args.length) throw new XsErrno('EINVAL');
        return reply(CONTROL_COMMANDS.map((c) => `${c.cmd}\t${c.pars}\n`).join(''));
      case 'quota':
      case 'quota-soft': {
        const table = cmd.cmd === 'quota' ? this.hardQuotaTable() : this.softQuotaTable();
        if (args.length === 0) {
          return reply('Quota settings:\n' + table.map((q) => `${q.name.padEnd(17)}: ${String(q.get()).padStart(8)} ${q.descr}\n`).join(''));
        }
        if (args[0] === 'set') {
          if (args.length !== 3) throw new XsErrno('EINVAL');
          const val = Number(BigInt.asIntN(32, strtol(args[2], 10).value));
          if (val < 1) throw new XsErrno('EINVAL');
          const q = table.find((x) => x.name === args[1]);
          if (!q) throw new XsErrno('EINVAL');
          q.set(val);
          return ack();
        }
        if (cmd.cmd === 'quota-soft' || args.length !== 1) throw new XsErrno('EINVAL');
        const d = this.domains.get(atou(args[0]));
        if (!d) throw new XsErrno('ENOENT');
        const ta = [...d.conns].reduce((n, c) => n + c.transactions.length, 0);
        const ent = (k: string, v: number) => `${k.padEnd(16)}: ${String(v).padStart(8)}\n`;
        return reply(`Domain ${d.domid}:\n${ent('nodes', d.nbentry)}${ent('watches', d.nbwatch)}${ent('transactions', ta)}${ent('outstanding', 0)}${ent('memory', 0)}`);
      }
    }
  }

  private hardQuotaTable(): QuotaRow[] {
    const q = this.quotas;
    const row = (name: string, key: keyof Quotas, descr: string): QuotaRow => ({ name, descr, get: () => q[key], set: (v) => (q[key] = v) });
    return [
      row('nodes', 'nodes', 'Nodes per domain'),
      row('watches', 'watches', 'Watches per domain'),
      row('transactions', 'transactions', 'Transactions per domain'),
      row('outstanding', 'outstanding', 'Outstanding requests per domain'),
      row('transaction-nodes', 'transactionNodes', 'Max. number of accessed nodes per transaction'),
      row('memory', 'memory', 'Total Xenstore memory per domain (error level)'),
      row('node-size', 'nodeSize', 'Max. size of a node'),
      row('path-max', 'pathMax', 'Max. length of a node path'),
      row('permissions', 'permissions', 'Max. number of permissions per node'),
    ];
  }

  private softQuotaTable(): QuotaRow[] {
    const q = this.quotas;
    return [{ name: 'memory', descr: 'Total Xenstore memory per domain (warning level)', get: () => q.memorySoft, set: (v) => (q.memorySoft = v) }];
  }

  // ------------------------------------------------------------------------------------
  // Whole-tree access, for persistence and tests (global nodes only)

  /** The global tree, without transaction copies. */
  snapshot(): { generation: number; nodes: [string, StoredNode][] } {
    const nodes: [string, StoredNode][] = [];
    for (const [k, v] of this.db) if (k.startsWith('/')) nodes.push([k, v]);
    return { generation: this.generation, nodes };
  }

  /** Replace the tree (on start with --persist). Domain node counts are recomputed. */
  restore(snap: { generation: number; nodes: [string, StoredNode][] }): void {
    this.db.clear();
    for (const d of this.domains.values()) d.nbentry = 0;
    for (const [k, v] of snap.nodes) {
      this.db.set(k, v);
      const owner = v.perms[0]?.id ?? 0;
      const d = this.findOrAllocExistingDomain(owner);
      if (d) d.nbentry++;
    }
    this.generation = snap.generation;
  }
}

interface QuotaRow {
  name: string;
  descr: string;
  get(): number;
  set(v: number): void;
}

function permLetter(bits: number): string {
  switch (bits & ~XS_PERM_IGNORE) {
    case XS_PERM_WRITE:
      return 'w';
    case XS_PERM_READ:
      return 'r';
    case XS_PERM_READ | XS_PERM_WRITE:
      return 'b';
    default:
      return 'n';
  }
}

/** xenstored_control.c's command table (names, parameter help, max parameters). */
const CONTROL_COMMANDS: { cmd: string; pars: string; maxPars?: number }[] = [
  { cmd: 'check', pars: '' },
  { cmd: 'log', pars: 'on|off' },
  { cmd: 'live-update', pars: '[-c <cmdline>] [-F] [-t <timeout>] <file>\n    Default timeout is 60 seconds.', maxPars: 5 },
  { cmd: 'logfile', pars: '<file>' },
  { cmd: 'memreport', pars: '[<file>]' },
  { cmd: 'print', pars: '<string>' },
  { cmd: 'quota', pars: '[set <name> <val>|<domid>]' },
  { cmd: 'quota-soft', pars: '[set <name> <val>]' },
  { cmd: 'help', pars: '' },
];

interface WireSpec {
  fn: (this: XenstoredCore, conn: ServerConnection, req: Frame) => void;
  /** XS_FLAG_PRIV: privileged connections only. */
  priv?: boolean;
  /** XS_FLAG_NOTID: the tx_id field is ignored. */
  notid?: boolean;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
const P = XenstoredCore.prototype as any;
/** wire_funcs[] of xenstored_core.c: types without an entry get ENOSYS. */
const WIRE: Partial<Record<number, WireSpec>> = {
  [MessageType.CONTROL]: { fn: P.doControl, priv: true },
  [MessageType.DIRECTORY]: { fn: P.doDirectory },
  [MessageType.READ]: { fn: P.doRead },
  [MessageType.GET_PERMS]: { fn: P.doGetPerms },
  [MessageType.WATCH]: { fn: P.doWatch, notid: true },
  [MessageType.UNWATCH]: { fn: P.doUnwatch, notid: true },
  [MessageType.TRANSACTION_START]: { fn: P.doTransactionStart },
  [MessageType.TRANSACTION_END]: { fn: P.doTransactionEnd },
  [MessageType.INTRODUCE]: { fn: P.doIntroduce, priv: true },
  [MessageType.RELEASE]: { fn: P.doRelease, priv: true },
  [MessageType.GET_DOMAIN_PATH]: { fn: P.doGetDomainPath },
  [MessageType.WRITE]: { fn: P.doWrite },
  [MessageType.MKDIR]: { fn: P.doMkdir },
  [MessageType.RM]: { fn: P.doRm },
  [MessageType.SET_PERMS]: { fn: P.doSetPerms },
  [MessageType.IS_DOMAIN_INTRODUCED]: { fn: P.doIsDomainIntroduced, priv: true },
  [MessageType.RESUME]: { fn: P.doResume, priv: true },
  [MessageType.SET_TARGET]: { fn: P.doSetTarget, priv: true },
  [MessageType.RESET_WATCHES]: { fn: P.doResetWatches },
  [MessageType.DIRECTORY_PART]: { fn: P.doDirectoryPart },
};

const WIRE_NAMES: Record<number, string> = {
  0: 'CONTROL', 1: 'DIRECTORY', 2: 'READ', 3: 'GET_PERMS', 4: 'WATCH', 5: 'UNWATCH', 6: 'TRANSACTION_START',
  7: 'TRANSACTION_END', 8: 'INTRODUCE', 9: 'RELEASE', 10: 'GET_DOMAIN_PATH', 11: 'WRITE', 12: 'MKDIR', 13: 'RM',
  14: 'SET_PERMS', 15: 'WATCH_EVENT', 16: 'ERROR', 17: 'IS_DOMAIN_INTRODUCED', 18: 'RESUME', 19: 'SET_TARGET',
  21: 'RESET_WATCHES', 22: 'DIRECTORY_PART',
};

export { XsErrno };
