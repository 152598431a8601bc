/**
 * Domains (xenstored_domain.c): "domain structs" with creation generations, node-count
 * accounting, INTRODUCE / RELEASE / RESUME / SET_TARGET / GET_DOMAIN_PATH /
 * IS_DOMAIN_INTRODUCED, and the release of a domain (its nodes, its connections, the special
 * watches' permissions, @releaseDomain).
 */
import type { Frame } from '../codec';
import { MessageType } from '../constants';
import { atoi, atou, getStrings, onearg } from './cstr';
import { SPECIAL_NODES, WALK_TREE_OK, WALK_TREE_SKIP_CHILDREN, WALK_TREE_SUCCESS_STOP } from './database';
import { Domain, DOMID_SELF, Errno, isUnprivileged, Quotas, ServerConnection, XS_PERM_IGNORE, XsErrno, XsPerm } from './model';
import type { Rooms } from './rooms';

/** Quotas the rooms look up per domain. */
export type DomainQuotaName = 'nodes' | 'watches' | 'transactions' | 'nodeSize' | 'permissions' | 'memory' | 'outstanding';

/**
 * Xen 4.22 domain.c quota_adm[] in accitem order, as GET_QUOTA/SET_QUOTA name them; only
 * memory has a soft value ("soft-" prefix).
 */
const QUOTA_NAMES: readonly [string, keyof Quotas][] = [
  ['nodes', 'nodes'],
  ['watches', 'watches'],
  ['outstanding', 'outstanding'],
  ['memory', 'memory'],
  ['soft-memory', 'memorySoft'],
  ['transactions', 'transactions'],
  ['transaction-nodes', 'transactionNodes'],
  ['node-permissions', 'permissions'],
  ['path-max', 'pathMax'],
  ['node-size', 'nodeSize'],
];

/** Xen 4.22 parse_domid(): strtoul base 10 to the end of the string, at most 65535. */
function parseDomid(s: string): number {
  if (s === '') return 0; // strtoul("") is 0 with nothing left over
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)$/.exec(s);
  if (!m) throw new XsErrno('EINVAL');
  const v = Number(m[2]);
  // A minus sign makes strtoul wrap around: only "-0" stays small.
  if ((m[1] === '-' && v !== 0) || v > 65535) throw new XsErrno('EINVAL');
  return v;
}

export class Domains {
  /** Domain structs by domid. */
  readonly domains = new Map<number, Domain>();

  constructor(private readonly r: Rooms) {}

  /** dom0_init(): dom0 is introduced from the start, with its ring on port 1. */
  init(): void {
    const dom0 = this.allocDomain(0);
    dom0.introduced = true;
    dom0.port = 1;
    dom0.ring = this.r.output.newRing(dom0);
  }

  /** Domain existence as the hypervisor reports it: dom0 always, others per the oracle. */
  domainExists(domid: number): boolean {
    return domid === 0 || this.r.state.oracle.exists(domid);
  }

  /** A quota as it applies to this connection's domain (its own value, else the global one). */
  quota(conn: ServerConnection, name: DomainQuotaName): number {
    return this.quotaOf(conn.domain, name);
  }

  /** A quota of a domain: from 4.22 its own value, where 0 disables the check. */
  quotaOf(d: Domain | null, name: DomainQuotaName): number {
    const v = d?.quotas[name] ?? this.r.state.quotas[name];
    return v === 0 && this.r.state.release.quotaRequests ? Infinity : v;
  }

  allocDomain(domid: number): Domain {
    const d = new Domain(domid, this.r.db.generation);
    const rules = this.r.state.release;
    d.features = rules.features;
    if (rules.quotaRequests) for (const [, key] of QUOTA_NAMES) d.quotas[key] = this.r.state.quotas[key];
    this.domains.set(domid, d);
    return d;
  }

  findOrAllocExistingDomain(domid: number): Domain | null {
    let d = this.domains.get(domid) ?? null;
    if (!d && this.domainExists(domid)) d = this.allocDomain(domid);
    return d;
  }

  // ------------------------------------------------------------------------------------
  // Node-owner accounting

  /** domain_entry_inc() / 4.20 domain_nbentry_inc(): returns an errno name on failure. */
  domainEntryInc(conn: ServerConnection | null, perms: readonly XsPerm[]): Errno | 0 {
    if (perms.length === 0) return 0;
    const domid = perms[0].id;
    if (this.r.state.release.accountingPerRequest) return this.nbentryAdd(conn, domid, 1, false);
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

  /**
   * domain_entry_dec() / 4.20 domain_nbentry_dec(): 4.17 cannot fail; 4.20 fails (ENOENT, after
   * corrupt()) when the owner has no domain struct.
   */
  domainEntryDec(conn: ServerConnection | null, perms: readonly XsPerm[]): Errno | 0 {
    if (perms.length === 0) return 0;
    const domid = perms[0].id;
    if (this.r.state.release.accountingPerRequest) return this.nbentryAdd(conn, domid, -1, true);
    if (conn && conn.transaction) {
      const t = conn.transaction;
      t.changedDomains.set(domid, (t.changedDomains.get(domid) ?? 0) - 1);
      return 0;
    }
    const d = conn && domid === conn.id && conn.domain ? conn.domain : this.domains.get(domid);
    if (d) d.nbentry--;
    return 0;
  }

  /** 4.20 domain_acc_add_valid(): a node count changed by `add`, never below 0. */
  private validCount(d: Domain, add: number): number {
    return add < 0 && -add > d.nbentry ? 0 : d.nbentry + add;
  }

  /**
   * 4.20 domain_acc_add() for the node count (domain.c:1425): inside a request the change goes
   * to the request's list (committed with the reply: accCommit()), otherwise to the domain.
   */
  private nbentryAdd(conn: ServerConnection | null, domid: number, add: number, noDomAlloc: boolean): Errno | 0 {
    let d: Domain | null;
    if (conn && domid === conn.id && conn.domain) d = conn.domain;
    else if (noDomAlloc) {
      d = this.domains.get(domid) ?? null;
      if (!d) {
        this.checkStore(); // corrupt()
        return 'ENOENT';
      }
    } else {
      d = this.findOrAllocExistingDomain(domid);
      if (!d) return 'ENOMEM';
    }
    if (conn) conn.accList.set(domid, (conn.accList.get(domid) ?? 0) + add);
    else d.nbentry = this.validCount(d, add);
    return 0;
  }

  /**
   * 4.20 acc_commit(), called by send_reply(): the request's node-count changes go to its
   * transaction's list, or to the domains; changes that sum to 0 are skipped (domain.c:1494).
   */
  accCommit(conn: ServerConnection): void {
    if (conn.accList.size === 0) return;
    for (const [domid, add] of conn.accList) {
      if (add === 0) continue;
      const d = domid === conn.id && conn.domain ? conn.domain : this.domains.get(domid);
      if (!d) {
        this.checkStore(); // corrupt()
        continue;
      }
      const t = conn.transaction;
      if (t) t.changedDomains.set(domid, (t.changedDomains.get(domid) ?? 0) + add);
      else d.nbentry = this.validCount(d, add);
    }
    conn.accList.clear();
  }

  /** domain_entry(): the node count quota applies to unprivileged connections only. */
  domainEntry(conn: ServerConnection | null): number {
    if (!isUnprivileged(conn)) return 0;
    const d = conn!.domain!;
    if (!this.r.state.release.accountingPerRequest) return d.nbentry;
    // 4.20 domain_nbentry(): with the transaction's and this request's changes.
    const pending = (conn!.transaction?.changedDomains.get(conn!.id) ?? 0) + (conn!.accList.get(conn!.id) ?? 0);
    return this.validCount(d, pending);
  }

  /** domain_entry_fix(): a transaction's node-count changes, checked or applied at commit. */
  domainEntryFix(domid: number, num: number, update: boolean): number {
    const perRequest = this.r.state.release.accountingPerRequest;
    let d: Domain | null;
    if (update) {
      d = this.domains.get(domid) ?? null;
      if (!d) {
        if (perRequest) this.checkStore(); // corrupt()
        return perRequest ? -1 : 0;
      }
    } else {
      d = this.findOrAllocExistingDomain(domid);
      if (!d) return -1;
    }
    if (perRequest) {
      // domain_nbentry_fix(): the update never drops below 0; the check is not clamped, so a
      // commit that would take a guest's count below 0 is ENOMEM (acc_fix_domains()).
      if (update) return (d.nbentry = this.validCount(d, num));
      return domid !== 0 ? d.nbentry + num : 0;
    }
    let cnt = d.nbentry + num;
    if (update) d.nbentry = Math.max(0, cnt);
    else if (cnt < 0) cnt = 0;
    return domid !== 0 ? cnt : 0;
  }

  /**
   * check_store() (CONTROL check, and corrupt()): from 4.20 (checkStoreRecounts) every domain's node count is
   * recounted from the tree, the special nodes included (domain_check_acc()); before, the
   * check found nothing to change in this model's always-consistent tree.
   */
  checkStore(): void {
    if (!this.r.state.release.checkStoreRecounts) return;
    const counts = new Map<number, number>();
    for (const [name, rec] of this.r.db.db) {
      if (name[0] !== '/' && name[0] !== '@') continue; // transaction copies
      const owner = rec.perms[0]?.id ?? 0;
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    for (const d of this.domains.values()) d.nbentry = counts.get(d.domid) ?? 0;
  }

  /** The node quota of a domain by id (for commits, which account per owner). */
  nodesQuotaOf(domid: number): number {
    return this.quotaOf(this.domains.get(domid) ?? null, 'nodes');
  }

  /** Entries for domains the hypervisor does not know are marked IGNORE (domain_alloc_permrefs). */
  allocPermrefs(perms: XsPerm[]): void {
    for (const p of perms) {
      if (!this.domains.has(p.id)) {
        if (!this.domainExists(p.id)) p.perms |= XS_PERM_IGNORE;
        else this.allocDomain(p.id);
      }
    }
  }

  // ------------------------------------------------------------------------------------
  // Introduction and release

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
      d.ring = this.r.output.newRing(d);
      this.r.watches.fireWatches(null, '@introduceDomain', null, true, null, domid);
      this.r.state.onDomain?.(domid, 'introduced');
    }
    return d;
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
    const { output, watches, db } = this.r;
    if (d.ring) output.closeConnection(d.ring);
    d.ring = null;
    for (const c of [...d.conns]) output.dropConnection(c);
    // Its connection's references on its targets go with it.
    for (const other of this.domains.values()) {
      for (let i = other.referencedBy.indexOf(d.domid); i >= 0; i = other.referencedBy.indexOf(d.domid)) other.referencedBy.splice(i, 1);
    }
    if (d.nbentry > 0) {
      db.walkNodeTree(null, '/', {
        enter: (_c, node) => {
          if (node.perms[0].id !== d.domid) return WALK_TREE_OK;
          db.rmNode(null, node.name);
          return d.nbentry > 0 ? WALK_TREE_SKIP_CHILDREN : WALK_TREE_SUCCESS_STOP;
        },
      });
    }
    for (const name of SPECIAL_NODES) {
      const perms = watches.specialPermsOf(name)!;
      if (this.r.state.release.specialNodesInDatabase) {
        // 4.20 walks the special nodes too and rm_node()s one the domain owns, which crashes C
        // xenstored 4.20 (basename() of "@..." has no '/': docs/server-differences.md). Here
        // the node passes to dom0 as with --keep-orphans; entries for the domain stay and are
        // ignored from now on (domain_adjust_node_perms()).
        if (perms[0].id === d.domid) {
          const owned = perms.map((p, i) => (i === 0 ? { ...p, id: 0 } : p));
          this.nbentryAdd(null, d.domid, -1, true);
          this.nbentryAdd(null, 0, 1, true);
          watches.setSpecialPerms(name, owned);
        }
        continue;
      }
      const kept = perms.filter((p, i) => i === 0 || p.id !== d.domid).map((p) => ({ ...p }));
      if (kept[0].id === d.domid) kept[0].id = 0;
      watches.setSpecialPerms(name, kept);
    }
    this.domains.delete(d.domid);
    if (d.introduced) {
      watches.fireWatches(null, '@releaseDomain', null, true, null, d.domid);
      this.r.state.onDomain?.(d.domid, 'released');
    }
    this.r.state.changed = true;
  }

  // ------------------------------------------------------------------------------------
  // Requests

  doIntroduce(conn: ServerConnection, req: Frame): void {
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
      this.r.watches.deleteAllWatches(c);
      this.r.transactions.deleteAllTransactions(c);
    }
    this.r.output.sendAck(conn, req, MessageType.INTRODUCE);
  }

  doRelease(conn: ServerConnection, req: Frame): void {
    const d = this.onearDomain(req);
    // 4.20: "Avoid triggering watch events when the domain's nodes are deleted" (do_release()).
    if (this.r.state.release.releaseDeletesWatches) {
      for (const c of [...(d.ring ? [d.ring] : []), ...d.conns]) this.r.watches.deleteAllWatches(c);
    }
    // xenstored's main loop holds a reference on the connection after the one it is serving:
    // when that is the domain's ring, talloc_free() only drops that reference and the domain
    // goes (nodes removed, @releaseDomain fired) after this reply, in the same loop pass.
    const conns = this.r.output.connections;
    const next = conns[conns.indexOf(conn) + 1];
    if (next !== undefined && next === d.ring) {
      this.r.state.afterReply.push(() => this.freeDomainConn(d));
    } else {
      this.freeDomainConn(d);
    }
    this.r.output.sendAck(conn, req, MessageType.RELEASE);
  }

  doResume(conn: ServerConnection, req: Frame): void {
    const d = this.onearDomain(req);
    d.shutdown = false;
    this.r.output.sendAck(conn, req, MessageType.RESUME);
  }

  doSetTarget(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    if (vec.length < 2) throw new XsErrno('EINVAL');
    const d = this.findConnectedDomain(atou(vec[0]));
    const t = this.findConnectedDomain(atou(vec[1]));
    d.target = t.domid;
    t.referencedBy.push(d.domid);
    this.r.output.sendAck(conn, req, MessageType.SET_TARGET);
  }

  doGetDomainPath(conn: ServerConnection, req: Frame): void {
    const arg = onearg(req.payload);
    if (arg === null) throw new XsErrno('EINVAL');
    this.r.output.sendReply(conn, req, MessageType.GET_DOMAIN_PATH, Buffer.from(`/local/domain/${atou(arg)}\0`, 'latin1'));
  }

  /** Xen 4.21 GET_FEATURE `[<domid>|]`: a domain's feature bits, or the caller's / the daemon's. */
  doGetFeature(conn: ServerConnection, req: Frame): void {
    const rules = this.r.state.release;
    const vec = getStrings(req.payload);
    if (vec.length > 1) throw new XsErrno('EINVAL');
    let features: number;
    if (vec.length === 0) {
      features = rules.strictFeatureRequests && conn.domain ? conn.domain.features : rules.features;
    } else {
      if (rules.strictFeatureRequests && isUnprivileged(conn)) throw new XsErrno('EACCES');
      const domid = rules.strictFeatureRequests ? parseDomid(vec[0]) : atou(vec[0]);
      const d = this.findOrAllocExistingDomain(domid);
      if (!d) throw new XsErrno('ENOENT');
      features = d.features;
    }
    this.r.output.sendReply(conn, req, MessageType.GET_FEATURE, Buffer.from(`${features >>> 0}\0`, 'latin1'));
  }

  /** Xen 4.21 SET_FEATURE `<domid>|<value>|`: only before the domain is introduced. */
  doSetFeature(conn: ServerConnection, req: Frame): void {
    const rules = this.r.state.release;
    const vec = getStrings(req.payload);
    if (vec.length !== 2) throw new XsErrno('EINVAL');
    const domid = rules.strictFeatureRequests ? parseDomid(vec[0]) : atou(vec[0]);
    const features = atoi(vec[1]) >>> 0;
    const d = this.findOrAllocExistingDomain(domid);
    if (!d) throw new XsErrno('ENOENT');
    if (d.introduced) throw new XsErrno('EBUSY');
    if (features & ~rules.features) throw new XsErrno('EINVAL');
    d.features = features;
    this.r.output.sendAck(conn, req, MessageType.SET_FEATURE);
  }

  /** Xen 4.22 GET_QUOTA `[[<domid>|]<quota>|]`: the names, or a global or per-domain value. */
  doGetQuota(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    if (vec.length > 2) throw new XsErrno('EINVAL');
    let text: string;
    if (vec.length === 0) {
      text = QUOTA_NAMES.map(([name]) => name).join(' ');
    } else {
      const { values, name } = this.quotaTarget(vec);
      const key = QUOTA_NAMES.find(([n]) => n === name)?.[1];
      if (!key) throw new XsErrno('EINVAL');
      text = String((values[key] ?? this.r.state.quotas[key]) >>> 0);
    }
    this.r.output.sendReply(conn, req, MessageType.GET_QUOTA, Buffer.from(`${text}\0`, 'latin1'));
  }

  /** Xen 4.22 SET_QUOTA `[<domid>|]<quota>|<value>|`: 0 disables the check. */
  doSetQuota(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    if (vec.length < 2 || vec.length > 3) throw new XsErrno('EINVAL');
    const { values, name } = this.quotaTarget(vec.slice(0, -1));
    const val = atoi(vec[vec.length - 1]) >>> 0;
    const key = QUOTA_NAMES.find(([n]) => n === name)?.[1];
    // UINT_MAX is Q_VAL_DISABLED, the mark of a quota that does not exist.
    if (!key || val === 0xffffffff) throw new XsErrno('EINVAL');
    values[key] = val;
    this.r.output.sendAck(conn, req, MessageType.SET_QUOTA);
  }

  /** `<quota>` alone names a global value; `<domid>|<quota>` one of that domain's. */
  private quotaTarget(vec: string[]): { values: Partial<Record<keyof Quotas, number>>; name: string } {
    if (vec.length === 1) return { values: this.r.state.quotas, name: vec[0] };
    const d = this.findOrAllocExistingDomain(parseDomid(vec[0]));
    if (!d) throw new XsErrno('ENOENT');
    return { values: d.quotas, name: vec[1] };
  }

  doIsDomainIntroduced(conn: ServerConnection, req: Frame): void {
    const arg = onearg(req.payload);
    if (arg === null) throw new XsErrno('EINVAL');
    const domid = atou(arg);
    const d = this.domains.get(domid);
    const result = domid === DOMID_SELF || (d !== undefined && d.introduced);
    this.r.output.sendReply(conn, req, MessageType.IS_DOMAIN_INTRODUCED, Buffer.from(result ? 'T\0' : 'F\0', 'latin1'));
  }
}
