/**
 * The database and the rules of node access (xenstored_core.c: read_node, write_node_raw,
 * access_node, get_node, ask_parents, errno_from_parents, construct_node, create_node,
 * walk_node_tree, rm_node; perm_for_conn, is_valid_nodename, canonicalize).
 *
 * One key/value map with the node name as key and transaction-private copies under
 * "<transaction generation>/<name>", exactly as xenstored's TDB layout; one global generation
 * counter bumped on every modifying node access, copied into nodes and transactions.
 */
import {
  Access,
  AccessedNode,
  basename,
  childName,
  childrenBytes,
  Errno,
  getParent,
  isErr,
  isUnprivileged,
  NO_GENERATION,
  Node,
  PERM_RECORD_SIZE,
  ReadResult,
  NODE_HDR_SIZE,
  RECORD_HEADER_SIZE,
  ServerConnection,
  StoredNode,
  VALID_CHARS,
  XS_PERM_IGNORE,
  XS_PERM_NONE,
  XS_PERM_OWNER,
  XS_PERM_READ,
  XS_PERM_WRITE,
  XsPerm,
} from './model';
import type { Rooms } from './rooms';

const WALK_TREE_SUCCESS_STOP = -100;
const WALK_TREE_ERROR_STOP = -1;
export const WALK_TREE_OK = 0;
export const WALK_TREE_SKIP_CHILDREN = 1;
const WALK_TREE_RM_CHILDENTRY = 2;
export { WALK_TREE_SUCCESS_STOP };

interface WalkFuncs {
  enter?: (conn: ServerConnection | null, node: Node) => number;
  exit?: (conn: ServerConnection | null, node: Node) => number;
}

/** The special nodes, in the order setup_structure() creates them (4.20). */
export const SPECIAL_NODES = ['@releaseDomain', '@introduceDomain'] as const;

/** Errors that pass through the permission masking unchanged. */
export const PROPAGATE: ReadonlySet<string> = new Set(['ENOMEM', 'ENOSPC']);

export class Database {
  /** The database: global nodes by name, transaction copies by "<gen>/<name>". */
  readonly db = new Map<string, StoredNode>();
  generation = 0;
  /**
   * Global node names written or deleted since the last takeChanges() (transaction copies,
   * whose keys do not start with "/", are private and never journaled).
   */
  private readonly changedNames = new Set<string>();
  /** errno left behind by a stopped walk (rm_node() returns it). */
  private walkErrno: Errno = 'EIO';

  constructor(private readonly r: Rooms) {}

  /**
   * setup_structure(): "/", "/tool", "/tool/xenstored", owned by dom0; from 4.20 also the
   * special nodes "@releaseDomain" and "@introduceDomain" (no parent, no children).
   */
  init(): void {
    const perms = [{ id: 0, perms: XS_PERM_NONE }];
    this.manualNode('/', ['tool'], perms);
    this.manualNode('/tool', ['xenstored'], perms);
    this.manualNode('/tool/xenstored', [], perms);
    if (this.r.state.release.specialNodesInDatabase) for (const name of SPECIAL_NODES) this.manualNode(name, [], perms);
  }

  private manualNode(name: string, children: string[], perms: XsPerm[]): void {
    const node = new Node(name, 0, perms, Buffer.alloc(0), children);
    const r = this.writeNode(null, node, false);
    if (r !== 0) throw new Error(`cannot create ${name}: ${r}`);
  }

  // ------------------------------------------------------------------------------------
  // Permissions and paths

  /** perm_for_conn(): what this connection may do with a node of these permissions. */
  permForConn(conn: ServerConnection | null, perms: readonly XsPerm[]): number {
    const mask = XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER;
    const target = conn?.domain?.target ?? null;
    if (!isUnprivileged(conn) || perms[0].id === conn!.id || (target !== null && perms[0].id === target)) return mask;
    for (let i = 1; i < perms.length; i++) {
      const p = perms[i];
      if (!(p.perms & XS_PERM_IGNORE) && (p.id === conn!.id || (target !== null && p.id === target))) return p.perms & mask;
    }
    return perms[0].perms & mask;
  }

  /**
   * is_valid_nodename() (4.17) / the checks of canonicalize() (4.20): absolute, no "//", no
   * trailing "/", path-max beyond /local/domain/N/ (from 4.20 for unprivileged connections only:
   * pass the connection asking). From 4.20 an `@` name passes the same checks where the request
   * allows special nodes (`allowSpecial`: GET_PERMS, SET_PERMS, WATCH, UNWATCH).
   */
  isValidNodename(node: string, conn?: ServerConnection, allowSpecial = false): boolean {
    const special = allowSpecial && node.startsWith('@') && this.r.state.release.specialNodesInDatabase;
    if (!special && !node.startsWith('/')) return false;
    if (node.endsWith('/') && node !== '/') return false;
    if (node.includes('//')) return false;
    const pathMax = this.r.state.quotas.pathMax;
    // Only a name longer than path-max needs its /local/domain/N/ prefix measured (the prefix
    // only adds to the allowance): the regular expression is skipped for every other request.
    if (node.length > pathMax) {
      let localOff = 0;
      // sscanf("/local/domain/%5u/%n"): up to five characters of (signed) number, then '/'.
      const m = /^\/local\/domain\/([+-]?\d+)\//.exec(node);
      if (m && m[1].length <= 5) localOff = m[0].length;
      const exempt = this.r.state.release.privilegedPathUnlimited && conn !== undefined && !isUnprivileged(conn);
      if (!exempt && node.length > localOff + pathMax) return false;
    }
    return VALID_CHARS.test(node);
  }

  implicitPath(conn: ServerConnection): string {
    return conn.domain ? conn.domain.path : '/local/domain/0';
  }

  canonicalize(conn: ServerConnection, node: string): string {
    if (node.startsWith('/') || node.startsWith('@')) return node;
    return `${this.implicitPath(conn)}/${node}`;
  }

  /** ACL entries older than their domain are ignored (domain_adjust_node_perms). */
  private adjustNodePerms(node: Node): void {
    let copy: XsPerm[] | null = null;
    for (let i = 1; i < node.perms.length; i++) {
      const p = node.perms[i];
      if (p.perms & XS_PERM_IGNORE) continue;
      const d = this.r.domains.domains.get(p.id);
      if (!(d && d.generation <= node.generation)) {
        copy ??= node.perms.map((x) => ({ ...x }));
        copy[i].perms |= XS_PERM_IGNORE;
      }
    }
    if (copy) node.perms = copy;
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
      if (trans.nodes >= this.r.state.quotas.transactionNodes && isUnprivileged(conn)) {
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
  readNode(conn: ServerConnection | null, name: string): ReadResult {
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
    if (!noQuotaCheck && isUnprivileged(conn)) {
      // The record's size as the release counts it (release.ts nodeSizeHdr).
      const rel = this.r.state.release;
      const size = (rel.nodeSizeHdr ? NODE_HDR_SIZE : RECORD_HEADER_SIZE) + node.perms.length * PERM_RECORD_SIZE + node.data.length + childrenBytes(node.children);
      const quota = this.r.domains.quota(conn!, 'nodeSize');
      if (rel.nodeSizeHdr && !rel.quotaCountsNext ? size > quota : size >= quota) return 'ENOSPC';
    }
    this.put(key, { generation: node.generation, perms: node.perms, data: node.data, children: node.children });
    return 0;
  }

  /** Store a record (every write of the database goes through here or deleteKey). */
  put(key: string, rec: StoredNode): void {
    this.db.set(key, rec);
    if (key.startsWith('/')) this.changedNames.add(key);
    else if (key.startsWith('@')) this.r.watches.markSpecialChanged();
    this.r.state.changed = true;
  }

  writeNode(conn: ServerConnection | null, node: Node, noQuotaCheck: boolean): Errno | 0 {
    const k = this.accessNode(conn, node, Access.WRITE);
    if (typeof k === 'object') return k.err;
    if (k === -1) return 'EIO'; // not reachable for writes
    node.key = k;
    const r = this.writeNodeRaw(conn, k, node, noQuotaCheck);
    if (r !== 0 && conn && conn.transaction) conn.transaction.fail = true;
    return r;
  }

  deleteKey(key: string): boolean {
    this.r.state.changed = true;
    if (key.startsWith('/')) this.changedNames.add(key);
    return this.db.delete(key);
  }

  /** The global records changed since the last call (null: deleted), for the journal. */
  takeChanges(): Map<string, StoredNode | null> | null {
    if (this.changedNames.size === 0) return null;
    const out = new Map<string, StoredNode | null>();
    for (const k of this.changedNames) out.set(k, this.db.get(k) ?? null);
    this.changedNames.clear();
    return out;
  }

  /** ask_parents(): the access the nearest existing ancestor grants. */
  private askParents(conn: ServerConnection, name: string): { perm: number } | Errno {
    let node: ReadResult = 'ENOENT';
    do {
      name = getParent(name);
      node = this.readNode(conn, name);
      if (!isErr(node)) break;
      if (PROPAGATE.has(node)) return node;
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

  /**
   * get_node(): read with a permission check, errors masked by the parents' permissions.
   * `allowSpecial`: 4.20's canonicalize(..., allow_special) for GET_PERMS and SET_PERMS.
   */
  getNode(conn: ServerConnection, name: string | null, perm: number, allowSpecial = false): ReadResult {
    if (name === null || !this.isValidNodename(name, conn, allowSpecial)) return 'EINVAL';
    let r = this.readNode(conn, name);
    if (!isErr(r) && (this.permForConn(conn, r.perms) & perm) !== perm) r = 'EACCES';
    if (isErr(r) && !PROPAGATE.has(r)) r = this.errnoFromParents(conn, name, r, perm);
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
      if (isUnprivileged(conn)) perms[0].id = conn.id;
      node = new Node(nm, 0, perms, Buffer.alloc(0), []);
      node.parent = parent;
      parent = node;
    }
    return node;
  }

  /** create_node(): write the new nodes bottom-up, undoing them if one fails. */
  createNode(conn: ServerConnection, name: string, data: Buffer): Node | Errno {
    const node = this.constructNode(conn, name);
    if (isErr(node)) return node;
    if (conn.transaction) conn.transaction.nodeCreated = true;
    node.data = data;
    const domains = this.r.domains;
    let ret: Errno | 0 = 0;
    let i: Node | null = node;
    for (; i; i = i.parent) {
      if (i.parent && domains.domainEntry(conn) + (this.r.state.release.quotaCountsNext && isUnprivileged(conn) ? 1 : 0) >= domains.quota(conn, 'nodes')) {
        ret = 'ENOSPC';
        break;
      }
      ret = this.writeNode(conn, i, false);
      if (ret !== 0) break;
      if (i.parent) {
        if (domains.domainEntryInc(conn, i.perms) !== 0) {
          this.deleteKey(i.key);
          return 'ENOMEM';
        }
      }
    }
    if (ret === 0) return node;
    for (let j: Node | null = node; j && j !== i; j = j.parent) {
      // destroy_node(): undo, and a transaction can no longer be committed.
      this.deleteKey(j.key);
      domains.domainEntryDec(conn, j.perms);
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
  walkNodeTree(conn: ServerConnection | null, root: string, funcs: WalkFuncs): number {
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

  /** rm_node(): delete a subtree, firing watches for every node, then unlink it. */
  rmNode(conn: ServerConnection | null, name: string): Errno | 0 {
    const parent = this.readNode(conn, getParent(name));
    if (isErr(parent)) return PROPAGATE.has(parent) ? parent : 'EINVAL';
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
    if (this.r.state.release.accountingPerRequest) {
      // 4.20 delnode_sub(): the owner's count first (it can fail), then delete and fire.
      if (this.r.domains.domainEntryDec(conn, node.perms) !== 0) return WALK_TREE_ERROR_STOP;
      if (k !== -1) this.deleteKey(k);
      this.r.watches.fireWatches(conn, node.name, node, root !== node.name, null);
      return WALK_TREE_RM_CHILDENTRY;
    }
    if (k !== -1 && !this.deleteKey(k)) {
      this.walkErrno = 'EIO';
      return WALK_TREE_SUCCESS_STOP;
    }
    this.r.watches.fireWatches(conn, node.name, node, root !== node.name, null);
    this.r.domains.domainEntryDec(conn, node.perms);
    return WALK_TREE_RM_CHILDENTRY;
  }

  // ------------------------------------------------------------------------------------
  // Whole-tree access, for persistence and tests (global nodes only)

  /** The global tree, without transaction copies. */
  snapshot(): { generation: number; nodes: [string, StoredNode][] } {
    const nodes: [string, StoredNode][] = [];
    for (const [k, v] of this.db) if (k.startsWith('/')) nodes.push([k, v]);
    return { generation: this.generation, nodes };
  }

  /** Replace the tree. Domain node counts are recomputed. */
  restore(snap: { generation: number; nodes: [string, StoredNode][] }): void {
    // The special nodes (4.20) are not part of a snapshot: their permissions are kept apart.
    const special = [...this.db].filter(([k]) => k.startsWith('@'));
    this.db.clear();
    for (const d of this.r.domains.domains.values()) d.nbentry = 0;
    for (const [k, v] of [...snap.nodes, ...special]) {
      this.db.set(k, v);
      const owner = v.perms[0]?.id ?? 0;
      const d = this.r.domains.findOrAllocExistingDomain(owner);
      if (d) d.nbentry++;
    }
    this.generation = snap.generation;
    this.changedNames.clear();
  }
}
