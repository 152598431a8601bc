/**
 * The Hypervisor interface: what the manager needs from Xen, and nothing more. Two backends
 * implement it: `privcmd` (the real thing, through the shim) and `sim` (a simulated host).
 * Every refusal is a HypercallError (errors.ts).
 */

export type XenArch = 'x86' | 'arm';

export interface XenVersionInfo {
  major: number;
  minor: number;
  /** XENVER_extraversion, e.g. ".4" or "-rc". */
  extraversion: string;
  /** "4.17.4": major.minor + extraversion. */
  version: string;
  /** XENVER_capabilities, e.g. "xen-3.0-aarch64 xen-3.0-armv7l ". */
  capabilities: string;
  /** Told from capabilities: "x86_64"/"x86_32" -> x86, "aarch64"/"armv7l" -> arm. */
  arch: XenArch;
}

/** getdomaininfo of one domain. Page counts are in 4 KiB Xen pages. */
export interface DomainInfo {
  domid: number;
  /** Pages the domain holds now (tot_pages): its RAM plus what was populated for it. */
  totPages: number;
  /** Its max memory (max_pages): populate fails once totPages would pass it. */
  maxPages: number;
  /** maxPages - totPages, never negative. */
  headroomPages: number;
  /** Being destroyed; a dying owner whose pages are still mapped elsewhere lingers as a zombie. */
  dying: boolean;
  shutdown: boolean;
  paused: boolean;
  hvm: boolean;
  /** XEN_DOMINF_* flags as Xen returned them. */
  flags: number;
  nrOnlineVcpus: number;
}

/** GFN lists: plain arrays or typed arrays of page numbers (address >> 12). */
export type GfnList = ArrayLike<number>;

/**
 * `length` consecutive gfns from `start` (gfnSpan()), without a per-page list: populatePhysmap
 * works per extent on it (a 2 MiB extent is one list entry and one check), where a GfnList
 * costs dom0 a read and a check of every page. `length`, as a list's, is the page count.
 */
export interface GfnSpan {
  readonly start: number;
  readonly length: number;
}

/** Called after each batch: pages done so far, and the total. */
export type ProgressCallback = (done: number, total: number) => void;

export interface ForeignMapRequest {
  /** The domain whose physmap receives the pages. */
  borrower: number;
  /** The domain that owns the frames. */
  owner: number;
  /** Owner gfns, one per page. */
  ownerGfns: GfnList;
  /** Where each page appears in the borrower: same length as ownerGfns. */
  borrowerGfns: GfnList;
  onProgress?: ProgressCallback;
}

export interface RemoveOptions {
  /** Count pages that are not mapped (ENOENT) as removed: for idempotent release. */
  missingOk?: boolean;
  onProgress?: ProgressCallback;
}

/** A dom0 mapping of another domain's frames (MMAPBATCH_V2): for `peek` and region handles. */
export interface ForeignMapping {
  /** The frames, page i of the request at byte i * 4096. Length 0 once unmapped. */
  readonly buffer: Buffer;
  readonly domid: number;
  readonly pages: number;
  /** Unmaps now (also done when the buffer is garbage-collected). Idempotent. */
  unmap(): void;
}

/**
 * Whether a domain can borrow, on this Xen (borrowerSupport): the rule of the running release
 * (releases.ts), with the facts it was decided on.
 */
export type BorrowerSupport =
  | {
    supported: true;
    borrower: number;
    arch: XenArch;
    /** The release the rule was read for, e.g. "4.19.1". */
    xenVersion: string;
    /**
     * Xen's default policy (xsm_map_gmfn_foreign, XSM_TARGET) lets a domU map another domain's
     * frames only once that domain is its target (set_target); dom0 needs none.
     */
    needsTarget: boolean;
    /** Where the rule comes from: file and lines, or commit. */
    rule: string;
  }
  | {
    supported: false;
    borrower: number;
    arch: XenArch;
    xenVersion: string;
    /**
     * `borrower-release`: an x86 HVM/PVH domU, on a release before the one that allows it
     * (allowedFrom). `borrower-pv`: an x86 PV domain (not translated: no physmap to map into).
     * `no-domain`: the domain does not exist.
     */
    reason: 'borrower-release' | 'borrower-pv' | 'no-domain';
    allowedFrom?: string;
    rule: string;
  };

/** EVTCHNOP_status of one port (public/event_channel.h, struct evtchn_status). */
export type EvtchnStatus =
  | { state: 'closed' }
  | { state: 'unbound'; remoteDom: number }
  | { state: 'interdomain'; remoteDom: number; remotePort: number }
  | { state: 'pirq' | 'virq' | 'ipi'; vcpu: number };

export interface Hypervisor {
  readonly backend: 'privcmd' | 'sim';

  /** xen_version: release, extraversion, capabilities and the architecture told from them. */
  xenVersion(): Promise<XenVersionInfo>;

  /** The XEN_DOMCTL_INTERFACE_VERSION this Xen accepts (release table, then probing). */
  domctlInterfaceVersion(): Promise<number>;

  /** getdomaininfo of exactly this domain, or null when it does not exist. */
  domainInfo(domid: number): Promise<DomainInfo | null>;

  /**
   * XEN_SYSCTL_getdomaininfolist: up to `maxDomains` (at most DOMAIN_INFO_LIST_MAX, 8,192)
   * domains with a domid >= `firstDomid`, in domid order, dying ones included, in one hypercall.
   * Fewer than asked means no domain is left above the last. EOPNOTSUPP when the release's
   * struct xen_domctl_getdomaininfo size is not known (ask domainInfo per domain then); EACCES
   * or EPERM when Xen refuses the sysctl (an XSM policy).
   */
  domainInfoList(firstDomid: number, maxDomains: number): Promise<DomainInfo[]>;

  /**
   * populate_physmap: allocate one fresh frame at each gfn of the owner. All or nothing: when
   * Xen stops short, the pages populated by this call are freed again and a HypercallError says
   * why (ENOMEM with the pages needed and the headroom, ESRCH for an unknown domain).
   */
  populatePhysmap(domid: number, gfns: GfnList | GfnSpan, onProgress?: ProgressCallback): Promise<void>;

  /** decrease_reservation: free the owner's frames at these gfns. Stops at the first refusal. */
  decreaseReservation(domid: number, gfns: GfnList, onProgress?: ProgressCallback): Promise<void>;

  /**
   * add_to_physmap_batch with XENMAPSPACE_gmfn_foreign: the owner's frames appear in the
   * borrower's physmap, in batches of at most 65,535 pages. Every per-page error is read; on the
   * first batch with any, the pages this call mapped are removed again and a HypercallError
   * carries all the batch's per-page errors in `pages`. On x86 a domU borrower is refused with
   * EPERM before any hypercall (Xen would refuse it: only the hardware domain may borrow).
   */
  addToPhysmapForeign(req: ForeignMapRequest): Promise<void>;

  /**
   * remove_from_physmap of each gfn, batched through multicalls; drops the reference a foreign
   * mapping holds on the owner's frame. Goes through every page, then throws one HypercallError
   * listing the refused ones (ENOENT: nothing mapped there, unless `missingOk`).
   */
  removeFromPhysmap(domid: number, gfns: GfnList, opts?: RemoveOptions): Promise<void>;

  /**
   * XEN_DOMCTL_set_target(domid -> target): gives domid device-model rights over target, which
   * Xen's default policy requires before a domU may map target's frames. Once per domain, never
   * undone: a second call fails with EINVAL.
   */
  setTarget(domid: number, target: number): Promise<void>;

  /**
   * XEN_DOMCTL_max_mem: set domid's max memory (max_pages) to maxKib KiB, the headroom an owner
   * needs for the frames populatePhysmap gives it (xl cannot set max memory above RAM on Arm).
   * Xen rounds down to whole 4 KiB pages and caps at 2^32 - 1 pages. A max below the pages
   * the domain holds is accepted: nothing is taken away, but every allocation for the domain
   * fails until it is back under the max. ESRCH for an unknown domain; EINVAL before any
   * hypercall for a value that is not an integer in 0 .. 2^64 - 1 (numbers: safe integers).
   */
  setMaxMem(domid: number, maxKib: bigint | number): Promise<void>;

  /** IOCTL_PRIVCMD_MMAPBATCH_V2: map a domain's frames into this process (dom0). */
  mapForeign(domid: number, gfns: GfnList): Promise<ForeignMapping>;

  /**
   * Whether `borrower` can receive another domain's frames on this Xen, by the running
   * release's rule (xen_version, then getdomaininfo of the borrower): Arm always (a domU needs
   * a target), x86 HVM/PVH domUs from Xen 4.19 (commit 845a60b63b), x86 PV domains never.
   * Makes no change; answers `no-domain` for a missing domain.
   */
  borrowerSupport(borrower: number): Promise<BorrowerSupport>;

  /**
   * EVTCHNOP_alloc_unbound: a fresh port in `dom`, unbound, that only `remoteDom` may bind
   * (EVTCHNOP_bind_interdomain as itself). Returns the port. ESRCH: no such domain; ENOSPC: no
   * free port left in `dom`; EINVAL: `dom` is dying.
   */
  evtchnAllocUnbound(dom: number, remoteDom: number): Promise<number>;

  /** EVTCHNOP_status of port `port` of `dom`. ESRCH: no such domain; EINVAL: not a valid port. */
  evtchnStatus(dom: number, port: number): Promise<EvtchnStatus>;

  /** Releases devices and buffers. */
  close(): Promise<void>;
}
