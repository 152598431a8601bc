/**
 * Domains as the toolstack records them (/local/domain/<domid>/name) and as Xen knows them
 * (getdomaininfo). `--domain NAME` resolves the way `xl` does: through the names in xenstore.
 */
import type { XenstoreOps } from '../../xenstore-wire';
import { HypercallError } from '../hypervisor/errors';
import type { Hypervisor } from '../hypervisor/types';
import { DOMAIN_INFO_LIST_MAX } from '../hypervisor/xen';
import { listOptional, mapWindowed, readOptional } from '../store';
import { DOMID_FIRST_RESERVED } from '../vocabulary';
import { domainRefusal } from './refusals';

/** The name in /local/domain/<domid>/name, or null when the toolstack wrote none. */
export async function domainName(ops: XenstoreOps, domid: number): Promise<string | null> {
  return (await readOptional(ops, `/local/domain/${domid}/name`)) ?? null;
}

/** Every domid with a /local/domain/<domid> folder, and its name. */
export async function listDomains(ops: XenstoreOps): Promise<Array<{ domid: number; name: string | null }>> {
  const ids = (await listOptional(ops, '/local/domain')).filter((s) => /^(0|[1-9]\d{0,4})$/.test(s)).map(Number).sort((a, b) => a - b);
  const names = await mapWindowed(ids, (d) => domainName(ops, d));
  return ids.map((domid, i) => ({ domid, name: names[i] }));
}

/** The domid of the domain named `name`; ManagerError ESRCH if none, EINVAL if several. */
export async function findDomainByName(ops: XenstoreOps, name: string): Promise<number> {
  const matches = (await listDomains(ops)).filter((d) => d.name === name);
  if (matches.length === 0) throw domainRefusal.noneNamed(name);
  if (matches.length > 1) throw domainRefusal.severalNamed(name, matches.map((m) => m.domid));
  return matches[0].domid;
}

/** True while Xen runs the domain: it exists and is not dying. */
export async function domainAlive(hv: Hypervisor, domid: number): Promise<boolean> {
  const info = await hv.domainInfo(domid);
  return info !== null && !info.dying;
}

/**
 * Xen's refusals of getdomaininfolist that leave getdomaininfo per domain to ask: an unknown
 * struct size (EOPNOTSUPP) or entries that do not line up (EPROTO), the sysctl's interface or
 * an XSM policy (EACCES, EPERM), a Xen without it (ENOSYS).
 */
const LIST_REFUSALS = new Set(['EOPNOTSUPP', 'EPROTO', 'EACCES', 'EPERM', 'ENOSYS']);

/**
 * domainAlive for many domains: getdomaininfolist over [min, max] of `domids` (one hypercall per
 * 8,192 domains, never more than the ids in that span), so the question costs a few hypercalls
 * whatever the number of domains asked about; getdomaininfo per domain (windowed) where Xen
 * refuses the listing.
 */
export async function domainsAlive(hv: Hypervisor, domids: readonly number[]): Promise<Map<number, boolean>> {
  const alive = new Map<number, boolean>();
  if (domids.length === 0) return alive;
  let first = Infinity;
  let last = -1;
  for (const d of domids) {
    if (d < first) first = d;
    if (d > last) last = d;
  }
  // An id that is not a domid: getdomaininfo per domain refuses it with the usual error.
  if (first >= 0 && last < DOMID_FIRST_RESERVED) try {
    // One byte per domid (0..32751): no object per domain listed.
    const live = new Uint8Array(last + 1);
    while (first <= last) {
      // Ids are unique: [first, last] holds at most last - first + 1 domains.
      const max = Math.min(DOMAIN_INFO_LIST_MAX, last - first + 1);
      const batch = await hv.domainInfoList(first, max);
      for (const i of batch) if (i.domid <= last && !i.dying) live[i.domid] = 1;
      if (batch.length < max) break;
      first = batch[batch.length - 1].domid + 1;
    }
    for (const d of domids) alive.set(d, live[d] === 1);
    return alive;
  } catch (e) {
    if (!(e instanceof HypercallError && LIST_REFUSALS.has(e.code))) throw e;
  }
  const unique = [...new Set(domids)];
  const each = await mapWindowed(unique, (d) => domainAlive(hv, d));
  unique.forEach((d, i) => alive.set(d, each[i]));
  return alive;
}
