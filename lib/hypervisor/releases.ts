/**
 * What changed between Xen releases for the calls xen-sshm makes, as data: one place that both
 * backends read. XenHypervisor picks the rules of the release xen_version reports; the sim
 * models the release it is given (4.17 to 4.22). Every rule names the Xen commit that changed
 * it and the source lines at each release tag (xen-project/xen, paths under xen/).
 */
import { DOMCTL_INTERFACE_VERSIONS } from './abi';
import type { XenArch } from './types';

/**
 * A Xen release, major.minor, and optionally XENVER_extraversion (".4", ".5-pre"): most rules
 * follow major.minor; a fix backported to stable branches (ARM_FOREIGN_SELF_EPERM) needs the
 * point release too.
 */
export interface XenRelease {
  major: number;
  minor: number;
  extraversion?: string;
}

/**
 * The last point release of the branch that `extraversion` includes: ".4" -> 4; ".5-pre" or
 * ".5-rc1" -> 4 (a stable branch's tree between 4.20.4 and 4.20.5 holds everything of 4.20.4);
 * "" or an unknown form -> 0 (assume the branch's first release: the conservative reading).
 */
export function pointRelease(extraversion: string | undefined): number {
  const m = /^\.(\d+)(.*)$/.exec(extraversion ?? '');
  if (!m) return 0;
  const n = Number(m[1]);
  return m[2] === '' ? n : Math.max(0, n - 1);
}

/** The releases the sim models; xen-sshm's own tiers run 4.17 (Debian 12) and 4.20 (Debian 13). */
export const SIM_RELEASES = ['4.17', '4.18', '4.19', '4.20', '4.21', '4.22'] as const;
export type SimRelease = (typeof SIM_RELEASES)[number];

export function releaseName(r: XenRelease): string {
  return `${r.major}.${r.minor}`;
}

/** "4.19" or "4.19.2" -> { major, minor }; undefined for anything else. */
export function parseRelease(s: string): XenRelease | undefined {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(s);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** a < b: negative, a == b: 0, a > b: positive. */
export function compareReleases(a: XenRelease, b: XenRelease): number {
  return a.major - b.major || a.minor - b.minor;
}

const atLeast = (r: XenRelease, s: string): boolean => compareReleases(r, parseRelease(s)!) >= 0;

/** A rule that changed in one Xen commit. */
export interface ReleaseRule {
  /** The first release with the new behaviour. */
  readonly since: string;
  /** The commit that made the change (xen-project/xen). */
  readonly commit: string;
  readonly summary: string;
}

/**
 * x86: who may receive foreign frames (XENMAPSPACE_gmfn_foreign into its physmap).
 * Before: p2m_add_foreign() (arch/x86/mm/p2m.c:2351 at RELEASE-4.17.0, :2331 at 4.18.0) calls
 * arch_acquire_resource_check(), `!paging_mode_translate(d) || is_hardware_domain(d)`
 * (arch/x86/include/asm/p2m.h:411 at 4.17.0, :399 at 4.18.0): every HVM/PVH domU gets -EPERM.
 * Since 845a60b63b ("xen/x86: remove foreign mappings from the p2m on teardown", CHANGELOG
 * "Allow HVM/PVH domains to map foreign pages"): `is_pv_domain(d) || (altp2m disabled &&
 * !nestedhvm_enabled(d))` (arch/x86/mm/p2m-basic.c:223 at RELEASE-4.19.0, :224 at 4.20.0,
 * 4.21.0 and 4.22.0; called from arch/x86/mm/p2m.c:1865, :1867, :1897, :1912).
 */
export const X86_TRANSLATED_FOREIGN_MAPS: ReleaseRule = {
  since: '4.19',
  commit: '845a60b63b',
  summary: 'x86 HVM/PVH domains may receive foreign mappings (no altp2m, no nested HVM)',
};

/**
 * XEN_DOMCTL_getdomaininfo of a missing domain. Up to 4.17 do_domctl() skips the lookup for it
 * and answers with the next domain up (common/domctl.c:545-550 at RELEASE-4.17.0); since
 * 31c6554974 ("domctl: Modify XEN_DOMCTL_getdomaininfo to fail if domid is not found") the
 * common lookup answers -ESRCH (common/domctl.c:535-544 at RELEASE-4.18.0).
 */
export const GETDOMAININFO_EXACT: ReleaseRule = {
  since: '4.18',
  commit: '31c6554974',
  summary: 'getdomaininfo of a missing domain is ESRCH (before: the next domain up)',
};

/**
 * XEN_DOMCTL_set_target: the order of its refusals. Up to 4.21, `(d == e) || (d->target !=
 * NULL)` is -EINVAL before the HVM check (-EOPNOTSUPP for a non-HVM target) (common/domctl.c:
 * 795-804 at RELEASE-4.17.0, 765-774 at 4.18.0, 771-780 at 4.19.0, 774-783 at 4.20.0, 751-760 at
 * 4.21.0). Since 4a93d1fb4f ("domctl: handle XEN_DOMCTL_set_target without acquiring domctl
 * lock"): itself -EINVAL, then a non-HVM target -EOPNOTSUPP, and only then a second target
 * -EINVAL (cmpxchgptr, common/domctl.c:498-507 at RELEASE-4.22.0). The rule itself (an HVM
 * target; every Arm guest is one, on x86 HVM and PVH guests) holds in every release.
 */
export const SET_TARGET_HVM_FIRST: ReleaseRule = {
  since: '4.22',
  commit: '4a93d1fb4f',
  summary: 'set_target checks the HVM target before refusing a second target',
};

/**
 * Arm: dom0 (the caller) naming itself as the foreign domain of XENMAPSPACE_gmfn_foreign
 * (MMAPBATCH of domid 0; Linux's xen_xlate_remap_gfn_array() passes Xen's per-page error
 * through, drivers/xen/xlate_mmu.c). Before: get_pg_owner() refuses the caller itself with NULL,
 * -ESRCH (arch/arm/mm.c:1358-1360 at RELEASE-4.17.0, :139-141 at 4.20.0; common/page_alloc.c:
 * 2669-2673 at 4.17.0). Since f795a9c491 ("xen/arm: Reject pseudo-domain foreign mappings in
 * xenmem_add_to_physmap_one()"): rcu_lock_remote_domain_by_id(), which answers the caller itself
 * -EPERM (common/domain.c:1045-1057 at RELEASE-4.20.4; arch/arm/mm.c:137-150 there). A stable
 * backport, so it depends on the point release: 35b75699a1 in 4.20.4, ade0c35777 in 4.21.2,
 * c8e99384ac in 4.22.0; not in 4.17.x (4.17.7 answers ESRCH), 4.18.x, 4.19.x (checked to
 * 4.18.6, 4.19.6). Debian 13's 4.20.4+63 (4.20.5-pre) has it: seen on the real-Xen tier.
 */
export const ARM_FOREIGN_SELF_EPERM: ReleaseRule & { readonly backports: Readonly<Record<string, { readonly point: number; readonly commit: string }>> } = {
  since: '4.23',
  commit: 'f795a9c491',
  summary: 'Arm: dom0 mapping its own frames through gmfn_foreign is EPERM (before: ESRCH)',
  backports: {
    '4.20': { point: 4, commit: '35b75699a1' },
    '4.21': { point: 2, commit: 'ade0c35777' },
    '4.22': { point: 0, commit: 'c8e99384ac' },
  },
};

function hasArmForeignSelfEperm(r: XenRelease): boolean {
  if (atLeast(r, ARM_FOREIGN_SELF_EPERM.since)) return true;
  const b = ARM_FOREIGN_SELF_EPERM.backports[releaseName(r)];
  return b !== undefined && pointRelease(r.extraversion) >= b.point;
}

/** The rules of one release on one architecture. */
export interface XenRules {
  readonly release: string;
  readonly arch: XenArch;
  /** XEN_DOMCTL_INTERFACE_VERSION of the release (abi.ts), if known. */
  readonly domctlInterfaceVersion: number | undefined;
  /** An HVM/PVH domU may receive another domain's frames (always on Arm; x86 from 4.19). */
  readonly translatedDomUBorrowers: boolean;
  /** getdomaininfo of a missing domain answers ESRCH (4.18+) instead of the next domain up. */
  readonly getdomaininfoExact: boolean;
  /** set_target refuses a non-HVM target before refusing a second target (4.22+). */
  readonly setTargetHvmFirst: boolean;
  /** Arm: dom0 naming itself as a foreign domain is EPERM (4.20.4+, 4.21.2+, 4.22+), else ESRCH. */
  readonly foreignSelfEperm: boolean;
}

export function rulesFor(arch: XenArch, release: XenRelease): XenRules {
  return {
    release: releaseName(release),
    arch,
    domctlInterfaceVersion: DOMCTL_INTERFACE_VERSIONS[releaseName(release)],
    translatedDomUBorrowers: arch === 'arm' || atLeast(release, X86_TRANSLATED_FOREIGN_MAPS.since),
    getdomaininfoExact: atLeast(release, GETDOMAININFO_EXACT.since),
    setTargetHvmFirst: atLeast(release, SET_TARGET_HVM_FIRST.since),
    foreignSelfEperm: arch === 'arm' && hasArmForeignSelfEperm(release),
  };
}
