/**
 * Domains as the toolstack records them (/local/domain/<domid>/name) and as Xen knows them
 * (getdomaininfo). `--domain NAME` resolves the way `xl` does: through the names in xenstore.
 */
import type { XenstoreOps } from '../../xenstore-wire';
import type { Hypervisor } from '../hypervisor/types';
import { listOptional, mapWindowed, readOptional } from '../store';
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
