/**
 * Watches (xenstored_watch.c): WATCH / UNWATCH / RESET_WATCHES, the permission filter of
 * watch_permitted(), the special watches @introduceDomain and @releaseDomain with their own
 * permissions, and fire_watches(), which queues events now or marks the node for the commit.
 */
import type { Frame } from '../codec';
import { MessageType, XENSTORE_REL_PATH_MAX } from '../constants';
import { atoi, getStrings } from './cstr';
import { FEATURE_WATCHDEPTH } from './release';
import { getParent, isChild, isErr, isUnprivileged, Node, ServerConnection, Watch, XS_PERM_NONE, XS_PERM_READ, XsErrno, XsPerm } from './model';
import type { Rooms } from './rooms';

export class Watches {
  /**
   * Permissions of the special watch paths before 4.20 (SET_PERMS on them decides who gets
   * events). From 4.20 they are database nodes (release.ts specialNodesInDatabase) and this map
   * is unused.
   */
  private readonly specialPermsMap = new Map<string, readonly XsPerm[]>([
    ['@releaseDomain', [{ id: 0, perms: XS_PERM_NONE }]],
    ['@introduceDomain', [{ id: 0, perms: XS_PERM_NONE }]],
  ]);

  /** Whether the special permissions changed since the last takeSpecialChange() (for the journal). */
  private specialChanged = false;

  constructor(private readonly r: Rooms) {}

  /** The current permissions of a special watch path (undefined: not a special path). */
  specialPermsOf(name: string): readonly XsPerm[] | undefined {
    if (this.r.state.release.specialNodesInDatabase) return this.r.db.db.get(name)?.perms;
    return this.specialPermsMap.get(name);
  }

  /** Set a special path's permissions (its node keeps its generation from 4.20 on). */
  setSpecialPerms(name: string, perms: readonly XsPerm[]): void {
    if (this.r.state.release.specialNodesInDatabase) {
      const rec = this.r.db.db.get(name);
      if (rec) this.r.db.put(name, { ...rec, perms });
    } else if (this.specialPermsMap.has(name)) {
      this.specialPermsMap.set(name, perms);
    }
    this.specialChanged = true;
  }

  /** Every special path with its permissions. */
  allSpecialPerms(): Map<string, readonly XsPerm[]> {
    const out = new Map<string, readonly XsPerm[]>();
    for (const name of this.specialPermsMap.keys()) out.set(name, this.specialPermsOf(name) ?? []);
    return out;
  }

  markSpecialChanged(): void {
    this.specialChanged = true;
  }

  /** The special watches' permissions if they changed since the last call. */
  takeSpecialChange(): [string, readonly XsPerm[]][] | null {
    if (!this.specialChanged) return null;
    this.specialChanged = false;
    return [...this.allSpecialPerms()];
  }

  private watchPath(watch: Watch, name: string): string {
    if (watch.relativePath === null) return name;
    let path = name.slice(watch.relativePath.length);
    if (path.startsWith('/')) path = path.slice(1);
    return path;
  }

  /** watch_permitted(): the watcher may read the node or its parent (or could before). */
  private watchPermitted(conn: ServerConnection, name: string, node: Node | null, perms: readonly XsPerm[] | null): boolean {
    const db = this.r.db;
    if (perms && db.permForConn(conn, perms) & XS_PERM_READ) return true;
    if (!node) {
      const r = db.readNode(conn, name);
      if (isErr(r)) return false;
      node = r;
    }
    if (db.permForConn(conn, node.perms) & XS_PERM_READ) return true;
    let parent = node.parent;
    if (!parent) {
      const r = db.readNode(conn, getParent(node.name));
      if (isErr(r)) return false;
      parent = r;
    }
    return (db.permForConn(conn, parent.perms) & XS_PERM_READ) !== 0;
  }

  private checkPermsSpecial(name: string, conn: ServerConnection): boolean {
    const p = this.specialPermsMap.get(name);
    if (!p) return false;
    return (this.r.db.permForConn(conn, p) & XS_PERM_READ) !== 0;
  }

  /**
   * fire_watches(): queue events now, or mark the node when inside a transaction. `domid`
   * names the domain of a special event (@introduceDomain, @releaseDomain).
   */
  fireWatches(
    conn: ServerConnection | null,
    name: string,
    node: Node | null,
    exact: boolean,
    perms: readonly XsPerm[] | null,
    domid?: number,
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
    // Before 4.20 the special paths have their own permission check and exact matching; from
    // 4.20 they are nodes (watch_permitted() reads them, and "/" as their parent), matched
    // exactly by fire_special_watches() (`domid` given) and like any node otherwise (SET_PERMS).
    const inDatabase = this.r.state.release.specialNodesInDatabase;
    const specialEvent = special && (!inDatabase || domid !== undefined);
    const output = this.r.output;
    for (const c of output.connections.slice()) {
      if (c.watches.length === 0) continue;
      if (special && !inDatabase) {
        if (!this.checkPermsSpecial(name, c)) continue;
      } else if (!this.watchPermitted(c, name, node, perms)) {
        continue;
      }
      for (const w of c.watches) {
        if (specialEvent) {
          for (const path of this.specialEventPaths(w, name, domid)) output.sendEvent(c, path, w.token);
        } else if (exact ? name === w.node : isChild(name, w.node) && this.withinDepth(w, name)) {
          output.sendEvent(c, this.watchPath(w, name), w.token);
        }
      }
    }
  }

  /** Xen 4.22: a watch with a depth matches nodes at most that many levels below it. */
  private withinDepth(w: Watch, name: string): boolean {
    if (w.depth === null) return true;
    const below = w.node === '/' ? name.slice(1) : name.slice(w.node.length + 1);
    const levels = below === '' ? 0 : below.split('/').length;
    return levels <= w.depth;
  }

  /**
   * The paths a special event is reported with to this watch (Xen 4.22 fire_special_watches()):
   * `@name` to a watch on it without a depth (MATCH_NODEPTH); from 4.22 also `@name/<domid>`
   * to a watch on exactly that, or to a watch with a depth of 1 or more above it (MATCH_DEPTH).
   */
  private specialEventPaths(w: Watch, name: string, domid: number | undefined): string[] {
    const out: string[] = [];
    if (w.node === name && w.depth === null) out.push(name);
    if (domid !== undefined && this.r.state.release.releaseDomainPerDomain) {
      const withDomid = `${name}/${domid}`;
      if (w.node === withDomid || (w.depth !== null && w.depth > 0 && isChild(withDomid, w.node) && this.withinDepth(w, withDomid))) out.push(withDomid);
    }
    return out;
  }

  /** feature_available(): the connection's domain's features, or the daemon's for sockets. */
  private featureAvailable(conn: ServerConnection, bit: number): boolean {
    return ((conn.domain ? conn.domain.features : this.r.state.release.features) & bit) !== 0;
  }

  deleteAllWatches(conn: ServerConnection): void {
    if (conn.domain) conn.domain.nbwatch = Math.max(0, conn.domain.nbwatch - conn.watches.length);
    conn.watches.length = 0;
  }

  // ------------------------------------------------------------------------------------
  // Requests

  doWatch(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    let depth: number | null = null;
    if (vec.length === 3 && this.r.state.release.watchDepth && this.featureAvailable(conn, FEATURE_WATCHDEPTH)) {
      // Xen 4.22 do_watch(): atoi(), negative is EINVAL.
      depth = atoi(vec[2]);
      if (depth < 0) throw new XsErrno('EINVAL');
    } else if (vec.length !== 2) {
      throw new XsErrno('EINVAL');
    }
    let path = vec[0];
    const token = vec[1];
    const db = this.r.db;
    let relative: boolean;
    if (this.r.state.release.specialNodesInDatabase) {
      // 4.20 check_watch_path(): canonicalize(..., allow_special), `@` names checked like paths.
      relative = !path.startsWith('/') && !path.startsWith('@');
      path = db.canonicalize(conn, path);
      if (!db.isValidNodename(path, conn, true)) throw new XsErrno('EINVAL');
    } else if (path.startsWith('@')) {
      relative = false;
      if (path.length > XENSTORE_REL_PATH_MAX) throw new XsErrno('EINVAL');
    } else {
      relative = !path.startsWith('/');
      path = db.canonicalize(conn, path);
      if (!db.isValidNodename(path, conn)) throw new XsErrno('EINVAL');
    }
    if (conn.watches.some((w) => w.node === path && w.token === token)) throw new XsErrno('EEXIST');
    if (isUnprivileged(conn)) {
      const quota = this.r.domains.quota(conn, 'watches');
      if (this.r.state.release.quotaCountsNext) {
        if (conn.domain!.nbwatch + 1 >= quota) throw new XsErrno('ENOSPC');
      } else if (conn.domain!.nbwatch > quota) {
        throw new XsErrno('E2BIG');
      }
    }
    const watch = new Watch(path, token, relative ? db.implicitPath(conn) : null, depth);
    if (conn.domain) conn.domain.nbwatch++;
    conn.watches.push(watch);
    this.r.output.sendAck(conn, req, MessageType.WATCH);
    // "We fire once up front: simplifies clients and restart."
    this.r.output.sendEvent(conn, this.watchPath(watch, watch.node), watch.token);
  }

  doUnwatch(conn: ServerConnection, req: Frame): void {
    const vec = getStrings(req.payload);
    if (vec.length !== 2) throw new XsErrno('EINVAL');
    const node = this.r.db.canonicalize(conn, vec[0]);
    // 4.20 do_unwatch(): canonicalize(..., allow_special) first.
    if (this.r.state.release.unwatchChecksPath && !this.r.db.isValidNodename(node, conn, true)) throw new XsErrno('EINVAL');
    const i = conn.watches.findIndex((w) => w.node === node && w.token === vec[1]);
    if (i < 0) throw new XsErrno('ENOENT');
    conn.watches.splice(i, 1);
    if (conn.domain && conn.domain.nbwatch > 0) conn.domain.nbwatch--;
    this.r.output.sendAck(conn, req, MessageType.UNWATCH);
  }

  doResetWatches(conn: ServerConnection, req: Frame): void {
    this.deleteAllWatches(conn);
    this.r.transactions.deleteAllTransactions(conn);
    this.r.output.sendAck(conn, req, MessageType.RESET_WATCHES);
  }
}
