/**
 * The domctls xen-sshm issues (getdomaininfo, set_target, max_mem) and what the running release
 * says about a borrower (borrowerSupport). Refusals state Xen's answer and the domains.
 */
import { DomctlCmd } from '../abi';
import { errnoName, HypercallError } from '../errors';
import { readGetDomainInfo, writeMaxMem, writeSetTarget } from '../layout';
import { X86_TRANSLATED_FOREIGN_MAPS } from '../releases';
import type { BorrowerSupport, DomainInfo } from '../types';
import { ESRCH, EINVAL, type HypercallContext } from './context';
import { toDomainInfo } from './sysctl';
import { domctl, domctlInterfaceVersion, xenRules, xenVersion } from './version';

export function domainInfo(cx: HypercallContext, domid: number): DomainInfo | null {
  const version = domctlInterfaceVersion(cx);
  const { rc, view } = domctl(cx, DomctlCmd.getdomaininfo, version, domid);
  if (rc === -ESRCH) return null;
  if (rc < 0) {
    throw new HypercallError({ call: 'domctl(getdomaininfo)', errno: -rc, domid, message: `getdomaininfo of d${domid}: ${errnoName(-rc)}` });
  }
  const i = readGetDomainInfo(view, 0);
  // Before GETDOMAININFO_EXACT (Xen 4.18), getdomaininfo of a missing domain answers with the
  // next domain above it: not this one. Checked on every release (a patched 4.17 may differ).
  if (i.domain !== domid) return null;
  return toDomainInfo(i);
}


export function setTarget(cx: HypercallContext, domid: number, target: number): void {
  const version = domctlInterfaceVersion(cx);
  const { rc } = domctl(cx, DomctlCmd.set_target, version, domid, (v) => writeSetTarget(v, 0, target));
  if (rc >= 0) return;
  const errno = -rc;
  // xen/common/domctl.c, XEN_DOMCTL_set_target (releases.ts: SET_TARGET_HVM_FIRST).
  const what: Record<string, string> = {
    ESRCH: `d${domid} or d${target} does not exist`,
    EINVAL: target === domid ? 'a domain cannot be its own target' : `d${domid} already has a target (Xen sets one per domain and never clears it)`,
    EOPNOTSUPP: `d${target} is not an HVM/PVH domain (Xen accepts only those as a target)`,
  };
  throw new HypercallError({
    call: 'domctl(set_target)', errno, domid, remoteDomid: target,
    message: `set_target(d${domid} -> d${target}): ${errnoName(errno)}${what[errnoName(errno)] ? `: ${what[errnoName(errno)]}` : ''}`,
  });
}

export function setMaxMem(cx: HypercallContext, domid: number, maxKib: bigint): void {
  const version = domctlInterfaceVersion(cx);
  const { rc } = domctl(cx, DomctlCmd.max_mem, version, domid, (v) => writeMaxMem(v, 0, maxKib));
  if (rc >= 0) return;
  const errno = -rc;
  const what: Record<string, string> = {
    // xen/common/domctl.c, do_domctl: the domain is looked up before any command.
    ESRCH: `d${domid} does not exist`,
    // xsm/dummy.h, xsm_domctl: XSM_PRIV for max_mem, the control domain only.
    EPERM: 'the default XSM policy allows max_mem to the control domain only',
  };
  throw new HypercallError({
    call: 'domctl(max_mem)', errno, domid,
    message: `max_mem(d${domid}, ${maxKib} KiB): ${errnoName(errno)}${what[errnoName(errno)] ? `: ${what[errnoName(errno)]}` : ''}`,
  });
}

/** A max_memkb value: a non-negative integer that fits Xen's uint64_t, as a bigint. */
export function checkKib(kib: bigint | number, call: string, domid: number): bigint {
  const ok = typeof kib === 'bigint' ? kib >= 0n && kib <= 0xffffffffffffffffn
    : typeof kib === 'number' && Number.isSafeInteger(kib) && kib >= 0;
  if (!ok) {
    throw new HypercallError({ call, errno: EINVAL, domid, message: `${String(kib)} is not a max memory in KiB (an integer in 0 .. 2^64 - 1; numbers must be safe integers)` });
  }
  return BigInt(kib);
}

/**
 * The running release's rule for a borrower (releases.ts): Arm lets every guest receive foreign
 * frames (arch/arm/mm.c, xenmem_add_to_physmap_one, XENMAPSPACE_gmfn_foreign); x86 lets the
 * hardware domain always, HVM/PVH domUs from X86_TRANSLATED_FOREIGN_MAPS (4.19) on, PV domains
 * never (xatp_permission_check(): -EACCES for a domain that is not translated, common/memory.c:
 * 1107-1110 at RELEASE-4.17.0). A domU also needs the owner as its target under the default XSM
 * policy (xsm_map_gmfn_foreign, XSM_TARGET, xsm/dummy.h:601-606 at RELEASE-4.17.0).
 */
export function borrowerSupport(cx: HypercallContext, borrower: number): BorrowerSupport {
  const v = xenVersion(cx);
  const rules = xenRules(cx);
  const base = { borrower, arch: v.arch, xenVersion: v.version };
  const info = domainInfo(cx, borrower);
  if (!info) return { ...base, supported: false, reason: 'no-domain', rule: 'getdomaininfo: no such domain' };
  if (v.arch === 'arm') {
    return { ...base, supported: true, needsTarget: borrower !== 0, rule: 'arch/arm/mm.c: xenmem_add_to_physmap_one(XENMAPSPACE_gmfn_foreign); xsm/dummy.h: xsm_map_gmfn_foreign (XSM_TARGET)' };
  }
  // getdomaininfo's XEN_DOMINF_hvm_guest is set for HVM and PVH guests (translated), not PV.
  if (!info.hvm) {
    return { ...base, supported: false, reason: 'borrower-pv', rule: 'common/memory.c: xatp_permission_check(): -EACCES for a domain that is not translated (x86 PV)' };
  }
  if (borrower === 0) {
    return { ...base, supported: true, needsTarget: false, rule: 'arch/x86: arch_acquire_resource_check(): the hardware domain may receive foreign frames' };
  }
  if (!rules.translatedDomUBorrowers) {
    return {
      ...base, supported: false, reason: 'borrower-release', allowedFrom: X86_TRANSLATED_FOREIGN_MAPS.since,
      rule: `arch/x86/include/asm/p2m.h: arch_acquire_resource_check() before Xen ${X86_TRANSLATED_FOREIGN_MAPS.since} (commit ${X86_TRANSLATED_FOREIGN_MAPS.commit}): only the hardware domain`,
    };
  }
  return {
    ...base, supported: true, needsTarget: true,
    rule: `arch/x86/mm/p2m-basic.c: arch_acquire_resource_check() since Xen ${X86_TRANSLATED_FOREIGN_MAPS.since} (commit ${X86_TRANSLATED_FOREIGN_MAPS.commit}): HVM/PVH domains without altp2m or nested HVM`,
  };
}
