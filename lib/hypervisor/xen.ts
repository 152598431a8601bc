/**
 * The Hypervisor interface over a XenTransport: hypercall encoding, batching, multicalls, domctl
 * interface version detection and the meaning of Xen's answers. Shared by both backends.
 */
import {
  DOMCTL_INTERFACE_VERSIONS,
  DOMCTL_PROBE_LIMIT,
  DOMID_FIRST_RESERVED,
  DomctlCmd,
  DomInfFlag,
  Hypercall,
  MAX_ADD_TO_PHYSMAP_BATCH,
  XEN_CAPABILITIES_INFO_LEN,
  XEN_EXTRAVERSION_LEN,
  XEN_PAGE_SIZE,
  XenMapSpace,
  XenMem,
  XenVer,
} from './abi';
import { describePages, errnoName, errnoOf, HypercallError, type PageError } from './errors';
import {
  MULTICALL_ENTRY,
  readCString,
  readGetDomainInfo,
  readMulticallResult,
  writeAddToPhysmapBatch,
  writeDomctlHeader,
  writeMemoryReservation,
  writeMaxMem,
  writeMulticallEntry,
  writeRemoveFromPhysmap,
  writeSetTarget,
  XEN_ADD_TO_PHYSMAP_BATCH,
  XEN_DOMCTL,
  XEN_MEMORY_RESERVATION,
  XEN_REMOVE_FROM_PHYSMAP,
} from './layout';
import type { HypercallBuffer, XenTransport } from './transport';
import type {
  DomainInfo,
  ForeignMapping,
  ForeignMapRequest,
  GfnList,
  Hypervisor,
  ProgressCallback,
  RemoveOptions,
  XenVersionInfo,
} from './types';

/** Pages per populate_physmap / decrease_reservation call: bounds the hypercall buffer (512 KiB). */
export const RESERVATION_BATCH = 65536;
/** remove_from_physmap calls per multicall (4096 entries: 320 KiB of buffer). */
export const REMOVE_MULTICALL_BATCH = 4096;

/** Largest gfn accepted: Xen's gfns fit in 52 bits (64-bit physical addresses >> 12). */
const MAX_GFN = 2 ** 52 - 1;
/** errs[] value meaning "Xen did not get to this page". */
const ERR_UNTOUCHED = 0x7fffffff;

const EINVAL = errnoOf('EINVAL');
const ESRCH = errnoOf('ESRCH');
const EACCES = errnoOf('EACCES');
const EPERM = errnoOf('EPERM');
const ENOENT = errnoOf('ENOENT');
const ENOMEM = errnoOf('ENOMEM');

const hex = (n: number): string => `0x${n.toString(16)}`;
const mib = (pages: number): string => `${((pages * XEN_PAGE_SIZE) / 2 ** 20).toFixed(pages < 256 ? 2 : 0)} MiB`;

export class XenHypervisor implements Hypervisor {
  private version?: XenVersionInfo;
  private domctlVersion?: number;
  private scratch?: HypercallBuffer;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(protected readonly transport: XenTransport) {}

  get backend(): 'privcmd' | 'sim' {
    return this.transport.backend;
  }

  // ---- public API: each call runs alone, in order, holding the transport ----------------------

  xenVersion(): Promise<XenVersionInfo> {
    return this.run(() => this.xenVersionSync());
  }

  domctlInterfaceVersion(): Promise<number> {
    return this.run(() => this.domctlVersionSync());
  }

  domainInfo(domid: number): Promise<DomainInfo | null> {
    return this.run(() => this.domainInfoSync(checkDomid(domid, 'domctl(getdomaininfo)')));
  }

  populatePhysmap(domid: number, gfns: GfnList, onProgress?: ProgressCallback): Promise<void> {
    return this.run(() => this.populateSync(checkDomid(domid, 'memory_op(populate_physmap)'), gfns, onProgress));
  }

  decreaseReservation(domid: number, gfns: GfnList, onProgress?: ProgressCallback): Promise<void> {
    return this.run(() => {
      const call = 'memory_op(decrease_reservation)';
      const d = checkDomid(domid, call);
      const { done, errno } = this.reservationSync(XenMem.decrease_reservation, d, gfns, onProgress);
      if (errno !== undefined) {
        throw new HypercallError({ call, errno, domid: d, gfn: gfns[done], done, message: `decrease_reservation for d${d} failed: ${errnoName(errno)}` });
      }
      if (done < gfns.length) throw this.decreaseError(d, gfns, done);
    });
  }

  addToPhysmapForeign(req: ForeignMapRequest): Promise<void> {
    return this.run(() => this.addForeignSync(req));
  }

  removeFromPhysmap(domid: number, gfns: GfnList, opts: RemoveOptions = {}): Promise<void> {
    return this.run(() => {
      const call = 'memory_op(remove_from_physmap)';
      const d = checkDomid(domid, call);
      checkGfns(gfns, call, d);
      const refused = this.removeSync(d, gfns, opts.missingOk ?? false, opts.onProgress);
      if (refused.length > 0) {
        throw new HypercallError({
          call, errno: refused[0].errno, domid: d, gfn: refused[0].gfn, pages: refused,
          done: gfns.length - refused.length,
          message: `remove_from_physmap in d${d}: ${describePages(refused)}` +
            (refused[0].code === 'ENOENT' ? ' (ENOENT: nothing is mapped at that gfn)' : ''),
        });
      }
    });
  }

  setTarget(domid: number, target: number): Promise<void> {
    return this.run(() => this.setTargetSync(checkDomid(domid, 'domctl(set_target)'), checkDomid(target, 'domctl(set_target)')));
  }

  setMaxMem(domid: number, maxKib: bigint | number): Promise<void> {
    return this.run(() => {
      const call = 'domctl(max_mem)';
      const d = checkDomid(domid, call);
      this.setMaxMemSync(d, checkKib(maxKib, call, d));
    });
  }

  mapForeign(domid: number, gfns: GfnList): Promise<ForeignMapping> {
    return this.run(() => this.mapForeignSync(checkDomid(domid, 'ioctl(MMAPBATCH_V2)'), gfns));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.run(() => {
      if (this.scratch) this.transport.freeBuffer(this.scratch);
      this.scratch = undefined;
    });
    this.closed = true;
    this.transport.close();
  }

  // ---- plumbing ----------------------------------------------------------------------------------

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

  /** The scratch hypercall buffer, grown to at least `bytes` (whole 64 KiB units). */
  private buf(bytes: number): HypercallBuffer {
    if (!this.scratch || this.scratch.size < bytes) {
      if (this.scratch) this.transport.freeBuffer(this.scratch);
      this.scratch = undefined;
      this.scratch = this.transport.allocBuffer(Math.ceil(bytes / 65536) * 65536);
    }
    return this.scratch;
  }

  private hypercall(op: number, args: ReadonlyArray<number | bigint>): number {
    return this.transport.hypercall(op, args);
  }

  // ---- xen_version -------------------------------------------------------------------------------

  private xenVersionSync(): XenVersionInfo {
    if (this.version) return this.version;
    const call = 'xen_version';
    const v = this.hypercall(Hypercall.xen_version, [XenVer.version, 0]);
    if (v < 0) throw new HypercallError({ call: `${call}(version)`, errno: -v, message: `xen_version(XENVER_version) failed: ${errnoName(-v)}` });
    const b = this.buf(XEN_CAPABILITIES_INFO_LEN);
    b.bytes.fill(0, 0, XEN_CAPABILITIES_INFO_LEN);
    let rc = this.hypercall(Hypercall.xen_version, [XenVer.extraversion, b.address]);
    if (rc < 0) throw new HypercallError({ call: `${call}(extraversion)`, errno: -rc, message: `xen_version(XENVER_extraversion) failed: ${errnoName(-rc)}` });
    const extraversion = readCString(b.bytes.subarray(0, XEN_EXTRAVERSION_LEN));
    b.bytes.fill(0, 0, XEN_CAPABILITIES_INFO_LEN);
    rc = this.hypercall(Hypercall.xen_version, [XenVer.capabilities, b.address]);
    if (rc < 0) throw new HypercallError({ call: `${call}(capabilities)`, errno: -rc, message: `xen_version(XENVER_capabilities) failed: ${errnoName(-rc)}` });
    const capabilities = readCString(b.bytes.subarray(0, XEN_CAPABILITIES_INFO_LEN));
    // arch_get_xen_caps(): "xen-3.0-aarch64 xen-3.0-armv7l" on Arm (xen/arch/arm/setup.c),
    // "xen-3.0-x86_64 hvm-3.0-x86_32 ..." on x86 (xen/arch/x86/setup.c).
    const arch = /\b(?:aarch64|armv7l)\b/.test(capabilities) ? 'arm'
      : /\bx86_(?:64|32p?)\b/.test(capabilities) ? 'x86' : undefined;
    if (!arch) {
      throw new HypercallError({ call: `${call}(capabilities)`, errno: EINVAL, message: `cannot tell the architecture from Xen's capabilities "${capabilities}"` });
    }
    const major = v >>> 16;
    const minor = v & 0xffff;
    this.version = { major, minor, extraversion, version: `${major}.${minor}${extraversion}`, capabilities, arch };
    return this.version;
  }

  // ---- domctl ------------------------------------------------------------------------------------

  /** Issues one domctl with the given interface version; `fill` writes the command's fields. */
  private domctl(cmd: number, version: number, domain: number, fill?: (v: DataView) => void): { rc: number; view: DataView } {
    const b = this.buf(XEN_DOMCTL.size);
    writeDomctlHeader(b.view, 0, { cmd, interfaceVersion: version, domain });
    fill?.(b.view);
    const rc = this.hypercall(Hypercall.domctl, [b.address]);
    return { rc, view: b.view };
  }

  private domctlVersionSync(): number {
    if (this.domctlVersion !== undefined) return this.domctlVersion;
    const v = this.xenVersionSync();
    const release = `${v.major}.${v.minor}`;
    const candidates: number[] = [];
    const add = (x: number | undefined): void => {
      if (x !== undefined && !candidates.includes(x)) candidates.push(x);
    };
    // The release table first; then every known value, newest first; then the whole small range.
    add(DOMCTL_INTERFACE_VERSIONS[release]);
    Object.values(DOMCTL_INTERFACE_VERSIONS).sort((a, b) => b - a).forEach(add);
    for (let x = DOMCTL_PROBE_LIMIT; x >= 1; x--) add(x);
    for (const c of candidates) {
      // getdomaininfo of dom0 is harmless, and its header is the same in every version:
      // any answer but EACCES means Xen accepted the version.
      const { rc } = this.domctl(DomctlCmd.getdomaininfo, c, 0);
      if (rc !== -EACCES) {
        this.domctlVersion = c;
        return c;
      }
    }
    throw new HypercallError({
      call: 'domctl', errno: EACCES,
      message: `Xen ${v.version} refused every domctl interface version 1..${hex(DOMCTL_PROBE_LIMIT)} with EACCES: ` +
        'either it is newer than the table in lib/hypervisor/abi.ts and beyond the probe range, or an XSM policy denies domctls to this domain',
    });
  }

  private domainInfoSync(domid: number): DomainInfo | null {
    const version = this.domctlVersionSync();
    const { rc, view } = this.domctl(DomctlCmd.getdomaininfo, version, domid);
    if (rc === -ESRCH) return null;
    if (rc < 0) {
      throw new HypercallError({ call: 'domctl(getdomaininfo)', errno: -rc, domid, message: `getdomaininfo of d${domid} failed: ${errnoName(-rc)}` });
    }
    const i = readGetDomainInfo(view, 0);
    // Up to Xen 4.17, getdomaininfo of a missing domain answers with the next domain above it
    // (xen/common/domctl.c: `for_each_domain ( d ) if ( d->domain_id >= dom ) break;`).
    if (i.domain !== domid) return null;
    return {
      domid,
      totPages: i.totPages,
      maxPages: i.maxPages,
      headroomPages: Math.max(0, i.maxPages - i.totPages),
      dying: (i.flags & DomInfFlag.dying) !== 0,
      shutdown: (i.flags & DomInfFlag.shutdown) !== 0,
      paused: (i.flags & DomInfFlag.paused) !== 0,
      hvm: (i.flags & DomInfFlag.hvm_guest) !== 0,
      flags: i.flags,
      nrOnlineVcpus: i.nrOnlineVcpus,
    };
  }

  private setTargetSync(domid: number, target: number): void {
    const version = this.domctlVersionSync();
    const { rc } = this.domctl(DomctlCmd.set_target, version, domid, (v) => writeSetTarget(v, 0, target));
    if (rc >= 0) return;
    const errno = -rc;
    const why: Record<string, string> = {
      // xen/common/domctl.c, XEN_DOMCTL_set_target.
      ESRCH: `d${domid} or d${target} does not exist`,
      EINVAL: target === domid
        ? 'a domain cannot be its own target'
        : `d${domid} already has a target: set_target works once per domain and is never undone, so a domain can borrow from one owner only`,
      EOPNOTSUPP: `d${target} is not an HVM/PVH domain, and only those can be a target`,
    };
    throw new HypercallError({
      call: 'domctl(set_target)', errno, domid,
      message: `set_target(d${domid} -> d${target}) refused (${errnoName(errno)}): ${why[errnoName(errno)] ?? 'see Xen\'s log (xl dmesg)'}`,
    });
  }

  private setMaxMemSync(domid: number, maxKib: bigint): void {
    const version = this.domctlVersionSync();
    const { rc } = this.domctl(DomctlCmd.max_mem, version, domid, (v) => writeMaxMem(v, 0, maxKib));
    if (rc >= 0) return;
    const errno = -rc;
    const why: Record<string, string> = {
      // xen/common/domctl.c, do_domctl: the domain is looked up before any command.
      ESRCH: `d${domid} does not exist`,
      // xsm/dummy.h, xsm_domctl: XSM_PRIV for max_mem, the control domain only.
      EPERM: 'only the control domain (dom0) may set another domain\'s max memory, unless a FLASK policy allows it',
    };
    throw new HypercallError({
      call: 'domctl(max_mem)', errno, domid,
      message: `max_mem(d${domid}, ${maxKib} KiB) refused (${errnoName(errno)}): ${why[errnoName(errno)] ?? 'see Xen\'s log (xl dmesg)'}`,
    });
  }

  // ---- memory_op: reservations -----------------------------------------------------------------

  /**
   * populate_physmap or decrease_reservation over gfns in batches. Returns how many pages Xen
   * completed: these calls answer with a count, and stop short without saying why
   * (xen/common/memory.c, do_memory_op: `rc = args.nr_done;`). A negative answer (only from
   * privcmd itself, e.g. EFAULT) comes back as `errno`.
   */
  private reservationSync(op: number, domid: number, gfns: GfnList, onProgress?: ProgressCallback): { done: number; errno?: number } {
    const name = op === XenMem.populate_physmap ? 'populate_physmap' : 'decrease_reservation';
    checkGfns(gfns, `memory_op(${name})`, domid);
    const n = gfns.length;
    const listOff = XEN_MEMORY_RESERVATION.size;
    let done = 0;
    while (done < n) {
      const count = Math.min(RESERVATION_BATCH, n - done);
      const b = this.buf(listOff + 8 * count);
      writeU64List(b, listOff, gfns, done, count);
      writeMemoryReservation(b.view, 0, {
        extentStart: b.address + BigInt(listOff), nrExtents: count, extentOrder: 0, memFlags: 0, domid,
      });
      const rc = this.hypercall(Hypercall.memory_op, [op, b.address]);
      if (rc < 0) return { done, errno: -rc };
      done += Math.min(rc, count);
      if (rc < count) return { done };
      onProgress?.(done, n);
    }
    return { done };
  }

  private populateSync(domid: number, gfns: GfnList, onProgress?: ProgressCallback): void {
    const call = 'memory_op(populate_physmap)';
    const n = gfns.length;
    const { done, errno } = this.reservationSync(XenMem.populate_physmap, domid, gfns, onProgress);
    if (done === n) return;
    // Undo this call's pages, then say why Xen stopped: it does not tell.
    let undo = '';
    if (done > 0) {
      const freed = this.reservationSync(XenMem.decrease_reservation, domid, slice(gfns, 0, done)).done;
      undo = freed === done ? `; the ${done} pages populated before were freed again`
        : `; freeing the ${done} pages populated before stopped after ${freed}: gfns ${hex(gfns[freed])}.. are still populated`;
    }
    const gfn = gfns[done];
    if (errno !== undefined) {
      throw new HypercallError({ call, errno, domid, gfn, done, message: `populate_physmap for d${domid} failed: ${errnoName(errno)}${undo}` });
    }
    const info = this.domainInfoSync(domid);
    if (!info) {
      throw new HypercallError({ call, errno: ESRCH, domid, gfn, done, message: `populate_physmap: d${domid} does not exist${undo}` });
    }
    if (info.dying) {
      throw new HypercallError({ call, errno: ESRCH, domid, gfn, done, message: `populate_physmap: d${domid} is dying${undo}` });
    }
    if (info.headroomPages < n) {
      // Counted from tot_pages: a max lowered below current use leaves no room and a deficit.
      const short = info.totPages + n - info.maxPages;
      throw new HypercallError({
        call, errno: ENOMEM, domid, gfn, done,
        message: `populate_physmap: d${domid} needs ${n} pages (${mib(n)}) but its max memory leaves room for ${info.headroomPages} ` +
          `(tot_pages ${info.totPages}, max_pages ${info.maxPages}${info.totPages > info.maxPages ? ': the max is below what it holds' : ''}); ` +
          `raise its max memory by at least ${short} pages (${mib(short)}) to ${info.totPages + n} pages (${(info.totPages + n) * (XEN_PAGE_SIZE / 1024)} KiB), e.g. setMaxMem (XEN_DOMCTL_max_mem)${undo}`,
      });
    }
    throw new HypercallError({
      call, errno: ENOMEM, domid, gfn, done,
      message: `populate_physmap: Xen populated ${done} of ${n} pages for d${domid} and stopped at gfn ${hex(gfn)} although the domain has room ` +
        `(${info.headroomPages} pages): the host is probably out of free memory (xl info: free_memory), or the gfn is beyond the domain's physical address space${undo}`,
    });
  }

  private decreaseError(domid: number, gfns: GfnList, done: number): HypercallError {
    const call = 'memory_op(decrease_reservation)';
    const gfn = gfns[done];
    if (!this.domainInfoSync(domid)) {
      return new HypercallError({ call, errno: ESRCH, domid, gfn, done, message: `decrease_reservation: d${domid} does not exist` });
    }
    // guest_remove_page() refuses a gfn without a page of the domain's own (memory.c).
    return new HypercallError({
      call, errno: ENOENT, domid, gfn, done,
      message: `decrease_reservation in d${domid} stopped at gfn ${hex(gfn)} after ${done} of ${gfns.length} pages: no page of d${domid}'s own is there (never populated, already freed, or a foreign mapping)`,
    });
  }

  // ---- memory_op: foreign mappings -------------------------------------------------------------

  private addForeignSync(req: ForeignMapRequest): void {
    const call = 'memory_op(add_to_physmap_batch)';
    const borrower = checkDomid(req.borrower, call);
    const owner = checkDomid(req.owner, call);
    const { ownerGfns, borrowerGfns } = req;
    if (ownerGfns.length !== borrowerGfns.length) {
      throw new HypercallError({ call, errno: EINVAL, domid: borrower, message: `ownerGfns has ${ownerGfns.length} pages but borrowerGfns ${borrowerGfns.length}` });
    }
    checkGfns(ownerGfns, call, owner);
    checkGfns(borrowerGfns, call, borrower);
    const n = ownerGfns.length;
    if (n === 0) return;
    const ver = this.xenVersionSync();
    if (ver.arch === 'x86' && borrower !== 0) {
      // xen/arch/x86/mm/p2m.c, p2m_add_foreign(): `if ( !arch_acquire_resource_check(tdom) )
      // return -EPERM;`, true only for the hardware domain (or a non-translated PV one).
      throw new HypercallError({
        call, errno: EPERM, domid: borrower, gfn: borrowerGfns[0],
        message: `on x86, Xen maps another domain's frames only into the hardware domain (dom0): d${borrower} cannot borrow from d${owner} ` +
          '(p2m_add_foreign refuses it with EPERM). On x86 the peer of an owner is dom0 itself: map the region into a dom0 process instead (peek).',
      });
    }

    const structOff = 0;
    const idxOff = XEN_ADD_TO_PHYSMAP_BATCH.size;
    let mapped = 0;
    while (mapped < n) {
      const count = Math.min(MAX_ADD_TO_PHYSMAP_BATCH, n - mapped);
      const gpfnOff = idxOff + 8 * count;
      const errOff = gpfnOff + 8 * count;
      const b = this.buf(errOff + 4 * count);
      writeU64List(b, idxOff, ownerGfns, mapped, count);
      writeU64List(b, gpfnOff, borrowerGfns, mapped, count);
      const errs = new Int32Array(b.bytes.buffer, b.bytes.byteOffset + errOff, count);
      errs.fill(ERR_UNTOUCHED);
      writeAddToPhysmapBatch(b.view, structOff, {
        domid: borrower, space: XenMapSpace.gmfn_foreign, size: count, foreignDomid: owner,
        idxs: b.address + BigInt(idxOff), gpfns: b.address + BigInt(gpfnOff), errs: b.address + BigInt(errOff),
      });
      const rc = this.hypercall(Hypercall.memory_op, [XenMem.add_to_physmap_batch, b.address + BigInt(structOff)]);

      // Read every per-page result: the call returns 0 even when every page was refused.
      let bad = 0;
      for (let i = 0; i < count; i++) if (errs[i] !== 0) bad++;
      if (rc < 0 || bad > 0) {
        const refused: PageError[] = [];
        const okInBatch: number[] = [];
        for (let i = 0; i < count; i++) {
          const e = errs[i];
          if (e === 0) okInBatch.push(mapped + i);
          else if (e !== ERR_UNTOUCHED) {
            refused.push({ index: mapped + i, gfn: borrowerGfns[mapped + i], foreignGfn: ownerGfns[mapped + i], errno: -e, code: errnoName(-e) });
          }
        }
        const undo = this.undoForeign(borrower, borrowerGfns, mapped, okInBatch);
        if (rc < 0) {
          throw new HypercallError({
            call, errno: -rc, domid: borrower, done: mapped + okInBatch.length, pages: refused,
            message: `add_to_physmap_batch(d${owner} -> d${borrower}) failed: ${errnoName(-rc)}` +
              (-rc === ESRCH ? ` (d${borrower} does not exist)` : -rc === EACCES ? ` (d${borrower} is not a translated guest)` : '') + undo,
          });
        }
        throw new HypercallError({
          call, errno: refused[0].errno, domid: borrower, gfn: refused[0].gfn, done: mapped + okInBatch.length, pages: refused,
          message: `add_to_physmap_batch(d${owner} -> d${borrower}): ${describePages(refused)}; ${foreignHint(refused[0].code, owner, borrower)}${undo}`,
        });
      }
      mapped += count;
      req.onProgress?.(mapped, n);
    }
  }

  /** Removes what a failed addForeign mapped: all earlier batches and the successes of the last. */
  private undoForeign(borrower: number, gfns: GfnList, before: number, okInBatch: number[]): string {
    const total = before + okInBatch.length;
    if (total === 0) return '; nothing was left mapped';
    const list = new Float64Array(total);
    for (let i = 0; i < before; i++) list[i] = gfns[i];
    okInBatch.forEach((idx, k) => (list[before + k] = gfns[idx]));
    const left = this.removeSync(borrower, list, true);
    return left.length === 0 ? `; the ${total} pages mapped before were removed again`
      : `; removing the ${total} pages mapped before failed for ${left.length} (first: gfn ${hex(left[0].gfn)} ${left[0].code})`;
  }

  /** remove_from_physmap of each gfn through multicalls; returns the refused pages. */
  private removeSync(domid: number, gfns: GfnList, missingOk: boolean, onProgress?: ProgressCallback): PageError[] {
    const n = gfns.length;
    const refused: PageError[] = [];
    const E = MULTICALL_ENTRY.size;
    const R = XEN_REMOVE_FROM_PHYSMAP.size;
    let done = 0;
    while (done < n) {
      const count = Math.min(REMOVE_MULTICALL_BATCH, n - done);
      const argsOff = E * count;
      const b = this.buf(argsOff + R * count);
      for (let i = 0; i < count; i++) {
        writeRemoveFromPhysmap(b.view, argsOff + R * i, { domid, gpfn: gfns[done + i] });
        writeMulticallEntry(b.view, E * i, {
          op: Hypercall.memory_op, args: [XenMem.remove_from_physmap, b.address + BigInt(argsOff + R * i)],
        });
      }
      const rc = this.hypercall(Hypercall.multicall, [b.address, count]);
      if (rc < 0) {
        throw new HypercallError({ call: 'multicall', errno: -rc, domid, done, message: `multicall of ${count} remove_from_physmap for d${domid} failed: ${errnoName(-rc)}` });
      }
      for (let i = 0; i < count; i++) {
        const r = readMulticallResult(b.view, E * i);
        if (r === 0 || (missingOk && r === -ENOENT)) continue;
        refused.push({ index: done + i, gfn: gfns[done + i], errno: -r, code: errnoName(-r) });
      }
      done += count;
      onProgress?.(done, n);
    }
    return refused;
  }

  // ---- MMAPBATCH_V2 --------------------------------------------------------------------------------

  private mapForeignSync(domid: number, gfns: GfnList): ForeignMapping {
    const call = 'ioctl(MMAPBATCH_V2)';
    checkGfns(gfns, call, domid);
    const n = gfns.length;
    if (n === 0) throw new HypercallError({ call, errno: EINVAL, domid, message: 'mapForeign needs at least one gfn' });
    const errs = new Int32Array(n);
    const frames = this.transport.mmapBatch(domid, gfns, errs);
    const refused: PageError[] = [];
    for (let i = 0; i < n; i++) {
      if (errs[i] !== 0) refused.push({ index: i, gfn: gfns[i], errno: -errs[i], code: errnoName(-errs[i]) });
    }
    if (refused.length > 0) {
      frames.unmap();
      throw new HypercallError({
        call, errno: refused[0].errno, domid, gfn: refused[0].gfn, pages: refused,
        message: `mapping ${n} pages of d${domid} into this process: ${describePages(refused)}` +
          (refused[0].code === 'EINVAL' ? ' (EINVAL: no RAM page of the domain at that gfn)' : refused[0].code === 'ESRCH' ? ` (d${domid} does not exist, or is this domain)` : ''),
      });
    }
    let live = true;
    return {
      buffer: Buffer.from(frames.buffer, 0, n * XEN_PAGE_SIZE),
      domid,
      pages: n,
      unmap(): void {
        if (!live) return;
        live = false;
        frames.unmap();
      },
    };
  }
}

// ---- helpers ---------------------------------------------------------------------------------------

/** count consecutive gfns from start: the usual GfnList of a region (address >> 12). */
export function gfnRange(start: number, count: number): Float64Array {
  const r = new Float64Array(count);
  for (let i = 0; i < count; i++) r[i] = start + i;
  return r;
}

function checkDomid(domid: number, call: string): number {
  if (!Number.isInteger(domid) || domid < 0 || domid >= DOMID_FIRST_RESERVED) {
    throw new HypercallError({ call, errno: EINVAL, message: `${String(domid)} is not a domain id (0..${DOMID_FIRST_RESERVED - 1})` });
  }
  return domid;
}

/** A max_memkb value: a non-negative integer that fits Xen's uint64_t, as a bigint. */
function checkKib(kib: bigint | number, call: string, domid: number): bigint {
  const ok = typeof kib === 'bigint' ? kib >= 0n && kib <= 0xffffffffffffffffn
    : typeof kib === 'number' && Number.isSafeInteger(kib) && kib >= 0;
  if (!ok) {
    throw new HypercallError({ call, errno: EINVAL, domid, message: `${String(kib)} is not a max memory in KiB (an integer in 0 .. 2^64 - 1; numbers must be safe integers)` });
  }
  return BigInt(kib);
}

function checkGfns(gfns: GfnList, call: string, domid: number): void {
  for (let i = 0; i < gfns.length; i++) {
    const g = gfns[i];
    if (!(g >= 0 && g <= MAX_GFN && Math.floor(g) === g)) {
      throw new HypercallError({ call, errno: EINVAL, domid, message: `gfn #${i} (${String(g)}) is not a page number` });
    }
  }
}

/** Writes gfns[from .. from+count) as little-endian uint64s at byte offset off of the buffer. */
function writeU64List(b: HypercallBuffer, off: number, gfns: GfnList, from: number, count: number): void {
  const w = new Uint32Array(b.bytes.buffer, b.bytes.byteOffset + off, 2 * count);
  for (let i = 0; i < count; i++) {
    const g = gfns[from + i];
    w[2 * i] = g >>> 0;
    w[2 * i + 1] = g > 0xffffffff ? Math.floor(g / 2 ** 32) : 0;
  }
}

function slice(gfns: GfnList, from: number, to: number): Float64Array {
  const out = new Float64Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = gfns[i];
  return out;
}

function foreignHint(code: string, owner: number, borrower: number): string {
  switch (code) {
    case 'EPERM':
      return `Xen's default policy lets d${borrower} map d${owner}'s frames only if d${borrower} is the control domain or has d${owner} as its target: ` +
        `set_target(d${borrower} -> d${owner}) allows it, once and forever (d${borrower} can then borrow from no other owner, and gets device-model rights over all of d${owner}'s memory); a FLASK policy can allow it instead`;
    case 'EINVAL':
      return `EINVAL: the owner has no RAM page at that gfn (not populated), or owner and borrower are the same domain`;
    case 'ESRCH':
      return `ESRCH: d${owner} does not exist, or is the calling domain`;
    default:
      return 'see Xen\'s log (xl dmesg)';
  }
}
