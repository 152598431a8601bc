/**
 * Byte layouts of the Xen structures xen-sshm writes or reads, and their encoders and decoders.
 *
 * One table serves x86_64 and arm64: Xen's public headers give these structures the same layout
 * on both (guest handles are 8 bytes, 8-aligned; xen_ulong_t and xen_pfn_t are 64-bit), and
 * test/hypervisor/layout.test.ts proves it by compiling _Static_assert()s generated from these
 * tables against /usr/include/xen with gcc for x86_64 and aarch64-linux-gnu-gcc for arm64.
 * Both targets are little-endian. The encoders take their offsets from the tables, and the
 * decoders are binary-parser Parsers generated from them at load (structParser()), so the
 * compiler's check covers both.
 */
import { Parser } from 'binary-parser';

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

// Generic in the kind so the tables keep each field's literal kind: Decoded<> derives the
// decoders' value types from it.
const f = <K extends FieldKind>(offset: number, kind: K, c: string, bytes?: number): FieldLayout & { readonly kind: K } =>
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

/** sysctl.h: the sysctl header; the command's own structure starts at `u` (a 128-byte union). */
export const XEN_SYSCTL = {
  c: 'struct xen_sysctl',
  size: 136,
  fields: {
    cmd: f(0, 'u32', 'cmd'),
    interface_version: f(4, 'u32', 'interface_version'),
    u: f(8, 'chars', 'u', 128),
  },
} as const satisfies StructLayout;

/**
 * sysctl.h: getdomaininfolist, at XEN_SYSCTL.fields.u. `buffer` receives max_domains whole
 * struct xen_domctl_getdomaininfo (abi.ts GETDOMAININFO_SIZES); num_domains is written back.
 */
export const XEN_SYSCTL_GETDOMAININFOLIST = {
  c: 'struct xen_sysctl_getdomaininfolist',
  size: 24,
  fields: {
    first_domain: f(0, 'u16', 'first_domain'),
    max_domains: f(4, 'u32', 'max_domains'),
    buffer: f(8, 'handle', 'buffer'),
    num_domains: f(16, 'u32', 'num_domains'),
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

/** domctl.h: max_mem argument, at XEN_DOMCTL.fields.u (a uint64_aligned_t, in KiB). */
export const XEN_DOMCTL_MAX_MEM = {
  c: 'struct xen_domctl_max_mem',
  size: 8,
  fields: {
    max_memkb: f(0, 'u64', 'max_memkb'),
  },
} as const satisfies StructLayout;

/** event_channel.h: EVTCHNOP_alloc_unbound argument (port is written back by Xen). */
export const EVTCHN_ALLOC_UNBOUND = {
  c: 'struct evtchn_alloc_unbound',
  size: 8,
  fields: {
    dom: f(0, 'u16', 'dom'),
    remote_dom: f(2, 'u16', 'remote_dom'),
    port: f(4, 'u32', 'port'),
  },
} as const satisfies StructLayout;

/**
 * event_channel.h: EVTCHNOP_status argument. `u` is a union: the table reads its interdomain
 * member (dom, port); EVTCHN_STATUS_UNBOUND checks that u.unbound.dom sits where it is read too.
 */
export const EVTCHN_STATUS = {
  c: 'struct evtchn_status',
  size: 24,
  fields: {
    dom: f(0, 'u16', 'dom'),
    port: f(4, 'u32', 'port'),
    status: f(8, 'u32', 'status'),
    vcpu: f(12, 'u32', 'vcpu'),
    remote_dom: f(16, 'u16', 'u.interdomain.dom'),
    remote_port: f(20, 'u32', 'u.interdomain.port'),
  },
} as const satisfies StructLayout;

/** The union's other member that is read: u.unbound.dom, at the offset of remote_dom above. */
export const EVTCHN_STATUS_UNBOUND = {
  c: 'struct evtchn_status',
  size: 18,
  fields: {
    unbound_dom: f(16, 'u16', 'u.unbound.dom'),
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
  { layout: XEN_SYSCTL, wholeSize: true },
  { layout: XEN_SYSCTL_GETDOMAININFOLIST, wholeSize: true },
  { layout: XEN_DOMCTL_SET_TARGET, wholeSize: true },
  { layout: XEN_DOMCTL_MAX_MEM, wholeSize: true },
  { layout: EVTCHN_ALLOC_UNBOUND, wholeSize: true },
  { layout: EVTCHN_STATUS, wholeSize: true },
  { layout: EVTCHN_STATUS_UNBOUND, wholeSize: false },
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

// ---- decoders generated from the tables -------------------------------------------------------

/**
 * How a decoder gives a u64 field: 'number' (exact below 2^53, like getU64: frame numbers, page
 * counts), 'bigint', or 'long' (signed, like getI64: hypercall results are C longs). Guest
 * handles are always bigint (addresses).
 */
export type U64As = 'number' | 'bigint' | 'long';

/** Per u64 field of L (by table name), how to give it; 'number' when absent. */
export type U64Choice<L extends StructLayout> = { readonly [K in keyof L['fields']]?: U64As };

/** C member name to the decoder's key: `extent_start` -> `extentStart`. */
type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
const camel = (s: string): string => s.replace(/_(.)/g, (_m, c: string) => c.toUpperCase());

type FieldValue<F extends FieldLayout, A> = F['kind'] extends 'chars'
  ? Uint8Array
  : F['kind'] extends 'handle'
    ? bigint
    : F['kind'] extends 'u64'
      ? A extends 'bigint' ? bigint : number
      : number;

/** What the decoder generated from L returns: every field of the table, under its camelCase name. */
export type Decoded<L extends StructLayout, A extends U64Choice<L> = Record<never, never>> = {
  -readonly [K in keyof L['fields'] & string as Camel<K>]: FieldValue<L['fields'][K], K extends keyof A ? A[K] : 'number'>;
};

/**
 * A little-endian binary-parser Parser for one table: each field read at its table offset (seek
 * over padding and over members the table leaves out), 'chars' as a Uint8Array view of the
 * input, and a final seek so the parser spans exactly `layout.size` bytes. Keys are the camelCase
 * of the table's names (Decoded<L, A>). Throws on fields that overlap or overrun the size.
 */
export function structParser<L extends StructLayout>(layout: L, as: U64Choice<L> = {}): Parser {
  const choice = as as Readonly<Record<string, U64As | undefined>>;
  const p = new Parser().endianness('little');
  let at = 0;
  const fields = Object.entries(layout.fields).sort(([, a], [, b]) => a.offset - b.offset);
  for (const [name, fl] of fields) {
    if (fl.offset < at) throw new Error(`${layout.c}: ${name} at ${fl.offset} overlaps the field before it (ends at ${at})`);
    if (fl.offset > at) p.seek(fl.offset - at);
    const key = camel(name);
    const how = choice[name];
    if (how !== undefined && fl.kind !== 'u64') throw new Error(`${layout.c}: ${name} is ${fl.kind}, not u64: it takes no U64As`);
    switch (fl.kind) {
      case 'u8': p.uint8(key); break;
      case 'u16': p.uint16le(key); break;
      case 'u32': p.uint32le(key); break;
      case 'handle': p.uint64le(key); break;
      case 'u64':
        if (how === 'bigint') p.uint64le(key);
        // Number(bigint) rounds to nearest like getU64/getI64's float sum: the same values.
        else if (how === 'long') p.int64le(key, { formatter: Number });
        else p.uint64le(key, { formatter: Number });
        break;
      case 'chars': p.buffer(key, { length: fl.bytes! }); break;
    }
    at = fl.offset + (fl.kind === 'chars' ? fl.bytes! : FIELD_BYTES[fl.kind]);
  }
  if (at > layout.size) throw new Error(`${layout.c}: fields end at ${at}, past its size ${layout.size}`);
  // Tail padding: the parser consumes the whole structure, as sizeof() counts it.
  if (at < layout.size) p.seek(layout.size - at);
  return p;
}

/** The Parser behind each table's decoder (one per entry of LAYOUTS), for the tests. */
export const STRUCT_PARSERS = new Map<StructLayout, Parser>();

/**
 * The decoder of one table: its Parser, generated and compiled once here at module load, run on
 * the `layout.size` bytes at `off` of `v` (a RangeError when they are not all inside `v`, as a
 * DataView read would throw).
 */
function decoder<L extends StructLayout, const A extends U64Choice<L> = Record<never, never>>(
  layout: L,
  as?: A,
): (v: DataView, off: number) => Decoded<L, A> {
  const parser = structParser(layout, as);
  parser.compile();
  STRUCT_PARSERS.set(layout, parser);
  const size = layout.size;
  return (v, off) => {
    if (!(off >= 0 && off + size <= v.byteLength)) {
      throw new RangeError(`${layout.c}: ${size} bytes at offset ${off} do not fit in a view of ${v.byteLength}`);
    }
    return parser.parse(new Uint8Array(v.buffer, v.byteOffset + off, size)) as Decoded<L, A>;
  };
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

const decodeMemoryReservation = decoder(XEN_MEMORY_RESERVATION);

export function readMemoryReservation(v: DataView, off: number): MemoryReservation {
  return decodeMemoryReservation(v, off);
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

const decodeAddToPhysmapBatch = decoder(XEN_ADD_TO_PHYSMAP_BATCH);

export function readAddToPhysmapBatch(v: DataView, off: number): AddToPhysmapBatch {
  return decodeAddToPhysmapBatch(v, off);
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

// Generated like the others (STRUCT_PARSERS; decode.test.ts checks the plain read below against
// it) but not used by readRemoveFromPhysmap.
decoder(XEN_REMOVE_FROM_PHYSMAP);

/**
 * Plain reads at the table's offsets, not the generated parser: the sim decodes one of these
 * per page (a removal is multicalls of remove_from_physmap), and the parser's Uint8Array,
 * DataView and dictionary-mode object per call measured ~0.4 us more per page: removing 1 GiB
 * (262,144 pages) went from ~90-120 ms to ~220-345 ms in `npm run bench:hypervisor`.
 */
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

const decodeMulticallEntry = decoder(MULTICALL_ENTRY, {
  result: 'long', arg0: 'bigint', arg1: 'bigint', arg2: 'bigint', arg3: 'bigint', arg4: 'bigint', arg5: 'bigint',
});

export function readMulticallEntry(v: DataView, off: number): { op: number; result: number; args: bigint[] } {
  const e = decodeMulticallEntry(v, off);
  return { op: e.op, result: e.result, args: [e.arg0, e.arg1, e.arg2, e.arg3, e.arg4, e.arg5] };
}

/**
 * The multicall entry's result: a long written back by Xen, negative for -errno. Kept a plain
 * read: it is one field, read once per page on the remove path (xen.ts), where a whole-entry
 * parse would cost a DataView and an object per page for one number.
 */
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

const decodeDomctl = decoder(XEN_DOMCTL);

/** The header only: the command union (`u`) is decoded by the command's own reader. */
export function readDomctlHeader(v: DataView, off: number): DomctlHeader {
  const d = decodeDomctl(v, off);
  return { cmd: d.cmd, interfaceVersion: d.interfaceVersion, domain: d.domain };
}

/** Offset and size of the command union inside struct xen_domctl. */
export const DOMCTL_U = XEN_DOMCTL.fields.u.offset;
export const DOMCTL_U_BYTES = 128;

export function writeSetTarget(v: DataView, domctlOff: number, target: number): void {
  v.setUint16(domctlOff + DOMCTL_U + XEN_DOMCTL_SET_TARGET.fields.target.offset, target, true);
}

const decodeSetTarget = decoder(XEN_DOMCTL_SET_TARGET);

export function readSetTarget(v: DataView, domctlOff: number): number {
  return decodeSetTarget(v, domctlOff + DOMCTL_U).target;
}

/** max_memkb is a full uint64_t: bigint both ways (a number is written exactly if it is safe). */
export function writeMaxMem(v: DataView, domctlOff: number, maxKib: bigint | number): void {
  if (typeof maxKib === 'number' && !(Number.isSafeInteger(maxKib) && maxKib >= 0)) {
    throw new RangeError(`max_memkb ${maxKib} is not a non-negative safe integer`);
  }
  if (typeof maxKib === 'bigint' && BigInt.asUintN(64, maxKib) !== maxKib) {
    throw new RangeError(`max_memkb ${maxKib} does not fit its uint64_t`);
  }
  setU64(v, domctlOff + DOMCTL_U + XEN_DOMCTL_MAX_MEM.fields.max_memkb.offset, maxKib);
}

const decodeMaxMem = decoder(XEN_DOMCTL_MAX_MEM, { max_memkb: 'bigint' });

export function readMaxMem(v: DataView, domctlOff: number): bigint {
  return decodeMaxMem(v, domctlOff + DOMCTL_U).maxMemkb;
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

const decodeGetDomainInfo = decoder(XEN_DOMCTL_GETDOMAININFO, { cpu_time: 'bigint' });

export function readGetDomainInfo(v: DataView, domctlOff: number): GetDomainInfo {
  return decodeGetDomainInfo(v, domctlOff + DOMCTL_U);
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

export interface SysctlHeader {
  cmd: number;
  interfaceVersion: number;
}

/** Writes the sysctl header and zeroes the command union; the command's fields go at `u`. */
export function writeSysctlHeader(v: DataView, off: number, h: SysctlHeader): void {
  const F = XEN_SYSCTL.fields;
  zero(v, off, XEN_SYSCTL.size);
  v.setUint32(off + F.cmd.offset, h.cmd, true);
  v.setUint32(off + F.interface_version.offset, h.interfaceVersion, true);
}

const decodeSysctl = decoder(XEN_SYSCTL);

/** The header only: the command union (`u`) is decoded by the command's own reader. */
export function readSysctlHeader(v: DataView, off: number): SysctlHeader {
  const d = decodeSysctl(v, off);
  return { cmd: d.cmd, interfaceVersion: d.interfaceVersion };
}

export const SYSCTL_U = XEN_SYSCTL.fields.u.offset;

export interface GetDomainInfoList {
  firstDomain: number;
  maxDomains: number;
  /** Guest handle: address of the array of struct xen_domctl_getdomaininfo. */
  buffer: bigint;
  numDomains: number;
}

export function writeGetDomainInfoList(v: DataView, sysctlOff: number, l: GetDomainInfoList): void {
  const F = XEN_SYSCTL_GETDOMAININFOLIST.fields;
  const o = sysctlOff + SYSCTL_U;
  v.setUint16(o + F.first_domain.offset, l.firstDomain, true);
  v.setUint32(o + F.max_domains.offset, l.maxDomains, true);
  setU64(v, o + F.buffer.offset, l.buffer);
  v.setUint32(o + F.num_domains.offset, l.numDomains, true);
}

const decodeGetDomainInfoList = decoder(XEN_SYSCTL_GETDOMAININFOLIST);

export function readGetDomainInfoList(v: DataView, sysctlOff: number): GetDomainInfoList {
  return decodeGetDomainInfoList(v, sysctlOff + SYSCTL_U);
}

/**
 * One entry of getdomaininfolist's buffer, at `off` (entries are GETDOMAININFO_SIZES apart).
 * Plain reads of the fields a listing uses: one per domain on the host, where the generated
 * parser would cost a Uint8Array and an object each (the same reason as readRemoveFromPhysmap).
 */
export function readDomainInfoEntry(v: DataView, off: number): { domain: number; flags: number; totPages: number; maxPages: number; nrOnlineVcpus: number } {
  const F = XEN_DOMCTL_GETDOMAININFO.fields;
  return {
    domain: v.getUint16(off + F.domain.offset, true),
    flags: v.getUint32(off + F.flags.offset, true),
    totPages: getU64(v, off + F.tot_pages.offset),
    maxPages: getU64(v, off + F.max_pages.offset),
    nrOnlineVcpus: v.getUint32(off + F.nr_online_vcpus.offset, true),
  };
}

/**
 * Writes the fields of one getdomaininfo entry (the sim's getdomaininfo()); `size` bytes from
 * `off` are zeroed first, as Xen's memset does (common/domctl.c:72 at RELEASE-4.17.0).
 */
export function writeDomainInfoEntry(bytes: Uint8Array, v: DataView, off: number, size: number, i: { domain: number; flags: number; totPages: number; maxPages: number; nrOnlineVcpus: number; maxVcpuId: number }): void {
  const F = XEN_DOMCTL_GETDOMAININFO.fields;
  bytes.fill(0, off, off + size);
  v.setUint16(off + F.domain.offset, i.domain, true);
  v.setUint32(off + F.flags.offset, i.flags, true);
  setU64(v, off + F.tot_pages.offset, i.totPages);
  setU64(v, off + F.max_pages.offset, i.maxPages);
  v.setUint32(off + F.nr_online_vcpus.offset, i.nrOnlineVcpus, true);
  v.setUint32(off + F.max_vcpu_id.offset, i.maxVcpuId, true);
}

export interface EvtchnAllocUnbound {
  dom: number;
  remoteDom: number;
  port: number;
}

export function writeEvtchnAllocUnbound(v: DataView, off: number, a: EvtchnAllocUnbound): void {
  const F = EVTCHN_ALLOC_UNBOUND.fields;
  zero(v, off, EVTCHN_ALLOC_UNBOUND.size);
  v.setUint16(off + F.dom.offset, a.dom, true);
  v.setUint16(off + F.remote_dom.offset, a.remoteDom, true);
  v.setUint32(off + F.port.offset, a.port, true);
}

const decodeEvtchnAllocUnbound = decoder(EVTCHN_ALLOC_UNBOUND);

export function readEvtchnAllocUnbound(v: DataView, off: number): EvtchnAllocUnbound {
  return decodeEvtchnAllocUnbound(v, off);
}

export interface EvtchnStatusStruct {
  dom: number;
  port: number;
  status: number;
  vcpu: number;
  /** u.interdomain.dom, which is also u.unbound.dom. */
  remoteDom: number;
  /** u.interdomain.port. */
  remotePort: number;
}

export function writeEvtchnStatus(v: DataView, off: number, s: EvtchnStatusStruct): void {
  const F = EVTCHN_STATUS.fields;
  zero(v, off, EVTCHN_STATUS.size);
  v.setUint16(off + F.dom.offset, s.dom, true);
  v.setUint32(off + F.port.offset, s.port, true);
  v.setUint32(off + F.status.offset, s.status, true);
  v.setUint32(off + F.vcpu.offset, s.vcpu, true);
  v.setUint16(off + F.remote_dom.offset, s.remoteDom, true);
  v.setUint32(off + F.remote_port.offset, s.remotePort, true);
}

const decodeEvtchnStatus = decoder(EVTCHN_STATUS);
decoder(EVTCHN_STATUS_UNBOUND);

export function readEvtchnStatus(v: DataView, off: number): EvtchnStatusStruct {
  return decodeEvtchnStatus(v, off);
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
