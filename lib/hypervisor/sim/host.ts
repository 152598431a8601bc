/**
 * The simulated Xen host: domains with a max memory, a physmap and event channels each, a frame
 * table, and the rules Xen applies to the hypercalls xen-sshm makes, for the release it models
 * (4.17 to 4.22; releases.ts). This file is the façade over the rooms that hold the rules:
 *   physmap.ts      a domain's gfn -> mfn map
 *   frame-table.ts  machine frames: owners, references, the allocator (4 KiB and 2 MiB extents)
 *   memory.ts       memory_op: populate, decrease, foreign maps, remove_from_physmap
 *   domctl.ts       getdomaininfo, max_mem, set_target
 *   evtchn.ts       event channels: ports per domain, dom0's and the guests' operations
 *   toolstack.ts    what xl does (create, destroy, mem-max): not hypercalls of xen-sshm
 *   persistence.ts  the host as bytes (host.bin)
 * Rules cite the Xen source they follow (xen-project/xen at tag RELEASE-4.17.0 unless a release
 * is named; paths under xen/).
 *
 * Deliberate simplifications: extents of order 0 and 9 only; no continuations (calls run to
 * the end); dom0's own process mappings take no page references; no XSM other than the default
 * policy; no PoD, paging or sharing; event channels without VIRQs, PIRQs, IPIs or vCPUs.
 */
import { DOMID_SELF, PAGE_SIZE } from '../../vocabulary';
import { SYSCTL_INTERFACE_VERSIONS } from '../abi';
import { rulesFor, type XenRules } from '../releases';
import type { XenArch } from '../types';
import * as domctl from './domctl';
import * as evtchn from './evtchn';
import { EvtchnTable } from './evtchn';
import { FREE, FrameTable } from './frame-table';
import * as memory from './memory';
import { Physmap } from './physmap';
import * as toolstack from './toolstack';

export type SimDomainType = 'pv' | 'pvh' | 'hvm';

export interface SimDomainSpec {
  /** Default: the lowest free id from 1. */
  domid?: number;
  name?: string;
  /** Max memory in 4 KiB pages (xl `maxmem`). */
  maxPages: number;
  /**
   * Pages the domain already holds that xen-sshm never touches (its RAM, page tables...): they
   * count in tot_pages but have no gfn in the simulated physmap. Default 0.
   */
  extraPages?: number;
  /** x86 only: 'pv' guests are not translated (no physmap to map into). Default 'pvh'. */
  type?: SimDomainType;
  /** The highest event channel port (xl `max_event_channels` - 1). Default 1023, libxl's. */
  maxEvtchnPort?: number;
}

export interface SimDomainView {
  domid: number;
  name: string;
  maxPages: number;
  totPages: number;
  type: SimDomainType;
  target: number | null;
  dying: boolean;
  /** gfns with an entry in the physmap. */
  mappedGfns: number;
}

/** What a domain's physmap holds at one gfn. */
export type PhysmapEntry =
  | { kind: 'none' }
  | { kind: 'ram'; mfn: number }
  | { kind: 'foreign'; mfn: number; owner: number };

export interface SimHostInit {
  arch: XenArch;
  xen: { major: number; minor: number; extraversion: string };
  domctlInterfaceVersion: number;
  /** x86 only: dom0 is usually PV (no physmap to map into); PVH dom0s exist. Default 'pv'. */
  dom0Type?: SimDomainType;
  /** Machine frames Xen can hand out, in all. Default 2^24 (64 GiB). */
  hostPages?: number;
}

export const DEFAULT_HOST_PAGES = 1 << 24;

export class SimDomain {
  readonly physmap = new Physmap();
  readonly evtchn: EvtchnTable;
  /** Frames of the frame table owned by this domain (in its physmap or not). */
  ownedPages = 0;
  target: number | null = null;
  dying = false;

  constructor(
    readonly domid: number,
    public name: string,
    public maxPages: number,
    public extraPages: number,
    readonly type: SimDomainType,
    maxEvtchnPort: number,
  ) {
    this.evtchn = new EvtchnTable(maxEvtchnPort);
  }

  /** domain_tot_pages(): everything allocated to the domain. */
  get totPages(): number {
    return this.extraPages + this.ownedPages;
  }
}

export class SimHost {
  readonly arch: XenArch;
  readonly xen: { major: number; minor: number; extraversion: string };
  readonly domctlInterfaceVersion: number;
  /** XEN_SYSCTL_INTERFACE_VERSION of the modelled release (abi.ts), undefined if not known. */
  readonly sysctlInterfaceVersion: number | undefined;
  /** The rules of the modelled release (releases.ts). */
  readonly rules: XenRules;
  readonly domains = new Map<number, SimDomain>();
  readonly frames: FrameTable;

  /** Set by every change of the host; the store saves a dirty host. */
  dirty = false;

  constructor(init: SimHostInit) {
    this.arch = init.arch;
    this.xen = { ...init.xen };
    this.domctlInterfaceVersion = init.domctlInterfaceVersion;
    this.sysctlInterfaceVersion = SYSCTL_INTERFACE_VERSIONS[`${init.xen.major}.${init.xen.minor}`];
    this.rules = rulesFor(init.arch, init.xen);
    this.frames = new FrameTable(init.hostPages ?? DEFAULT_HOST_PAGES);
  }

  /** A fresh host: dom0 only (the control and hardware domain), PV on x86 as usual. */
  static create(init: SimHostInit, dom0MaxPages = 1 << 20, dom0Pages = 196608): SimHost {
    const h = new SimHost(init);
    const dom0 = new SimDomain(0, 'Domain-0', dom0MaxPages, dom0Pages, init.arch === 'x86' ? init.dom0Type ?? 'pv' : 'hvm', evtchn.DOM0_MAX_PORT);
    h.domains.set(0, dom0);
    h.dirty = true;
    return h;
  }

  /** Changed since the last save: the rules' state or a frame's dirty bit. */
  get changed(): boolean {
    return this.dirty || this.frames.changed;
  }

  // ---- domain predicates -----------------------------------------------------------------------

  /** paging_mode_translate(d): every Arm guest; x86 HVM and PVH guests, not PV ones. */
  translated(d: SimDomain): boolean {
    return this.arch === 'arm' || d.type !== 'pv';
  }

  /** is_hvm_domain(d) (include/xen/sched.h:1118): every Arm guest; x86 HVM and PVH guests. */
  hvm(d: SimDomain): boolean {
    return this.arch === 'arm' || d.type !== 'pv';
  }

  /** rcu_lock_domain_by_any_id(): DOMID_SELF is the caller (`caller`, dom0 unless a guest acts). */
  byAnyId(domid: number, caller = 0): SimDomain | undefined {
    return this.domains.get(domid === DOMID_SELF ? caller : domid);
  }

  // ---- the toolstack's part (toolstack.ts) -----------------------------------------------------

  createDomain(spec: SimDomainSpec): number {
    return toolstack.createDomain(this, spec);
  }

  setMaxPages(domid: number, maxPages: number): void {
    toolstack.setMaxPages(this, domid, maxPages);
  }

  destroyDomain(domid: number): void {
    toolstack.destroyDomain(this, domid);
  }

  /** A dying domain disappears once nothing keeps it. */
  reap(d: SimDomain): void {
    if (!d.dying || d.ownedPages > 0) return;
    for (const other of this.domains.values()) if (other.target === d.domid) return;
    this.domains.delete(d.domid);
  }

  // ---- frames ----------------------------------------------------------------------------------

  /** A frame for d (a 4 KiB extent), or -1 when Xen has none. */
  allocFrame(d: SimDomain): number {
    const m = this.frames.allocFrame(d.domid);
    if (m >= 0) d.ownedPages++;
    return m;
  }

  /** An aligned 2 MiB extent for d: its first frame, or -1 when Xen has no free one. */
  allocExtent(d: SimDomain): number {
    const m = this.frames.allocExtent(d.domid);
    if (m >= 0) d.ownedPages += 512;
    return m;
  }

  /**
   * free_domheap_page(): back to the heap, off the owner's tot_pages. Xen scrubs the page only
   * when its domain is dying: "Normally we expect a domain to clear pages before freeing them,
   * if it cares about the secrecy of their contents. However, after a domain has died we assume
   * responsibility for erasure" (common/page_alloc.c, free_domheap_pages(): `scrub =
   * d->is_dying || scrub_debug || opt_scrub_domheap`). Otherwise the next owner sees its bytes.
   */
  freeFrame(mfn: number): void {
    const was = this.domains.get(this.frames.owner[mfn]);
    const owner = this.domains.get(this.frames.free(mfn, !was || was.dying));
    if (owner) {
      owner.ownedPages--;
      this.reap(owner);
    }
  }

  /** put_page() of a foreign mapping's reference: the last one frees a page its owner let go. */
  putRef(mfn: number): void {
    const f = this.frames;
    if (f.refs[mfn] > 0) f.refs[mfn]--;
    if (f.refs[mfn] === 0 && !f.alloc[mfn] && f.owner[mfn] !== FREE) this.freeFrame(mfn);
  }

  /** The owner and reference count of a frame (tests). */
  frameInfo(mfn: number): { owner: number | null; refs: number; allocated: boolean } {
    const o = this.frames.owner[mfn];
    return { owner: o === FREE ? null : o, refs: this.frames.refs[mfn], allocated: this.frames.alloc[mfn] === 1 };
  }

  entry(d: SimDomain, gfn: number): PhysmapEntry {
    const v = d.physmap.get(gfn);
    if (v === 0) return { kind: 'none' };
    const mfn = v - 1;
    const owner = this.frames.owner[mfn];
    return owner === d.domid ? { kind: 'ram', mfn } : { kind: 'foreign', mfn, owner };
  }

  view(d: SimDomain): SimDomainView {
    return {
      domid: d.domid, name: d.name, maxPages: d.maxPages, totPages: d.totPages, type: d.type,
      target: d.target, dying: d.dying, mappedGfns: d.physmap.count(),
    };
  }

  /** Bytes of the frames in use (for the sandbox's status output). */
  usedBytes(): number {
    let used = 0;
    for (const d of this.domains.values()) used += d.ownedPages;
    return used * PAGE_SIZE;
  }

  // ---- memory_op (memory.ts) -------------------------------------------------------------------

  /** populate_physmap of one extent of order 0 or 9 at gfn: false where Xen's loop stops. */
  populate(d: SimDomain, gfn: number, order = 0): boolean {
    return memory.populate(this, d, gfn, order);
  }

  removeOwnPage(d: SimDomain, gfn: number): number {
    return memory.removeOwnPage(this, d, gfn);
  }

  foreignOwner(d: SimDomain, foreignDomid: number): SimDomain | number {
    return memory.foreignOwner(this, d, foreignDomid);
  }

  addForeignPage(d: SimDomain, od: SimDomain, idx: number, gfn: number): number {
    return memory.addForeignPage(this, d, od, idx, gfn);
  }

  removeFromPhysmap(domid: number, gfn: number): number {
    return memory.removeFromPhysmap(this, domid, gfn);
  }

  framesForDom0(domid: number, gfns: ArrayLike<number>, errs: Int32Array, mfns: Uint32Array): void {
    memory.framesForDom0(this, domid, gfns, errs, mfns);
  }

  guestFrames(domid: number, gfns: ArrayLike<number>): Uint32Array {
    return memory.guestFrames(this, domid, gfns);
  }

  // ---- domctl (domctl.ts) ------------------------------------------------------------------------

  getDomainInfo(domid: number): SimDomain | number {
    return domctl.getDomainInfo(this, domid);
  }

  maxMem(domid: number, maxKib: bigint): number {
    return domctl.maxMem(this, domid, maxKib);
  }

  setTarget(domid: number, target: number): number {
    return domctl.setTarget(this, domid, target);
  }
}
