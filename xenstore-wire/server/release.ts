/**
 * Which Xen release's C xenstored the in-memory server models. The rules that differ between
 * releases are named here, once; the rooms ask these flags instead of comparing versions.
 */
export const XEN_RELEASES = ['4.17', '4.20', '4.21', '4.22'] as const;
export type XenRelease = (typeof XEN_RELEASES)[number];

/** The release modelled when none is asked for. */
export const DEFAULT_RELEASE: XenRelease = '4.17';

export interface ReleaseRules {
  readonly release: XenRelease;
  /** Xen 4.21: GET_FEATURE / SET_FEATURE are handled (older releases answer ENOSYS). */
  readonly featureRequests: boolean;
  /** Xen 4.22: GET_QUOTA / SET_QUOTA are handled. */
  readonly quotaRequests: boolean;
  /** Xen 4.22: WATCH takes a depth argument. */
  readonly watchDepth: boolean;
  /** Xen 4.22: `@releaseDomain/<domid>` watches one domain's release. */
  readonly releaseDomainPerDomain: boolean;
  /** The ring feature bits a newly introduced domain gets. */
  domainFeatures(current: number): number;
}

export function isXenRelease(s: string): s is XenRelease {
  return (XEN_RELEASES as readonly string[]).includes(s);
}

export function releaseRules(release: XenRelease = DEFAULT_RELEASE): ReleaseRules {
  return {
    release,
    featureRequests: false,
    quotaRequests: false,
    watchDepth: false,
    releaseDomainPerDomain: false,
    domainFeatures: (current) => current,
  };
}
