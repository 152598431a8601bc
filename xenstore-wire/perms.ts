/**
 * Node permissions (docs/misc/xenstore.txt "Permissions"): a list of `<access><domid>`
 * strings. The first entry names the owner domain, and its access letter is what every
 * domain not listed later gets; later entries grant access to one domain each.
 *
 *   n  no access       r  read       w  write       b  both read and write
 *
 * Example: ['n0', 'r5'] = owned by dom0, no access for others, dom5 may read.
 */
import { XenstoreError } from './errors';

export type Access = 'n' | 'r' | 'w' | 'b';
export type Permission = { domid: number; access: Access };
/** A Permission or its wire spelling ('r5'). */
export type PermissionLike = Permission | string;

/** domid_t is 16 bits. */
export const DOMID_MAX = 0xffff;

const PERM_RE = /^([nrwb])(\d{1,5})$/;

function bad(text: string, detail: string): XenstoreError {
  return new XenstoreError('EINVAL', { op: 'SET_PERMS', source: 'client', detail: `permission ${JSON.stringify(text)}: ${detail}` });
}

/** 'r5' -> { domid: 5, access: 'r' }; throws XenstoreError EINVAL otherwise. */
export function parsePerm(text: string): Permission {
  const m = PERM_RE.exec(text);
  if (!m) throw bad(text, 'expected one of n r w b followed by a decimal domid');
  const domid = Number(m[2]);
  if (domid > DOMID_MAX) throw bad(text, `domid over ${DOMID_MAX}`);
  return { domid, access: m[1] as Access };
}

export function parsePerms(list: string[]): Permission[] {
  return list.map(parsePerm);
}

export function formatPerm(p: PermissionLike): string {
  const perm = typeof p === 'string' ? parsePerm(p) : p;
  if (!Number.isInteger(perm.domid) || perm.domid < 0 || perm.domid > DOMID_MAX) {
    throw bad(`${perm.access}${perm.domid}`, `domid must be an integer 0..${DOMID_MAX}`);
  }
  if (!['n', 'r', 'w', 'b'].includes(perm.access)) {
    throw bad(`${perm.access}${perm.domid}`, 'access must be one of n r w b');
  }
  return `${perm.access}${perm.domid}`;
}

/** [{domid:0,access:'n'},{domid:5,access:'r'}] -> ['n0','r5']; an empty list is refused. */
export function formatPerms(perms: readonly PermissionLike[]): string[] {
  if (perms.length === 0) throw bad('', 'a permission list needs at least the owner entry');
  return perms.map(formatPerm);
}

/** True if `access` lets a domain read. */
export function canRead(access: Access): boolean {
  return access === 'r' || access === 'b';
}

/** True if `access` lets a domain write. */
export function canWrite(access: Access): boolean {
  return access === 'w' || access === 'b';
}

/**
 * What `domid` may do on a node with these permissions, following xenstored's rule: the
 * owner (first entry) may do everything, a listed domain gets its entry, others the default.
 * dom0 connections are privileged and bypass this in the daemon.
 */
export function accessOf(perms: readonly Permission[], domid: number): Access {
  if (perms.length === 0) return 'n';
  if (perms[0].domid === domid) return 'b';
  for (let i = 1; i < perms.length; i++) if (perms[i].domid === domid) return perms[i].access;
  return perms[0].access;
}
