/**
 * The sim's frames beyond the contract: 2 MiB extents from a heap that can run out of them (the
 * 4 KiB fallback), decrease by extents at raw level, and views without native code (aliasing,
 * frames freed under a view, bytes merged between processes, nothing written that nobody wrote).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gfnRange, HypercallError, SimHypervisor } from '../../lib/hypervisor';
import { Hypercall, XenMem } from '../../lib/hypervisor/abi';
import { writeMemoryReservation } from '../../lib/hypervisor/layout';
import { SimStore } from '../../lib/hypervisor/sim/store';
import { SimTransport } from '../../lib/hypervisor/sim/transport';
import { PAGE_SIZE } from '../../lib/vocabulary';

const run = promisify(execFile);
const LIB = path.join(__dirname, '..', '..', 'lib', 'hypervisor');
const tmp = (t: { teardown(fn: () => void): void }): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-frames-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};

/** One raw reservation call: Xen's count. */
function reservation(x: SimTransport, op: number, domid: number, starts: number[], order: number): number {
  const b = x.allocBuffer(32 + 8 * starts.length);
  starts.forEach((g, i) => b.view.setBigUint64(32 + 8 * i, BigInt(g), true));
  writeMemoryReservation(b.view, 0, { extentStart: b.address + 32n, nrExtents: starts.length, extentOrder: order, memFlags: 0, domid });
  const rc = x.hypercall(Hypercall.memory_op, [op, b.address]);
  x.freeBuffer(b);
  return rc;
}

test('a fragmented heap: the 2 MiB extent Xen cannot supply falls back to 4 KiB pages', async (t) => {
  // 4 blocks of 2 MiB in all: the first three get fragmented, the fourth is whole.
  const hv = new SimHypervisor({ hostPages: 2048 });
  const a = await hv.createDomain({ maxPages: 4096 });
  const b = await hv.createDomain({ maxPages: 4096 });
  // Every other gfn: no 2 MiB run, so 4 KiB extents, frames 0..1535.
  const scattered = Float64Array.from({ length: 1536 }, (_v, i) => 0x10000 + 2 * i);
  await hv.populatePhysmap(a, scattered);
  t.deepEqual(hv.lastPopulate, { largeExtents: 0, smallExtents: 1536, largeRefused: 0, hypercalls: 1 });
  await hv.decreaseReservation(a, scattered.filter((_g, i) => i % 2 === 0));
  // b asks for two aligned 2 MiB extents: Xen has one whole block left, then only single frames.
  await hv.populatePhysmap(b, gfnRange(0x40000, 1024));
  t.deepEqual(hv.lastPopulate, { largeExtents: 1, smallExtents: 512, largeRefused: 1, hypercalls: 2 });
  t.is((await hv.domainInfo(b))!.totPages, 1024);
  const first = await hv.physmapEntry(b, 0x40000);
  const last = await hv.physmapEntry(b, 0x401ff);
  t.true(first.kind === 'ram' && last.kind === 'ram' && first.mfn === 1536 && last.mfn === 2047, 'the extent is one aligned run of frames');
  // 256 single frames are left: populate of 257 stops there, says why, and undoes.
  const e = await t.throwsAsync(hv.populatePhysmap(b, gfnRange(0x50001, 257)), { instanceOf: HypercallError });
  t.deepEqual([e.code, e.reason, e.done], ['ENOMEM', 'host-memory', 256]);
  t.is((await hv.domainInfo(b))!.totPages, 1024);
  await hv.close();
});

test('raw populate and decrease by extents: a whole extent over max_pages is refused; decrease stops inside one', async (t) => {
  const store = new SimStore(undefined, { arch: 'arm', explicitArch: true, xen: { major: 4, minor: 17, extraversion: '.0' }, domctlInterfaceVersion: 0x15 });
  const x = new SimTransport(store);
  await x.exclusive(() => {
    const h = x.current();
    const d = h.createDomain({ domid: 1, maxPages: 1000 });
    t.is(reservation(x, XenMem.populate_physmap, d, [0x1000, 0x1200], 9), 1, 'the second 512 would pass max_pages 1000: not even in part');
    t.is(h.domains.get(d)!.totPages, 512);
    t.is(reservation(x, XenMem.populate_physmap, d, [0x2000], 5), 0, 'orders other than 0 and 9 are not simulated: nothing done');
    t.is(reservation(x, XenMem.populate_physmap, d, [0x2000], 19), 0, 'past max_order() of dom0 (18): nothing done');
    // decrease_reservation by an extent with a hole: the pages before the hole go, the extent is not counted.
    t.is(reservation(x, XenMem.decrease_reservation, d, [0x1000 + 100], 0), 1);
    t.is(reservation(x, XenMem.decrease_reservation, d, [0x1000], 9), 0);
    t.is(h.domains.get(d)!.totPages, 512 - 101, 'pages 0..99 freed, then page 100 stopped it');
    t.is(reservation(x, XenMem.decrease_reservation, d, [0x1000 + 101], 0), 1);
  });
  store.close();
});

test('x86: a 2 MiB extent over a foreign entry is refused whole', async (t) => {
  const hv = new SimHypervisor({ arch: 'x86', release: '4.19' });
  const owner = await hv.createDomain({ maxPages: 2048 });
  const b = await hv.createDomain({ maxPages: 2048 });
  await hv.populatePhysmap(owner, [0x10]);
  await hv.setTarget(b, owner);
  await hv.addToPhysmapForeign({ borrower: b, owner, ownerGfns: [0x10], borrowerGfns: [0x40100] });
  const e = await t.throwsAsync(hv.populatePhysmap(b, gfnRange(0x40000, 512)), { instanceOf: HypercallError });
  t.is(e.code, 'ENOMEM');
  t.is(e.done, 256, 'the 4 KiB fallback got as far as the foreign entry');
  t.is((await hv.physmapEntry(b, 0x40100)).kind, 'foreign', 'the foreign page is kept');
  t.is((await hv.domainInfo(b))!.totPages, 0, 'undone');
  await hv.close();
});

test('views: a run of a live view aliases it; a partial overlap is refused; a frame freed under a view reads zero there and is not written back', async (t) => {
  const hv = new SimHypervisor();
  const d = await hv.createDomain({ maxPages: 64 });
  await hv.populatePhysmap(d, gfnRange(0x100, 8));
  const big = await hv.guestMap(d, gfnRange(0x100, 8));
  big.buffer.write('page three', 3 * PAGE_SIZE);
  const run = await hv.guestMap(d, gfnRange(0x103, 2));
  t.is(run.buffer.toString('latin1', 0, 10), 'page three', 'a run of the live view: the same memory');
  run.buffer.write('page four', PAGE_SIZE);
  t.is(big.buffer.toString('latin1', 4 * PAGE_SIZE, 4 * PAGE_SIZE + 9), 'page four');
  const out = await t.throwsAsync(hv.guestMap(d, [0x104, 0x103]), { instanceOf: HypercallError });
  t.is(out.code, 'EBUSY', 'the same frames in another order cannot alias');
  run.unmap();
  // Freed while mapped: the view reads zeros, and what it writes later goes nowhere.
  await hv.decreaseReservation(d, [0x103]);
  t.is(big.buffer.toString('latin1', 3 * PAGE_SIZE, 3 * PAGE_SIZE + 10), '\0'.repeat(10));
  await hv.populatePhysmap(d, [0x200]);
  big.buffer.write('stale write', 3 * PAGE_SIZE);
  big.unmap();
  const fresh = await hv.guestMap(d, [0x200]);
  // Xen does not scrub a live domain's freed page: the frame comes back with what was written
  // back before it was freed ('page three', by `run`), not with the stale view's later write.
  t.is(fresh.buffer.toString('latin1', 0, 11), 'page three\0', 'the frame given out again keeps its bytes; the stale write is lost');
  fresh.unmap();
  const kept = await hv.guestMap(d, [0x104]);
  t.is(kept.buffer.toString('latin1', 0, 9), 'page four', 'the other pages were written back');
  kept.unmap();
  await hv.close();
});

test('a folder: untouched frames cost no disk; two processes writing different bytes of one page keep both; freed bytes stay unless scrubbed', async (t) => {
  const dir = tmp(t);
  const hv = new SimHypervisor({ dir });
  const d = await hv.createDomain({ maxPages: 1 << 17 });
  await hv.populatePhysmap(d, gfnRange(0x100000, 65536));
  const frames = path.join(dir, 'frames');
  t.is(fs.statSync(frames).size, 0, '256 MiB populated, nothing written: the frames file is empty');
  const view = await hv.guestMap(d, gfnRange(0x100000 + 65535, 1));
  view.buffer.write('parent', 0);
  // A child writes other bytes of the same page while the parent's view is live.
  const child = `
    const { SimHypervisor } = require(${JSON.stringify(LIB)});
    (async () => {
      const hv = new SimHypervisor({ dir: ${JSON.stringify(dir)} });
      const v = await hv.guestMap(${d}, [${0x100000 + 65535}]);
      v.buffer.write('child', 100);
      v.unmap();
      await hv.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  await run(process.execPath, ['-e', child]);
  view.unmap();
  const both = await hv.guestMap(d, [0x100000 + 65535]);
  t.is(both.buffer.toString('latin1', 0, 6), 'parent');
  t.is(both.buffer.toString('latin1', 100, 105), 'child');
  both.unmap();
  t.is(fs.statSync(frames).size, 65536 * PAGE_SIZE, 'only the written frame\'s page reached the file');
  t.true(fs.statSync(frames).blocks * 512 <= 64 * 1024, `sparse: ${fs.statSync(frames).blocks} blocks`);
  const onDisk = (): Buffer => {
    const page = Buffer.alloc(PAGE_SIZE);
    const fd = fs.openSync(frames, 'r');
    fs.readSync(fd, page, 0, PAGE_SIZE, 65535 * PAGE_SIZE);
    fs.closeSync(fd);
    return page;
  };
  // Freed by the live domain: the bytes stay (Xen scrubs only dying domains' pages)...
  await hv.decreaseReservation(d, gfnRange(0x100000 + 65535, 1));
  t.is(onDisk().toString('latin1', 0, 6), 'parent');
  // ... unless scrubbed first; a dying domain's frames are scrubbed by Xen itself.
  await hv.populatePhysmap(d, [0x300000]);
  t.is((await hv.physmapEntry(d, 0x300000) as { mfn: number }).mfn, 65535, 'the same frame again');
  await hv.decreaseReservation(d, [0x300000], undefined, { scrub: true });
  t.true(onDisk().every((b) => b === 0), 'zeroed by scrub');
  const e = await hv.createDomain({ maxPages: 16 });
  await hv.populatePhysmap(e, [0x10]);
  const w = await hv.guestMap(e, [0x10]);
  w.buffer.write('dies with its domain');
  w.unmap();
  const mfn = (await hv.physmapEntry(e, 0x10) as { mfn: number }).mfn;
  await hv.destroyDomain(e);
  const page = Buffer.alloc(PAGE_SIZE);
  const fd = fs.openSync(frames, 'r');
  fs.readSync(fd, page, 0, PAGE_SIZE, mfn * PAGE_SIZE);
  fs.closeSync(fd);
  t.true(page.every((b) => b === 0), 'a dying domain\'s frame is scrubbed');
  await hv.close();
});

test('a view never unmapped is written back when its Hypervisor closes', async (t) => {
  const dir = tmp(t);
  const hv = new SimHypervisor({ dir });
  const d = await hv.createDomain({ maxPages: 16 });
  await hv.populatePhysmap(d, [0x10]);
  const v = await hv.guestMap(d, [0x10]);
  v.buffer.write('kept at close');
  await hv.close();
  const again = new SimHypervisor({ dir });
  const w = await again.guestMap(d, [0x10]);
  t.is(w.buffer.toString('latin1', 0, 13), 'kept at close');
  w.unmap();
  await again.close();
});
