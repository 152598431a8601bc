/**
 * The simulated host beyond the contract: Xen's rules at the hypercall level (raw structures
 * through the sim transport, bypassing xen.ts's own checks), page references and zombie
 * domains, frames given out again, domctl version probing, and a host kept in a folder shared by
 * several processes, whose frames alias across them.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gfnRange, HypercallError, SimHypervisor } from '../../lib/hypervisor';
import { DomctlCmd, Hypercall, XenMapSpace, XenMem } from '../../lib/hypervisor/abi';
import {
  MULTICALL_ENTRY,
  readGetDomainInfo,
  readMulticallResult,
  writeAddToPhysmapBatch,
  writeDomctlHeader,
  writeMaxMem,
  writeMulticallEntry,
  XEN_ADD_TO_PHYSMAP_BATCH,
} from '../../lib/hypervisor/layout';
import { SimStore } from '../../lib/hypervisor/sim/store';
import { SimTransport } from '../../lib/hypervisor/sim/transport';
import type { XenArch } from '../../lib/hypervisor';

const run = promisify(execFile);
const E = os.constants.errno;
const REPO = path.resolve(__dirname, '..', '..', '..');
const LIB = path.join(REPO, 'dist', 'lib', 'hypervisor');
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-sim-'));

/** A bare sim transport, for raw hypercalls. */
function rawSim(arch: XenArch, domctlInterfaceVersion = 0x15, dom0Type: 'pv' | 'pvh' = 'pv', minor = 17): { t: SimTransport; store: SimStore } {
  const store = new SimStore(undefined, { arch, explicitArch: true, xen: { major: 4, minor, extraversion: '.0' }, domctlInterfaceVersion, dom0Type });
  return { t: new SimTransport(store), store };
}

/** One raw add_to_physmap_batch(gmfn_foreign); returns the call's result and the errs array. */
function rawAddBatch(t: SimTransport, borrower: number, owner: number, idxs: number[], gpfns: number[]): { rc: number; errs: number[] } {
  const n = idxs.length;
  const b = t.allocBuffer(32 + 20 * n);
  const io = 32;
  const go = io + 8 * n;
  const eo = go + 8 * n;
  idxs.forEach((g, i) => b.view.setBigUint64(io + 8 * i, BigInt(g), true));
  gpfns.forEach((g, i) => b.view.setBigUint64(go + 8 * i, BigInt.asUintN(64, BigInt(g)), true));
  writeAddToPhysmapBatch(b.view, 0, {
    domid: borrower, space: XenMapSpace.gmfn_foreign, size: n, foreignDomid: owner,
    idxs: b.address + BigInt(io), gpfns: b.address + BigInt(go), errs: b.address + BigInt(eo),
  });
  const rc = t.hypercall(Hypercall.memory_op, [XenMem.add_to_physmap_batch, b.address]);
  const errs = [...new Int32Array(b.bytes.buffer, eo, n)];
  t.freeBuffer(b);
  return { rc, errs };
}

test('x86: Xen itself refuses a domU borrower (EPERM per page) and a PV one (EACCES); dom0 PVH may borrow', async (t) => {
  const { t: x, store } = rawSim('x86');
  await x.exclusive(() => {
    const h = x.current();
    const owner = h.createDomain({ domid: 1, maxPages: 100 });
    const domU = h.createDomain({ domid: 2, maxPages: 100 });
    const pv = h.createDomain({ domid: 3, maxPages: 100, type: 'pv' });
    h.populate(h.domains.get(owner)!, 0x100);
    h.setTarget(domU, owner);
    // Even with a target: only the hardware domain may receive foreign frames on x86.
    t.deepEqual(rawAddBatch(x, domU, owner, [0x100], [0x200]), { rc: 0, errs: [-E.EPERM] });
    t.deepEqual(rawAddBatch(x, pv, owner, [0x100], [0x200]).rc, -E.EACCES);
    // dom0 is PV by default: not translated.
    t.is(rawAddBatch(x, 0, owner, [0x100], [0x200]).rc, -E.EACCES);
  });
  store.close();
  const { t: y, store: s2 } = rawSim('x86', 0x15, 'pvh');
  await y.exclusive(() => {
    const h = y.current();
    h.createDomain({ domid: 1, maxPages: 100 });
    h.populate(h.domains.get(1)!, 0x100);
    t.deepEqual(rawAddBatch(y, 0, 1, [0x100, 0x101], [0x900, 0x901]), { rc: 0, errs: [0, -E.EINVAL] });
    t.deepEqual(rawAddBatch(y, 0, 0, [0x100], [0x902]).errs, [-E.EPERM], 'x86: mapping from the caller itself');
  });
  s2.close();
});

test('Arm: per-page ESRCH for dom0 as owner, INVALID_GFN fails the call, a nested multicall is EINVAL', async (t) => {
  const { t: x, store } = rawSim('arm');
  await x.exclusive(() => {
    const h = x.current();
    h.createDomain({ domid: 4, maxPages: 100 });
    t.deepEqual(rawAddBatch(x, 4, 0, [0x10], [0x20]).errs, [-E.ESRCH], 'get_pg_owner refuses the caller');
    t.is(rawAddBatch(x, 4, 0, [0x10], [-1]).rc, -E.EINVAL, 'INVALID_GFN');
    t.is(rawAddBatch(x, 99, 4, [0x10], [0x20]).rc, -E.ESRCH, 'unknown borrower');
    // A multicall inside a multicall.
    const b = x.allocBuffer(2 * MULTICALL_ENTRY.size);
    writeMulticallEntry(b.view, 0, { op: Hypercall.multicall, args: [b.address + 64n, 1] });
    writeMulticallEntry(b.view, 64, { op: Hypercall.xen_version, args: [0, 0] });
    t.is(x.hypercall(Hypercall.multicall, [b.address, 1]), 0);
    t.is(readMulticallResult(b.view, 0), -E.EINVAL);
    t.is(x.hypercall(Hypercall.multicall, [b.address + 64n, 1]), 0);
    t.is(readMulticallResult(b.view, 64), (4 << 16) | 17, 'xen_version through a multicall');
    t.is(x.hypercall(Hypercall.memory_op, [XenMem.add_to_physmap_batch, 0x1234n]), -E.EFAULT, 'a bad guest address');
    t.is(x.hypercall(99, []), -E.ENOSYS);
  });
  store.close();
  t.is(XEN_ADD_TO_PHYSMAP_BATCH.size, 32);
});

test('getdomaininfo: Xen 4.17 answers for the next domain up, xen.ts says null; 4.18 says ESRCH', async (t) => {
  for (const [version, expectNext, minor] of [[0x15, true, 17], [0x16, false, 18]] as const) {
    const { t: x, store } = rawSim('arm', version, 'pv', minor);
    await x.exclusive(() => {
      x.current().createDomain({ domid: 7, maxPages: 10 });
      const b = x.allocBuffer(144);
      writeDomctlHeader(b.view, 0, { cmd: DomctlCmd.getdomaininfo, interfaceVersion: version, domain: 5 });
      const rc = x.hypercall(Hypercall.domctl, [b.address]);
      if (expectNext) {
        t.is(rc, 0);
        t.is(readGetDomainInfo(b.view, 0).domain, 7, 'the next domain');
      } else {
        t.is(rc, -E.ESRCH);
      }
      writeDomctlHeader(b.view, 0, { cmd: DomctlCmd.getdomaininfo, interfaceVersion: version + 1, domain: 7 });
      t.is(x.hypercall(Hypercall.domctl, [b.address]), -E.EACCES, 'another interface version');
    });
    store.close();
  }
  const hv = new SimHypervisor();
  await hv.createDomain({ domid: 7, maxPages: 10 });
  t.is(await hv.domainInfo(5), null);
  t.is((await hv.domainInfo(7))?.domid, 7);
  await hv.close();
});

test('raw max_mem: ESRCH for unknown ids and DOMID_SELF, EACCES for another version, a dying domain accepted', async (t) => {
  const { t: x, store } = rawSim('arm');
  await x.exclusive(() => {
    const h = x.current();
    const d = h.createDomain({ domid: 3, maxPages: 8, extraPages: 8 });
    const b = x.allocBuffer(144);
    const maxMem = (domain: number, kib: bigint, version = 0x15): number => {
      writeDomctlHeader(b.view, 0, { cmd: DomctlCmd.max_mem, interfaceVersion: version, domain });
      writeMaxMem(b.view, 0, kib);
      return x.hypercall(Hypercall.domctl, [b.address]);
    };
    t.is(maxMem(9, 4096n), -E.ESRCH, 'unknown domain');
    t.is(maxMem(0x7ff0, 4096n), -E.ESRCH, 'rcu_lock_domain_by_id() does not resolve DOMID_SELF');
    t.is(maxMem(d, 4096n, 0x16), -E.EACCES, 'another interface version');
    t.is(h.domains.get(d)!.maxPages, 8, 'unchanged by the refusals');
    t.is(maxMem(d, 7n), 0);
    t.is(h.domains.get(d)!.maxPages, 1, '7 KiB: one whole page');
    t.is(maxMem(d, 3n), 0);
    t.is(h.domains.get(d)!.maxPages, 0, '3 KiB: no page');
    t.is(maxMem(d, (2n ** 32n) * 4n), 0);
    t.is(h.domains.get(d)!.maxPages, 0xffffffff, '2^32 pages: capped at UINT_MAX');
    t.is(maxMem(d, 16n), 0, 'below tot_pages (8): accepted');
    t.is(h.domains.get(d)!.totPages, 8, 'nothing taken away');
    t.false(h.populate(h.domains.get(d)!, 0x10), 'no allocation while over the max');
    t.is(maxMem(0, 4n * 300000n), 0, 'dom0 is a domain too');
    t.is(h.domains.get(0)!.maxPages, 300000);
    // A domain kept dying by a target reference is still found by the lookup.
    const borrower = h.createDomain({ domid: 4, maxPages: 8 });
    t.is(h.setTarget(borrower, d), 0);
    h.destroyDomain(d);
    t.true(h.domains.get(d)!.dying);
    t.is(maxMem(d, 400n), 0);
    t.is(h.domains.get(d)!.maxPages, 100);
  });
  store.close();
});

test('the domctl interface version is probed when the release is unknown or lies', async (t) => {
  const unknown = new SimHypervisor({ xenVersion: { major: 4, minor: 99 }, domctlInterfaceVersion: 0x2a });
  t.is(await unknown.domctlInterfaceVersion(), 0x2a);
  t.truthy(await unknown.domainInfo(0));
  await unknown.close();
  const patched = new SimHypervisor({ xenVersion: { major: 4, minor: 17 }, domctlInterfaceVersion: 0x16 });
  t.is(await patched.domctlInterfaceVersion(), 0x16, 'a 4.17 with a backported interface change');
  await patched.close();
  const beyond = new SimHypervisor({ xenVersion: { major: 9, minor: 0 }, domctlInterfaceVersion: 0x99 });
  const e = await t.throwsAsync(beyond.domainInfo(0), { instanceOf: HypercallError });
  t.is(e.code, 'EACCES');
  t.regex(e.message, /refused every domctl interface version/);
  await beyond.close();
});

test('an owner destroyed while borrowed lingers as a dying domain until the borrower unmaps (and drops its target)', async (t) => {
  const hv = new SimHypervisor();
  const owner = await hv.createDomain({ maxPages: 64, extraPages: 16 });
  const borrower = await hv.createDomain({ maxPages: 64 });
  const og = gfnRange(0x40000, 8);
  const bg = gfnRange(0x80000, 8);
  await hv.populatePhysmap(owner, og);
  await hv.setTarget(borrower, owner);
  await hv.addToPhysmapForeign({ borrower, owner, ownerGfns: og, borrowerGfns: bg });
  const w = await hv.mapForeign(owner, og);
  w.buffer.write('still here', 4096 * 3);
  w.unmap();
  const entry = await hv.physmapEntry(borrower, bg[3]);
  t.is(entry.kind, 'foreign');
  if (entry.kind !== 'foreign') return;
  t.deepEqual(await hv.frameInfo(entry.mfn), { owner, refs: 1, allocated: true });

  await hv.destroyDomain(owner);
  const z = await hv.domainInfo(owner);
  t.truthy(z);
  t.true(z!.dying);
  t.is(z!.totPages, 8, 'only the borrowed pages keep it');
  const g = await hv.guestMap(borrower, [bg[3]]);
  t.is(g.buffer.toString('latin1', 0, 10), 'still here', 'the borrower still sees the bytes');
  g.unmap();
  const e = await t.throwsAsync(hv.mapForeign(owner, [og[0]]), { instanceOf: HypercallError });
  t.is(e.code, 'EINVAL', 'a dying domain has no physmap left');
  await hv.removeFromPhysmap(borrower, bg.subarray(0, 4));
  t.is((await hv.domainInfo(owner))!.totPages, 4);
  await hv.removeFromPhysmap(borrower, bg.subarray(4));
  t.deepEqual(await hv.frameInfo(entry.mfn), { owner: null, refs: 0, allocated: false }, 'the last page is freed');
  const kept = await hv.domainInfo(owner);
  t.is(kept?.totPages, 0);
  t.true(kept?.dying, 'still there: the borrower has it as its target');
  await hv.destroyDomain(borrower);
  t.is(await hv.domainInfo(owner), null, 'gone with the borrower');
  await hv.close();
});

test('a domain that is another\'s target lingers until that domain is destroyed', async (t) => {
  const hv = new SimHypervisor();
  const owner = await hv.createDomain({ maxPages: 8 });
  const borrower = await hv.createDomain({ maxPages: 8 });
  await hv.setTarget(borrower, owner);
  await hv.destroyDomain(owner);
  t.true((await hv.domainInfo(owner))!.dying);
  await hv.destroyDomain(borrower);
  t.is(await hv.domainInfo(borrower), null);
  t.is(await hv.domainInfo(owner), null);
  await hv.close();
});

test('freeing a page still mapped elsewhere defers the free; a frame given out again keeps its bytes unless scrubbed', async (t) => {
  const hv = new SimHypervisor();
  const owner = await hv.createDomain({ maxPages: 64 });
  const borrower = await hv.createDomain({ maxPages: 64 });
  await hv.populatePhysmap(owner, [0x100]);
  await hv.setTarget(borrower, owner);
  await hv.addToPhysmapForeign({ borrower, owner, ownerGfns: [0x100], borrowerGfns: [0x900] });
  const w = await hv.mapForeign(owner, [0x100]);
  w.buffer.write('secret');
  w.unmap();
  await hv.decreaseReservation(owner, [0x100]);
  t.is((await hv.domainInfo(owner))!.totPages, 1, 'still allocated: the borrower holds it');
  await t.throwsAsync(hv.mapForeign(owner, [0x100]), { code: 'EINVAL' });
  await hv.removeFromPhysmap(borrower, [0x900]);
  t.is((await hv.domainInfo(owner))!.totPages, 0);
  await hv.populatePhysmap(owner, [0x200]);
  const again = await hv.mapForeign(owner, [0x200]);
  // Xen scrubs only a dying domain's pages: the owner freed it alive, the bytes are still there.
  t.is(again.buffer.toString('latin1', 0, 6), 'secret', 'the reused frame keeps the bytes');
  again.unmap();
  await hv.decreaseReservation(owner, [0x200], undefined, { scrub: true });
  await hv.populatePhysmap(owner, [0x300]);
  const scrubbed = await hv.mapForeign(owner, [0x300]);
  t.is(scrubbed.buffer.toString('latin1', 0, 6), '\0'.repeat(6), 'scrubbed before it was freed: zero');
  scrubbed.unmap();
  await hv.close();
});

test('Arm: populating over a foreign mapping puts its page; the old page leaves the borrower', async (t) => {
  const hv = new SimHypervisor();
  const owner = await hv.createDomain({ maxPages: 8 });
  const borrower = await hv.createDomain({ maxPages: 8 });
  await hv.populatePhysmap(owner, [0x10]);
  await hv.setTarget(borrower, owner);
  await hv.addToPhysmapForeign({ borrower, owner, ownerGfns: [0x10], borrowerGfns: [0x20] });
  const e = await hv.physmapEntry(borrower, 0x20);
  t.is(e.kind, 'foreign');
  await hv.populatePhysmap(borrower, [0x20]);
  t.is((await hv.physmapEntry(borrower, 0x20)).kind, 'ram');
  if (e.kind === 'foreign') t.is((await hv.frameInfo(e.mfn)).refs, 0);
  await hv.close();
});

test('a folder-backed host: another process sees the state, and frames alias across processes at unmap and map', async (t) => {
  const dir = tmp();
  const hv = new SimHypervisor({ dir, arch: 'arm' });
  const owner = await hv.createDomain({ name: 'vm1', maxPages: 1024 });
  const borrower = await hv.createDomain({ name: 'vm2', maxPages: 1024 });
  await hv.populatePhysmap(owner, gfnRange(0x40000, 16));
  await hv.setTarget(borrower, owner);
  await hv.addToPhysmapForeign({ borrower, owner, ownerGfns: gfnRange(0x40000, 16), borrowerGfns: gfnRange(0x50000, 16) });
  const view = await hv.mapForeign(owner, gfnRange(0x40000, 16));
  view.buffer.write('from the parent', 5 * 4096);
  view.buffer.write('not unmapped yet', 6 * 4096);
  // Bytes reach the frames file when their view is unmapped: this one, a slice of the first,
  // carries page 5 there now; page 6 stays in this process while `view` lives.
  const page5 = await hv.mapForeign(owner, [0x40005]);
  t.is(page5.buffer.toString('latin1', 0, 15), 'from the parent', 'a view of the same frame aliases the live one');
  page5.unmap();

  // A second process: reads what the borrower sees and writes back.
  const child = `
    const { SimHypervisor } = require(${JSON.stringify(LIB)});
    (async () => {
      const hv = new SimHypervisor({ dir: ${JSON.stringify(dir)} });
      const doms = await hv.domains();
      const g = await hv.guestMap(${borrower}, [0x50005, 0x50006]);
      const seen = g.buffer.toString('latin1', 0, 15);
      const unseen = g.buffer.toString('latin1', 4096, 4096 + 16);
      g.buffer.write('from the child', 100);
      g.unmap();
      console.log(JSON.stringify({ seen, unseen, names: doms.map((d) => d.name), tot: (await hv.domainInfo(${owner})).totPages }));
      await hv.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = JSON.parse((await run(process.execPath, ['-e', child])).stdout);
  t.deepEqual(out, { seen: 'from the parent', unseen: '\0'.repeat(16), names: ['Domain-0', 'vm1', 'vm2'], tot: 16 });
  t.is(view.buffer.toString('latin1', 5 * 4096 + 100, 5 * 4096 + 114), '\0'.repeat(14), 'a live view does not change under us: no mmap');
  view.unmap();
  const fresh = await hv.mapForeign(owner, [0x40005, 0x40006]);
  t.is(fresh.buffer.toString('latin1', 100, 114), 'from the child', 'a view made after the child unmapped sees its bytes');
  t.is(fresh.buffer.toString('latin1', 4096, 4096 + 16), 'not unmapped yet', 'and the parent\'s own, written back at unmap');
  fresh.unmap();
  await hv.close();

  // Concurrent processes each populate their own pages: the lock keeps every change.
  const populate = (base: number): Promise<unknown> => run(process.execPath, ['-e', `
    const { SimHypervisor, gfnRange } = require(${JSON.stringify(LIB)});
    (async () => {
      const hv = new SimHypervisor({ dir: ${JSON.stringify(dir)} });
      for (let i = 0; i < 8; i++) await hv.populatePhysmap(${owner}, gfnRange(${base} + 4 * i, 4));
      await hv.close();
    })().catch((e) => { console.error(e); process.exit(1); });`]);
  await Promise.all([populate(0x60000), populate(0x70000), populate(0x78000)]);
  const again = new SimHypervisor({ dir });
  t.is((await again.domainInfo(owner))!.totPages, 16 + 3 * 32);
  // Reopening as another architecture is refused.
  const wrong = new SimHypervisor({ dir, arch: 'x86' });
  const e = await t.throwsAsync(wrong.domainInfo(0), { instanceOf: HypercallError });
  t.is(e.code, 'EINVAL');
  t.regex(e.message, /is arm, not x86/);
  await wrong.close();
  await again.close();
  fs.rmSync(dir, { recursive: true });
});

test('a lock left by a dead process is broken', async (t) => {
  const dir = tmp();
  const hv = new SimHypervisor({ dir });
  await hv.createDomain({ domid: 3, maxPages: 4 });
  const { stdout } = await run(process.execPath, ['-e', 'console.log(process.pid)']);
  fs.writeFileSync(path.join(dir, 'lock'), stdout.trim());
  const t0 = Date.now();
  t.is((await hv.domainInfo(3))?.domid, 3);
  t.true(Date.now() - t0 < 5000);
  t.false(fs.existsSync(path.join(dir, 'lock')), 'released after the call');
  await hv.close();
  fs.rmSync(dir, { recursive: true });
});

test('bad arguments are refused before any hypercall', async (t) => {
  const hv = new SimHypervisor();
  for (const p of [hv.domainInfo(-1), hv.domainInfo(0x7ff0), hv.populatePhysmap(1.5, [1]), hv.populatePhysmap(0, [-1]), hv.mapForeign(1, [])]) {
    const e = await t.throwsAsync(p, { instanceOf: HypercallError });
    t.is(e.code, 'EINVAL');
  }
  const e = await t.throwsAsync(hv.addToPhysmapForeign({ borrower: 1, owner: 2, ownerGfns: [1, 2], borrowerGfns: [1] }), { instanceOf: HypercallError });
  t.regex(e.message, /ownerGfns has 2 pages but borrowerGfns 1/);
  await hv.close();
  const closed = await t.throwsAsync(hv.domainInfo(0), { instanceOf: HypercallError });
  t.is(closed.code, 'EBADF');
});
