/**
 * The `sim` backend: XenHypervisor over a simulated host, plus what a toolstack would do there
 * (create and destroy domains, set max memory) and what a guest does itself (its own view of its
 * memory, binding, ringing and closing its event channels), which the sandbox and the tests use
 * in place of real guests. Needs no native code (frames.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DOMCTL_INTERFACE_VERSIONS } from '../abi';
import { errnoName, HypercallError } from '../errors';
import { checkDomid } from '../hypercalls/context';
import { checkPort } from '../hypercalls/evtchn';
import { parseRelease, SIM_RELEASES, type SimRelease } from '../releases';
import type { GfnList, XenArch } from '../types';
import { XenHypervisor } from '../xen';
import * as evtchn from './evtchn';
import type { PhysmapEntry, SimDomainSpec, SimDomainView } from './host';
import { SimStore } from './store';
import { SimTransport } from './transport';

export type { PhysmapEntry, SimDomainSpec, SimDomainView } from './host';

export interface SimOptions {
  /** Keep the host in this folder across processes (the sandbox); default: this process only. */
  dir?: string;
  /** For a new host: 'arm' (default) or 'x86'. An existing folder must match if given. */
  arch?: XenArch;
  /**
   * For a new host: the Xen release it models, '4.17' (default, Debian 12's) to '4.22'. Its
   * rules (releases.ts) and domctl interface version follow.
   */
  release?: SimRelease;
  /** For a new host: the release it reports, when not one of `release`'s (tests). */
  xenVersion?: { major: number; minor: number; extraversion?: string };
  /** For a new host: the domctl interface version it accepts. Default: the release's, from the table. */
  domctlInterfaceVersion?: number;
  /** For a new x86 host: dom0 'pv' (default, as usual) or 'pvh' (then it may receive foreign frames). */
  dom0Type?: 'pv' | 'pvh';
  /** For a new host: machine frames Xen can hand out, in all (default 2^24, 64 GiB). */
  hostPages?: number;
  /**
   * The sim refuses to start on a machine that runs under Xen (it must never stand in for the
   * real host by accident). Set when the user asked for the sandbox explicitly.
   */
  allowOnXenHost?: boolean;
}

/** A guest's view of some of its pages (see frames.ts for how views alias). */
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
        message: 'this machine runs under Xen (/dev/xen/privcmd or /proc/xen exists): the simulated host runs here only with allowOnXenHost',
      });
    }
    if (opts.release !== undefined && !(SIM_RELEASES as readonly string[]).includes(opts.release)) {
      throw new HypercallError({ call: 'sim', errno: os.constants.errno.EINVAL, message: `release ${String(opts.release)}: the sim models ${SIM_RELEASES.join(', ')}` });
    }
    const rel = opts.release !== undefined ? parseRelease(opts.release)! : undefined;
    const major = opts.xenVersion?.major ?? rel?.major ?? 4;
    const minor = opts.xenVersion?.minor ?? rel?.minor ?? 17;
    const version = opts.domctlInterfaceVersion ?? DOMCTL_INTERFACE_VERSIONS[`${major}.${minor}`];
    if (version === undefined) {
      throw new HypercallError({ call: 'sim', errno: os.constants.errno.EINVAL, message: `no domctl interface version known for Xen ${major}.${minor}` });
    }
    if (opts.hostPages !== undefined && !(Number.isInteger(opts.hostPages) && opts.hostPages > 0 && opts.hostPages <= 2 ** 32)) {
      throw new HypercallError({ call: 'sim', errno: os.constants.errno.EINVAL, message: `hostPages ${opts.hostPages}: need an integer in 1..2^32` });
    }
    const store = new SimStore(opts.dir ? path.resolve(opts.dir) : undefined, {
      arch: opts.arch ?? 'arm',
      explicitArch: opts.arch !== undefined,
      xen: { major, minor, extraversion: opts.xenVersion?.extraversion ?? '.0' },
      domctlInterfaceVersion: version,
      ...(opts.dom0Type ? { dom0Type: opts.dom0Type } : {}),
      ...(opts.hostPages !== undefined ? { hostPages: opts.hostPages } : {}),
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
   * a domU. Its bytes reach other processes when it is unmapped (frames.ts).
   */
  guestMap(domid: number, gfns: GfnList): Promise<GuestView> {
    return this.run(() => {
      const h = this.sim.current();
      const v = this.sim.store.views.view(h.frames, h.guestFrames(domid, gfns));
      return {
        get buffer() {
          return v.buffer;
        },
        unmap: () => v.unmap(),
      };
    });
  }

  // ---- a guest's own event channel operations (sim/evtchn.ts) -----------------------------------

  /** EVTCHNOP_bind_interdomain as guest `domid`: binds (remoteDom, remotePort); its local port. */
  guestEvtchnBindInterdomain(domid: number, remoteDom: number, remotePort: number): Promise<number> {
    const call = 'event_channel_op(bind_interdomain)';
    return this.run(() => {
      const d = checkDomid(domid, call);
      const rc = evtchn.bindInterdomain(this.sim.current(), d, checkDomid(remoteDom, call), checkPort(remotePort, call, d));
      if (rc < 0) throw guestError(call, rc, d, `d${d} binding port ${remotePort} of d${remoteDom}`, remoteDom);
      return rc;
    });
  }

  /** EVTCHNOP_send as guest `domid` on its port: the remote end becomes pending. */
  guestEvtchnSend(domid: number, port: number): Promise<void> {
    const call = 'event_channel_op(send)';
    return this.run(() => {
      const d = checkDomid(domid, call);
      const rc = evtchn.send(this.sim.current(), d, checkPort(port, call, d));
      if (rc < 0) throw guestError(call, rc, d, `d${d} sending on port ${port}`);
    });
  }

  /** EVTCHNOP_close as guest `domid` of its own port: an interdomain remote end becomes unbound. */
  guestEvtchnClose(domid: number, port: number): Promise<void> {
    const call = 'event_channel_op(close)';
    return this.run(() => {
      const d = checkDomid(domid, call);
      const rc = evtchn.close(this.sim.current(), d, checkPort(port, call, d));
      if (rc < 0) throw guestError(call, rc, d, `d${d} closing port ${port}`);
    });
  }

  /** Guest `domid` notices its port's event: true if it was pending (then cleared). */
  guestEvtchnTakePending(domid: number, port: number): Promise<boolean> {
    const call = 'sim(evtchn pending)';
    return this.run(() => {
      const d = checkDomid(domid, call);
      const r = evtchn.takePending(this.sim.current(), d, checkPort(port, call, d));
      if (typeof r === 'number') throw guestError(call, r, d, `d${d} reading port ${port}`);
      return r;
    });
  }

  /** Live views are written back before the host is let go (frames.ts). */
  override async close(): Promise<void> {
    try {
      await this.run(() => this.sim.store.writeAllViews(this.sim.current()));
    } catch (e) {
      if (!(e instanceof HypercallError && e.code === 'EBADF')) throw e;
    }
    await super.close();
  }
}

function guestError(call: string, rc: number, domid: number, what: string, remoteDomid?: number): HypercallError {
  return new HypercallError({ call, errno: -rc, domid, ...(remoteDomid !== undefined ? { remoteDomid } : {}), message: `${what}: ${errnoName(-rc)}` });
}
