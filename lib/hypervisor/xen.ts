/**
 * XenHypervisor: the Hypervisor interface over a XenTransport, shared by both backends. This
 * file is the façade: it checks arguments, runs one call at a time holding the transport, and
 * hands each call to its room under hypercalls/:
 *   context.ts      the transport, the scratch buffer, argument checks
 *   version.ts      xen_version, the domctl interface version, the release's rules
 *   domctl.ts       getdomaininfo, set_target, max_mem, borrowerSupport
 *   sysctl.ts       getdomaininfolist (many domains in one call)
 *   reservation.ts  populate_physmap (2 MiB extents where aligned), decrease_reservation
 *   foreign.ts      add_to_physmap_batch (gmfn_foreign), remove_from_physmap, MMAPBATCH_V2
 *   evtchn.ts       EVTCHNOP_alloc_unbound, EVTCHNOP_status
 */
import { errnoOf, HypercallError } from './errors';
import { checkDomid, EINVAL, HypercallContext } from './hypercalls/context';
import { borrowerSupport, checkKib, domainInfo, setMaxMem, setTarget } from './hypercalls/domctl';
import { allocUnbound, checkPort, status } from './hypercalls/evtchn';
import { addForeign, mapForeign, removeForeign } from './hypercalls/foreign';
import { decrease, populate, type PopulateStats } from './hypercalls/reservation';
import { DOMAIN_INFO_LIST_MAX, domainInfoList } from './hypercalls/sysctl';
import { domctlInterfaceVersion, xenRules, xenVersion } from './hypercalls/version';
import type { XenRules } from './releases';
import type { XenTransport } from './transport';
import type {
  BorrowerSupport,
  DomainInfo,
  EvtchnStatus,
  ForeignMapping,
  ForeignMapRequest,
  GfnList,
  GfnSpan,
  Hypervisor,
  ProgressCallback,
  RemoveOptions,
  XenVersionInfo,
} from './types';

export { RESERVATION_BATCH, EXTENT_ORDER_2M, type PopulateStats } from './hypercalls/reservation';
export { REMOVE_MULTICALL_BATCH } from './hypercalls/foreign';
export { HYPERCALL_BUFFER_BYTES } from './hypercalls/context';
export { DOMAIN_INFO_LIST_MAX } from './hypercalls/sysctl';

export class XenHypervisor implements Hypervisor {
  private readonly cx: HypercallContext;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** What the last populatePhysmap issued (extent sizes, fallbacks): for tests and figures. */
  lastPopulate?: PopulateStats;

  constructor(protected readonly transport: XenTransport) {
    this.cx = new HypercallContext(transport);
  }

  get backend(): 'privcmd' | 'sim' {
    return this.transport.backend;
  }

  // ---- each call runs alone, in order, holding the transport -------------------------------

  xenVersion(): Promise<XenVersionInfo> {
    return this.run(() => xenVersion(this.cx));
  }

  /** The rules of the running release (releases.ts), from xen_version. */
  xenRules(): Promise<XenRules> {
    return this.run(() => xenRules(this.cx));
  }

  domctlInterfaceVersion(): Promise<number> {
    return this.run(() => domctlInterfaceVersion(this.cx));
  }

  domainInfo(domid: number): Promise<DomainInfo | null> {
    return this.run(() => domainInfo(this.cx, checkDomid(domid, 'domctl(getdomaininfo)')));
  }

  domainInfoList(firstDomid: number, maxDomains: number): Promise<DomainInfo[]> {
    const call = 'sysctl(getdomaininfolist)';
    return this.run(() => {
      const first = checkDomid(firstDomid, call);
      if (!(Number.isInteger(maxDomains) && maxDomains >= 0 && maxDomains <= DOMAIN_INFO_LIST_MAX)) {
        throw new HypercallError({ call, errno: EINVAL, message: `${String(maxDomains)} is not a number of domains to list (0..${DOMAIN_INFO_LIST_MAX})` });
      }
      return domainInfoList(this.cx, first, maxDomains);
    });
  }

  borrowerSupport(borrower: number): Promise<BorrowerSupport> {
    return this.run(() => borrowerSupport(this.cx, checkDomid(borrower, 'domctl(getdomaininfo)')));
  }

  /**
   * `opts.largeExtents: false` populates with 4 KiB extents only (the figures that compare the
   * two; Xen's own fallback needs no option).
   */
  populatePhysmap(domid: number, gfns: GfnList | GfnSpan, onProgress?: ProgressCallback, opts: { largeExtents?: boolean } = {}): Promise<void> {
    return this.run(() => {
      this.lastPopulate = undefined;
      this.lastPopulate = populate(this.cx, checkDomid(domid, 'memory_op(populate_physmap)'), gfns, onProgress, opts.largeExtents ?? true);
    });
  }

  /**
   * `opts.scrub`: zero the pages (through dom0 mappings) before freeing them. Xen scrubs only a
   * dying domain's pages, so without it the next domain given these frames sees their bytes.
   */
  decreaseReservation(domid: number, gfns: GfnList, onProgress?: ProgressCallback, opts: { scrub?: boolean } = {}): Promise<void> {
    return this.run(() => decrease(this.cx, checkDomid(domid, 'memory_op(decrease_reservation)'), gfns, onProgress, opts.scrub ?? false));
  }

  addToPhysmapForeign(req: ForeignMapRequest): Promise<void> {
    return this.run(() => addForeign(this.cx, req));
  }

  removeFromPhysmap(domid: number, gfns: GfnList, opts: RemoveOptions = {}): Promise<void> {
    return this.run(() => removeForeign(this.cx, checkDomid(domid, 'memory_op(remove_from_physmap)'), gfns, opts.missingOk ?? false, opts.onProgress));
  }

  setTarget(domid: number, target: number): Promise<void> {
    return this.run(() => setTarget(this.cx, checkDomid(domid, 'domctl(set_target)'), checkDomid(target, 'domctl(set_target)')));
  }

  setMaxMem(domid: number, maxKib: bigint | number): Promise<void> {
    return this.run(() => {
      const call = 'domctl(max_mem)';
      const d = checkDomid(domid, call);
      setMaxMem(this.cx, d, checkKib(maxKib, call, d));
    });
  }

  mapForeign(domid: number, gfns: GfnList): Promise<ForeignMapping> {
    return this.run(() => mapForeign(this.cx, checkDomid(domid, 'ioctl(MMAPBATCH_V2)'), gfns));
  }

  evtchnAllocUnbound(dom: number, remoteDom: number): Promise<number> {
    const call = 'event_channel_op(alloc_unbound)';
    return this.run(() => allocUnbound(this.cx, checkDomid(dom, call), checkDomid(remoteDom, call)));
  }

  evtchnStatus(dom: number, port: number): Promise<EvtchnStatus> {
    const call = 'event_channel_op(status)';
    return this.run(() => {
      const d = checkDomid(dom, call);
      return status(this.cx, d, checkPort(port, call, d));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.run(() => this.cx.release());
    this.closed = true;
    this.transport.close();
  }

  /**
   * Serialises calls: they share one scratch buffer and the sim's persisted state, and a batch
   * sequence must not interleave with another call's.
   */
  protected run<T>(fn: () => T): Promise<T> {
    const next = this.queue.then(() => {
      if (this.closed) throw new HypercallError({ call: 'close', errno: errnoOf('EBADF'), message: 'this Hypervisor is closed' });
      return this.transport.exclusive(fn);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/**
 * count consecutive gfns from start as a span: populatePhysmap's cheap form (no per-page list).
 * Checked where it is used (whole pages, below 2^52).
 */
export function gfnSpan(start: number, count: number): GfnSpan {
  return { start, length: count };
}

/** count consecutive gfns from start: the usual GfnList of a region (address >> 12). */
export function gfnRange(start: number, count: number): Float64Array {
  const r = new Float64Array(count);
  for (let i = 0; i < count; i++) r[i] = start + i;
  return r;
}
