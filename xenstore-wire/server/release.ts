/**
 * Which Xen release's C xenstored the in-memory server models. The rules that differ between
 * releases are named here, once; the rooms ask these flags instead of comparing versions.
 *
 * Sources: tools/xenstore (4.17) and tools/xenstored (4.20-4.22) of xen.git at
 * RELEASE-4.17.7, -4.20.4, -4.21.0, -4.22.0, and docs/misc/xenstore.txt of 4.22.
 */
export const XEN_RELEASES = ['4.17', '4.20', '4.21', '4.22'] as const;
export type XenRelease = (typeof XEN_RELEASES)[number];

/**
 * The release modelled when none is asked for: the newest one verified against a real daemon
 * by the differential test (4.17, Debian 12's; 4.20 once its daemons pass the same test).
 */
export const DEFAULT_RELEASE: XenRelease = '4.17';

/** xs_wire.h / docs/misc/xenstore-ring.txt: XENSTORE_SERVER_FEATURE_* bits. */
export const FEATURE_RECONNECTION = 1;
export const FEATURE_ERROR = 2;
export const FEATURE_WATCHDEPTH = 4;
export const FEATURE_DOMID_ANY = 8;

export interface ReleaseRules {
  readonly release: XenRelease;
  /** 4.21: GET_FEATURE / SET_FEATURE are handled (older releases answer ENOSYS). */
  readonly featureRequests: boolean;
  /**
   * 4.22: GET_FEATURE parses domids with parse_domid() (strtoul, at most 65535, else EINVAL),
   * refuses a domid from an unprivileged caller (EACCES), and answers a caller without a domid
   * with its own domain's features; 4.21 uses atoi() and answers the daemon's features.
   */
  readonly strictFeatureRequests: boolean;
  /** XENSTORE_FEATURES of domain.c: the bits a domain starts with (0 before 4.21). */
  readonly features: number;
  /** 4.22: GET_QUOTA / SET_QUOTA are handled, and each domain keeps its own quota values. */
  readonly quotaRequests: boolean;
  /**
   * 4.22 domain_quota_add_exceeds(): a guest may not *reach* its node, watch, transaction or
   * permission quota (count after the request >= quota is refused; watches with ENOSPC).
   * Before, the count before the request was compared (nodes >= quota, watches and
   * transactions > quota with E2BIG / ENOSPC, permissions > quota).
   */
  readonly quotaCountsNext: boolean;
  /** 4.22: WATCH takes a depth argument (when the connection has FEATURE_WATCHDEPTH). */
  readonly watchDepth: boolean;
  /** 4.22: `@releaseDomain/<domid>` and `@introduceDomain/<domid>` events (fire_special_watches). */
  readonly releaseDomainPerDomain: boolean;
}

export function isXenRelease(s: string): s is XenRelease {
  return (XEN_RELEASES as readonly string[]).includes(s);
}

const atLeast = (r: XenRelease, min: XenRelease) => XEN_RELEASES.indexOf(r) >= XEN_RELEASES.indexOf(min);

export function releaseRules(release: XenRelease = DEFAULT_RELEASE): ReleaseRules {
  const r421 = atLeast(release, '4.21');
  const r422 = atLeast(release, '4.22');
  return {
    release,
    featureRequests: r421,
    strictFeatureRequests: r422,
    features: r422 ? FEATURE_ERROR | FEATURE_WATCHDEPTH | FEATURE_DOMID_ANY : r421 ? FEATURE_ERROR : 0,
    quotaRequests: r422,
    quotaCountsNext: r422,
    watchDepth: r422,
    releaseDomainPerDomain: r422,
  };
}
