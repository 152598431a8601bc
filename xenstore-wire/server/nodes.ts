/**
 * Requests on nodes (xenstored_core.c: send_directory, send_directory_part, do_read,
 * do_get_perms, do_write, do_mkdir, do_rm, do_set_perms): argument parsing as C does it, the
 * database room for access, the watches room for events.
 */
import type { Frame } from '../codec';
import { MessageType, XENSTORE_PAYLOAD_MAX } from '../constants';
import { PROPAGATE } from './database';
import { atou, countStrings, getStrings, longToU32, onearg, strtol, u32AsInt } from './cstr';
import {
  childrenBuffer,
  getParent,
  isErr,
  isUnprivileged,
  Node,
  ServerConnection,
  StoredNode,
  XS_PERM_IGNORE,
  XS_PERM_NONE,
  XS_PERM_OWNER,
  XS_PERM_READ,
  XS_PERM_WRITE,
  XsErrno,
  XsPerm,
} from './model';
import type { Rooms } from './rooms';

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

/** xs_strings_to_perms(): "r5", "b0x10", "n-1"... (strtol with base 0, id truncated). */
function parsePermStrings(strings: string[]): XsPerm[] {
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

export class NodeRequests {
  constructor(private readonly r: Rooms) {}

  /**
   * get_node_canonicalized() that throws the errno; the canonical name comes back too.
   * `allowSpecial`: 4.20's special nodes may be named (GET_PERMS, SET_PERMS).
   */
  private getNodeCanon(conn: ServerConnection, name: string | null, perm: number, allowSpecial = false): { node: Node; name: string } {
    const canon = name === null ? null : this.r.db.canonicalize(conn, name);
    const r = this.r.db.getNode(conn, canon, perm, allowSpecial);
    if (isErr(r)) throw new XsErrno(r);
    return { node: r, name: canon! };
  }

  /**
   * The stored record for a read by dom0 outside a transaction, or undefined to take the full
   * path (get_node(): errors, guests' permissions, transaction copies). For dom0 outside a
   * transaction that path grants every access and records nothing, so the answer is the same;
   * this skips building a Node per request (listing a host reads hundreds of thousands).
   */
  private plainRecord(conn: ServerConnection, name: string | null): StoredNode | undefined {
    if (name === null || conn.transaction !== null || isUnprivileged(conn)) return undefined;
    const canon = this.r.db.canonicalize(conn, name);
    return this.r.db.isValidNodename(canon, conn) ? this.r.db.db.get(canon) : undefined;
  }

  doDirectory(conn: ServerConnection, req: Frame): void {
    const name = onearg(req.payload);
    const children = (this.plainRecord(conn, name) ?? this.getNodeCanon(conn, name, XS_PERM_READ).node).children;
    this.r.output.sendReply(conn, req, MessageType.DIRECTORY, childrenBuffer(children));
  }

  doDirectoryPart(conn: ServerConnection, req: Frame): void {
    if (countStrings(req.payload) !== 2) throw new XsErrno('EINVAL');
    const strings = getStrings(req.payload);
    const node = this.getNodeCanon(conn, strings[0], XS_PERM_READ).node;
    const off = atou(strings[1]);
    const gen = Buffer.from(`${node.generation}\0`, 'latin1');
    const children = childrenBuffer(node.children);
    const childlen = children.length;
    if (off >= childlen) {
      this.r.output.sendReply(conn, req, MessageType.DIRECTORY_PART, Buffer.concat([gen, Buffer.from([0])]));
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
    this.r.output.sendReply(conn, req, MessageType.DIRECTORY_PART, Buffer.concat(parts));
  }

  doRead(conn: ServerConnection, req: Frame): void {
    const name = onearg(req.payload);
    const data = (this.plainRecord(conn, name) ?? this.getNodeCanon(conn, name, XS_PERM_READ).node).data;
    this.r.output.sendReply(conn, req, MessageType.READ, data);
  }

  doGetPerms(conn: ServerConnection, req: Frame): void {
    // 4.20 get_node_const(..., allow_special): the special nodes are nodes like others.
    const allowSpecial = this.r.state.release.specialNodesInDatabase;
    const node = this.getNodeCanon(conn, onearg(req.payload), XS_PERM_READ, allowSpecial).node;
    const strings = node.perms.map((p) => `${permLetter(p.perms)}${u32AsInt(p.id)}\0`).join('');
    this.r.output.sendReply(conn, req, MessageType.GET_PERMS, Buffer.from(strings, 'latin1'));
  }

  doWrite(conn: ServerConnection, req: Frame): void {
    const { db, watches } = this.r;
    const nul = req.payload.indexOf(0);
    if (nul < 0) throw new XsErrno('EINVAL');
    const name = db.canonicalize(conn, req.payload.toString('latin1', 0, nul));
    const data = Buffer.from(req.payload.subarray(nul + 1));
    let node = db.getNode(conn, name, XS_PERM_WRITE);
    if (isErr(node)) {
      if (node !== 'ENOENT') throw new XsErrno(node);
      node = db.createNode(conn, name, data);
      if (isErr(node)) throw new XsErrno(node);
    } else {
      node.data = data;
      const r = db.writeNode(conn, node, false);
      if (r !== 0) throw new XsErrno(r);
    }
    watches.fireWatches(conn, name, node, false, null);
    this.r.output.sendAck(conn, req, MessageType.WRITE);
  }

  doMkdir(conn: ServerConnection, req: Frame): void {
    const { db, watches } = this.r;
    const arg = onearg(req.payload);
    const name = arg === null ? null : db.canonicalize(conn, arg);
    const node = db.getNode(conn, name, XS_PERM_WRITE);
    if (isErr(node)) {
      if (node !== 'ENOENT') throw new XsErrno(node);
      const created = db.createNode(conn, name!, Buffer.alloc(0));
      if (isErr(created)) throw new XsErrno(created);
      watches.fireWatches(conn, name!, created, false, null);
    }
    this.r.output.sendAck(conn, req, MessageType.MKDIR);
  }

  doRm(conn: ServerConnection, req: Frame): void {
    const db = this.r.db;
    const arg = onearg(req.payload);
    const name = arg === null ? null : db.canonicalize(conn, arg);
    const node = db.getNode(conn, name, XS_PERM_WRITE);
    if (isErr(node)) {
      let err = node;
      if (err === 'ENOENT') {
        const parent = db.readNode(conn, getParent(name!));
        if (!isErr(parent)) {
          this.r.output.sendAck(conn, req, MessageType.RM);
          return;
        }
        if (!PROPAGATE.has(parent)) err = 'ENOENT';
        else err = parent;
      }
      throw new XsErrno(err);
    }
    if (name === '/') throw new XsErrno('EINVAL');
    const r = db.rmNode(conn, name!);
    if (r !== 0) throw new XsErrno(r);
    this.r.output.sendAck(conn, req, MessageType.RM);
  }

  doSetPerms(conn: ServerConnection, req: Frame): void {
    const { db, domains, watches } = this.r;
    let num = countStrings(req.payload);
    if (num < 2) throw new XsErrno('EINVAL');
    num--;
    const permQuota = domains.quota(conn, 'permissions');
    if (isUnprivileged(conn) && (this.r.state.release.quotaCountsNext ? num >= permQuota : num > permQuota)) throw new XsErrno('ENOSPC');
    const strings = getStrings(req.payload);
    const perms = parsePermStrings(strings.slice(1, 1 + num));
    domains.allocPermrefs(perms);
    if (perms[0].perms & XS_PERM_IGNORE) throw new XsErrno('ENOENT');
    const path = strings[0];
    const rules = this.r.state.release;
    if (path.startsWith('@') && !rules.specialNodesInDatabase) {
      // 4.17 set_perms_special(): the permissions of a special watch path, no event.
      const current = watches.specialPermsOf(path);
      if (!current) throw new XsErrno('EINVAL');
      if ((db.permForConn(conn, current) & (XS_PERM_WRITE | XS_PERM_OWNER)) !== (XS_PERM_WRITE | XS_PERM_OWNER)) {
        throw new XsErrno('EACCES');
      }
      watches.setSpecialPerms(path, perms);
      this.r.output.sendAck(conn, req, MessageType.SET_PERMS);
      return;
    }
    if (rules.accountingPerRequest) {
      // 4.20 do_set_perms(): get_node(..., allow_special); the count changes are the request's
      // (dropped with an error reply), so nothing is undone by hand.
      const { node, name } = this.getNodeCanon(conn, path, XS_PERM_WRITE | XS_PERM_OWNER, rules.specialNodesInDatabase);
      if (isUnprivileged(conn) && perms[0].id !== node.perms[0].id) throw new XsErrno('EPERM');
      const oldPerms = node.perms;
      if (domains.domainEntryDec(conn, node.perms) !== 0) throw new XsErrno('ENOMEM');
      node.perms = perms;
      if (domains.domainEntryInc(conn, node.perms) !== 0) throw new XsErrno('ENOMEM');
      const r = db.writeNode(conn, node, false);
      if (r !== 0) throw new XsErrno(r);
      watches.fireWatches(conn, name, node, false, oldPerms);
      this.r.output.sendAck(conn, req, MessageType.SET_PERMS);
      return;
    }
    const { node, name } = this.getNodeCanon(conn, path, XS_PERM_WRITE | XS_PERM_OWNER);
    if (isUnprivileged(conn) && perms[0].id !== node.perms[0].id) throw new XsErrno('EPERM');
    const oldPerms = node.perms;
    domains.domainEntryDec(conn, node.perms);
    node.perms = perms;
    if (domains.domainEntryInc(conn, node.perms) !== 0) {
      node.perms = oldPerms;
      domains.domainEntryInc(conn, node.perms);
      throw new XsErrno('ENOMEM');
    }
    const r = db.writeNode(conn, node, false);
    if (r !== 0) {
      domains.domainEntryDec(conn, node.perms);
      node.perms = oldPerms;
      domains.domainEntryInc(conn, node.perms);
      throw new XsErrno(r);
    }
    watches.fireWatches(conn, name, node, false, oldPerms);
    this.r.output.sendAck(conn, req, MessageType.SET_PERMS);
  }
}
