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
 * by the differential test (test/server/differential*.test.ts): Debian 13's C xenstored 4.20
 * (dom0 and guests, 22 seeds of 12,000 requests each without a difference).
 */
export const DEFAULT_RELEASE: XenRelease = '4.20';

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
  /**
   * 4.20 (since 4.18, xen.git d6bb63924f "introduce dummy nodes for special watch paths"):
   * `@introduceDomain` and `@releaseDomain` are database nodes (core.c setup_structure(),
   * RELEASE-4.20.4 core.c:2317-2319), created after "/", "/tool", "/tool/xenstored": the
   * generation counter starts two higher. They are read and written like other nodes with
   * canonicalize(..., allow_special) (GET_PERMS, SET_PERMS, WATCH, UNWATCH): a SET_PERMS takes a
   * generation, counts for the owner's node quota, works inside transactions, fires watches
   * non-exactly (a watch on "/" sees it, core.c:1863); other `@` names are missing nodes (ENOENT,
   * or EACCES where the parent "/" is not readable); their events go to whoever may read the node
   * or "/" (watch.c watch_permitted(), 4.17 used the node's permissions only).
   */
  readonly specialNodesInDatabase: boolean;
  /**
   * 4.20 CONTROL texts (xenstored_control.c): `log` without arguments lists the log switches,
   * `help` pads names to 16 columns with the newer parameter help, `quota` lists its rows in
   * the newer order and names (node-permissions). Seen on Debian 13's C xenstored 4.20.
   */
  readonly controlTexts420: boolean;
  /**
   * 4.20 (since 4.18) do_unwatch(): the canonical path is checked with is_valid_nodename()
   * (special `@` names allowed) before the watch is looked up, so an invalid one is EINVAL, not
   * ENOENT. Seen on Debian 13's C xenstored 4.20.
   */
  readonly unwatchChecksPath: boolean;
  /**
   * 4.20 (since 4.18) is_valid_nodename(): the path-max quota goes through domain_max_chk(), which
   * exempts privileged connections: dom0's paths are limited by the payload only (4.17: 2048 past
   * `/local/domain/<id>/` for everyone). Seen on Debian 13's C xenstored 4.20.
   */
  readonly privilegedPathUnlimited: boolean;
  /**
   * 4.20 (since 4.18, xen.git 192e2f6a11, a4ffaa0824, 887b576ba9, 4c1f92d664): node counts are
   * changed in a per-request list that is committed with the reply (core.c send_reply() ->
   * acc_commit(), into the transaction's list inside one) and dropped with an error
   * (send_error() -> acc_drop()); domain.c domain_acc_add(), RELEASE-4.20.4 domain.c:1425-1482.
   * So a guest's node count inside a transaction includes the transaction's and the request's
   * own changes (domain_nbentry(), domain.c:1578: 4.17 counted the committed nodes only, so
   * guests hit ENOSPC inside transactions where 4.17 let them write); a count never drops below
   * 0 (domain_acc_add_valid(), domain.c:1401); and a commit whose change would take a guest's
   * count below 0 is ENOMEM, checked before the generations (domain_nbentry_fix() returns
   * `ret + num` unclamped, domain.c:1567; acc_fix_domains() domain.c:853; 4.17 clamped to 0
   * and went on to answer EAGAIN).
   */
  readonly accountingPerRequest: boolean;
  /**
   * 4.20 (since 4.18, xen.git 67617067f0): check_store() (CONTROL check, and every corrupt())
   * recounts each domain's nodes from the tree, special nodes included, and corrects the
   * counts (domain.c domain_check_acc(), RELEASE-4.20.4 domain.c:1797-1880).
   */
  readonly checkStoreRecounts: boolean;
  /**
   * 4.20 (since 4.18, xen.git 304ed13b9a): the transaction quota counts a domain's open
   * transactions (ACC_TRANS of domain.c), not one connection's (4.17 conn->transaction_started).
   * Same check otherwise: more than the quota open before the start is ENOSPC
   * (transaction.c:479).
   */
  readonly transactionsPerDomain: boolean;
  /**
   * 4.20 (since 4.18, xen.git 9260e41e73): RELEASE deletes the domain's watches before freeing
   * its connection (domain.c do_release(), RELEASE-4.20.4 domain.c:1113), also when a
   * SET_TARGET reference keeps the domain itself.
   */
  readonly releaseDeletesWatches: boolean;
  /**
   * 4.20 (since 4.18, xen.git 45ce0cb38f "rework struct xs_tdb_record_hdr", 1a4b7008e9, and
   * 564a093c20 "use generic accounting for remaining quotas"): the node-size quota measures
   * calc_node_acc_size(), `struct node_hdr` (16 bytes: generation, u16 perms, u16 data length,
   * u32 children length) + 8 per permission + data + children (core.c:538-542 at
   * RELEASE-4.20.4), and refuses only a size *over* the quota: domain_max_chk() `val >
   * hard_quotas[what].val` (core.c:829-835, domain.c:1541-1553). 4.17 counted the 24-byte
   * xs_tdb_record_hdr and refused `>= quota` (xenstored_core.c:802-807 at RELEASE-4.17.0), so a
   * guest may write a node 9 bytes larger on 4.20; 4.22 is back to `>=` (domain.c:411-423,
   * quotaCountsNext) with the 16-byte header.
   */
  readonly nodeSizeHdr: boolean;
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
    specialNodesInDatabase: atLeast(release, '4.20'),
    controlTexts420: atLeast(release, '4.20'),
    unwatchChecksPath: atLeast(release, '4.20'),
    privilegedPathUnlimited: atLeast(release, '4.20'),
    accountingPerRequest: atLeast(release, '4.20'),
    checkStoreRecounts: atLeast(release, '4.20'),
    transactionsPerDomain: atLeast(release, '4.20'),
    releaseDeletesWatches: atLeast(release, '4.20'),
    nodeSizeHdr: atLeast(release, '4.20'),
  };
}
