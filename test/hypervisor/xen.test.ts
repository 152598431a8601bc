/**
 * xen.ts, the TypeScript shared by both backends: how it splits work into hypercalls (batches
 * of at most 65,535 pages, multicalls for removal), that it reads every per-page error, and that
 * it undoes a half-done call. A recording transport sits between it and the simulated host and
 * decodes what was actually issued.
 */
import test from 'ava';
import { gfnRange, HypercallError, HYPERCALL_BUFFER_BYTES, REMOVE_MULTICALL_BATCH, XenHypervisor, type XenTransport } from '../../lib/hypervisor';
import { DomctlCmd, Hypercall, MAX_ADD_TO_PHYSMAP_BATCH, XenMem } from '../../lib/hypervisor/abi';
import { readAddToPhysmapBatch, readDomctlHeader, readMaxMem, readMemoryReservation } from '../../lib/hypervisor/layout';
import { SimStore } from '../../lib/hypervisor/sim/store';
import { SimTransport } from '../../lib/hypervisor/sim/transport';
import type { SimHost } from '../../lib/hypervisor/sim/host';

interface Issued {
  op: number;
  sub?: number;
  /** Pages in the call: add_to_physmap_batch size, reservation nr_extents, multicall entries. */
  pages?: number;
  /** Reservations: the extent order. */
  order?: number;
  /** domctl: the domain, and max_memkb for max_mem. */
  domain?: number;
  kib?: bigint;
}

/** Passes every hypercall to the sim and records what it was. */
class Recorder implements XenTransport {
  readonly backend = 'sim' as const;
  readonly issued: Issued[] = [];
  private readonly views = new Map<bigint, DataView>();
  constructor(readonly inner: SimTransport) {}
  hypercall(op: number, args: ReadonlyArray<number | bigint>): number {
    const rec: Issued = { op };
    if (op === Hypercall.memory_op) {
      rec.sub = Number(args[0]);
      const v = this.views.get(BigInt(args[1]));
      if (v && rec.sub === XenMem.add_to_physmap_batch) rec.pages = readAddToPhysmapBatch(v, 0).size;
      if (v && (rec.sub === XenMem.populate_physmap || rec.sub === XenMem.decrease_reservation)) {
        const r = readMemoryReservation(v, 0);
        rec.pages = r.nrExtents;
        rec.order = r.extentOrder;
      }
    }
    if (op === Hypercall.multicall) rec.pages = Number(args[1]);
    if (op === Hypercall.domctl) {
      const v = this.views.get(BigInt(args[0]));
      if (v) {
        const h = readDomctlHeader(v, 0);
        rec.sub = h.cmd;
        rec.domain = h.domain;
        if (h.cmd === DomctlCmd.max_mem) rec.kib = readMaxMem(v, 0);
      }
    }
    this.issued.push(rec);
    const forced = this.answer?.(rec);
    return forced ?? this.inner.hypercall(op, args);
  }
  /** Answers in Xen's place where it returns a number (a refusal the sim cannot produce). */
  answer?: (rec: Issued) => number | undefined;
  allocBuffer(bytes: number) {
    const b = this.inner.allocBuffer(bytes);
    this.views.set(b.address, b.view);
    return b;
  }
  freeBuffer(b: ReturnType<SimTransport['allocBuffer']>): void {
    this.views.delete(b.address);
    this.inner.freeBuffer(b);
  }
  mmapBatch(...a: Parameters<SimTransport['mmapBatch']>) {
    return this.inner.mmapBatch(...a);
  }
  exclusive<T>(fn: () => T): Promise<T> {
    return this.inner.exclusive(fn);
  }
  close(): void {
    this.inner.close();
  }
  host(): Promise<SimHost> {
    return this.inner.exclusive(() => this.inner.current());
  }
  take(): Issued[] {
    return this.issued.splice(0);
  }
}

async function setup(): Promise<{ hv: XenHypervisor; rec: Recorder; owner: number; borrower: number }> {
  const store = new SimStore(undefined, { arch: 'arm', explicitArch: true, xen: { major: 4, minor: 17, extraversion: '.0' }, domctlInterfaceVersion: 0x15 });
  const rec = new Recorder(new SimTransport(store));
  const hv = new XenHypervisor(rec);
  const h = await rec.host();
  const owner = h.createDomain({ maxPages: 300000 });
  const borrower = h.createDomain({ maxPages: 1000 });
  await hv.setTarget(borrower, owner);
  rec.take();
  return { hv, rec, owner, borrower };
}

const N = 2 * MAX_ADD_TO_PHYSMAP_BATCH + 3;
const batches = (issued: Issued[]): number[] => issued.filter((i) => i.sub === XenMem.add_to_physmap_batch).map((i) => i.pages!);

test('a region of 2 x 65,535 + 3 pages goes in three batches, none over the uint16 size', async (t) => {
  const { hv, rec, owner, borrower } = await setup();
  await hv.populatePhysmap(owner, gfnRange(0x100000, N));
  // 2 MiB-aligned: 256 extents of order 9 in one call, then the one page left as order 0.
  t.deepEqual(rec.take().filter((i) => i.sub === XenMem.populate_physmap).map((i) => [i.order, i.pages]), [[9, 256], [0, 1]]);
  t.deepEqual(hv.lastPopulate, { largeExtents: 256, smallExtents: 1, largeRefused: 0, hypercalls: 2 });
  const progress: Array<[number, number]> = [];
  await hv.addToPhysmapForeign({ borrower, owner, ownerGfns: gfnRange(0x100000, N), borrowerGfns: gfnRange(0x200000, N), onProgress: (d, n) => progress.push([d, n]) });
  t.deepEqual(batches(rec.take()), [65535, 65535, 3]);
  t.deepEqual(progress, [[65535, N], [131070, N], [N, N]]);
  const h = await rec.host();
  const b = h.domains.get(borrower)!;
  t.is(b.physmap.count(), N, 'every page mapped');
  t.is(h.entry(b, 0x200000 + N - 1).kind, 'foreign');
  await hv.close();
});

test('removal goes through multicalls of as many remove_from_physmap as fill a hypercall buffer', async (t) => {
  const { hv, rec, owner, borrower } = await setup();
  // One entry (64 bytes) and its argument (16) per page: 13,107 in 1 MiB.
  t.is(REMOVE_MULTICALL_BATCH, Math.floor(HYPERCALL_BUFFER_BYTES / 80));
  t.is(REMOVE_MULTICALL_BATCH, 13107);
  await hv.populatePhysmap(owner, gfnRange(0x100000, 30000));
  await hv.addToPhysmapForeign({ borrower, owner, ownerGfns: gfnRange(0x100000, 30000), borrowerGfns: gfnRange(0x200000, 30000) });
  rec.take();
  await hv.removeFromPhysmap(borrower, gfnRange(0x200000, 30000));
  const issued = rec.take();
  t.deepEqual(issued.map((i) => [i.op, i.pages]), [[Hypercall.multicall, 13107], [Hypercall.multicall, 13107], [Hypercall.multicall, 3786]]);
  t.is((await rec.host()).domains.get(borrower)!.physmap.count(), 0);
  await hv.close();
});

test('a refusal in the third batch: every per-page error surfaced, the first two batches undone', async (t) => {
  const { hv, rec, owner, borrower } = await setup();
  // The owner's region has holes at two pages of the third batch.
  const og = gfnRange(0x100000, N);
  await hv.populatePhysmap(owner, og);
  await hv.decreaseReservation(owner, [og[2 * MAX_ADD_TO_PHYSMAP_BATCH], og[N - 1]]);
  rec.take();
  const e = await t.throwsAsync(hv.addToPhysmapForeign({ borrower, owner, ownerGfns: og, borrowerGfns: gfnRange(0x200000, N) }), { instanceOf: HypercallError });
  t.is(e.code, 'EINVAL');
  t.is(e.call, 'memory_op(add_to_physmap_batch)');
  t.is(e.domid, borrower);
  t.deepEqual(e.pages?.map((p) => [p.index, p.gfn, p.foreignGfn, p.code]), [
    [2 * MAX_ADD_TO_PHYSMAP_BATCH, 0x200000 + 2 * MAX_ADD_TO_PHYSMAP_BATCH, og[2 * MAX_ADD_TO_PHYSMAP_BATCH], 'EINVAL'],
    [N - 1, 0x200000 + N - 1, og[N - 1], 'EINVAL'],
  ]);
  t.is(e.done, N - 2, 'pages mapped before the rollback');
  t.regex(e.message, /the 131071 pages mapped before were removed again/);
  const issued = rec.take();
  t.deepEqual(batches(issued), [65535, 65535, 3]);
  t.true(issued.some((i) => i.op === Hypercall.multicall), 'the rollback removed pages');
  const h = await rec.host();
  t.is(h.domains.get(borrower)!.physmap.count(), 0, 'nothing left mapped');
  await hv.close();
});

test('a global error (unknown borrower) stops at the first batch', async (t) => {
  const { hv, rec, owner } = await setup();
  await hv.populatePhysmap(owner, gfnRange(0x100000, 70000));
  rec.take();
  const e = await t.throwsAsync(hv.addToPhysmapForeign({ borrower: 4242, owner, ownerGfns: gfnRange(0x100000, 70000), borrowerGfns: gfnRange(0x200000, 70000) }), { instanceOf: HypercallError });
  t.is(e.code, 'ESRCH');
  t.regex(e.message, /d4242 does not exist/);
  t.deepEqual(batches(rec.take()), [65535]);
  await hv.close();
});

test('populate stopping short is undone and explained; decrease stops at the first gfn without a page', async (t) => {
  const { hv, rec, owner } = await setup();
  const h = await rec.host();
  h.setMaxPages(owner, 70000);
  const e = await t.throwsAsync(hv.populatePhysmap(owner, gfnRange(0x100000, 70001)), { instanceOf: HypercallError });
  t.is(e.code, 'ENOMEM');
  t.is(e.done, 70000);
  t.is(e.gfn, 0x100000 + 70000);
  t.regex(e.message, /needs 70001 pages .* room for 70000 .*: 1 pages .* short/);
  t.deepEqual([e.reason, e.pagesRequested, e.totPages, e.maxPages], ['max-pages', 70001, 0, 70000], 'the facts as fields');
  t.is(h.domains.get(owner)!.totPages, 0, 'freed again');
  const issued = rec.take();
  // 136 extents of 2 MiB, then 4 KiB pages up to the max (368 of 369), undone by 16,384.
  t.deepEqual(issued.filter((i) => i.sub === XenMem.populate_physmap).map((i) => [i.order, i.pages]), [[9, 136], [0, 369]]);
  t.deepEqual(issued.filter((i) => i.sub === XenMem.decrease_reservation).map((i) => i.pages), [16384, 16384, 16384, 16384, 70000 - 4 * 16384]);

  await hv.populatePhysmap(owner, [1, 2, 3]);
  const d = await t.throwsAsync(hv.decreaseReservation(owner, [1, 9, 2]), { instanceOf: HypercallError });
  t.is(d.code, 'ENOENT');
  t.is(d.gfn, 9);
  t.is(d.done, 1);
  t.is(h.domains.get(owner)!.totPages, 2);
  await hv.close();
});

test('mapForeign: one error per refused page, nothing left mapped', async (t) => {
  const { hv, owner } = await setup();
  await hv.populatePhysmap(owner, [10, 12]);
  const e = await t.throwsAsync(hv.mapForeign(owner, [10, 11, 12, 13]), { instanceOf: HypercallError });
  t.deepEqual(e.pages?.map((p) => [p.index, p.gfn, p.code]), [[1, 11, 'EINVAL'], [3, 13, 'EINVAL']]);
  const m = await hv.mapForeign(owner, [12, 10]);
  t.is(m.pages, 2);
  m.buffer.write('x', 4096);
  const again = await hv.mapForeign(owner, [10]);
  t.is(again.buffer.toString('latin1', 0, 1), 'x', 'page 1 of the first view is gfn 10');
  m.unmap();
  m.unmap();
  again.unmap();
  await hv.close();
});

test('setMaxMem: one max_mem domctl carrying KiB; Xen rounds to pages and caps at 2^32 - 1', async (t) => {
  const { hv, rec, owner } = await setup();
  const h = await rec.host();
  await hv.setMaxMem(owner, 280000);
  t.deepEqual(rec.take().map((i) => [i.op, i.sub, i.domain, i.kib]), [[Hypercall.domctl, DomctlCmd.max_mem, owner, 280000n]]);
  t.is(h.domains.get(owner)!.maxPages, 70000);
  t.is((await hv.domainInfo(owner))!.maxPages, 70000);
  await hv.setMaxMem(owner, 4099n);
  t.is(h.domains.get(owner)!.maxPages, 1024, 'KiB >> 2: rounded down to whole pages');
  await hv.setMaxMem(owner, 2n ** 64n - 1n);
  t.is(rec.take().filter((i) => i.sub === DomctlCmd.max_mem).pop()?.kib, 2n ** 64n - 1n, 'the full uint64_t goes to Xen');
  t.is((await hv.domainInfo(owner))!.maxPages, 0xffffffff, 'capped at max_pages\'s unsigned int');
  await hv.setMaxMem(owner, 0);
  t.is(h.domains.get(owner)!.maxPages, 0);
  await hv.close();
});

test('setMaxMem: bad values are EINVAL before any hypercall; ESRCH and EPERM explained', async (t) => {
  const { hv, rec, owner } = await setup();
  for (const bad of [-1, 1.5, 2 ** 53, Number.NaN, -1n, 2n ** 64n, '4096' as unknown as number]) {
    const e = await t.throwsAsync(hv.setMaxMem(owner, bad), { instanceOf: HypercallError });
    t.is(e.code, 'EINVAL', String(bad));
    t.is(e.call, 'domctl(max_mem)');
  }
  const d = await t.throwsAsync(hv.setMaxMem(0x7ff0, 4096), { instanceOf: HypercallError });
  t.is(d.code, 'EINVAL', 'DOMID_SELF is not a domain id here');
  t.deepEqual(rec.take(), [], 'no hypercall issued');

  const e = await t.throwsAsync(hv.setMaxMem(4242, 4096), { instanceOf: HypercallError });
  t.is(e.code, 'ESRCH');
  t.is(e.domid, 4242);
  t.is(e.message, 'max_mem(d4242, 4096 KiB): ESRCH: d4242 does not exist');

  // A domain that is not the control domain (or a FLASK denial): Xen's XSM says EPERM.
  rec.answer = (i) => (i.sub === DomctlCmd.max_mem ? -1 : undefined);
  const p = await t.throwsAsync(hv.setMaxMem(owner, 4096), { instanceOf: HypercallError });
  t.is(p.code, 'EPERM');
  t.regex(p.message, /to the control domain only/);
  await hv.close();
});

test('a max below what the domain holds: accepted, nothing taken away, populate refused with the real shortfall', async (t) => {
  const { hv, rec, owner } = await setup();
  const h = await rec.host();
  await hv.populatePhysmap(owner, gfnRange(0x100000, 10));
  await hv.setMaxMem(owner, 4 * 4);
  const info = (await hv.domainInfo(owner))!;
  t.deepEqual([info.totPages, info.maxPages, info.headroomPages], [10, 4, 0]);
  const e = await t.throwsAsync(hv.populatePhysmap(owner, [0x200000]), { instanceOf: HypercallError });
  t.is(e.code, 'ENOMEM');
  t.is(e.done, 0);
  t.regex(e.message, /max_pages 4: the max is below what it holds\): 7 pages \(0\.03 MiB\) short/);
  t.deepEqual([e.reason, e.pagesRequested, e.totPages, e.maxPages], ['max-pages', 1, 10, 4]);
  // Freeing still works, and the domain ratchets down under the max.
  await hv.decreaseReservation(owner, gfnRange(0x100000, 7));
  t.is(h.domains.get(owner)!.totPages, 3);
  await hv.populatePhysmap(owner, [0x200000]);
  t.is(h.domains.get(owner)!.totPages, 4, 'room again once under the max');
  await hv.close();
});

test('largeExtents: false populates an aligned region with 4 KiB extents only (the figures\' baseline)', async (t) => {
  const { hv, rec, owner } = await setup();
  await hv.populatePhysmap(owner, gfnRange(0x100000, 20000), undefined, { largeExtents: false });
  t.deepEqual(rec.take().filter((i) => i.sub === XenMem.populate_physmap).map((i) => [i.order, i.pages]), [[0, 16384], [0, 20000 - 16384]]);
  t.deepEqual(hv.lastPopulate, { largeExtents: 0, smallExtents: 20000, largeRefused: 0, hypercalls: 2 });
  await hv.close();
});
