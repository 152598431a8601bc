/**
 * Decoders: the binary-parser Parsers that layout.ts generates from its compiler-checked tables.
 * Each parser spans exactly its structure; random bytes decode to what plain DataView reads at
 * the table offsets give; every structure round-trips through its write* and read* with random
 * field values, at random offsets inside a view that does not start at its buffer's start.
 */
import test, { type ExecutionContext } from 'ava';
import { Parser } from 'binary-parser';
import {
  LAYOUTS,
  MULTICALL_ENTRY,
  STRUCT_PARSERS,
  XEN_ADD_TO_PHYSMAP_BATCH,
  XEN_DOMCTL,
  XEN_DOMCTL_GETDOMAININFO,
  XEN_DOMCTL_MAX_MEM,
  XEN_MEMORY_RESERVATION,
  XEN_REMOVE_FROM_PHYSMAP,
  readAddToPhysmapBatch,
  readDomctlHeader,
  readGetDomainInfo,
  readMaxMem,
  readMemoryReservation,
  readMulticallEntry,
  readMulticallResult,
  readRemoveFromPhysmap,
  readSetTarget,
  structParser,
  writeAddToPhysmapBatch,
  writeDomctlHeader,
  writeGetDomainInfo,
  writeMaxMem,
  writeMemoryReservation,
  writeMulticallEntry,
  writeMulticallResult,
  writeRemoveFromPhysmap,
  writeSetTarget,
  type FieldLayout,
  type StructLayout,
} from '../../lib/hypervisor/layout';
import { seededRandom } from '../helpers/prng';

const ROUNDS = 300;
const SEED = Number(process.env.DECODE_SEED ?? Math.floor(Math.random() * 2 ** 31));

const prng = seededRandom;

class Rand {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  u16(): number {
    return this.int(0x10000);
  }
  u32(): number {
    return this.int(2 ** 32);
  }
  /** A u64 that a number holds exactly (frame numbers, page counts). */
  u53(): number {
    return this.int(2 ** 21) * 2 ** 32 + this.u32();
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const msg = (what: string, round: number): string => `${what}, round ${round}, DECODE_SEED=${SEED}`;

/**
 * A view of `span` bytes at a random offset inside a random-filled view that itself starts 8
 * bytes into its ArrayBuffer: decoders must honour both byteOffsets.
 */
function place(r: Rand, span: number): { v: DataView; off: number; before: Uint8Array } {
  const pad = 24;
  const buf = new ArrayBuffer(8 + span + 2 * pad);
  new Uint8Array(buf).set(r.bytes(buf.byteLength));
  const v = new DataView(buf, 8, span + 2 * pad);
  const before = new Uint8Array(buf).slice();
  return { v, off: r.int(pad + 1), before };
}

/** The writer touched only [off, off + span) of the view. */
function noSpill(t: ExecutionContext, p: { v: DataView; off: number; before: Uint8Array }, span: number, what: string): void {
  const now = new Uint8Array(p.v.buffer);
  const lo = p.v.byteOffset + p.off;
  const outside = (a: Uint8Array): number[] => [...a.subarray(0, lo), ...a.subarray(lo + span)];
  t.deepEqual(outside(now), outside(p.before), `${what} wrote outside its ${span} bytes`);
}

const bytesAt = (v: DataView, off: number, n: number): Uint8Array => new Uint8Array(v.buffer, v.byteOffset + off, n);
const parserOf = (layout: StructLayout): Parser => {
  const p = STRUCT_PARSERS.get(layout);
  if (!p) throw new Error(`no generated parser for ${layout.c}`);
  return p;
};
const camel = (s: string): string => s.replace(/_(.)/g, (_m, c: string) => c.toUpperCase());

// ---- the parsers span their structures ---------------------------------------------------------

for (const { layout } of LAYOUTS) {
  test(`${layout.c}: the generated parser consumes exactly ${layout.size} bytes`, (t) => {
    const p = parserOf(layout);
    t.is(p.sizeOf(), layout.size, 'static size');
    // Measured, not computed: the offset after parsing the structure nested in another parser.
    const outer = new Parser().nest('s', { type: p }).saveOffset('end');
    const r = new Rand(SEED);
    const out = outer.parse(r.bytes(layout.size + 16)) as { s: Record<string, unknown>; end: number };
    t.is(out.end, layout.size, 'offset after the structure');
    t.deepEqual(Object.keys(out.s).sort(), Object.keys(layout.fields).map(camel).sort(), 'one key per table field');
  });
}

// ---- random bytes: the parsers read what DataView reads at the table offsets --------------------

/** How each u64 decodes where it is not a plain number (the readers' API). */
const U64_AS: Readonly<Record<string, Readonly<Record<string, 'bigint' | 'long'>>>> = {
  [MULTICALL_ENTRY.c]: { result: 'long', arg0: 'bigint', arg1: 'bigint', arg2: 'bigint', arg3: 'bigint', arg4: 'bigint', arg5: 'bigint' },
  [XEN_DOMCTL_GETDOMAININFO.c]: { cpu_time: 'bigint' },
  [XEN_DOMCTL_MAX_MEM.c]: { max_memkb: 'bigint' },
};

/** The oracle: one field read with DataView, independently of binary-parser. */
function oracle(v: DataView, off: number, layout: StructLayout, name: string, f: FieldLayout): unknown {
  const o = off + f.offset;
  switch (f.kind) {
    case 'u8': return v.getUint8(o);
    case 'u16': return v.getUint16(o, true);
    case 'u32': return v.getUint32(o, true);
    case 'handle': return v.getBigUint64(o, true);
    case 'u64': {
      const as = U64_AS[layout.c]?.[name];
      if (as === 'bigint') return v.getBigUint64(o, true);
      if (as === 'long') return Number(v.getBigInt64(o, true));
      return Number(v.getBigUint64(o, true));
    }
    case 'chars': return Buffer.from(bytesAt(v, o, f.bytes!));
  }
}

test('random bytes: every generated parser reads each field at its table offset, little-endian', (t) => {
  const r = new Rand(SEED ^ 0x5eed);
  let fields = 0;
  for (const { layout } of LAYOUTS) {
    for (let round = 0; round < 50; round++) {
      const { v, off } = place(r, layout.size);
      const out = parserOf(layout).parse(bytesAt(v, off, layout.size)) as Record<string, unknown>;
      for (const [name, f] of Object.entries(layout.fields)) {
        const got = out[camel(name)];
        t.deepEqual(got instanceof Uint8Array ? Buffer.from(got) : got, oracle(v, off, layout, name, f), msg(`${layout.c}.${name}`, round));
        fields++;
      }
    }
  }
  const perRound = LAYOUTS.reduce((n, { layout }) => n + Object.keys(layout.fields).length, 0);
  t.is(fields, 50 * perRound, 'every field of every table, 50 times');
});

// ---- round trips through write* and read* ---------------------------------------------------------

test('xen_memory_reservation round-trips with random values', (t) => {
  const r = new Rand(SEED + 1);
  const L = XEN_MEMORY_RESERVATION;
  for (let round = 0; round < ROUNDS; round++) {
    const x = { extentStart: r.u64(), nrExtents: r.u53(), extentOrder: r.u32(), memFlags: r.u32(), domid: r.u16() };
    const p = place(r, L.size);
    writeMemoryReservation(p.v, p.off, x);
    noSpill(t, p, L.size, 'writeMemoryReservation');
    t.deepEqual(readMemoryReservation(p.v, p.off), x, msg('readMemoryReservation', round));
  }
});

test('xen_add_to_physmap_batch round-trips with random values', (t) => {
  const r = new Rand(SEED + 2);
  const L = XEN_ADD_TO_PHYSMAP_BATCH;
  for (let round = 0; round < ROUNDS; round++) {
    const x = { domid: r.u16(), space: r.u16(), size: r.u16(), foreignDomid: r.u16(), idxs: r.u64(), gpfns: r.u64(), errs: r.u64() };
    const p = place(r, L.size);
    writeAddToPhysmapBatch(p.v, p.off, x);
    noSpill(t, p, L.size, 'writeAddToPhysmapBatch');
    t.deepEqual(readAddToPhysmapBatch(p.v, p.off), x, msg('readAddToPhysmapBatch', round));
  }
});

test('xen_remove_from_physmap round-trips; its plain reader agrees with the generated parser', (t) => {
  const r = new Rand(SEED + 3);
  const L = XEN_REMOVE_FROM_PHYSMAP;
  for (let round = 0; round < ROUNDS; round++) {
    const x = { domid: r.u16(), gpfn: r.u53() };
    const p = place(r, L.size);
    writeRemoveFromPhysmap(p.v, p.off, x);
    noSpill(t, p, L.size, 'writeRemoveFromPhysmap');
    const got = readRemoveFromPhysmap(p.v, p.off);
    t.deepEqual(got, x, msg('readRemoveFromPhysmap', round));
    // readRemoveFromPhysmap stays hand-written for speed (layout.ts): the table's parser checks it.
    t.deepEqual(parserOf(L).parse(bytesAt(p.v, p.off, L.size)), got, msg('parser vs readRemoveFromPhysmap', round));
  }
});

test('multicall_entry round-trips: op, 0-6 arguments as numbers or bigints, the signed result', (t) => {
  const r = new Rand(SEED + 4);
  const L = MULTICALL_ENTRY;
  for (let round = 0; round < ROUNDS; round++) {
    const args: Array<number | bigint> = [];
    for (let n = r.int(7), i = 0; i < n; i++) args.push(r.int(2) ? r.u64() : r.u53());
    const op = r.u53();
    // A long: -errno, a count, or anything a number holds exactly.
    const result = [-(1 + r.int(200)), r.u32(), r.u53() - 2 ** 52][r.int(3)];
    const p = place(r, L.size);
    writeMulticallEntry(p.v, p.off, { op, args });
    writeMulticallResult(p.v, p.off, result);
    noSpill(t, p, L.size, 'writeMulticallEntry');
    const want = [0, 1, 2, 3, 4, 5].map((i) => (i < args.length ? BigInt(args[i]) : 0n));
    t.deepEqual(readMulticallEntry(p.v, p.off), { op, result, args: want }, msg('readMulticallEntry', round));
    t.is(readMulticallResult(p.v, p.off), result, msg('readMulticallResult', round));
  }
});

test('xen_domctl max_mem round-trips any uint64_t, as a bigint or a safe-integer number', (t) => {
  const r = new Rand(SEED + 6);
  const L = XEN_DOMCTL;
  for (let round = 0; round < ROUNDS; round++) {
    const h = { cmd: r.u32(), interfaceVersion: r.u32(), domain: r.u16() };
    const kib: bigint | number = r.int(2) ? r.u64() : r.u53();
    const p = place(r, L.size);
    writeDomctlHeader(p.v, p.off, h);
    writeMaxMem(p.v, p.off, kib);
    noSpill(t, p, L.size, 'writeDomctlHeader + writeMaxMem');
    t.is(readMaxMem(p.v, p.off), BigInt(kib), msg('readMaxMem', round));
    t.deepEqual(readDomctlHeader(p.v, p.off), h, msg('readDomctlHeader after max_mem', round));
    // The rest of the command union stays zero.
    t.true(bytesAt(p.v, p.off + L.fields.u.offset + XEN_DOMCTL_MAX_MEM.size, L.fields.u.bytes! - XEN_DOMCTL_MAX_MEM.size).every((b) => b === 0), msg('union tail', round));
  }
});

test('xen_domctl header, set_target and getdomaininfo round-trip with random values', (t) => {
  const r = new Rand(SEED + 5);
  const L = XEN_DOMCTL;
  for (let round = 0; round < ROUNDS; round++) {
    const h = { cmd: r.u32(), interfaceVersion: r.u32(), domain: r.u16() };
    let p = place(r, L.size);
    writeDomctlHeader(p.v, p.off, h);
    const target = r.u16();
    writeSetTarget(p.v, p.off, target);
    noSpill(t, p, L.size, 'writeDomctlHeader + writeSetTarget');
    t.deepEqual(readDomctlHeader(p.v, p.off), h, msg('readDomctlHeader', round));
    t.is(readSetTarget(p.v, p.off), target, msg('readSetTarget', round));

    const info = {
      domain: r.u16(), flags: r.u32(), totPages: r.u53(), maxPages: r.u53(), outstandingPages: r.u53(), shrPages: r.u53(),
      pagedPages: r.u53(), sharedInfoFrame: r.u53(), cpuTime: r.u64(), nrOnlineVcpus: r.u32(), maxVcpuId: r.u32(),
    };
    p = place(r, L.size);
    writeDomctlHeader(p.v, p.off, h);
    writeGetDomainInfo(p.v, p.off, info);
    noSpill(t, p, L.size, 'writeDomctlHeader + writeGetDomainInfo');
    t.deepEqual(readGetDomainInfo(p.v, p.off), info, msg('readGetDomainInfo', round));
    t.deepEqual(readDomctlHeader(p.v, p.off), h, msg('readDomctlHeader after getdomaininfo', round));
  }
});

// ---- edges ----------------------------------------------------------------------------------------

test('a structure that does not fit in the view is a RangeError, as a DataView read is', (t) => {
  // The view is a window on a larger buffer: the decoder must respect the view's end, not the buffer's.
  const buf = new ArrayBuffer(256);
  t.throws(() => readMemoryReservation(new DataView(buf, 0, XEN_MEMORY_RESERVATION.size - 1), 0), { instanceOf: RangeError });
  t.throws(() => readAddToPhysmapBatch(new DataView(buf, 8, 40), 9), { instanceOf: RangeError });
  t.throws(() => readGetDomainInfo(new DataView(buf, 0, XEN_DOMCTL.fields.u.offset + 71), 0), { instanceOf: RangeError });
  t.throws(() => readDomctlHeader(new DataView(buf), -1), { instanceOf: RangeError });
  t.notThrows(() => readAddToPhysmapBatch(new DataView(buf, 8, 40), 8));
});

test('structParser refuses tables whose fields overlap or overrun, and U64As on a non-u64 field', (t) => {
  const base = XEN_REMOVE_FROM_PHYSMAP;
  const overlap: StructLayout = { ...base, fields: { ...base.fields, gpfn: { ...base.fields.gpfn, offset: 1 } } };
  t.throws(() => structParser(overlap), { message: /gpfn at 1 overlaps/ });
  const overrun: StructLayout = { ...base, size: 12 };
  t.throws(() => structParser(overrun), { message: /end at 16, past its size 12/ });
  t.throws(() => structParser(base, { domid: 'bigint' }), { message: /domid is u16, not u64/ });
  // The same table with a field moved decodes a different place: offsets come from the table.
  const moved: StructLayout = { ...base, fields: { ...base.fields, domid: { ...base.fields.domid, offset: 2 } } };
  const bytes = new Uint8Array(base.size);
  new DataView(bytes.buffer).setUint16(2, 0xbeef, true);
  t.is((structParser(moved).parse(bytes) as { domid: number }).domid, 0xbeef);
  t.is((parserOf(base).parse(bytes) as { domid: number }).domid, 0);
});
