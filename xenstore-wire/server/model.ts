/**
 * The vocabulary every room of the in-memory xenstored shares: permission bits, quotas, the
 * records of the database, domains, connections and transactions, errno values, and the path
 * helpers of xenstored_core.c. No behaviour beyond small pure helpers lives here.
 */
import type { Frame } from '../codec';
import { XENSTORE_REL_PATH_MAX } from '../constants';
import { DOMID_SELF } from '../../lib/vocabulary';

export { DOMID_SELF };

// xenstore_lib.h permission bits.
export const XS_PERM_NONE = 0x00;
export const XS_PERM_READ = 0x01;
export const XS_PERM_WRITE = 0x02;
export const XS_PERM_OWNER = 0x08;
export const XS_PERM_IGNORE = 0x10;

/** xenstored_core.h NO_GENERATION (~0ULL): a node that does not exist. */
export const NO_GENERATION = -1;

/** Size of `struct xs_tdb_record_hdr` and of one `struct xs_permissions` (node-size quota). */
export const RECORD_HEADER_SIZE = 24;
export const PERM_RECORD_SIZE = 8;
/** Size of `struct node_hdr` (4.18+, tools/xenstored/core.h:185-191 at RELEASE-4.20.4). */
export const NODE_HDR_SIZE = 16;

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
  /**
   * Requests per unprivileged domain whose replies are not written yet (-Q): the domain's
   * connections are not read while it has this many (domain_can_read()).
   */
  outstanding: number;
  /**
   * Bytes of queued output (replies and watch events, payload + 16-byte header) per
   * unprivileged domain (-M hard memory quota): events beyond it are dropped, longer replies
   * answer ENOMEM, and the domain's connections are not read while it is reached.
   */
  memory: number;
  /** Warning level only (logged by C xenstored); reported by CONTROL quota-soft. */
  memorySoft: number;
  /**
   * Milliseconds an unprivileged domain's watch event may wait unwritten before it is
   * discarded (C xenstored `--timeout watch-event`, 20 s); 0 disables.
   */
  watchEventTimeoutMs: number;
  /**
   * Ours, not C's: bytes of output (payload + header) queued on one privileged connection
   * that is not reading its socket, beyond which the daemon drops that connection. C
   * xenstored queues without limit for privileged connections (see docs/server-differences.md).
   */
  privilegedOutput: number;
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
  watchEventTimeoutMs: 20_000,
  privilegedOutput: 1024 * 1024,
};

/**
 * Ours: a connection whose own queued output reaches this many bytes is not read until it
 * drains, so a client that pipelines requests without reading replies queues at most this
 * much (plus one reply). Unprivileged domains stop earlier, at C's outstanding quota.
 */
export const READ_PAUSE_BYTES = 64 * 1024;

/** xenstored_core.h DEFAULT_BUFFER_SIZE: replies up to this size skip the memory quota check. */
export const DEFAULT_BUFFER_SIZE = 16;

/**
 * A reply or error on a connection's output queue (a struct buffered_data on conn->out_list).
 * Watch events are queued as their payload alone, a latin1 string: a queue of them then costs
 * about what C's does per event, where an object and a Buffer each would cost several times
 * more.
 */
export interface QueuedReply {
  readonly type: number;
  readonly reqId: number;
  readonly txId: number;
  readonly payload: Buffer;
}

/** An entry of the output queue: a reply, or a watch event's payload. */
export type Queued = QueuedReply | string;

/** A record of the database. Arrays and buffers are never mutated in place (copy on write). */
export interface StoredNode {
  generation: number;
  perms: readonly XsPerm[];
  data: Buffer;
  children: readonly string[];
}

/** A node read from the database, with the walk state the daemon keeps on it. */
export class Node {
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

export class Watch {
  constructor(
    public node: string,
    public token: string,
    /** The connection's home path when the watch was given relative to it. */
    public relativePath: string | null,
    /**
     * Xen 4.22 watch depth: directory levels below `node` that still match (null: any).
     * For `@` watches, depth 1 reports `@<name>/<domid>`.
     */
    public depth: number | null = null,
  ) {}
}

export class AccessedNode {
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
  /** Bytes of output queued on its connections (domain->memory's share for buffered data). */
  memory = 0;
  /** Requests whose replies are queued and not written yet (domain->nboutstanding). */
  outstanding = 0;
  /** Xen 4.21+ ring feature bits (GET_FEATURE/SET_FEATURE): the release's, from allocation on. */
  features = 0;
  /**
   * Xen 4.22: the domain's own quota values, copied from the global ones when its struct is
   * allocated (SET_QUOTA with a domid changes them); empty before 4.22 (the global ones apply).
   */
  readonly quotas: Partial<Record<keyof Quotas, number>> = {};
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
  /**
   * 4.20 (release.ts accountingPerRequest): node-count changes of the request being processed,
   * domid -> change (conn->acc_list), committed with its reply and dropped with an error.
   */
  readonly accList = new Map<number, number>();
  /**
   * Frames queued and not yet accepted by the transport (conn->out_list). They leave when
   * the sink takes them; while the sink is backed up they wait here (see output.ts).
   */
  out: Queued[] = [];
  /** Bytes (payload + header) of the frames in `out`. */
  outBytes = 0;
  /**
   * Unprivileged connections: when each queued watch event expires (Date.now() ms), in
   * queue order from `deadlineHead` on (events leave in the order they were queued).
   */
  eventDeadlines: number[] = [];
  deadlineHead = 0;
  /** Watch event payloads in `out` (latin1), for the duplicate check of send_event(). */
  readonly pendingEvents = new Set<string>();
  /** Messages received, for the drop-after-N fault. */
  received = 0;
  closed = false;
  /** Set by the transport: false while its writes are backed up (the socket is not draining). */
  writable = true;

  constructor(
    /** conn->id: 0 for the socket, the domid for a domain's connection. */
    public readonly id: number,
    public readonly domain: Domain | null,
    /**
     * Where whole frames go; the transport layer encodes and writes them. It returns false
     * when its writes are backed up: the daemon then keeps further output queued until the
     * transport calls XenstoredCore.drained(conn).
     */
    public readonly sink: (frames: Frame[]) => boolean | void,
    /** Called when the daemon drops the connection (bad frame, release, fault). */
    public readonly onClose: () => void,
  ) {}
}

/** Thrown inside request handlers with an errno name; becomes an ERROR reply. */
export class XsErrno {
  constructor(public readonly code: string) {}
}

export type Errno = string;
export type ReadResult = Node | Errno;

export function isErr<T>(r: T | Errno): r is Errno {
  return typeof r === 'string';
}

/** The hypervisor as xenstored sees it: which domains exist. */
export interface DomainOracle {
  exists(domid: number): boolean;
}

/** Node access kinds of access_node(). */
export enum Access {
  READ,
  WRITE,
  DELETE,
}

export const VALID_CHARS = /^[A-Za-z0-9\-/_@]*$/;

/** get_parent(): "/a/b" -> "/a", "/a" -> "/". */
export function getParent(name: string): string {
  const slash = name.lastIndexOf('/');
  return slash > 0 ? name.slice(0, slash) : '/';
}

export function basename(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

export function childName(parent: string, child: string): string {
  return parent === '/' ? `/${child}` : `${parent}/${child}`;
}

/** Is `child` the node `parent` or below it? ("/" contains everything.) */
export function isChild(child: string, parent: string): boolean {
  if (parent === '/') return true;
  if (!child.startsWith(parent)) return false;
  return child.length === parent.length || child[parent.length] === '/';
}

export function childrenBytes(children: readonly string[]): number {
  let n = 0;
  for (const c of children) n += c.length + 1;
  return n;
}

export function childrenBuffer(children: readonly string[]): Buffer {
  // One string built, not one per child (DIRECTORY is a third of a listing's requests).
  return children.length === 0 ? Buffer.alloc(0) : Buffer.from(children.join('\0') + '\0', 'latin1');
}

export const OK_PAYLOAD = Buffer.from('OK\0', 'latin1');

/** A privileged connection is dom0's (the socket, or a domain-0 stream); guests are not. */
export function isUnprivileged(conn: ServerConnection | null): boolean {
  return conn !== null && conn.domain !== null && conn.domain.domid !== 0;
}
