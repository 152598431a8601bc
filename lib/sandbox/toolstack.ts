/**
 * The toolstack's part, played on a simulated host: what `xl create -p` and `xl destroy` do
 * that xen-sshm relies on. Create: a domain with the config's name and memory, the records
 * libxl writes under /local/domain/<domid> (owned by dom0, readable by the domain), and
 * INTRODUCE (xenstored fires @introduceDomain). Destroy: the domain goes, its records go, and
 * RELEASE (xenstored fires @releaseDomain). Works with any xenstored.
 *
 * Max memory follows libxl: the config's memory (or maxmem when larger) plus 1 MiB
 * (LIBXL_MAXMEM_CONSTANT, libxl__arch_extra_memory()). Populating a shared region counts
 * against it, as on Xen.
 */
import { XenstoreError, type XenstoreClient } from '../../xenstore-wire';
import { domainName as configDomainName, type XlConfig } from '../config';
import type { SimHypervisor } from '../hypervisor/sim';
import { listDomains, ManagerError } from '../manager';
import { rmIfExists } from '../store';
import { PAGES_PER_MIB } from '../vocabulary';

/** LIBXL_MAXMEM_CONSTANT: the slack libxl adds to a domain's max memory, in MiB. */
export const LIBXL_MAXMEM_SLACK_MIB = 1;

export interface DomainSpec {
  name: string;
  /** RAM in MiB (xl `memory`, default 128). */
  memoryMiB?: number;
  /** xl `maxmem` in MiB (default: memory). */
  maxmemMiB?: number;
  /** Default: the lowest domid above every existing one. */
  domid?: number;
}

export interface CreatedDomain {
  domid: number;
  name: string;
  memoryMiB: number;
  maxPages: number;
}

/** name, memory and maxmem of an xl config. */
export function domainSpecFromConfig(cfg: XlConfig): DomainSpec {
  const { name, error } = configDomainName(cfg);
  if (!name) throw error!;
  const num = (key: string): number | undefined => {
    const v = cfg.get(key);
    if (!v) return undefined;
    if (v.type !== 'string' || !/^\d+$/.test(v.value) || Number(v.value) < 1) {
      throw new ManagerError({ code: 'EINVAL', reason: 'config', path: cfg.file, message: `${cfg.file}: ${key} must be a number of MiB` });
    }
    return Number(v.value);
  };
  return { name, memoryMiB: num('memory'), maxmemMiB: num('maxmem') };
}

/** xl create -p on the simulated host. */
export async function createDomain(xs: XenstoreClient, hv: SimHypervisor, spec: DomainSpec, opts: { introduce?: boolean } = {}): Promise<CreatedDomain> {
  const memoryMiB = spec.memoryMiB ?? 128;
  const maxMiB = Math.max(memoryMiB, spec.maxmemMiB ?? memoryMiB) + LIBXL_MAXMEM_SLACK_MIB;
  const known = await listDomains(xs);
  if (known.some((d) => d.name === spec.name)) {
    const d = known.find((x) => x.name === spec.name)!;
    throw new ManagerError({
      code: 'EEXIST', reason: 'domain', domain: spec.name, domid: d.domid, path: `/local/domain/${d.domid}/name`,
      message: `a domain named ${JSON.stringify(spec.name)} exists already (d${d.domid})`,
      hint: `destroy it first: xen-sshm destroy ${spec.name} --sandbox`,
    });
  }
  let domid = spec.domid;
  if (domid === undefined) {
    const sim = await hv.domains();
    domid = Math.max(0, ...sim.map((d) => d.domid), ...known.map((d) => d.domid)) + 1;
  }
  await hv.createDomain({ domid, name: spec.name, maxPages: maxMiB * PAGES_PER_MIB, extraPages: memoryMiB * PAGES_PER_MIB });
  const base = `/local/domain/${domid}`;
  await xs.transaction(async (tx) => {
    await tx.mkdir(base);
    await tx.setPerms(base, ['n0', `r${domid}`]);
    await Promise.all([
      tx.write(`${base}/name`, spec.name),
      tx.write(`${base}/domid`, String(domid)),
      tx.write(`${base}/memory/static-max`, String(maxMiB * 1024)),
      tx.write(`${base}/memory/target`, String(memoryMiB * 1024)),
    ]);
  });
  // The ring's gfn and event channel mean nothing here; xenstored wants a non-zero port.
  if (opts.introduce !== false) await xs.introduce(domid, 0xfeffc, 1);
  return { domid, name: spec.name, memoryMiB, maxPages: maxMiB * PAGES_PER_MIB };
}

/** xl destroy on the simulated host: the domain, its records, then RELEASE (@releaseDomain). */
export async function destroyDomain(xs: XenstoreClient, hv: SimHypervisor, domid: number): Promise<void> {
  if (domid === 0) throw new ManagerError({ code: 'EPERM', reason: 'domain', domid, message: 'dom0 cannot be destroyed' });
  const info = await hv.domainInfo(domid);
  if (info && !info.dying) await hv.destroyDomain(domid);
  await rmIfExists(xs, `/local/domain/${domid}`);
  try {
    await xs.release(domid);
  } catch (e) {
    // Never introduced (or released already): nothing for xenstored to forget.
    if (!(e instanceof XenstoreError && (e.code === 'ENOENT' || e.code === 'EINVAL'))) throw e;
  }
}

/** NAME or DOMID -> domid, through /local/domain/<domid>/name. */
export async function resolveDomainArg(xs: XenstoreClient, arg: string): Promise<number> {
  if (/^\d+$/.test(arg)) return Number(arg);
  const match = (await listDomains(xs)).filter((d) => d.name === arg);
  if (match.length !== 1) {
    throw new ManagerError({
      code: match.length === 0 ? 'ESRCH' : 'EINVAL', reason: 'domain', domain: arg, path: '/local/domain',
      message: match.length === 0 ? `no domain is named ${JSON.stringify(arg)}` : `${match.length} domains are named ${JSON.stringify(arg)}`,
    });
  }
  return match[0].domid;
}
