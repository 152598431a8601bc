/** domctl rules of the simulated host: getdomaininfo, max_mem, set_target, per release. */
import * as os from 'node:os';
import { DOMID_FIRST_RESERVED, PAGE_SHIFT } from '../../vocabulary';
import { DOMAIN_MAX_PAGES_LIMIT } from '../abi';
import type { SimDomain, SimHost } from './host';

const E = os.constants.errno;

/**
 * XEN_DOMCTL_getdomaininfo: the domain; for a missing one, up to Xen 4.17 the first domain with
 * a higher id (common/domctl.c:545-550 at RELEASE-4.17.0), -ESRCH when there is none, -EINVAL for
 * a reserved id (common/domctl.c:541-543); from 4.18 (releases.ts GETDOMAININFO_EXACT) -ESRCH
 * from the common lookup.
 */
export function getDomainInfo(h: SimHost, domid: number): SimDomain | number {
  const exact = h.domains.get(domid);
  if (exact) return exact;
  if (h.rules.getdomaininfoExact) return -E.ESRCH;
  if (domid >= DOMID_FIRST_RESERVED) return -E.EINVAL;
  let next: SimDomain | undefined;
  for (const d of h.domains.values()) if (d.domid >= domid && (!next || d.domid < next.domid)) next = d;
  return next ?? -E.ESRCH;
}

/**
 * XEN_DOMCTL_max_mem (common/domctl.c:650-663): 0 or -errno. The XSM check before it
 * (xsm_domctl(): XSM_PRIV, xsm/dummy.h:177-178) always passes: the caller is dom0.
 */
export function maxMem(h: SimHost, domid: number, maxKib: bigint): number {
  // do_domctl() looks the domain up first: -ESRCH (common/domctl.c:316-318). The lookup,
  // rcu_lock_domain_by_id() (common/domain.c:863-883), does not resolve DOMID_SELF, and finds
  // a dying domain too: it leaves the hash only in domain_destroy() (common/domain.c:1163-1172).
  const d = h.domains.get(domid);
  if (!d) return -E.ESRCH;
  // "new_max = op->u.max_mem.max_memkb >> (PAGE_SHIFT - 10)": whole pages, rounded down
  // (common/domctl.c:652), capped at max_pages's type, an unsigned int (common/domctl.c:660,
  // include/xen/sched.h:396).
  const pages = BigInt.asUintN(64, maxKib) >> BigInt(PAGE_SHIFT - 10);
  // No check against tot_pages: "the domain will now be allowed to 'ratchet' down to new_max.
  // In the meantime, while tot > max, all new allocations are disallowed" (common/domctl.c:
  // 655-659). Nothing is taken away; populate() then stops at once (assign_pages()).
  d.maxPages = Number(pages < BigInt(DOMAIN_MAX_PAGES_LIMIT) ? pages : BigInt(DOMAIN_MAX_PAGES_LIMIT));
  h.dirty = true;
  return 0;
}

/**
 * XEN_DOMCTL_set_target: 0 or -errno. The order of the refusals follows the release
 * (releases.ts SET_TARGET_HVM_FIRST): up to 4.21 itself or a second target -EINVAL, then a
 * non-HVM target -EOPNOTSUPP (common/domctl.c:786-814 at RELEASE-4.17.0); from 4.22 itself
 * -EINVAL, a non-HVM target -EOPNOTSUPP, then a second target -EINVAL (common/domctl.c:490-512 at
 * RELEASE-4.22.0). On x86 only HVM and PVH domains are HVM here; every Arm guest is.
 */
export function setTarget(h: SimHost, domid: number, target: number): number {
  // do_domctl() looks the domain up first: -ESRCH (common/domctl.c:316-318).
  const d = h.domains.get(domid);
  if (!d) return -E.ESRCH;
  // get_domain_by_id(target): -ESRCH (common/domctl.c:790-793).
  const e = h.domains.get(target);
  if (!e) return -E.ESRCH;
  if (d === e) return -E.EINVAL;
  if (h.rules.setTargetHvmFirst) {
    if (!h.hvm(e)) return -E.EOPNOTSUPP;
    if (d.target !== null) return -E.EINVAL;
  } else {
    if (d.target !== null) return -E.EINVAL;
    if (!h.hvm(e)) return -E.EOPNOTSUPP;
  }
  // "Hold reference on @e until we destroy @d." Never undone.
  d.target = e.domid;
  h.dirty = true;
  return 0;
}
