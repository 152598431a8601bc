/**
 * The `sim` backend: XenHypervisor over a simulated host, plus what a toolstack would do there
 * (create and destroy domains, set max memory) and a guest's own view of its memory, which the
 * sandbox and the tests use in place of a real guest.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DOMCTL_INTERFACE_VERSIONS, XEN_PAGE_SIZE } from '../abi';
import { HypercallError } from '../errors';
import type { GfnList, XenArch } from '../types';
import { XenHypervisor } from '../xen';
import type { PhysmapEntry, SimDomainSpec, SimDomainView } from './host';
import { SimStore } from './store';
import { SimTransport } from './transport';

export type { PhysmapEntry, SimDomainSpec, SimDomainView } from './host';

export interface SimOptions {
  /** Keep the host in this folder across processes (the sandbox); default: this process only. */
  dir?: string;
  /** For a new host: 'arm' (default) or 'x86'. An existing folder must match if given. */
  arch?: XenArch;
  /** For a new host: the release it reports. Default 4.17.0 (Debian 12's). */
  xenVersion?: { major: number; minor: number; extraversion?: string };
  /** For a new host: the domctl interface version it accepts. Default: the release's, from the table. */
  domctlInterfaceVersion?: number;
  /** For a new x86 host: dom0 'pv' (default, as usual) or 'pvh' (then it may receive foreign frames). */
  dom0Type?: 'pv' | 'pvh';
  /**
   * The sim refuses to start on a machine that runs under Xen (it must never stand in for the
   * real host by accident). Set when the user asked for the sandbox explicitly.
   */
  allowOnXenHost?: boolean;
}

/** A guest's view of some of its pages. */
export interface GuestView {
  readonly buffer: Buffer;
  unmap(): void;
}

/** True when this machine runs under Xen: privcmd or xenfs is there. */
export function xenHostPresent(): boolean {
  return fs.existsSync('/dev/xen/privcmd') || fs.existsSync('/proc/xen/capabilities');
}

export class SimHypervisor extends XenHypervisor {
  private readonly sim: SimTransport;

  constructor(opts: SimOptions = {}) {
    if (!opts.allowOnXenHost && xenHostPresent()) {
      throw new HypercallError({
        call: 'sim', errno: os.constants.errno.EPERM, path: '/dev/xen/privcmd',
        message: 'this machine runs under Xen (/dev/xen/privcmd or /proc/xen exists): the simulated host is used here only when asked for explicitly (--sandbox)',
      });
    }
    const major = opts.xenVersion?.major ?? 4;
    const minor = opts.xenVersion?.minor ?? 17;
    const version = opts.domctlInterfaceVersion ?? DOMCTL_INTERFACE_VERSIONS[`${major}.${minor}`];
    if (version === undefined) {
      throw new HypercallError({ call: 'sim', errno: os.constants.errno.EINVAL, message: `no domctl interface version known for Xen ${major}.${minor}: pass domctlInterfaceVersion` });
    }
    const store = new SimStore(opts.dir ? path.resolve(opts.dir) : undefined, {
      arch: opts.arch ?? 'arm',
      explicitArch: opts.arch !== undefined,
      xen: { major, minor, extraversion: opts.xenVersion?.extraversion ?? '.0' },
      domctlInterfaceVersion: version,
      ...(opts.dom0Type ? { dom0Type: opts.dom0Type } : {}),
    });
    const transport = new SimTransport(store);
    super(transport);
    this.sim = transport;
  }

  /** The folder holding the host, if any. */
  get dir(): string | undefined {
    return this.sim.store.dir;
  }

  /** xl create: a domain with a max memory (pages of 4 KiB). Returns its domid. */
  createDomain(spec: SimDomainSpec): Promise<number> {
    return this.run(() => this.sim.current().createDomain(spec));
  }

  /** xl destroy. Pages still mapped elsewhere keep it as a dying domain until unmapped. */
  destroyDomain(domid: number): Promise<void> {
    return this.run(() => this.sim.current().destroyDomain(domid));
  }

  /** xl mem-max. */
  setMaxPages(domid: number, maxPages: number): Promise<void> {
    return this.run(() => this.sim.current().setMaxPages(domid, maxPages));
  }

  domains(): Promise<SimDomainView[]> {
    return this.run(() => {
      const h = this.sim.current();
      return [...h.domains.values()].sort((a, b) => a.domid - b.domid).map((d) => h.view(d));
    });
  }

  /** What domid's physmap holds at gfn. */
  physmapEntry(domid: number, gfn: number): Promise<PhysmapEntry> {
    return this.run(() => {
      const h = this.sim.current();
      const d = h.domains.get(domid);
      if (!d) throw new HypercallError({ call: 'sim', errno: os.constants.errno.ESRCH, domid, message: `d${domid} does not exist` });
      return h.entry(d, gfn);
    });
  }

  /** Reference count and owner of a frame (tests). */
  frameInfo(mfn: number): Promise<{ owner: number | null; refs: number; allocated: boolean }> {
    return this.run(() => this.sim.current().frameInfo(mfn));
  }

  /**
   * The guest's own view of its pages at gfns (its RAM or the foreign pages mapped there), as a
   * simulated guest would read and write them: what the real-Xen tier reads through /dev/mem in
   * a domU.
   */
  guestMap(domid: number, gfns: GfnList): Promise<GuestView> {
    return this.run(() => {
      const h = this.sim.current();
      const mfns = h.guestFrames(domid, gfns);
      h.flushFrames();
      const ab = h.frames.map(mfns);
      let live = true;
      return {
        buffer: Buffer.from(ab, 0, gfns.length * XEN_PAGE_SIZE),
        unmap: (): void => {
          if (!live) return;
          live = false;
          h.frames.unmap(ab);
        },
      };
    });
  }
}
