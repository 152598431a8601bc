/**
 * The `sim` transport: takes the same raw hypercalls the privcmd transport passes to Linux,
 * decodes their structures from (simulated) guest memory with lib/hypervisor/layout.ts, and
 * answers from the SimHost as the release it models would. Dispatch follows Xen's entry points;
 * the rules themselves live in the host's rooms (memory.ts, domctl.ts, evtchn.ts).
 */
import * as os from 'node:os';
import { PAGE_SIZE } from '../../vocabulary';
import {
  DomctlCmd,
  DomInfFlag,
  EvtchnOp,
  GETDOMAININFO_SIZES,
  SysctlCmd,
  EvtchnStat,
  Hypercall,
  MEMOP_EXTENT_SHIFT,
  XEN_CAPABILITIES_INFO_LEN,
  XEN_EXTRAVERSION_LEN,
  XenMapSpace,
  XenMem,
  XenVer,
} from '../abi';
import { HypercallError } from '../errors';
import {
  EVTCHN_ALLOC_UNBOUND,
  EVTCHN_STATUS,
  MULTICALL_ENTRY,
  readAddToPhysmapBatch,
  readEvtchnAllocUnbound,
  readEvtchnStatus,
  readDomctlHeader,
  readGetDomainInfoList,
  readSysctlHeader,
  writeDomainInfoEntry,
  readMaxMem,
  readMemoryReservation,
  getU64,
  readRemoveFromPhysmap,
  readSetTarget,
  writeEvtchnAllocUnbound,
  writeEvtchnStatus,
  writeGetDomainInfo,
  writeMulticallResult,
  XEN_ADD_TO_PHYSMAP_BATCH,
  XEN_DOMCTL,
  XEN_SYSCTL,
  XEN_SYSCTL_GETDOMAININFOLIST,
  SYSCTL_U,
  XEN_MEMORY_RESERVATION,
  XEN_REMOVE_FROM_PHYSMAP,
} from '../layout';
import type { HypercallBuffer, MappedFrames, XenTransport } from '../transport';
import type { GfnList } from '../types';
import * as evtchn from './evtchn';
import { EXTENT_ORDER } from './frame-table';
import type { SimDomain, SimHost } from './host';
import type { SimStore } from './store';

const E = os.constants.errno;
const TWO32 = 2 ** 32;
/**
 * Where the simulated process's hypercall buffers are said to live. Addresses stay below 2^53,
 * so the simulation handles them as numbers.
 */
const BUFFER_BASE = 0x7f5100000000;
/** memory_op's command mask (MEMOP_CMD_MASK, xen/include/xen/hypercall.h:52). */
const MEMOP_CMD_MASK = (1 << MEMOP_EXTENT_SHIFT) - 1;
/** The reservation limit of do_memory_op: UINT_MAX >> MEMOP_EXTENT_SHIFT. */
const MAX_NR_EXTENTS = Math.floor(0xffffffff / 2 ** MEMOP_EXTENT_SHIFT);
/**
 * The largest extent dom0 may ask for: max_order() of the control domain, ctldom_max_order =
 * CONFIG_PAGEALLOC_MAX_ORDER, 18 on Arm and x86 (common/memory.c:51-95; arch/arm/include/asm/
 * config.h:37, arch/x86/include/asm/config.h:26).
 */
const CTLDOM_MAX_ORDER = 18;

/** getdomaininfo()'s flags as the sim sets them: dying or blocked, and HVM (common/domctl.c:65-110). */
function domInfFlags(h: SimHost, d: SimDomain): number {
  return (d.dying ? DomInfFlag.dying : DomInfFlag.blocked) | (h.hvm(d) ? DomInfFlag.hvm_guest : 0);
}

export class SimTransport implements XenTransport {
  readonly backend = 'sim' as const;
  private readonly buffers = new Map<number, Uint8Array>();
  private lastBase = -1;
  private lastMem?: Uint8Array;
  private next = BUFFER_BASE;
  /** The host while a call holds it (inside exclusive()). */
  private host?: SimHost;

  constructor(readonly store: SimStore) {}

  exclusive<T>(fn: () => T): Promise<T> {
    return this.store.withHost((h) => {
      this.host = h;
      try {
        return fn();
      } finally {
        this.host = undefined;
      }
    });
  }

  /** The host during exclusive(): for the sim's own admin calls. */
  current(): SimHost {
    if (!this.host) throw new HypercallError({ call: 'sim', errno: E.EINVAL, message: 'the simulated host is only reachable inside exclusive()' });
    return this.host;
  }

  allocBuffer(bytes: number): HypercallBuffer {
    const size = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
    const mem = new Uint8Array(size);
    const address = this.next;
    this.next += size + PAGE_SIZE; // a guard page between buffers
    this.buffers.set(address, mem);
    return { address: BigInt(address), size, bytes: mem, view: new DataView(mem.buffer) };
  }

  freeBuffer(buf: HypercallBuffer): void {
    this.buffers.delete(Number(buf.address));
    this.lastBase = -1;
    this.lastMem = undefined;
  }

  /** copy_from_guest(): the bytes at [addr, addr + len) of one buffer, or undefined (-EFAULT). */
  private resolve(addr: number, len: number): Uint8Array | undefined {
    const last = this.lastMem;
    if (last && addr >= this.lastBase && addr + len <= this.lastBase + last.length) {
      return last.subarray(addr - this.lastBase, addr - this.lastBase + len);
    }
    for (const [base, mem] of this.buffers) {
      if (addr >= base && addr + len <= base + mem.length) {
        this.lastBase = base;
        this.lastMem = mem;
        return mem.subarray(addr - base, addr - base + len);
      }
    }
    return undefined;
  }

  hypercall(op: number, args: ReadonlyArray<number | bigint>): number {
    const a = [0, 1, 2, 3, 4].map((i) => Number(args[i] ?? 0));
    return this.dispatch(this.current(), op, a, false);
  }

  private dispatch(h: SimHost, op: number, a: number[], inMulticall: boolean): number {
    switch (op) {
      case Hypercall.xen_version:
        return this.xenVersion(h, a[0], a[1]);
      case Hypercall.memory_op:
        return this.memoryOp(h, a[0], a[1]);
      case Hypercall.multicall:
        // "Multicall reentry is disallowed" (common/multicall.c:45-49).
        return inMulticall ? -E.EINVAL : this.multicall(h, a[0], a[1]);
      case Hypercall.domctl:
        return this.domctl(h, a[0]);
      case Hypercall.sysctl:
        return this.sysctl(h, a[0]);
      case Hypercall.event_channel_op:
        return this.eventChannelOp(h, a[0], a[1]);
      default:
        return -E.ENOSYS;
    }
  }

  // ---- xen_version (common/kernel.c:480-515) -----------------------------------------------------

  private xenVersion(h: SimHost, cmd: number, arg: number): number {
    switch (cmd) {
      case XenVer.version:
        return (h.xen.major << 16) | h.xen.minor;
      case XenVer.extraversion:
        return this.copyString(arg, XEN_EXTRAVERSION_LEN, h.xen.extraversion);
      case XenVer.capabilities:
        // arch_get_xen_caps(): xen/arch/arm/setup.c:1206-1223, xen/arch/x86/setup.c:1974-2001.
        return this.copyString(arg, XEN_CAPABILITIES_INFO_LEN, h.arch === 'arm'
          ? 'xen-3.0-aarch64 xen-3.0-armv7l '
          : 'xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ');
      default:
        return -E.ENOSYS;
    }
  }

  private copyString(arg: number, len: number, s: string): number {
    const mem = this.resolve(arg, len);
    if (!mem) return -E.EFAULT;
    mem.fill(0);
    mem.set(Buffer.from(s, 'latin1').subarray(0, len - 1));
    return 0;
  }

  // ---- memory_op (common/memory.c:1393) ----------------------------------------------------------

  private memoryOp(h: SimHost, cmd: number, arg: number): number {
    const op = cmd & MEMOP_CMD_MASK;
    // The simulation never preempts, so no call comes back as a continuation.
    if (cmd >>> MEMOP_EXTENT_SHIFT !== 0) return -E.EINVAL;
    switch (op) {
      case XenMem.populate_physmap:
      case XenMem.decrease_reservation:
        return this.reservation(h, op, arg);
      case XenMem.add_to_physmap_batch:
        return this.addToPhysmapBatch(h, arg);
      case XenMem.remove_from_physmap: {
        const mem = this.resolve(arg, XEN_REMOVE_FROM_PHYSMAP.size);
        if (!mem) return -E.EFAULT;
        const r = readRemoveFromPhysmap(new DataView(mem.buffer, mem.byteOffset, mem.length), 0);
        return h.removeFromPhysmap(r.domid, r.gpfn);
      }
      default:
        return -E.ENOSYS;
    }
  }

  /** populate_physmap / decrease_reservation: the number of extents done (common/memory.c:1404-1475). */
  private reservation(h: SimHost, op: number, arg: number): number {
    const mem = this.resolve(arg, XEN_MEMORY_RESERVATION.size);
    // Every early failure of these two returns start_extent, 0 here (common/memory.c:1407-1427).
    if (!mem) return 0;
    const r = readMemoryReservation(new DataView(mem.buffer, mem.byteOffset, mem.length), 0);
    if (r.nrExtents > MAX_NR_EXTENTS || r.nrExtents === 0) return 0;
    const d = h.byAnyId(r.domid);
    if (!d) return 0;
    // An extent larger than max_order() of the caller: nothing done (common/memory.c:121-122,
    // 170-172). Populating takes extents of order 0 or 9 only in the sim (a simplification).
    if (r.extentOrder > CTLDOM_MAX_ORDER) return 0;
    if (op === XenMem.populate_physmap && r.extentOrder !== 0 && r.extentOrder !== EXTENT_ORDER) return 0;
    // guest_handle_subrange_okay() of the extent list, else nothing done (common/memory.c:166-168).
    const list = this.resolve(Number(r.extentStart), 8 * r.nrExtents);
    if (!list) return 0;
    const w = new Uint32Array(list.buffer, list.byteOffset, 2 * r.nrExtents);
    let done = 0;
    const pages = 2 ** r.extentOrder;
    extents: for (; done < r.nrExtents; done++) {
      const gfn = w[2 * done] + w[2 * done + 1] * TWO32;
      if (op === XenMem.populate_physmap) {
        if (!h.populate(d, gfn, r.extentOrder)) break;
        continue;
      }
      // decrease_reservation: guest_remove_page() for each page of the extent; the first refusal
      // ends the call, the extent not counted (common/memory.c:452-520).
      for (let j = 0; j < pages; j++) if (h.removeOwnPage(d, gfn + j) !== 0) break extents;
    }
    return done;
  }

  /** XENMEM_add_to_physmap_batch (common/memory.c:1573-1612, 950-1018). */
  private addToPhysmapBatch(h: SimHost, arg: number): number {
    const mem = this.resolve(arg, XEN_ADD_TO_PHYSMAP_BATCH.size);
    if (!mem) return -E.EFAULT;
    const x = readAddToPhysmapBatch(new DataView(mem.buffer, mem.byteOffset, mem.length), 0);
    // gmfn_range is refused by this call (common/memory.c:1587-1589).
    if (x.space === 3) return -E.EOPNOTSUPP;
    // The borrower: -ESRCH if unknown (common/memory.c:1590-1593); -EACCES if not translated
    // (xatp_permission_check(), common/memory.c:1107-1110).
    const d = h.byAnyId(x.domid);
    if (!d) return -E.ESRCH;
    if (!h.translated(d)) return -E.EACCES;
    // Only the foreign space is simulated; Xen has others (shared_info, grant_table, gmfn).
    if (x.space !== XenMapSpace.gmfn_foreign) return -E.EOPNOTSUPP;
    if (x.size === 0) return 0;
    const idxs = this.resolve(Number(x.idxs), 8 * x.size);
    const gpfns = this.resolve(Number(x.gpfns), 8 * x.size);
    const errsMem = this.resolve(Number(x.errs), 4 * x.size);
    // guest_handle_subrange_okay() of the three arrays (common/memory.c:974-977).
    if (!idxs || !gpfns || !errsMem) return -E.EFAULT;
    const wi = new Uint32Array(idxs.buffer, idxs.byteOffset, 2 * x.size);
    const wg = new Uint32Array(gpfns.buffer, gpfns.byteOffset, 2 * x.size);
    const errs = new Int32Array(errsMem.buffer, errsMem.byteOffset, x.size);
    const od = h.foreignOwner(d, x.foreignDomid);
    for (let i = 0; i < x.size; i++) {
      // INVALID_GFN ends the call with -EINVAL (common/memory.c:1003-1004).
      if (wg[2 * i] === 0xffffffff && wg[2 * i + 1] === 0xffffffff) return -E.EINVAL;
      const idx = wi[2 * i] + wi[2 * i + 1] * TWO32;
      const gfn = wg[2 * i] + wg[2 * i + 1] * TWO32;
      // Each page's result goes to errs[], the call itself returns 0 (common/memory.c:1006-1010).
      errs[i] = typeof od === 'number' ? od : h.addForeignPage(d, od, idx, gfn);
    }
    return 0;
  }

  // ---- multicall (common/multicall.c:36-110) ---------------------------------------------------------

  private multicall(h: SimHost, list: number, n: number): number {
    const mem = this.resolve(list, MULTICALL_ENTRY.size * n);
    if (!mem) return -E.EFAULT;
    const v = new DataView(mem.buffer, mem.byteOffset, mem.length);
    const F = MULTICALL_ENTRY.fields;
    for (let i = 0; i < n; i++) {
      const o = MULTICALL_ENTRY.size * i;
      const args = [getU64(v, o + F.arg0.offset), getU64(v, o + F.arg1.offset), getU64(v, o + F.arg2.offset), getU64(v, o + F.arg3.offset), getU64(v, o + F.arg4.offset)];
      // Only the result field is written back (common/multicall.c:90-96).
      writeMulticallResult(v, o, this.dispatch(h, getU64(v, o + F.op.offset), args, true));
    }
    return 0;
  }

  // ---- domctl (common/domctl.c:281) ----------------------------------------------------------------

  private domctl(h: SimHost, arg: number): number {
    const mem = this.resolve(arg, XEN_DOMCTL.size);
    if (!mem) return -E.EFAULT;
    const v = new DataView(mem.buffer, mem.byteOffset, mem.length);
    const hdr = readDomctlHeader(v, 0);
    // "if ( op->interface_version != XEN_DOMCTL_INTERFACE_VERSION ) return -EACCES;"
    // (common/domctl.c:291-292).
    if (hdr.interfaceVersion !== h.domctlInterfaceVersion) return -E.EACCES;
    switch (hdr.cmd) {
      case DomctlCmd.getdomaininfo: {
        const d = h.getDomainInfo(hdr.domain);
        if (typeof d === 'number') return d;
        const flags = domInfFlags(h, d);
        writeGetDomainInfo(v, 0, {
          domain: d.domid, flags, totPages: d.totPages, maxPages: d.maxPages, outstandingPages: 0,
          shrPages: 0, pagedPages: 0, sharedInfoFrame: 0, cpuTime: 0n, nrOnlineVcpus: d.dying ? 0 : 1, maxVcpuId: 0,
        });
        // "op->domain = op->u.getdomaininfo.domain;" (common/domctl.c:563).
        v.setUint16(XEN_DOMCTL.fields.domain.offset, d.domid, true);
        return 0;
      }
      case DomctlCmd.set_target:
        return h.setTarget(hdr.domain, readSetTarget(v, 0));
      case DomctlCmd.max_mem:
        return h.maxMem(hdr.domain, readMaxMem(v, 0));
      default:
        // do_domctl() looks the domain up first (common/domctl.c:314-316); other commands are
        // not simulated.
        return h.domains.has(hdr.domain) ? -E.ENOSYS : -E.ESRCH;
    }
  }

  // ---- sysctl (common/sysctl.c:32) ------------------------------------------------------------

  private sysctl(h: SimHost, arg: number): number {
    const mem = this.resolve(arg, XEN_SYSCTL.size);
    if (!mem) return -E.EFAULT;
    const v = new DataView(mem.buffer, mem.byteOffset, mem.length);
    const hdr = readSysctlHeader(v, 0);
    // "if ( op->interface_version != XEN_SYSCTL_INTERFACE_VERSION ) return -EACCES;" (:42-43).
    // xsm_sysctl() is XSM_PRIV (xsm/dummy.h): the caller is dom0, the control domain.
    if (h.sysctlInterfaceVersion === undefined || hdr.interfaceVersion !== h.sysctlInterfaceVersion) return -E.EACCES;
    // Other commands are not simulated (arch_do_sysctl() answers unknown ones -ENOSYS).
    if (hdr.cmd !== SysctlCmd.getdomaininfolist) return -E.ENOSYS;
    const l = readGetDomainInfoList(v, 0);
    const stride = GETDOMAININFO_SIZES[h.arch][`${h.xen.major}.${h.xen.minor}`] ?? GETDOMAININFO_SIZES[h.arch]['4.22'];
    // for_each_domain walks domain_list, kept in domid order (common/domain.c:719-721 at
    // RELEASE-4.17.0): every domain from first_domain, dying ones too, until max_domains
    // (common/sysctl.c:85-106). xsm_getdomaininfo() passes for dom0.
    const ids = Int32Array.from(h.domains.keys());
    // Domains are mostly made in domid order: sort only when they are not.
    for (let i = 1; i < ids.length; i++) {
      if (ids[i] < ids[i - 1]) {
        ids.sort();
        break;
      }
    }
    // The whole array at once when it fits in one buffer; entry by entry (as Xen copies) only
    // to find where -EFAULT starts.
    const whole = this.resolve(Number(l.buffer), l.maxDomains * stride);
    const wholeView = whole ? new DataView(whole.buffer, whole.byteOffset, whole.length) : undefined;
    let num = 0;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] < l.firstDomain) continue;
      if (num === l.maxDomains) break;
      const d = h.domains.get(ids[i])!;
      const entry = {
        domain: d.domid, flags: domInfFlags(h, d), totPages: d.totPages, maxPages: d.maxPages,
        nrOnlineVcpus: d.dying ? 0 : 1, maxVcpuId: 0,
      };
      if (whole && wholeView) {
        writeDomainInfoEntry(whole, wholeView, num * stride, stride, entry);
      } else {
        // copy_to_guest_offset() of one whole entry, else -EFAULT and nothing copied back
        // (copyback stays -1: common/sysctl.c:98-111, 493-495 at RELEASE-4.20.0).
        const at = this.resolve(Number(l.buffer) + num * stride, stride);
        if (!at) return -E.EFAULT;
        writeDomainInfoEntry(at, new DataView(at.buffer, at.byteOffset, stride), 0, stride, entry);
      }
      num++;
    }
    v.setUint32(SYSCTL_U + XEN_SYSCTL_GETDOMAININFOLIST.fields.num_domains.offset, num, true);
    return 0;
  }

  // ---- event_channel_op (common/event_channel.c:1225) -------------------------------------------

  /** dom0's event channel calls: alloc_unbound and status (the guests' own are in evtchn.ts). */
  private eventChannelOp(h: SimHost, cmd: number, arg: number): number {
    switch (cmd) {
      case EvtchnOp.alloc_unbound: {
        // copy_from_guest, then the result copied back only on success (:1236-1243).
        const mem = this.resolve(arg, EVTCHN_ALLOC_UNBOUND.size);
        if (!mem) return -E.EFAULT;
        const v = new DataView(mem.buffer, mem.byteOffset, mem.length);
        const x = readEvtchnAllocUnbound(v, 0);
        const port = evtchn.allocUnbound(h, 0, x.dom, x.remoteDom);
        if (port < 0) return port;
        writeEvtchnAllocUnbound(v, 0, { ...x, port });
        return 0;
      }
      case EvtchnOp.status: {
        const mem = this.resolve(arg, EVTCHN_STATUS.size);
        if (!mem) return -E.EFAULT;
        const v = new DataView(mem.buffer, mem.byteOffset, mem.length);
        const x = readEvtchnStatus(v, 0);
        const s = evtchn.status(h, 0, x.dom, x.port);
        if (typeof s === 'number') return s;
        writeEvtchnStatus(v, 0, {
          dom: x.dom, port: x.port, vcpu: 0,
          status: EvtchnStat[s.state],
          remoteDom: s.state === 'unbound' || s.state === 'interdomain' ? s.remoteDom : 0,
          remotePort: s.state === 'interdomain' ? s.remotePort : 0,
        });
        return 0;
      }
      default:
        // bind_interdomain, send and close act on the caller's own ports: dom0's have no use in
        // the sim (simulated guests call evtchn.ts directly).
        return -E.ENOSYS;
    }
  }

  // ---- IOCTL_PRIVCMD_MMAPBATCH_V2 ------------------------------------------------------------------

  mmapBatch(domid: number, gfns: GfnList, errs: Int32Array): MappedFrames {
    const h = this.current();
    const mfns = new Uint32Array(gfns.length);
    h.framesForDom0(domid, gfns, errs, mfns);
    // A refused page leaves a hole in a real privcmd mapping; here nothing is mapped at all
    // then (the caller unmaps on any per-page error anyway).
    for (let i = 0; i < errs.length; i++) {
      if (errs[i] !== 0) return { buffer: new ArrayBuffer(0), unmap: () => undefined };
    }
    const v = this.store.views.view(h.frames, mfns);
    return { buffer: v.buffer.buffer as ArrayBuffer, byteOffset: v.byteOffset, unmap: () => v.unmap() };
  }

  close(): void {
    this.buffers.clear();
    this.store.close();
  }
}
