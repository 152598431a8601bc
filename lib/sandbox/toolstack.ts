/**
 * The toolstack's part, played on a simulated host: what `xl create -p` and `xl destroy` do
 * that xen-sshm relies on. Create: a domain with the config's name and memory, the records
 * libxl writes under /local/domain/<domid> (owned by dom0, readable by the domain), and
 * INTRODUCE (xenstored fires @introduceDomain). Destroy: the domain goes, its records go, and
 * RELEASE (xenstored fires @releaseDomain). Works with any xenstored.
 *
 * Max memory follows libxl: the config's memory (or maxmem when larger) plus 1 MiB
 * (LIBXL_MAXMEM_CONSTANT, libxl__arch_extra_memory()). Populating a shared region counts
 * against it, as on Xen. Memory is refused beyond what Xen can count (MAX_DOMAIN_PAGES pages),
 * in exact integers: `memory = 99999999999` is refused, not rounded.
 *
 * Both operations are all-or-nothing: everything is checked before the first change, and a
 * step that fails after it (xenstored refusing the records, INTRODUCE) undoes the earlier ones,
 * so a refused create leaves no domain in the simulated host and no record in xenstore.
 *
 * SandboxToolstack puts these behind the Toolstack interface of lib/toolstack, so that
 * `xen-sshm create` and `destroy` run the same steps in the sandbox as with xl on a real host.
 */
import { XENSTORE_PAYLOAD_MAX, XenstoreError, type XenstoreClient } from '../../xenstore-wire';
import { domainName as configDomainName, type XlConfig } from '../config';
import type { SimHypervisor } from '../hypervisor/sim';
import { listDomains, ManagerError } from '../manager';
import { rmIfExists } from '../store';
import { ToolstackError, type DomainRef, type Toolstack } from '../toolstack';
import { DOMID_FIRST_RESERVED, isDomid, MAX_DOMAIN_PAGES, PAGES_PER_MIB } from '../vocabulary';

/** LIBXL_MAXMEM_CONSTANT: the slack libxl adds to a domain's max memory, in MiB. */
export const LIBXL_MAXMEM_SLACK_MIB = 1;
/** The largest memory or maxmem, in MiB, whose pages (with libxl's slack) Xen can count. */
export const MAX_DOMAIN_MIB = Math.floor(MAX_DOMAIN_PAGES / PAGES_PER_MIB) - LIBXL_MAXMEM_SLACK_MIB;

export interface DomainSpec {
  name: string;
  /** RAM in MiB (xl `memory`, default 128). */
  memoryMiB?: number;
  /** xl `maxmem` in MiB (default: memory). */
  maxmemMiB?: number;
  /** Default: the lowest domid above every existing one. */
  domid?: number;
  /** xl `type` on an x86 host: 'pv' guests cannot borrow (not translated). Default 'pvh'. */
  type?: 'pv' | 'pvh' | 'hvm';
  /** xl `max_event_channels` minus one: the domain's highest port (default 1023, libxl's). */
  maxEvtchnPort?: number;
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
    return memoryMiB(v.type === 'string' ? v.value : null, `${cfg.file}: ${key}`, cfg.file);
  };
  return { name, memoryMiB: num('memory'), maxmemMiB: num('maxmem') };
}

/**
 * A number of MiB for a domain's memory: a decimal integer from 1 to MAX_DOMAIN_MIB, checked
 * as text so that no float rounding lets an impossible size through.
 */
export function memoryMiB(text: string | null, what: string, path?: string): number {
  const t = text === null ? '' : text.trim();
  const shown = t.length > 40 ? `${t.slice(0, 40)}…` : t;
  if (!/^\d+$/.test(t) || /^0+$/.test(t)) {
    throw new ManagerError({ code: 'EINVAL', reason: 'config', path, message: `${what} must be a whole number of MiB from 1 to ${MAX_DOMAIN_MIB}${text === null ? '' : `, not ${JSON.stringify(shown)}`}` });
  }
  const n = BigInt(t);
  if (n > BigInt(MAX_DOMAIN_MIB)) {
    throw new ManagerError({
      code: 'EINVAL', reason: 'config', path,
      message: `${what} = ${shown} MiB is more than Xen can give a domain: at most ${MAX_DOMAIN_MIB} MiB (${MAX_DOMAIN_PAGES} pages of 4 KiB, max_pages being a 32-bit count, with libxl's ${LIBXL_MAXMEM_SLACK_MIB} MiB of slack)`,
    });
  }
  return Number(n);
}

/** The checks of createDomain, before any change; returns the sizes in MiB. */
function checkSpec(spec: DomainSpec): { memoryMiB: number; maxMiB: number } {
  const mib = (v: number | undefined, what: string, dflt: number): number => (v === undefined ? dflt : memoryMiB(Number.isSafeInteger(v) ? String(v) : `${v}`, what));
  const memory = mib(spec.memoryMiB, 'memory', 128);
  const maxmem = mib(spec.maxmemMiB, 'maxmem', memory);
  if (typeof spec.name !== 'string' || spec.name === '' || spec.name.includes('\0')) {
    throw new ManagerError({ code: 'EINVAL', reason: 'domain', message: 'a domain needs a non-empty name without NUL characters' });
  }
  // The name is written to /local/domain/<domid>/name in one request: path, NUL and value.
  const room = XENSTORE_PAYLOAD_MAX - `/local/domain/${DOMID_FIRST_RESERVED}/name`.length - 1;
  if (Buffer.byteLength(spec.name) > room) {
    throw new ManagerError({
      code: 'E2BIG', reason: 'domain', domain: `${spec.name.slice(0, 40)}…`,
      message: `the domain name is ${Buffer.byteLength(spec.name)} bytes: xenstore takes at most ${room} in /local/domain/<domid>/name (XENSTORE_PAYLOAD_MAX ${XENSTORE_PAYLOAD_MAX})`,
    });
  }
  if (spec.domid !== undefined && (!isDomid(spec.domid) || spec.domid === 0)) {
    throw new ManagerError({ code: 'EINVAL', reason: 'domain', message: `${spec.domid} is not a domU id (1..${DOMID_FIRST_RESERVED - 1})` });
  }
  return { memoryMiB: memory, maxMiB: Math.max(memory, maxmem) + LIBXL_MAXMEM_SLACK_MIB };
}

/** xl create -p on the simulated host: all of it, or (refused or failed) nothing. */
export async function createDomain(xs: XenstoreClient, hv: SimHypervisor, spec: DomainSpec, opts: { introduce?: boolean } = {}): Promise<CreatedDomain> {
  const { memoryMiB, maxMiB } = checkSpec(spec);
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
  const sim = await hv.domains();
  if (domid === undefined) {
    domid = Math.max(0, ...sim.map((d) => d.domid), ...known.map((d) => d.domid)) + 1;
    if (!isDomid(domid)) throw new ManagerError({ code: 'ENOSPC', reason: 'domain', message: `no domid left above d${domid - 1}: give --domid` });
  } else if (known.some((d) => d.domid === domid)) {
    throw new ManagerError({ code: 'EEXIST', reason: 'domain', domid, path: `/local/domain/${domid}`, message: `d${domid} exists already (/local/domain/${domid})` });
  }
  await hv.createDomain({ domid, name: spec.name, maxPages: maxMiB * PAGES_PER_MIB, extraPages: memoryMiB * PAGES_PER_MIB, ...(spec.type ? { type: spec.type } : {}), ...(spec.maxEvtchnPort !== undefined ? { maxEvtchnPort: spec.maxEvtchnPort } : {}) });
  const base = `/local/domain/${domid}`;
  let recorded = false;
  try {
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
    recorded = true;
    // The ring's gfn and event channel mean nothing here; xenstored wants a non-zero port.
    if (opts.introduce !== false) await xs.introduce(domid, 0xfeffc, 1);
  } catch (e) {
    // Undo: the records (if they were committed), then the domain, which has no pages yet and
    // so leaves the simulated host at once.
    if (recorded) await rmIfExists(xs, base).catch(() => undefined);
    await hv.destroyDomain(domid).catch(() => undefined);
    throw e;
  }
  return { domid, name: spec.name, memoryMiB, maxPages: maxMiB * PAGES_PER_MIB };
}

/**
 * xl destroy on the simulated host: the domain, its records, then RELEASE (@releaseDomain).
 * Refused before any change when the domain exists neither in the host nor in xenstore.
 */
export async function destroyDomain(xs: XenstoreClient, hv: SimHypervisor, domid: number): Promise<void> {
  if (domid === 0) throw new ManagerError({ code: 'EPERM', reason: 'domain', domid, message: 'dom0 cannot be destroyed' });
  if (!isDomid(domid)) throw new ManagerError({ code: 'EINVAL', reason: 'domain', message: `${domid} is not a domain id (0..${DOMID_FIRST_RESERVED - 1})` });
  const info = await hv.domainInfo(domid);
  if (!info && !(await xs.exists(`/local/domain/${domid}`))) {
    throw new ManagerError({ code: 'ESRCH', reason: 'domain', domid, path: `/local/domain/${domid}`, message: `d${domid} does not exist` });
  }
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
  if (/^\d+$/.test(arg)) {
    if (arg.length > 5 || !isDomid(Number(arg))) throw new ManagerError({ code: 'EINVAL', reason: 'domain', message: `${arg.slice(0, 40)} is not a domain id (0..${DOMID_FIRST_RESERVED - 1})` });
    return Number(arg);
  }
  const match = (await listDomains(xs)).filter((d) => d.name === arg);
  if (match.length !== 1) {
    throw new ManagerError({
      code: match.length === 0 ? 'ESRCH' : 'EINVAL', reason: 'domain', domain: arg, path: '/local/domain',
      message: match.length === 0 ? `no domain is named ${JSON.stringify(arg.length > 80 ? `${arg.slice(0, 80)}…` : arg)}` : `${match.length} domains are named ${JSON.stringify(arg)}`,
    });
  }
  return match[0].domid;
}

/**
 * The sandbox behind the Toolstack interface: create is createDomain (the domain is recorded
 * as created paused; nothing runs in the simulated host, so unpause has nothing to do), destroy
 * is destroyDomain. `overrides` are the sandbox-only choices of `xen-sshm create --domid --maxmem`.
 */
export class SandboxToolstack implements Toolstack {
  readonly name = 'sandbox';

  constructor(
    private readonly xs: XenstoreClient,
    private readonly hv: SimHypervisor,
    private readonly overrides: { domid?: number; maxmemMiB?: number } = {},
  ) {}

  describe(step: 'create' | 'unpause' | 'destroy', what: string): string {
    return step === 'create' ? `sandbox create -p ${what}` : `sandbox ${step} ${what}`;
  }

  async createPaused(_configPath: string, config: XlConfig): Promise<DomainRef & { detail: string }> {
    const spec = { ...domainSpecFromConfig(config), ...this.overrides };
    try {
      const d = await createDomain(this.xs, this.hv, spec);
      return { domid: d.domid, name: d.name, detail: `${d.memoryMiB} MiB, max ${d.maxPages / PAGES_PER_MIB} MiB` };
    } catch (e) {
      throw this.stepError('create', e, spec.name);
    }
  }

  async unpause(): Promise<void> {
    // Simulated domains do not run: nothing to start.
  }

  async destroy(d: DomainRef): Promise<void> {
    try {
      await destroyDomain(this.xs, this.hv, d.domid);
    } catch (e) {
      throw this.stepError('destroy', e, d.name, d.domid);
    }
  }

  async resolve(arg: string): Promise<DomainRef> {
    try {
      const domid = await resolveDomainArg(this.xs, arg);
      const name = (await listDomains(this.xs)).find((x) => x.domid === domid)?.name ?? null;
      if (name === null && !(await this.hv.domainInfo(domid))) {
        throw new ManagerError({ code: 'ESRCH', reason: 'domain', domid, path: `/local/domain/${domid}`, message: `d${domid} does not exist` });
      }
      return { domid, name: name ?? `d${domid}` };
    } catch (e) {
      throw this.stepError('resolve', e, arg);
    }
  }

  private stepError(step: 'create' | 'destroy' | 'resolve', e: unknown, domain: string, domid?: number): ToolstackError {
    const c = e as { code?: unknown; message?: unknown; hint?: unknown };
    return new ToolstackError({
      step, code: typeof c?.code === 'string' ? c.code : 'EIO', domain, domid, cause: e,
      message: typeof c?.message === 'string' ? c.message : String(e),
      ...(typeof c?.hint === 'string' ? { hint: c.hint } : {}),
    });
  }
}
