/**
 * The simulated Xen host: domains with a max memory and a physmap each, a frame table, and the
 * rules Xen applies to the hypercalls xen-sshm makes. Every rule cites the Xen 4.17 source it
 * follows (xen-project/xen at tag RELEASE-4.17.0; paths under xen/). Frames live in a file
 * (frames.ts) so that every view of a frame (the owner's, a borrower's, a dom0 mapping) aliases
 * the same bytes.
 *
 * Deliberate simplifications: order-0 extents only; no continuations (calls run to the end);
 * dom0's own process mappings (mapFrames) take no page references; no XSM other than the default
 * policy; no PoD, paging or sharing.
 */
import * as os from 'node:os';
import { DOMAIN_MAX_PAGES_LIMIT, DOMID_FIRST_RESERVED, DOMID_SELF, XEN_PAGE_SHIFT, XEN_PAGE_SIZE } from '../abi';
import { HypercallError } from '../errors';
import type { XenArch } from '../types';
import type { FrameFile } from './frames';

const E = os.constants.errno;

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
}

/** Frame table value of a free frame. */
const FREE = 0xffff;
/** Physmap chunk: 512 gfns, values mfn + 1 (0: no entry). */
const CHUNK = 512;

/** A domain's physmap: gfn -> mfn, in 512-gfn chunks of a Uint32Array. */
export class Physmap {
  readonly chunks = new Map<number, Uint32Array>();
  private lastKey = -1;
  private last: Uint32Array | undefined;

  private chunk(key: number, create: boolean): Uint32Array | undefined {
    if (key === this.lastKey) return this.last;
    let c = this.chunks.get(key);
    if (!c && create) {
      c = new Uint32Array(CHUNK);
      this.chunks.set(key, c);
    }
    if (c) {
      this.lastKey = key;
      this.last = c;
    }
    return c;
  }

  /** mfn + 1, or 0 when the gfn has no entry. */
  get(gfn: number): number {
    const key = Math.floor(gfn / CHUNK);
    const c = this.chunk(key, false);
    return c ? c[gfn - key * CHUNK] : 0;
  }

  set(gfn: number, value: number): void {
    const key = Math.floor(gfn / CHUNK);
    const c = this.chunk(key, value !== 0);
    if (c) c[gfn - key * CHUNK] = value;
  }

  /** Calls fn(gfn, mfn) for every entry. */
  forEach(fn: (gfn: number, mfn: number) => void): void {
    for (const [key, c] of this.chunks) {
      for (let i = 0; i < CHUNK; i++) if (c[i] !== 0) fn(key * CHUNK + i, c[i] - 1);
    }
  }

  count(): number {
    let n = 0;
    for (const c of this.chunks.values()) for (let i = 0; i < CHUNK; i++) if (c[i] !== 0) n++;
    return n;
  }

  clear(): void {
    this.chunks.clear();
    this.lastKey = -1;
    this.last = undefined;
  }
}

export class SimDomain {
  readonly physmap = new Physmap();
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
  ) {}

  /** domain_tot_pages(): everything allocated to the domain. */
  get totPages(): number {
    return this.extraPages + this.ownedPages;
  }
}

export class SimHost {
  readonly arch: XenArch;
  readonly xen: { major: number; minor: number; extraversion: string };
  readonly domctlInterfaceVersion: number;
  readonly domains = new Map<number, SimDomain>();

  // Frame table: owner domid (FREE when free), foreign-mapping references, and whether the
  // owner's allocation reference still holds (cleared when the owner frees or dies).
  private frameOwner = new Uint16Array(1024).fill(FREE);
  private frameRefs = new Uint32Array(1024);
  private frameAlloc = new Uint8Array(1024);
  /** Frames ever used: mfns >= highWater are untouched (zero) pages of the frames file. */
  private highWater = 0;
  private freeList = new Uint32Array(1024);
  private freeCount = 0;
  /**
   * Frames freed since the last flush: their bytes are released (made zero) at the flush, and
   * only then may they be given out again.
   */
  private pendingFree: number[] = [];

  /** Set by every change; the store saves a dirty host. */
  dirty = false;

  constructor(init: SimHostInit, readonly frames: FrameFile) {
    this.arch = init.arch;
    this.xen = { ...init.xen };
    this.domctlInterfaceVersion = init.domctlInterfaceVersion;
  }

  /** A fresh host: dom0 only (the control and hardware domain), PV on x86 as usual. */
  static create(init: SimHostInit, frames: FrameFile, dom0MaxPages = 1 << 20, dom0Pages = 196608): SimHost {
    const h = new SimHost(init, frames);
    const dom0 = new SimDomain(0, 'Domain-0', dom0MaxPages, dom0Pages, init.arch === 'x86' ? init.dom0Type ?? 'pv' : 'hvm');
    h.domains.set(0, dom0);
    h.dirty = true;
    return h;
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

  /** rcu_lock_domain_by_any_id(): DOMID_SELF is the caller, always dom0 here. */
  byAnyId(domid: number): SimDomain | undefined {
    return this.domains.get(domid === DOMID_SELF ? 0 : domid);
  }

  // ---- the toolstack's part (xl create / destroy / mem-max): not hypercalls of xen-sshm --------

  createDomain(spec: SimDomainSpec): number {
    let domid = spec.domid;
    if (domid === undefined) {
      domid = 1;
      while (this.domains.has(domid)) domid++;
    }
    if (!Number.isInteger(domid) || domid < 1 || domid >= DOMID_FIRST_RESERVED) {
      throw new HypercallError({ call: 'sim(createdomain)', errno: E.EINVAL, message: `${domid} is not a domU id (1..${DOMID_FIRST_RESERVED - 1})` });
    }
    if (this.domains.has(domid)) {
      throw new HypercallError({ call: 'sim(createdomain)', errno: E.EEXIST, domid, message: `d${domid} exists already${this.domains.get(domid)!.dying ? ' (a dying domain, kept by pages still mapped elsewhere)' : ''}` });
    }
    const extra = spec.extraPages ?? 0;
    if (!(Number.isInteger(spec.maxPages) && spec.maxPages >= 0 && Number.isInteger(extra) && extra >= 0 && extra <= spec.maxPages)) {
      throw new HypercallError({ call: 'sim(createdomain)', errno: E.EINVAL, domid, message: `maxPages ${spec.maxPages} / extraPages ${extra}: need 0 <= extraPages <= maxPages` });
    }
    const type = this.arch === 'arm' ? 'hvm' : spec.type ?? 'pvh';
    this.domains.set(domid, new SimDomain(domid, spec.name ?? `d${domid}`, spec.maxPages, extra, type));
    this.dirty = true;
    return domid;
  }

  /** xl mem-max, in pages: the max_mem domctl below with maxPages * 4 KiB. */
  setMaxPages(domid: number, maxPages: number): void {
    if (!(Number.isInteger(maxPages) && maxPages >= 0)) {
      throw new HypercallError({ call: 'sim(max_mem)', errno: E.EINVAL, domid, message: `maxPages ${maxPages}: need an integer >= 0` });
    }
    this.mustGet(domid, 'sim(max_mem)');
    this.maxMem(domid, BigInt(maxPages) * BigInt(XEN_PAGE_SIZE / 1024));
  }

  /**
   * xl destroy: domain_kill(). The domain's own references go (the foreign pages it maps, its
   * allocation of its own pages); pages other domains still map keep it as a dying "zombie" until
   * they are unmapped (FACTS: "An owner destroyed while borrowers still map its pages lingers as
   * a zombie domain until they unmap"), as does being another domain's target.
   */
  destroyDomain(domid: number): void {
    const d = this.mustGet(domid, 'sim(destroydomain)');
    if (domid === 0) throw new HypercallError({ call: 'sim(destroydomain)', errno: E.EPERM, domid, message: 'dom0 cannot be destroyed' });
    if (d.dying) return;
    d.dying = true;
    // relinquish_p2m_mapping() (arch/arm/p2m.c:1859) puts the foreign pages the p2m holds
    // (p2m_put_l3_page(), arch/arm/p2m.c:865-886).
    const foreign: number[] = [];
    d.physmap.forEach((_gfn, mfn) => {
      if (this.frameOwner[mfn] !== domid) foreign.push(mfn);
    });
    d.physmap.clear();
    d.extraPages = 0;
    for (const mfn of foreign) this.putRef(mfn);
    // relinquish_memory(): the allocation reference of each own page is dropped; a page still
    // referenced by someone else's mapping stays allocated to the dying domain.
    for (let mfn = 0; mfn < this.highWater; mfn++) {
      if (this.frameOwner[mfn] === domid && this.frameAlloc[mfn]) {
        this.frameAlloc[mfn] = 0;
        if (this.frameRefs[mfn] === 0) this.freeFrame(mfn);
      }
    }
    // XEN_DOMCTL_set_target holds a reference on the target until this domain is destroyed
    // (common/domctl.c:811-812: "Hold reference on @e until we destroy @d").
    const target = d.target;
    d.target = null;
    this.reap(d);
    if (target !== null) {
      const t = this.domains.get(target);
      if (t) this.reap(t);
    }
    this.dirty = true;
  }

  /** A dying domain disappears once nothing keeps it. */
  private reap(d: SimDomain): void {
    if (!d.dying || d.ownedPages > 0) return;
    for (const other of this.domains.values()) if (other.target === d.domid) return;
    this.domains.delete(d.domid);
  }

  private mustGet(domid: number, call: string): SimDomain {
    const d = this.domains.get(domid);
    if (!d) throw new HypercallError({ call, errno: E.ESRCH, domid, message: `d${domid} does not exist` });
    return d;
  }

  // ---- frames ------------------------------------------------------------------------------------

  private grow(min: number): void {
    let cap = this.frameOwner.length;
    if (min <= cap) return;
    while (cap < min) cap *= 2;
    const owner = new Uint16Array(cap).fill(FREE);
    owner.set(this.frameOwner);
    const refs = new Uint32Array(cap);
    refs.set(this.frameRefs);
    const alloc = new Uint8Array(cap);
    alloc.set(this.frameAlloc);
    this.frameOwner = owner;
    this.frameRefs = refs;
    this.frameAlloc = alloc;
  }

  private allocFrame(d: SimDomain): number {
    let mfn: number;
    if (this.freeCount > 0) {
      mfn = this.freeList[--this.freeCount];
    } else {
      mfn = this.highWater++;
      this.grow(this.highWater);
    }
    this.frameOwner[mfn] = d.domid;
    this.frameAlloc[mfn] = 1;
    this.frameRefs[mfn] = 0;
    d.ownedPages++;
    return mfn;
  }

  /** free_domheap_page(): back to the heap, off the owner's tot_pages. */
  private freeFrame(mfn: number): void {
    const owner = this.domains.get(this.frameOwner[mfn]);
    if (owner) owner.ownedPages--;
    this.frameOwner[mfn] = FREE;
    this.frameAlloc[mfn] = 0;
    this.pendingFree.push(mfn);
    if (owner) this.reap(owner);
  }

  /** put_page() of a foreign mapping's reference: the last one frees a page its owner let go. */
  private putRef(mfn: number): void {
    if (this.frameRefs[mfn] > 0) this.frameRefs[mfn]--;
    if (this.frameRefs[mfn] === 0 && !this.frameAlloc[mfn] && this.frameOwner[mfn] !== FREE) this.freeFrame(mfn);
  }

  /** Makes the frames file hold every frame and releases freed ones: call after each call. */
  flushFrames(): void {
    this.frames.ensure(this.highWater);
    if (this.pendingFree.length === 0) return;
    this.frames.release(this.pendingFree);
    if (this.freeCount + this.pendingFree.length > this.freeList.length) {
      const f = new Uint32Array(Math.max(this.freeList.length * 2, this.freeCount + this.pendingFree.length));
      f.set(this.freeList.subarray(0, this.freeCount));
      this.freeList = f;
    }
    // Reversed so that the lowest frames are given out first, in ascending runs.
    for (let i = this.pendingFree.length - 1; i >= 0; i--) this.freeList[this.freeCount++] = this.pendingFree[i];
    this.pendingFree = [];
  }

  /** The owner and reference count of a frame (tests). */
  frameInfo(mfn: number): { owner: number | null; refs: number; allocated: boolean } {
    const o = this.frameOwner[mfn];
    return { owner: o === FREE ? null : o, refs: this.frameRefs[mfn], allocated: this.frameAlloc[mfn] === 1 };
  }

  entry(d: SimDomain, gfn: number): PhysmapEntry {
    const v = d.physmap.get(gfn);
    if (v === 0) return { kind: 'none' };
    const mfn = v - 1;
    const owner = this.frameOwner[mfn];
    return owner === d.domid ? { kind: 'ram', mfn } : { kind: 'foreign', mfn, owner };
  }

  view(d: SimDomain): SimDomainView {
    return {
      domid: d.domid, name: d.name, maxPages: d.maxPages, totPages: d.totPages, type: d.type,
      target: d.target, dying: d.dying, mappedGfns: d.physmap.count(),
    };
  }

  // ---- memory_op rules -------------------------------------------------------------------------------

  /**
   * populate_physmap of one order-0 extent (common/memory.c:157-312). Returns false where Xen's
   * loop stops (`goto out`), which makes the call return the number done so far.
   */
  populate(d: SimDomain, gfn: number): boolean {
    // assign_pages() refuses a dying domain (common/page_alloc.c:2333), a domain already over
    // its max_pages (max_mem may lower it below tot_pages): "Inconsistent allocation"
    // (common/page_alloc.c:2367-2372), and any allocation past max_pages: "Over-allocation"
    // (common/page_alloc.c:2375-2380).
    if (d.dying) return false;
    if (d.totPages + 1 > d.maxPages) return false;
    const prev = d.physmap.get(gfn);
    if (prev !== 0 && this.frameOwner[prev - 1] !== d.domid && this.arch === 'x86') {
      // x86 guest_physmap_add_entry() will not replace a foreign entry: EPERM and the domain is
      // crashed (arch/x86/mm/p2m.c:660-670). The simulated domain is not crashed.
      return false;
    }
    const mfn = this.allocFrame(d);
    // guest_physmap_add_page() replaces the entry. A foreign page it replaces is put
    // (arch/arm/p2m.c:878-882); an own RAM page stays allocated to the domain, unreachable
    // (x86: arch/x86/mm/p2m.c:673-676 just invalidates its m2p entry).
    if (prev !== 0 && this.frameOwner[prev - 1] !== d.domid) this.putRef(prev - 1);
    d.physmap.set(gfn, mfn + 1);
    this.dirty = true;
    return true;
  }

  /**
   * guest_remove_page() for decrease_reservation (common/memory.c:314-449): 0 or -errno; the
   * caller's loop stops at the first failure (common/memory.c:500-515).
   */
  removeOwnPage(d: SimDomain, gfn: number): number {
    const v = d.physmap.get(gfn);
    if (v === 0) {
      // x86: p2m_invalid -> -ENOENT (common/memory.c:325-332); Arm: invalid mfn -> -EINVAL
      // (common/memory.c:365-373).
      return this.arch === 'x86' ? -E.ENOENT : -E.EINVAL;
    }
    const mfn = v - 1;
    // get_page(page, d) fails for a page d does not own, a foreign one: -ENXIO
    // (common/memory.c:396-407).
    if (this.frameOwner[mfn] !== d.domid) return -E.ENXIO;
    d.physmap.set(gfn, 0);
    // put_page_alloc_ref() (common/memory.c:434-435): the page is freed now unless a foreign
    // mapping still holds it, then when that mapping goes.
    this.frameAlloc[mfn] = 0;
    if (this.frameRefs[mfn] === 0) this.freeFrame(mfn);
    this.dirty = true;
    return 0;
  }

  /**
   * xenmem_add_to_physmap_one() with XENMAPSPACE_gmfn_foreign, the part that depends only on the
   * two domains: Xen evaluates it for every page, with the same answer for every page of a call,
   * so it is done once per call here. Returns the owner, or the -errno every page gets.
   */
  foreignOwner(d: SimDomain, foreignDomid: number): SimDomain | number {
    let od: SimDomain | undefined;
    if (this.arch === 'arm') {
      // get_pg_owner() refuses the calling domain (dom0) (common/page_alloc.c:2669-2673) and
      // unknown ones: -ESRCH (arch/arm/mm.c:1358-1360).
      od = foreignDomid === 0 ? undefined : this.byAnyId(foreignDomid);
      if (!od) return -E.ESRCH;
      // A domain cannot map its own frames (arch/arm/mm.c:1362-1366).
      if (od === d) return -E.EINVAL;
    } else {
      // p2m_add_foreign(): only the hardware domain (or a non-translated one) may receive
      // foreign frames (arch/x86/mm/p2m.c:2351-2352, arch/x86/include/asm/p2m.h:403-412).
      if (this.translated(d) && d.domid !== 0) return -E.EPERM;
      // rcu_lock_remote_domain_by_id(): -ESRCH if unknown, -EPERM for the caller itself
      // (common/domain.c:892-904); then the same domain: -EINVAL (arch/x86/mm/p2m.c:2362-2364).
      od = this.domains.get(foreignDomid);
      if (!od) return -E.ESRCH;
      if (od.domid === 0) return -E.EPERM;
      if (od === d) return -E.EINVAL;
    }
    // xsm_map_gmfn_foreign(XSM_TARGET, d, od) (xsm/dummy.h:601-606) -> xsm_default_action()
    // (xsm/dummy.h:84-100): allowed when d is od, has od as its target, or is the control
    // domain; else -EPERM (arch/arm/mm.c:1368-1373, arch/x86/mm/p2m.c:2367).
    if (!(d.target === od.domid || d.domid === 0)) return -E.EPERM;
    return od;
  }

  /**
   * The per-page rest of xenmem_add_to_physmap_one() with XENMAPSPACE_gmfn_foreign: map frame
   * `idx` of od (from foreignOwner()) at `gfn` of d. Returns 0 or -errno, the value Xen writes
   * to errs[].
   */
  addForeignPage(d: SimDomain, od: SimDomain, idx: number, gfn: number): number {
    // get_page_from_gfn(od, idx): a RAM page of od, else -EINVAL: unpopulated, or a foreign
    // page od itself maps (arch/arm/mm.c:1377-1391, arch/x86/mm/p2m.c:2373-2386). A dying
    // domain's p2m is emptied, so its gfns fail the same way.
    const v = od.physmap.get(idx);
    if (v === 0 || this.frameOwner[v - 1] !== od.domid) return -E.EINVAL;
    const mfn = v - 1;
    const prev = d.physmap.get(gfn);
    if (prev !== 0) {
      const pm = prev - 1;
      if (this.arch === 'x86') {
        // The page previously there is removed with guest_remove_page(); if that fails, so
        // does the map (arch/x86/mm/p2m.c:2389-2400).
        const rc = this.removeOwnPage(d, gfn);
        if (rc !== 0) return rc;
      } else if (this.frameOwner[pm] !== d.domid) {
        // p2m_set_entry() replacing a foreign entry puts its page (arch/arm/p2m.c:878-882);
        // an own RAM page replaced on Arm stays allocated, unreachable.
        this.putRef(pm);
      }
    }
    // "Take reference to the foreign domain page. Reference will be released in
    // XENMEM_remove_from_physmap" (arch/arm/mm.c:1375-1376).
    this.frameRefs[mfn]++;
    d.physmap.set(gfn, mfn + 1);
    this.dirty = true;
    return 0;
  }

  /** XENMEM_remove_from_physmap (common/memory.c:1614-1651): 0 or -errno. */
  removeFromPhysmap(domid: number, gfn: number): number {
    const d = this.byAnyId(domid);
    // Unknown domain: -ESRCH (common/memory.c:1624-1627); not translated: -EACCES
    // (common/memory.c:1629-1631).
    if (!d) return -E.ESRCH;
    if (!this.translated(d)) return -E.EACCES;
    // No page at gfn: -ENOENT (common/memory.c:1639-1646), e.g. a second remove.
    const v = d.physmap.get(gfn);
    if (v === 0) return -E.ENOENT;
    const mfn = v - 1;
    d.physmap.set(gfn, 0);
    // guest_physmap_remove_page() puts a foreign page (arch/arm/p2m.c:878-882); an own RAM
    // page leaves the physmap but stays allocated to the domain.
    if (this.frameOwner[mfn] !== d.domid) this.putRef(mfn);
    this.dirty = true;
    return 0;
  }

  /**
   * The frame behind each gfn of domid for a dom0 mapping (MMAPBATCH_V2): Linux asks Xen to map
   * each gfn into dom0 (add_to_physmap_range with gmfn_foreign on Arm and PVH, mmu_update with a
   * foreign owner on PV), with the rules of xenmem_add_to_physmap_one(): errs[i] = -ESRCH for an
   * unknown domain or dom0 itself (get_pg_owner(), common/page_alloc.c:2669-2690), -EINVAL
   * without a RAM page of the domain there (arch/arm/mm.c:1377-1391). mfns[i] receives the frame.
   */
  framesForDom0(domid: number, gfns: ArrayLike<number>, errs: Int32Array, mfns: Uint32Array): void {
    const od = domid === 0 ? undefined : this.domains.get(domid);
    for (let i = 0; i < gfns.length; i++) {
      if (!od) {
        errs[i] = -E.ESRCH;
        continue;
      }
      const v = od.physmap.get(gfns[i]);
      if (v === 0 || this.frameOwner[v - 1] !== od.domid) {
        errs[i] = -E.EINVAL;
        continue;
      }
      errs[i] = 0;
      mfns[i] = v - 1;
    }
  }

  /**
   * What the guest itself sees at each gfn (its RAM or a foreign page): the frames behind a
   * simulated guest's own view. Throws if a gfn has nothing mapped.
   */
  guestFrames(domid: number, gfns: ArrayLike<number>): Uint32Array {
    const d = this.mustGet(domid, 'sim(guest)');
    const out = new Uint32Array(gfns.length);
    for (let i = 0; i < gfns.length; i++) {
      const v = d.physmap.get(gfns[i]);
      if (v === 0) {
        throw new HypercallError({ call: 'sim(guest)', errno: E.EFAULT, domid, gfn: gfns[i], message: `d${domid} has nothing mapped at gfn 0x${gfns[i].toString(16)}: the guest would fault there` });
      }
      out[i] = v - 1;
    }
    return out;
  }

  // ---- domctl rules ------------------------------------------------------------------------------

  /**
   * XEN_DOMCTL_getdomaininfo (common/domctl.c:535-574): the domain, or with Xen up to 4.17
   * (interface version <= 0x15) the first domain with a higher id (common/domctl.c:545-550);
   * -ESRCH when there is none, -EINVAL for a reserved id (common/domctl.c:541-543). Xen 4.18
   * answers -ESRCH for a missing domain (the lookup of common/domctl.c:314-316).
   */
  getDomainInfo(domid: number): SimDomain | number {
    const exact = this.domains.get(domid);
    if (exact) return exact;
    if (this.domctlInterfaceVersion >= 0x16) return -E.ESRCH;
    if (domid >= DOMID_FIRST_RESERVED) return -E.EINVAL;
    let next: SimDomain | undefined;
    for (const d of this.domains.values()) if (d.domid >= domid && (!next || d.domid < next.domid)) next = d;
    return next ?? -E.ESRCH;
  }

  /**
   * XEN_DOMCTL_max_mem (common/domctl.c:650-663): 0 or -errno. The XSM check before it
   * (xsm_domctl(): XSM_PRIV, xsm/dummy.h:177-178) always passes: the caller is dom0.
   */
  maxMem(domid: number, maxKib: bigint): number {
    // do_domctl() looks the domain up first: -ESRCH (common/domctl.c:316-318). The lookup,
    // rcu_lock_domain_by_id() (common/domain.c:863-883), does not resolve DOMID_SELF, and finds
    // a dying domain too: it leaves the hash only in domain_destroy() (common/domain.c:1163-1172).
    const d = this.domains.get(domid);
    if (!d) return -E.ESRCH;
    // "new_max = op->u.max_mem.max_memkb >> (PAGE_SHIFT - 10)": whole pages, rounded down
    // (common/domctl.c:652), capped at max_pages's type, an unsigned int (common/domctl.c:660,
    // include/xen/sched.h:396).
    const pages = BigInt.asUintN(64, maxKib) >> BigInt(XEN_PAGE_SHIFT - 10);
    // No check against tot_pages: "the domain will now be allowed to 'ratchet' down to new_max.
    // In the meantime, while tot > max, all new allocations are disallowed" (common/domctl.c:
    // 655-659). Nothing is taken away; populate() then stops at once (assign_pages()).
    d.maxPages = Number(pages < BigInt(DOMAIN_MAX_PAGES_LIMIT) ? pages : BigInt(DOMAIN_MAX_PAGES_LIMIT));
    this.dirty = true;
    return 0;
  }

  /** XEN_DOMCTL_set_target (common/domctl.c:786-814): 0 or -errno. */
  setTarget(domid: number, target: number): number {
    // do_domctl() looks the domain up first: -ESRCH (common/domctl.c:314-316).
    const d = this.domains.get(domid);
    if (!d) return -E.ESRCH;
    const e = this.domains.get(target);
    if (!e) return -E.ESRCH;
    // Itself, or a second target: -EINVAL (common/domctl.c:795-800). Never undone.
    if (d === e || d.target !== null) return -E.EINVAL;
    // Only an HVM target: -EOPNOTSUPP (common/domctl.c:802-804).
    if (!this.hvm(e)) return -E.EOPNOTSUPP;
    d.target = e.domid;
    this.dirty = true;
    return 0;
  }

  // ---- persistence -----------------------------------------------------------------------------------

  /** The host as bytes (store.ts writes them to host.bin): a JSON header and raw arrays. */
  toBytes(): Buffer[] {
    const blobs: Buffer[] = [];
    let offset = 0;
    const add = (a: ArrayBufferView): { offset: number; length: number } => {
      const b = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      const r = { offset, length: b.length };
      blobs.push(b);
      offset += b.length;
      const pad = (8 - (b.length % 8)) % 8;
      if (pad) {
        blobs.push(Buffer.alloc(pad));
        offset += pad;
      }
      return r;
    };
    const hw = this.highWater;
    const header = {
      format: 1,
      arch: this.arch,
      xen: this.xen,
      domctlInterfaceVersion: this.domctlInterfaceVersion,
      highWater: hw,
      freeCount: this.freeCount,
      frameOwner: add(this.frameOwner.subarray(0, hw)),
      frameRefs: add(this.frameRefs.subarray(0, hw)),
      frameAlloc: add(this.frameAlloc.subarray(0, hw)),
      freeList: add(this.freeList.subarray(0, this.freeCount)),
      domains: [...this.domains.values()].map((d) => {
        const keys = [...d.physmap.chunks.keys()];
        const data = new Uint32Array(keys.length * CHUNK);
        keys.forEach((k, i) => data.set(d.physmap.chunks.get(k)!, i * CHUNK));
        return {
          domid: d.domid, name: d.name, maxPages: d.maxPages, extraPages: d.extraPages, ownedPages: d.ownedPages,
          type: d.type, target: d.target, dying: d.dying,
          chunkKeys: keys, chunks: add(data),
        };
      }),
    };
    const json = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(16);
    prefix.write('XSSMSIM1', 0, 'latin1');
    prefix.writeUInt32LE(json.length, 8);
    const pad = Buffer.alloc((8 - ((16 + json.length) % 8)) % 8);
    return [prefix, json, pad, ...blobs];
  }

  static fromBytes(buf: Buffer, frames: FrameFile): SimHost {
    if (buf.length < 16 || buf.toString('latin1', 0, 8) !== 'XSSMSIM1') {
      throw new HypercallError({ call: 'sim(load)', errno: E.EINVAL, message: 'not a simulated host state file (bad magic)' });
    }
    const jsonLen = buf.readUInt32LE(8);
    const h = JSON.parse(buf.toString('utf8', 16, 16 + jsonLen));
    if (h.format !== 1) throw new HypercallError({ call: 'sim(load)', errno: E.EINVAL, message: `unknown simulated host state format ${h.format}` });
    const base = 16 + jsonLen + ((8 - ((16 + jsonLen) % 8)) % 8);
    const bytes = (r: { offset: number; length: number }): Uint8Array =>
      new Uint8Array(buf.buffer.slice(buf.byteOffset + base + r.offset, buf.byteOffset + base + r.offset + r.length));
    const host = new SimHost({ arch: h.arch, xen: h.xen, domctlInterfaceVersion: h.domctlInterfaceVersion }, frames);
    host.highWater = h.highWater;
    host.grow(Math.max(1024, h.highWater));
    host.frameOwner.set(new Uint16Array(bytes(h.frameOwner).buffer));
    host.frameRefs.set(new Uint32Array(bytes(h.frameRefs).buffer));
    host.frameAlloc.set(bytes(h.frameAlloc));
    host.freeCount = h.freeCount;
    host.freeList = new Uint32Array(Math.max(1024, h.freeCount * 2));
    host.freeList.set(new Uint32Array(bytes(h.freeList).buffer));
    for (const x of h.domains) {
      const d = new SimDomain(x.domid, x.name, x.maxPages, x.extraPages, x.type);
      d.ownedPages = x.ownedPages;
      d.target = x.target;
      d.dying = x.dying;
      const data = new Uint32Array(bytes(x.chunks).buffer);
      (x.chunkKeys as number[]).forEach((k, i) => d.physmap.chunks.set(k, data.slice(i * CHUNK, (i + 1) * CHUNK)));
      host.domains.set(d.domid, d);
    }
    return host;
  }

  /** Bytes of the frames in use (for the sandbox's status output). */
  usedBytes(): number {
    return (this.highWater - this.freeCount) * XEN_PAGE_SIZE;
  }
}
