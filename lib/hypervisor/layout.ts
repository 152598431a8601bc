/**
 * Byte layouts of the Xen structures xen-sshm writes or reads, and their encoders and decoders.
 *
 * One table serves x86_64 and arm64: Xen's public headers give these structures the same layout
 * on both (guest handles are 8 bytes, 8-aligned; xen_ulong_t and xen_pfn_t are 64-bit), and
 * test/hypervisor/layout.test.ts proves it by compiling _Static_assert()s generated from these
 * tables against /usr/include/xen with gcc for x86_64 and aarch64-linux-gnu-gcc for arm64.
 * Both targets are little-endian. The encoders take their offsets from the tables, so the
 * compiler's check covers them too.
 */

export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'handle' | 'chars';

export interface FieldLayout {
  readonly offset: number;
  readonly kind: FieldKind;
  /** Member designator in C, for offsetof(): `u.foreign_domid`, `args[0]`. */
  readonly c: string;
  /** Bytes, for 'chars' and arrays. */
  readonly bytes?: number;
}

export interface StructLayout {
  /** C type name as the headers spell it. */
  readonly c: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, FieldLayout>>;
}

export const FIELD_BYTES: Readonly<Record<Exclude<FieldKind, 'chars'>, number>> = {
  u8: 1, u16: 2, u32: 4, u64: 8, handle: 8,
};

const f = (offset: number, kind: FieldKind, c: string, bytes?: number): FieldLayout =>
  bytes === undefined ? { offset, kind, c } : { offset, kind, c, bytes };

/** memory.h: populate_physmap / decrease_reservation argument. */
export const XEN_MEMORY_RESERVATION = {
  c: 'struct xen_memory_reservation',
  size: 32,
  fields: {
    extent_start: f(0, 'handle', 'extent_start'),
    nr_extents: f(8, 'u64', 'nr_extents'),
    extent_order: f(16, 'u32', 'extent_order'),
    mem_flags: f(20, 'u32', 'mem_flags'),
    domid: f(24, 'u16', 'domid'),
  },
} as const satisfies StructLayout;

/** memory.h: add_to_physmap_batch argument; `u.foreign_domid` is the owner for gmfn_foreign. */
export const XEN_ADD_TO_PHYSMAP_BATCH = {
  c: 'struct xen_add_to_physmap_batch',
  size: 32,
  fields: {
    domid: f(0, 'u16', 'domid'),
    space: f(2, 'u16', 'space'),
    size: f(4, 'u16', 'size'),
    foreign_domid: f(6, 'u16', 'u.foreign_domid'),
    idxs: f(8, 'handle', 'idxs'),
    gpfns: f(16, 'handle', 'gpfns'),
    errs: f(24, 'handle', 'errs'),
  },
} as const satisfies StructLayout;

/** memory.h: remove_from_physmap argument. */
export const XEN_REMOVE_FROM_PHYSMAP = {
  c: 'struct xen_remove_from_physmap',
  size: 16,
  fields: {
    domid: f(0, 'u16', 'domid'),
    gpfn: f(8, 'u64', 'gpfn'),
  },
} as const satisfies StructLayout;

/** xen.h: one entry of a multicall list. */
export const MULTICALL_ENTRY = {
  c: 'struct multicall_entry',
  size: 64,
  fields: {
    op: f(0, 'u64', 'op'),
    result: f(8, 'u64', 'result'),
    arg0: f(16, 'u64', 'args[0]'),
    arg1: f(24, 'u64', 'args[1]'),
    arg2: f(32, 'u64', 'args[2]'),
    arg3: f(40, 'u64', 'args[3]'),
    arg4: f(48, 'u64', 'args[4]'),
    arg5: f(56, 'u64', 'args[5]'),
  },
} as const satisfies StructLayout;

/** domctl.h: the domctl header; the command's own structure starts at `u` (a 128-byte union). */
export const XEN_DOMCTL = {
  c: 'struct xen_domctl',
  size: 144,
  fields: {
    cmd: f(0, 'u32', 'cmd'),
    interface_version: f(4, 'u32', 'interface_version'),
    domain: f(8, 'u16', 'domain'),
    u: f(16, 'chars', 'u', 128),
  },
} as const satisfies StructLayout;

/**
 * domctl.h: getdomaininfo result, at XEN_DOMCTL.fields.u. Only the prefix that has stayed put
 * across interface versions is read (later fields such as gpaddr_bits and arch_config moved
 * between releases, and arch_config differs between x86 and Arm).
 */
export const XEN_DOMCTL_GETDOMAININFO = {
  c: 'struct xen_domctl_getdomaininfo',
  // Not the whole struct: the prefix read. The layout test checks the offsets below.
  size: 72,
  fields: {
    domain: f(0, 'u16', 'domain'),
    flags: f(4, 'u32', 'flags'),
    tot_pages: f(8, 'u64', 'tot_pages'),
    max_pages: f(16, 'u64', 'max_pages'),
    outstanding_pages: f(24, 'u64', 'outstanding_pages'),
    shr_pages: f(32, 'u64', 'shr_pages'),
    paged_pages: f(40, 'u64', 'paged_pages'),
    shared_info_frame: f(48, 'u64', 'shared_info_frame'),
    cpu_time: f(56, 'u64', 'cpu_time'),
    nr_online_vcpus: f(64, 'u32', 'nr_online_vcpus'),
    max_vcpu_id: f(68, 'u32', 'max_vcpu_id'),
  },
} as const satisfies StructLayout;

/** domctl.h: set_target argument, at XEN_DOMCTL.fields.u. */
export const XEN_DOMCTL_SET_TARGET = {
  c: 'struct xen_domctl_set_target',
  size: 2,
  fields: {
    target: f(0, 'u16', 'target'),
  },
} as const satisfies StructLayout;

/**
 * Every table, with whether its `size` is the full sizeof() (getdomaininfo's is a prefix: the
 * compiler then checks size <= sizeof()).
 */
export const LAYOUTS: ReadonlyArray<{ layout: StructLayout; wholeSize: boolean }> = [
  { layout: XEN_MEMORY_RESERVATION, wholeSize: true },
  { layout: XEN_ADD_TO_PHYSMAP_BATCH, wholeSize: true },
  { layout: XEN_REMOVE_FROM_PHYSMAP, wholeSize: true },
  { layout: MULTICALL_ENTRY, wholeSize: true },
  { layout: XEN_DOMCTL, wholeSize: true },
  { layout: XEN_DOMCTL_GETDOMAININFO, wholeSize: false },
  { layout: XEN_DOMCTL_SET_TARGET, wholeSize: true },
];

// ---- little-endian field access ---------------------------------------------------------------

const TWO32 = 2 ** 32;

/** Writes a non-negative integer (< 2^53) as a 64-bit little-endian value. */
export function setU64(v: DataView, off: number, value: number | bigint): void {
  if (typeof value === 'bigint') {
    v.setBigUint64(off, BigInt.asUintN(64, value), true);
    return;
  }
  v.setUint32(off, value % TWO32, true);
  v.setUint32(off + 4, Math.floor(value / TWO32), true);
}

/** Reads a 64-bit little-endian value as a number; values >= 2^53 lose precision (never gfns). */
export function getU64(v: DataView, off: number): number {
  return v.getUint32(off, true) + v.getUint32(off + 4, true) * TWO32;
}

/** Reads a 64-bit little-endian value as a signed number: hypercall results are longs. */
export function getI64(v: DataView, off: number): number {
  return v.getUint32(off, true) + v.getInt32(off + 4, true) * TWO32;
}

// ---- the structures ---------------------------------------------------------------------------

export interface MemoryReservation {
  /** Guest handle: address of the xen_pfn_t list. */
  extentStart: bigint;
  nrExtents: number;
  extentOrder: number;
  memFlags: number;
  domid: number;
}

export function writeMemoryReservation(v: DataView, off: number, r: MemoryReservation): void {
  const F = XEN_MEMORY_RESERVATION.fields;
  zero(v, off, XEN_MEMORY_RESERVATION.size);
  setU64(v, off + F.extent_start.offset, r.extentStart);
  setU64(v, off + F.nr_extents.offset, r.nrExtents);
  v.setUint32(off + F.extent_order.offset, r.extentOrder, true);
  v.setUint32(off + F.mem_flags.offset, r.memFlags, true);
  v.setUint16(off + F.domid.offset, r.domid, true);
}

export function readMemoryReservation(v: DataView, off: number): MemoryReservation {
  const F = XEN_MEMORY_RESERVATION.fields;
  return {
    extentStart: v.getBigUint64(off + F.extent_start.offset, true),
    nrExtents: getU64(v, off + F.nr_extents.offset),
    extentOrder: v.getUint32(off + F.extent_order.offset, true),
    memFlags: v.getUint32(off + F.mem_flags.offset, true),
    domid: v.getUint16(off + F.domid.offset, true),
  };
}

export interface AddToPhysmapBatch {
  domid: number;
  space: number;
  size: number;
  foreignDomid: number;
  idxs: bigint;
  gpfns: bigint;
  errs: bigint;
}

export function writeAddToPhysmapBatch(v: DataView, off: number, b: AddToPhysmapBatch): void {
  const F = XEN_ADD_TO_PHYSMAP_BATCH.fields;
  if (b.size > 0xffff) throw new RangeError(`add_to_physmap_batch size ${b.size} does not fit its uint16_t`);
  zero(v, off, XEN_ADD_TO_PHYSMAP_BATCH.size);
  v.setUint16(off + F.domid.offset, b.domid, true);
  v.setUint16(off + F.space.offset, b.space, true);
  v.setUint16(off + F.size.offset, b.size, true);
  v.setUint16(off + F.foreign_domid.offset, b.foreignDomid, true);
  setU64(v, off + F.idxs.offset, b.idxs);
  setU64(v, off + F.gpfns.offset, b.gpfns);
  setU64(v, off + F.errs.offset, b.errs);
}

export function readAddToPhysmapBatch(v: DataView, off: number): AddToPhysmapBatch {
  const F = XEN_ADD_TO_PHYSMAP_BATCH.fields;
  return {
    domid: v.getUint16(off + F.domid.offset, true),
    space: v.getUint16(off + F.space.offset, true),
    size: v.getUint16(off + F.size.offset, true),
    foreignDomid: v.getUint16(off + F.foreign_domid.offset, true),
    idxs: v.getBigUint64(off + F.idxs.offset, true),
    gpfns: v.getBigUint64(off + F.gpfns.offset, true),
    errs: v.getBigUint64(off + F.errs.offset, true),
  };
}

export interface RemoveFromPhysmap {
  domid: number;
  gpfn: number;
}

export function writeRemoveFromPhysmap(v: DataView, off: number, r: RemoveFromPhysmap): void {
  const F = XEN_REMOVE_FROM_PHYSMAP.fields;
  zero(v, off, XEN_REMOVE_FROM_PHYSMAP.size);
  v.setUint16(off + F.domid.offset, r.domid, true);
  setU64(v, off + F.gpfn.offset, r.gpfn);
}

export function readRemoveFromPhysmap(v: DataView, off: number): RemoveFromPhysmap {
  const F = XEN_REMOVE_FROM_PHYSMAP.fields;
  return { domid: v.getUint16(off + F.domid.offset, true), gpfn: getU64(v, off + F.gpfn.offset) };
}

export interface MulticallEntry {
  op: number;
  /** Up to six arguments; pointers as bigint. */
  args: ReadonlyArray<number | bigint>;
}

export function writeMulticallEntry(v: DataView, off: number, e: MulticallEntry): void {
  const F = MULTICALL_ENTRY.fields;
  if (e.args.length > 6) throw new RangeError('a multicall entry takes at most 6 arguments');
  zero(v, off, MULTICALL_ENTRY.size);
  setU64(v, off + F.op.offset, e.op);
  // result is written by Xen; args[] are consecutive xen_ulong_t.
  e.args.forEach((a, i) => setU64(v, off + F.arg0.offset + 8 * i, a));
}

export function readMulticallEntry(v: DataView, off: number): { op: number; result: number; args: bigint[] } {
  const F = MULTICALL_ENTRY.fields;
  const args: bigint[] = [];
  for (let i = 0; i < 6; i++) args.push(v.getBigUint64(off + F.arg0.offset + 8 * i, true));
  return { op: getU64(v, off + F.op.offset), result: getI64(v, off + F.result.offset), args };
}

/** The multicall entry's result: a long written back by Xen, negative for -errno. */
export function readMulticallResult(v: DataView, off: number): number {
  return getI64(v, off + MULTICALL_ENTRY.fields.result.offset);
}

export function writeMulticallResult(v: DataView, off: number, result: number): void {
  setU64(v, off + MULTICALL_ENTRY.fields.result.offset, BigInt(result));
}

export interface DomctlHeader {
  cmd: number;
  interfaceVersion: number;
  domain: number;
}

/** Writes the domctl header and zeroes the command union; the command's fields go at `u`. */
export function writeDomctlHeader(v: DataView, off: number, h: DomctlHeader): void {
  const F = XEN_DOMCTL.fields;
  zero(v, off, XEN_DOMCTL.size);
  v.setUint32(off + F.cmd.offset, h.cmd, true);
  v.setUint32(off + F.interface_version.offset, h.interfaceVersion, true);
  v.setUint16(off + F.domain.offset, h.domain, true);
}

export function readDomctlHeader(v: DataView, off: number): DomctlHeader {
  const F = XEN_DOMCTL.fields;
  return {
    cmd: v.getUint32(off + F.cmd.offset, true),
    interfaceVersion: v.getUint32(off + F.interface_version.offset, true),
    domain: v.getUint16(off + F.domain.offset, true),
  };
}

/** Offset and size of the command union inside struct xen_domctl. */
export const DOMCTL_U = XEN_DOMCTL.fields.u.offset;
export const DOMCTL_U_BYTES = 128;

export function writeSetTarget(v: DataView, domctlOff: number, target: number): void {
  v.setUint16(domctlOff + DOMCTL_U + XEN_DOMCTL_SET_TARGET.fields.target.offset, target, true);
}

export function readSetTarget(v: DataView, domctlOff: number): number {
  return v.getUint16(domctlOff + DOMCTL_U + XEN_DOMCTL_SET_TARGET.fields.target.offset, true);
}

export interface GetDomainInfo {
  domain: number;
  flags: number;
  totPages: number;
  maxPages: number;
  outstandingPages: number;
  shrPages: number;
  pagedPages: number;
  sharedInfoFrame: number;
  cpuTime: bigint;
  nrOnlineVcpus: number;
  maxVcpuId: number;
}

export function readGetDomainInfo(v: DataView, domctlOff: number): GetDomainInfo {
  const F = XEN_DOMCTL_GETDOMAININFO.fields;
  const o = domctlOff + DOMCTL_U;
  return {
    domain: v.getUint16(o + F.domain.offset, true),
    flags: v.getUint32(o + F.flags.offset, true),
    totPages: getU64(v, o + F.tot_pages.offset),
    maxPages: getU64(v, o + F.max_pages.offset),
    outstandingPages: getU64(v, o + F.outstanding_pages.offset),
    shrPages: getU64(v, o + F.shr_pages.offset),
    pagedPages: getU64(v, o + F.paged_pages.offset),
    sharedInfoFrame: getU64(v, o + F.shared_info_frame.offset),
    cpuTime: v.getBigUint64(o + F.cpu_time.offset, true),
    nrOnlineVcpus: v.getUint32(o + F.nr_online_vcpus.offset, true),
    maxVcpuId: v.getUint32(o + F.max_vcpu_id.offset, true),
  };
}

export function writeGetDomainInfo(v: DataView, domctlOff: number, i: GetDomainInfo): void {
  const F = XEN_DOMCTL_GETDOMAININFO.fields;
  const o = domctlOff + DOMCTL_U;
  zero(v, o, DOMCTL_U_BYTES);
  v.setUint16(o + F.domain.offset, i.domain, true);
  v.setUint32(o + F.flags.offset, i.flags, true);
  setU64(v, o + F.tot_pages.offset, i.totPages);
  setU64(v, o + F.max_pages.offset, i.maxPages);
  setU64(v, o + F.outstanding_pages.offset, i.outstandingPages);
  setU64(v, o + F.shr_pages.offset, i.shrPages);
  setU64(v, o + F.paged_pages.offset, i.pagedPages);
  setU64(v, o + F.shared_info_frame.offset, i.sharedInfoFrame);
  v.setBigUint64(o + F.cpu_time.offset, i.cpuTime, true);
  v.setUint32(o + F.nr_online_vcpus.offset, i.nrOnlineVcpus, true);
  v.setUint32(o + F.max_vcpu_id.offset, i.maxVcpuId, true);
}

/** A NUL-terminated char array (xen_extraversion_t, xen_capabilities_info_t) as a string. */
export function readCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.buffer, bytes.byteOffset, end < 0 ? bytes.length : end).toString('latin1');
}

/** Zeroes a structure in place (no allocation: encoders run once per page in batches). */
function zero(v: DataView, off: number, len: number): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) v.setUint32(off + i, 0, true);
  for (; i < len; i++) v.setUint8(off + i, 0);
}
