/**
 * memory_op rules of the simulated host: populate_physmap (4 KiB and 2 MiB extents),
 * decrease_reservation's guest_remove_page(), add_to_physmap_batch with XENMAPSPACE_gmfn_foreign,
 * remove_from_physmap, and the frames behind a dom0 mapping or a guest's own view.
 */
import * as os from 'node:os';
import { HypercallError } from '../errors';
import { EXTENT_FRAMES, EXTENT_ORDER } from './frame-table';
import type { SimDomain, SimHost } from './host';

const E = os.constants.errno;

/** The owner of frame mfn is d. */
const owns = (h: SimHost, d: SimDomain, mfn: number): boolean => h.frames.owner[mfn] === d.domid;

/**
 * populate_physmap of one extent (common/memory.c:157-312) of order 0 or EXTENT_ORDER (9) at
 * gfn. Returns false where Xen's loop stops (`goto out`): the call then returns the extents done.
 */
export function populate(h: SimHost, d: SimDomain, gfn: number, order: number): boolean {
  const n = order === EXTENT_ORDER ? EXTENT_FRAMES : 1;
  // assign_pages() refuses a dying domain (common/page_alloc.c:2333), a domain already over its
  // max_pages (max_mem may lower it below tot_pages): "Inconsistent allocation"
  // (common/page_alloc.c:2367-2372), and an extent that would take it past max_pages:
  // "Over-allocation" (common/page_alloc.c:2375-2380), for the whole extent at once.
  if (d.dying) return false;
  if (d.totPages + n > d.maxPages) return false;
  if (h.arch === 'x86') {
    // x86 guest_physmap_add_entry() will not replace a foreign entry: EPERM and the domain is
    // crashed (arch/x86/mm/p2m.c:660-670). The simulated domain is not crashed.
    for (let k = 0; k < n; k++) {
      const prev = d.physmap.get(gfn + k);
      if (prev !== 0 && !owns(h, d, prev - 1)) return false;
    }
  }
  // alloc_domheap_pages(d, order) (common/memory.c:268-277): a 2 MiB extent needs an aligned run
  // of free frames, which a fragmented heap may not have while single frames remain.
  const first = n === 1 ? h.allocFrame(d) : h.allocExtent(d);
  if (first < 0) return false;
  for (let k = 0; k < n; k++) {
    const prev = d.physmap.get(gfn + k);
    // guest_physmap_add_page() replaces the entry. A foreign page it replaces is put
    // (arch/arm/p2m.c:878-882); an own RAM page stays allocated to the domain, unreachable
    // (x86: arch/x86/mm/p2m.c:673-676 just invalidates its m2p entry).
    if (prev !== 0 && !owns(h, d, prev - 1)) h.putRef(prev - 1);
    d.physmap.set(gfn + k, first + k + 1);
  }
  h.dirty = true;
  return true;
}

/**
 * guest_remove_page() for decrease_reservation (common/memory.c:314-449): 0 or -errno; the
 * caller's loop stops at the first failure (common/memory.c:500-515).
 */
export function removeOwnPage(h: SimHost, d: SimDomain, gfn: number): number {
  const v = d.physmap.get(gfn);
  if (v === 0) {
    // x86: p2m_invalid -> -ENOENT (common/memory.c:325-332); Arm: invalid mfn -> -EINVAL
    // (common/memory.c:365-373).
    return h.arch === 'x86' ? -E.ENOENT : -E.EINVAL;
  }
  const mfn = v - 1;
  // get_page(page, d) fails for a page d does not own, a foreign one: -ENXIO
  // (common/memory.c:396-407).
  if (!owns(h, d, mfn)) return -E.ENXIO;
  d.physmap.set(gfn, 0);
  // put_page_alloc_ref() (common/memory.c:434-435): the page is freed now unless a foreign
  // mapping still holds it, then when that mapping goes.
  h.frames.alloc[mfn] = 0;
  if (h.frames.refs[mfn] === 0) h.freeFrame(mfn);
  h.dirty = true;
  return 0;
}

/**
 * xenmem_add_to_physmap_one() with XENMAPSPACE_gmfn_foreign, the part that depends only on the
 * two domains: Xen evaluates it for every page, with the same answer for every page of a call,
 * so it is done once per call here. Returns the owner, or the -errno every page gets.
 */
export function foreignOwner(h: SimHost, d: SimDomain, foreignDomid: number): SimDomain | number {
  let od: SimDomain | undefined;
  if (h.arch === 'arm') {
    if (h.rules.foreignSelfEperm) {
      // rcu_lock_remote_domain_by_id(): -EPERM for the caller itself (dom0), -ESRCH if unknown
      // (releases.ts ARM_FOREIGN_SELF_EPERM; arch/arm/mm.c:137-150 at RELEASE-4.20.4).
      if (foreignDomid === 0) return -E.EPERM;
      od = h.domains.get(foreignDomid);
    } else {
      // get_pg_owner() refuses the calling domain (dom0) (common/page_alloc.c:2669-2673) and
      // unknown ones: -ESRCH (arch/arm/mm.c:1358-1360).
      od = foreignDomid === 0 ? undefined : h.byAnyId(foreignDomid);
    }
    if (!od) return -E.ESRCH;
    // A domain cannot map its own frames (arch/arm/mm.c:1362-1366).
    if (od === d) return -E.EINVAL;
  } else {
    // p2m_add_foreign(): arch_acquire_resource_check() (releases.ts X86_TRANSLATED_FOREIGN_MAPS):
    // before Xen 4.19 only the hardware domain (or a non-translated one) may receive foreign
    // frames (arch/x86/mm/p2m.c:2351-2352, arch/x86/include/asm/p2m.h:403-412 at 4.17.0); from
    // 4.19 every HVM/PVH domain without altp2m or nested HVM (arch/x86/mm/p2m-basic.c:212-226
    // at RELEASE-4.19.0), which the sim's domains all are.
    if (h.translated(d) && d.domid !== 0 && !h.rules.translatedDomUBorrowers) return -E.EPERM;
    // rcu_lock_remote_domain_by_id(): -ESRCH if unknown, -EPERM for the caller itself
    // (common/domain.c:892-904); then the same domain: -EINVAL (arch/x86/mm/p2m.c:2362-2364).
    od = h.domains.get(foreignDomid);
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
export function addForeignPage(h: SimHost, d: SimDomain, od: SimDomain, idx: number, gfn: number): number {
  // get_page_from_gfn(od, idx): a RAM page of od, else -EINVAL: unpopulated, or a foreign
  // page od itself maps (arch/arm/mm.c:1377-1391, arch/x86/mm/p2m.c:2373-2386). A dying
  // domain's p2m is emptied, so its gfns fail the same way.
  const v = od.physmap.get(idx);
  if (v === 0 || !owns(h, od, v - 1)) return -E.EINVAL;
  const mfn = v - 1;
  const prev = d.physmap.get(gfn);
  if (prev !== 0) {
    const pm = prev - 1;
    if (h.arch === 'x86') {
      // The page previously there is removed with guest_remove_page(); if that fails, so
      // does the map (arch/x86/mm/p2m.c:2389-2400).
      const rc = removeOwnPage(h, d, gfn);
      if (rc !== 0) return rc;
    } else if (!owns(h, d, pm)) {
      // p2m_set_entry() replacing a foreign entry puts its page (arch/arm/p2m.c:878-882);
      // an own RAM page replaced on Arm stays allocated, unreachable.
      h.putRef(pm);
    }
  }
  // "Take reference to the foreign domain page. Reference will be released in
  // XENMEM_remove_from_physmap" (arch/arm/mm.c:1375-1376).
  h.frames.refs[mfn]++;
  d.physmap.set(gfn, mfn + 1);
  h.dirty = true;
  return 0;
}

/** XENMEM_remove_from_physmap (common/memory.c:1614-1651): 0 or -errno. */
export function removeFromPhysmap(h: SimHost, domid: number, gfn: number): number {
  const d = h.byAnyId(domid);
  // Unknown domain: -ESRCH (common/memory.c:1624-1627); not translated: -EACCES
  // (common/memory.c:1629-1631).
  if (!d) return -E.ESRCH;
  if (!h.translated(d)) return -E.EACCES;
  // No page at gfn: -ENOENT (common/memory.c:1639-1646), e.g. a second remove.
  const v = d.physmap.get(gfn);
  if (v === 0) return -E.ENOENT;
  const mfn = v - 1;
  d.physmap.set(gfn, 0);
  // guest_physmap_remove_page() puts a foreign page (arch/arm/p2m.c:878-882); an own RAM
  // page leaves the physmap but stays allocated to the domain.
  if (!owns(h, d, mfn)) h.putRef(mfn);
  h.dirty = true;
  return 0;
}

/**
 * The frame behind each gfn of domid for a dom0 mapping (MMAPBATCH_V2): Linux asks Xen to map
 * each gfn into dom0 (add_to_physmap_range with gmfn_foreign on Arm and PVH, mmu_update with a
 * foreign owner on PV), with the rules of xenmem_add_to_physmap_one(): errs[i] = -ESRCH for an
 * unknown domain or dom0 itself (get_pg_owner(), common/page_alloc.c:2669-2690), -EINVAL
 * without a RAM page of the domain there (arch/arm/mm.c:1377-1391). mfns[i] receives the frame.
 */
export function framesForDom0(h: SimHost, domid: number, gfns: ArrayLike<number>, errs: Int32Array, mfns: Uint32Array): void {
  const od = domid === 0 ? undefined : h.domains.get(domid);
  // dom0 itself on Arm from 4.20.4/4.21.2/4.22: rcu_lock_remote_domain_by_id()'s -EPERM
  // (releases.ts ARM_FOREIGN_SELF_EPERM).
  const missing = domid === 0 && h.rules.foreignSelfEperm ? -E.EPERM : -E.ESRCH;
  for (let i = 0; i < gfns.length; i++) {
    if (!od) {
      errs[i] = missing;
      continue;
    }
    const v = od.physmap.get(gfns[i]);
    if (v === 0 || !owns(h, od, v - 1)) {
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
export function guestFrames(h: SimHost, domid: number, gfns: ArrayLike<number>): Uint32Array {
  const d = h.domains.get(domid);
  if (!d) throw new HypercallError({ call: 'sim(guest)', errno: E.ESRCH, domid, message: `d${domid} does not exist` });
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
