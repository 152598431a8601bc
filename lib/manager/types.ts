/**
 * The manager's public types: what apply, release, reconcile and list take and give, and the
 * events a manager emits. No code here.
 */
import type { TransactionOptions, XenstoreClient } from '../../xenstore-wire';
import type { XlConfig } from '../config/xl-reader';
import type { Hypervisor } from '../hypervisor/types';
import type { IndexProblem, RegionRecord } from '../store';
import type { MappingRole } from '../vocabulary';
import type { PortLiveState } from './doorbells';

export interface ManagerOptions {
  xenstore: XenstoreClient;
  hypervisor: Hypervisor;
  /** Where the records live. Default /local/shared_mem. */
  root?: string;
  /** How long to wait for another live process's intent on the same region. Default 30 s. */
  lockWaitMs?: number;
  /** Pages per hypercall call the manager makes (progress and crash granularity). Default 32768. */
  batchPages?: number;
  /** Retry policy of the claim and commit transactions. */
  transaction?: TransactionOptions;
}

export interface ApplyRequest {
  config: XlConfig;
  /** The domain to apply to; or `domain` (a name); or neither: the config's own `name`. */
  domid?: number;
  domain?: string;
  /**
   * Consent to XEN_DOMCTL_set_target(borrower -> owner) when a domU borrower needs it (stock
   * Xen on Arm): once per domain, never undone, and it gives the borrower device-model rights
   * over all of the owner's memory.
   */
  allowSetTarget?: boolean;
  /** Also enforce the dom0less export limits (IDs of at most 15 characters). */
  dom0less?: boolean;
  /**
   * Raise an owner's max memory (XEN_DOMCTL_max_mem) when it has no room for the frames its
   * regions populate. Otherwise such an apply is refused with the amount needed. The raise is
   * not undone at release.
   */
  raiseMaxMem?: boolean;
  /**
   * `apply --doorbell`: doorbell=yes for every entry that does not say (the static_shared_mem
   * spelling has no key for it). docs/doorbells.md.
   */
  doorbell?: boolean;
}

export type ApplyAction = 'created' | 'mapped' | 'unchanged';

export interface AppliedEntry {
  id: string;
  role: MappingRole;
  action: ApplyAction;
  owner: number;
  /** This domain's range (END exclusive) and its window's offset in the region. */
  begin: bigint;
  end: bigint;
  offset: bigint;
  pages: number;
  /** For a borrower: 'done' when this apply made the set_target, 'recorded' when it existed. */
  setTarget?: 'done' | 'recorded';
  /** A borrower with a doorbell: the owner's port it binds. An owner: whether the region has one. */
  port?: number;
  doorbell?: boolean;
}

export interface ApplyResult {
  domid: number;
  domain: string | null;
  entries: AppliedEntry[];
  /** Set when raiseMaxMem raised the domain's max memory: pages before and after. */
  maxMemRaised?: { fromPages: number; toPages: number };
}

export interface ReleaseRequest {
  domid: number;
  /** Only these IDs; default every region the domain owns or borrows. */
  ids?: string[];
  /** Release the borrowers of an owned region first, instead of leaving it orphaned. */
  force?: boolean;
}

export type ReleaseAction = 'released' | 'orphaned';

export interface ReleasedEntry {
  id: string;
  domid: number;
  role: MappingRole;
  action: ReleaseAction;
  /** False when the domain no longer ran: counted as already unmapped, no hypercall made. */
  hypercalls: boolean;
}

export interface ReleaseResult {
  domid: number;
  entries: ReleasedEntry[];
}

export type ReconcileActionKind =
  | 'rolled-back' // an apply intent of a dead process, undone
  | 'completed-release' // a release intent of a dead process, finished
  | 'released' // a mapping of a domain that no longer runs
  | 'orphaned' // the owner no longer runs and borrowers remain
  | 'skipped-live' // the intent's process runs: left alone
  | 'skipped-unknown' // the lock names another host: left alone
  | 'port-recorded' // a port a dead apply allocated, found with EVTCHNOP_status and recorded
  | 'port-intent-removed' // a port intent of a dead apply that allocated nothing, removed
  | 'ports-gone'; // kept ports (id 'kept-ports') of an owner that died, or that it closed, forgotten

export interface ReconcileAction {
  id: string;
  domid: number;
  role: MappingRole;
  action: ReconcileActionKind;
  /** The mapping's state before. */
  state: string;
  lock?: string;
}

export interface ReconcileOptions {
  /** Also release what domains that no longer run held (the daemon's job). Default true. */
  deadDomains?: boolean;
  /**
   * 'host' (default): every region is read: intents of dead processes, mappings of dead domains,
   * and the per-domain index checked (built for older records, repaired). 'dead-domains': only
   * the domains the index lists that Xen no longer runs, through their index (the daemon after
   * @releaseDomain; intents of dead processes on live domains wait for a 'host' reconcile).
   */
  scope?: 'host' | 'dead-domains';
}

export interface ReconcileReport {
  actions: ReconcileAction[];
  /**
   * Host scope, when the per-domain index needed work: built from older records (`rebuilt`),
   * entries put right (`repaired`). Absent when it was in order.
   */
  index?: { rebuilt: boolean; repaired: IndexProblem[] };
}

export interface DomainSummary {
  domid: number;
  name: string | null;
  /** The owner recorded by this tool's set_target, if any. */
  target: number | null;
}

/** One recorded doorbell port, with its live state from EVTCHNOP_status. */
export interface PortListing {
  /** The region, or null when it is gone (the port is kept under <root>/kept-ports until the owner dies). */
  id: string | null;
  owner: number;
  borrower: number;
  /** The port in the owner, or 'allocating' while an apply holds the intent. */
  port: number | 'allocating';
  /**
   * The borrower has no mapping any more (released): the port stays, since dom0 cannot close
   * another domain's port; it goes when the owner dies, and a re-apply of the borrower reuses it.
   */
  kept: boolean;
  /** EVTCHNOP_status of the port ({ state: 'error', code } when Xen would not say, e.g. ESRCH). */
  live?: PortLiveState;
  /** The owner is dying or gone: its ports went with it (evtchn_destroy closes them all). */
  ownerGone?: true;
}

export interface ListResult {
  root: string;
  regions: RegionRecord[];
  domains: DomainSummary[];
  /** Every recorded doorbell port (regions with doorbell=yes), sorted by ID then borrower. */
  ports: PortListing[];
}

export interface ProgressEvent {
  id: string;
  domid: number;
  op: 'populate' | 'map' | 'unmap' | 'free';
  done: number;
  total: number;
}

export interface ManagerEvents {
  progress: [ProgressEvent];
  /** Waiting for another live process's intent on a region. */
  wait: [{ id: string; domid: number; why: string }];
  /** A transaction conflicted and is being redone. */
  retry: [{ attempt: number; code: string }];
}
