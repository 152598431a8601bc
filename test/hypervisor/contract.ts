/**
 * The backend contract: what every Hypervisor backend must do, as plain async checks. The ava
 * wrapper (registerAva) runs them on `sim` here (contract-sim.test.ts); the real-Xen tier runs the
 * same checks on `privcmd` in dom0 with the plain runner (run()/run-contract.ts), which needs no
 * ava. Checks run in order on one fixture and share its state: set_target cannot be undone, so
 * the checks that need a borrower without a target come before the one that sets it, and each
 * run needs a fresh borrower domain.
 */
import * as nodeAssert from 'node:assert/strict';
import type { TestFn } from 'ava';
import { DOMAIN_INFO_LIST_MAX, gfnSpan, HypercallError, rulesFor, XenHypervisor, X86_TRANSLATED_FOREIGN_MAPS, type Hypervisor } from '../../lib/hypervisor';
import { DOMCTL_INTERFACE_VERSIONS, MAX_ADD_TO_PHYSMAP_BATCH, SYSCTL_INTERFACE_VERSIONS } from '../../lib/hypervisor/abi';
import { PAGE_SIZE as XEN_PAGE_SIZE } from '../../lib/vocabulary';

export interface ContractFixture {
  hv: Hypervisor;
  /** A domU that owns the regions: headroom for largePages + 64 pages at least. */
  owner: number;
  /** A domU with no target yet (set_target is once per domain and forever). */
  borrower: number;
  /** An id with no domain behind it. */
  missingDomid: number;
  /**
   * First gfn of a free owner range (nothing populated there, no RAM: Xen would replace it) of
   * max(largePages + 2048, the owner's headroom + 1) gfns: the ENOMEM check fills the headroom.
   */
  ownerGfnBase: number;
  /** First gfn of a free borrower range of largePages + 2048 gfns (nothing mapped there). */
  borrowerGfnBase: number;
  /** Pages of the large region: more than 65,535 so that it takes several batches. */
  largePages: number;
  /** Bytes at page gfn of domid, as the guest itself sees them (sim: guestMap; Xen: /dev/mem in the domU). */
  guestRead(domid: number, gfn: number, length: number): Promise<Buffer>;
  /** Writes bytes at page gfn of domid from inside the guest. */
  guestWrite(domid: number, gfn: number, data: Buffer): Promise<void>;
  /**
   * A port of the owner that is bound interdomain, and its remote end as far as the fixture
   * knows it (sim: the borrower binds a port dom0 allocated; Xen: the owner's xenstore port,
   * bound by xenstored in dom0).
   */
  interdomainPort(): Promise<{ port: number; remoteDom: number; remotePort?: number }>;
  /** Releases the fixture (closes the Hypervisor, destroys domains). */
  dispose(): Promise<void>;
}

/** The assertions a check uses: ava's in ava, node:assert's in the plain runner. */
export interface Assert {
  is(actual: unknown, expected: unknown, message?: string): void;
  true(value: boolean, message?: string): void;
  deepEqual(actual: unknown, expected: unknown, message?: string): void;
}

export interface ContractCheck {
  name: string;
  run(fx: ContractFixture, a: Assert, log: (s: string) => void): Promise<void>;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export interface BackendContract {
  readonly label: string;
  readonly checks: readonly ContractCheck[];
  /** Registers one serial ava test per check, on one fixture made in test.before. */
  registerAva(test: TestFn): void;
  /** Runs every check in order outside ava; a failed check does not stop the others. */
  run(opts?: { log?: (s: string) => void }): Promise<CheckResult[]>;
}

/** Expects p to reject with a HypercallError of this code; returns the error. */
async function rejects(a: Assert, p: Promise<unknown>, code: string, what: string): Promise<HypercallError> {
  try {
    await p;
  } catch (e) {
    a.true(e instanceof HypercallError, `${what}: a HypercallError (got ${String(e)})`);
    const he = e as HypercallError;
    a.is(he.kind, 'hypercall', `${what}: kind`);
    a.is(he.code, code, `${what}: code (message: ${he.message})`);
    return he;
  }
  a.true(false, `${what}: expected ${code}, but it succeeded`);
  throw new Error(`${what}: expected ${code}, but it succeeded`);
}

const range = (start: number, count: number): Float64Array => {
  const r = new Float64Array(count);
  for (let i = 0; i < count; i++) r[i] = start + i;
  return r;
};

/** Whether this Xen lets the fixture's domU borrower receive foreign frames (the release's rule). */
async function domUBorrows(fx: ContractFixture): Promise<boolean> {
  const s = await fx.hv.borrowerSupport!(fx.borrower);
  return s.supported;
}

/** A recognisable pattern for one page: label and index. */
const pattern = (label: string, i: number): Buffer => Buffer.from(`xen-sshm ${label} page ${i} ${'#'.repeat(i % 7)}`);

/** Small regions live after the large one, inside the fixture's free ranges. */
const small = (fx: ContractFixture, slot: number): { owner: Float64Array; borrower: Float64Array } => ({
  owner: range(fx.ownerGfnBase + fx.largePages + 64 + 64 * slot, 16),
  borrower: range(fx.borrowerGfnBase + fx.largePages + 64 + 64 * slot, 16),
});

const CHECKS: ContractCheck[] = [
  {
    name: 'xen_version reports a release and the architecture',
    async run(fx, a, log) {
      const v = await fx.hv.xenVersion();
      log(`Xen ${v.version} (${v.arch}): ${v.capabilities.trim()}`);
      a.true(v.major >= 4, 'major >= 4');
      a.is(v.version.startsWith(`${v.major}.${v.minor}`), true, 'version string');
      a.true(['x86', 'arm'].includes(v.arch), 'arch');
      a.is(/aarch64|armv7l/.test(v.capabilities), v.arch === 'arm', 'capabilities agree with arch');
    },
  },
  {
    name: 'the domctl interface version is detected, never assumed',
    async run(fx, a, log) {
      const v = await fx.hv.xenVersion();
      const version = await fx.hv.domctlInterfaceVersion();
      log(`domctl interface version 0x${version.toString(16)}`);
      const known = DOMCTL_INTERFACE_VERSIONS[`${v.major}.${v.minor}`];
      if (known !== undefined) a.is(version, known, 'the release table value');
      a.true(version > 0, 'positive');
      a.true((await fx.hv.domainInfo(0)) !== null, 'getdomaininfo works with it');
    },
  },
  {
    name: 'domainInfo: existing domains, max memory, missing ones are null',
    async run(fx, a) {
      const o = await fx.hv.domainInfo(fx.owner);
      a.true(o !== null, 'owner exists');
      a.is(o!.domid, fx.owner);
      a.true(o!.maxPages >= o!.totPages, 'max_pages >= tot_pages');
      a.is(o!.headroomPages, o!.maxPages - o!.totPages);
      a.true(o!.headroomPages >= fx.largePages + 64, 'the owner has room for the large region');
      a.true((await fx.hv.domainInfo(fx.borrower)) !== null, 'borrower exists');
      a.is(await fx.hv.domainInfo(fx.missingDomid), null, 'missing domain');
      await rejects(a, fx.hv.domainInfo(0x7ff0), 'EINVAL', 'a reserved id is not a domain');
    },
  },
  {
    name: 'getdomaininfolist: domains in domid order from the first asked, as getdomaininfo says, in one call',
    async run(fx, a, log) {
      const v = await fx.hv.xenVersion();
      const all = await fx.hv.domainInfoList(0, DOMAIN_INFO_LIST_MAX);
      log(`Xen ${v.version} ${v.arch}: ${all.length} domains listed (${all.map((d) => `d${d.domid}`).join(' ')}), sysctl interface 0x${(SYSCTL_INTERFACE_VERSIONS[`${v.major}.${v.minor}`] ?? 0).toString(16)}`);
      a.true(all.length >= 3, 'dom0, the owner and the borrower at least');
      a.is(all[0].domid, 0, 'dom0 first');
      for (let i = 1; i < all.length; i++) a.true(all[i].domid > all[i - 1].domid, `ascending at ${i}`);
      a.true(all.length < DOMAIN_INFO_LIST_MAX, 'fewer than asked: nothing left above');
      for (const d of [0, fx.owner, fx.borrower]) {
        const one = await fx.hv.domainInfo(d);
        const listed = all.find((x) => x.domid === d);
        a.true(listed !== undefined, `d${d} listed`);
        // tot_pages moves with the guest's own balloon: compared where it cannot.
        a.deepEqual({ domid: listed!.domid, maxPages: listed!.maxPages, dying: listed!.dying, hvm: listed!.hvm }, { domid: one!.domid, maxPages: one!.maxPages, dying: one!.dying, hvm: one!.hvm }, `d${d} as getdomaininfo`);
      }
      a.is(all.some((x) => x.domid === fx.missingDomid), false, 'the missing domain is not listed');
      // The span bounds the call: max 1 from the owner lists the owner alone.
      a.deepEqual((await fx.hv.domainInfoList(fx.owner, 1)).map((x) => x.domid), [fx.owner], 'first = owner, max 1');
      const fromMissing = await fx.hv.domainInfoList(fx.missingDomid, 1);
      a.true(fromMissing.every((x) => x.domid > fx.missingDomid), 'from a missing id: only domains above it');
      a.deepEqual(await fx.hv.domainInfoList(fx.owner, 0), [], 'max 0 lists nothing');
      await rejects(a, fx.hv.domainInfoList(0x7ff0, 1), 'EINVAL', 'a reserved id is not a first domain');
      await rejects(a, fx.hv.domainInfoList(0, DOMAIN_INFO_LIST_MAX + 1), 'EINVAL', 'more than a buffer holds');
    },
  },
  {
    name: 'populate_physmap and decrease_reservation count against the owner',
    async run(fx, a) {
      const { owner } = small(fx, 0);
      const before = (await fx.hv.domainInfo(fx.owner))!.totPages;
      await fx.hv.populatePhysmap(fx.owner, owner);
      a.is((await fx.hv.domainInfo(fx.owner))!.totPages, before + 16, 'tot_pages + 16');
      const m = await fx.hv.mapForeign(fx.owner, owner);
      a.is(m.buffer.length, 16 * XEN_PAGE_SIZE);
      // Not asserted: that fresh pages read as zero. Xen scrubs only a dying domain's pages, so
      // a page another (live) domain freed comes back with its bytes.
      m.buffer.write('owner bytes', 3 * XEN_PAGE_SIZE);
      m.unmap();
      a.is(m.buffer.length, 0, 'an unmapped buffer is empty');
      const again = await fx.hv.mapForeign(fx.owner, owner.subarray(3, 4));
      a.is(again.buffer.toString('latin1', 0, 11), 'owner bytes', 'the bytes stay in the frame');
      again.unmap();
      await fx.hv.decreaseReservation(fx.owner, owner);
      a.is((await fx.hv.domainInfo(fx.owner))!.totPages, before, 'tot_pages back');
      const e = await rejects(a, fx.hv.decreaseReservation(fx.owner, owner.subarray(0, 2)), 'ENOENT', 'decrease of freed pages');
      a.is(e.done, 0);
      a.is(e.gfn, owner[0]);
    },
  },
  {
    name: 'decrease_reservation with scrub zeroes the pages through dom0 first, and frees nothing if one cannot be mapped',
    async run(fx, a) {
      if (!(fx.hv instanceof XenHypervisor)) throw new Error('the backend is not a XenHypervisor: no scrub option');
      const hv = fx.hv;
      const { owner } = small(fx, 2);
      const before = (await hv.domainInfo(fx.owner))!.totPages;
      await hv.populatePhysmap(fx.owner, owner);
      const m = await hv.mapForeign(fx.owner, owner);
      for (let i = 0; i < 16; i++) pattern('secret', i).copy(m.buffer, i * XEN_PAGE_SIZE);
      m.unmap();
      await hv.decreaseReservation(fx.owner, owner.subarray(15));
      // Page 15 is gone: mapping the 16 fails, so nothing is zeroed or freed.
      const e = await rejects(a, hv.decreaseReservation(fx.owner, owner, undefined, { scrub: true }), 'EINVAL', 'scrub of a missing page');
      a.is(e.call, 'ioctl(MMAPBATCH_V2)');
      a.deepEqual(e.pages?.map((p) => p.index), [15]);
      const kept = await hv.mapForeign(fx.owner, owner.subarray(0, 15));
      a.deepEqual(kept.buffer.subarray(7 * XEN_PAGE_SIZE, 7 * XEN_PAGE_SIZE + pattern('secret', 7).length), pattern('secret', 7), 'nothing zeroed');
      kept.unmap();
      await hv.decreaseReservation(fx.owner, owner.subarray(0, 15), undefined, { scrub: true });
      a.is((await hv.domainInfo(fx.owner))!.totPages, before, 'freed after zeroing');
    },
  },
  {
    name: 'populate_physmap: 2 MiB extents where the range is 2 MiB-aligned, 4 KiB extents elsewhere',
    async run(fx, a, log) {
      if (!(fx.hv instanceof XenHypervisor)) throw new Error('the backend is not a XenHypervisor: lastPopulate unknown');
      const hv = fx.hv;
      // 3 pages before a 2 MiB boundary, two whole 2 MiB extents, then 4 pages.
      const aligned = Math.ceil(fx.ownerGfnBase / 512) * 512;
      const gfns = range(aligned + 512 - 3, 3 + 1024 + 4);
      const before = (await hv.domainInfo(fx.owner))!.totPages;
      const t0 = Date.now();
      await hv.populatePhysmap(fx.owner, gfns);
      log(`populated ${gfns.length} pages in ${Date.now() - t0} ms: ${JSON.stringify(hv.lastPopulate)}`);
      a.deepEqual(hv.lastPopulate, { largeExtents: 2, smallExtents: 7, largeRefused: 0, hypercalls: 3 }, 'extents issued and accepted');
      a.is((await hv.domainInfo(fx.owner))!.totPages, before + gfns.length, 'every page counted');
      const probes = [0, 2, 3, 514, 1026, 1027, gfns.length - 1];
      const m = await hv.mapForeign(fx.owner, probes.map((i) => gfns[i]));
      probes.forEach((i, k) => pattern('extent', i).copy(m.buffer, k * XEN_PAGE_SIZE));
      m.unmap();
      const back = await hv.mapForeign(fx.owner, probes.map((i) => gfns[i]).reverse());
      [...probes].reverse().forEach((i, k) => a.deepEqual(back.buffer.subarray(k * XEN_PAGE_SIZE, k * XEN_PAGE_SIZE + pattern('extent', i).length), pattern('extent', i), `page ${i} keeps its bytes`));
      back.unmap();
      await hv.decreaseReservation(fx.owner, gfns);
      a.is((await hv.domainInfo(fx.owner))!.totPages, before, 'all freed page by page');
    },
  },
  {
    name: 'populate_physmap of a span (no per-page list): the same extents and pages as its list',
    async run(fx, a, log) {
      if (!(fx.hv instanceof XenHypervisor)) throw new Error('the backend is not a XenHypervisor: lastPopulate unknown');
      const hv = fx.hv;
      const aligned = Math.ceil(fx.ownerGfnBase / 512) * 512;
      const before = (await hv.domainInfo(fx.owner))!.totPages;
      // As the list check above: 3 pages, two 2 MiB extents, 4 pages; then a span too short for
      // any large extent, and a span on 4 KiB extents only.
      const cases: Array<[number, number, boolean, object]> = [
        [aligned + 512 - 3, 3 + 1024 + 4, true, { largeExtents: 2, smallExtents: 7, largeRefused: 0, hypercalls: 3 }],
        [aligned + 2048, 511, true, { largeExtents: 0, smallExtents: 511, largeRefused: 0, hypercalls: 1 }],
        [aligned + 4096, 1024, false, { largeExtents: 0, smallExtents: 1024, largeRefused: 0, hypercalls: 1 }],
      ];
      for (const [start, count, large, stats] of cases) {
        await hv.populatePhysmap(fx.owner, gfnSpan(start, count), undefined, { largeExtents: large });
        log(`span ${start.toString(16)}+${count}: ${JSON.stringify(hv.lastPopulate)}`);
        a.deepEqual(hv.lastPopulate, stats, `extents of span ${start.toString(16)}+${count}`);
        const probes = [start, start + count - 1];
        const m = await hv.mapForeign(fx.owner, probes);
        pattern('span', start).copy(m.buffer, 0);
        m.unmap();
        const back = await hv.mapForeign(fx.owner, probes);
        a.deepEqual(back.buffer.subarray(0, pattern('span', start).length), pattern('span', start), 'the first page keeps its bytes');
        back.unmap();
      }
      a.is((await hv.domainInfo(fx.owner))!.totPages, before + 3 + 1024 + 4 + 511 + 1024, 'every page counted');
      for (const [start, count] of cases) await hv.decreaseReservation(fx.owner, range(start, count));
      a.is((await hv.domainInfo(fx.owner))!.totPages, before, 'all freed page by page');
      await rejects(a, hv.populatePhysmap(fx.owner, gfnSpan(-1, 4)), 'EINVAL', 'a span from a negative gfn');
      await rejects(a, hv.populatePhysmap(fx.owner, gfnSpan(aligned, 1.5)), 'EINVAL', 'a span of a fraction of a page');
      await rejects(a, hv.populatePhysmap(fx.owner, gfnSpan(2 ** 52 - 2, 4)), 'EINVAL', 'a span past 2^52');
      a.is((await hv.domainInfo(fx.owner))!.totPages, before, 'refused spans populate nothing');
    },
  },
  {
    name: 'populate_physmap of an unknown domain: ESRCH',
    async run(fx, a) {
      const e = await rejects(a, fx.hv.populatePhysmap(fx.missingDomid, range(fx.ownerGfnBase, 4)), 'ESRCH', 'unknown domain');
      a.is(e.domid, fx.missingDomid);
    },
  },
  {
    name: 'populate_physmap over max memory: ENOMEM with the pages needed, nothing left populated',
    async run(fx, a) {
      const info = (await fx.hv.domainInfo(fx.owner))!;
      const want = info.headroomPages + 1;
      const e = await rejects(a, fx.hv.populatePhysmap(fx.owner, range(fx.ownerGfnBase, want)), 'ENOMEM', 'over max memory');
      a.is(e.done, info.headroomPages, 'Xen stopped at the limit');
      a.true(e.message.includes(`needs ${want} pages`), `the message says what is needed: ${e.message}`);
      a.is((await fx.hv.domainInfo(fx.owner))!.totPages, info.totPages, 'rolled back');
    },
  },
  {
    name: 'max_mem raises the owner\'s max: populate goes past the old limit',
    async run(fx, a) {
      const info = (await fx.hv.domainInfo(fx.owner))!;
      // One page more than the old max allows (the ENOMEM check above was refused for it).
      const need = info.headroomPages + 1;
      const gfns = range(fx.ownerGfnBase, need);
      const raised = info.maxPages + 64;
      let populated = false;
      try {
        await fx.hv.setMaxMem(fx.owner, BigInt(raised) * BigInt(XEN_PAGE_SIZE / 1024));
        const up = (await fx.hv.domainInfo(fx.owner))!;
        a.is(up.maxPages, raised, 'max_pages is the new max');
        a.is(up.totPages, info.totPages, 'raising allocates nothing');
        await fx.hv.populatePhysmap(fx.owner, gfns);
        populated = true;
        const after = (await fx.hv.domainInfo(fx.owner))!;
        a.is(after.totPages, info.totPages + need);
        a.true(after.totPages > info.maxPages, 'past the old max');
      } finally {
        if (populated) await fx.hv.decreaseReservation(fx.owner, gfns);
        await fx.hv.setMaxMem(fx.owner, info.maxPages * (XEN_PAGE_SIZE / 1024));
      }
      const back = (await fx.hv.domainInfo(fx.owner))!;
      a.deepEqual([back.totPages, back.maxPages], [info.totPages, info.maxPages], 'pages freed, max restored (a number works too)');
    },
  },
  {
    name: 'max_mem below current use is accepted: nothing taken away, populate refused (ENOMEM) until raised',
    async run(fx, a) {
      const info = (await fx.hv.domainInfo(fx.owner))!;
      // Xen keeps no check that the new max covers tot_pages (common/domctl.c, XEN_DOMCTL_max_mem).
      const low = Math.max(0, info.totPages - 16);
      try {
        await fx.hv.setMaxMem(fx.owner, low * (XEN_PAGE_SIZE / 1024));
        const now = (await fx.hv.domainInfo(fx.owner))!;
        a.is(now.maxPages, low, 'max_pages below tot_pages');
        a.is(now.totPages, info.totPages, 'no page taken away');
        a.is(now.headroomPages, 0);
        const e = await rejects(a, fx.hv.populatePhysmap(fx.owner, [fx.ownerGfnBase]), 'ENOMEM', 'populate over a lowered max');
        a.is(e.done, 0, 'not a single page');
        a.true(e.message.includes('the max is below what it holds'), `the message says so: ${e.message}`);
      } finally {
        await fx.hv.setMaxMem(fx.owner, BigInt(info.maxPages) * BigInt(XEN_PAGE_SIZE / 1024));
      }
      a.is((await fx.hv.domainInfo(fx.owner))!.maxPages, info.maxPages, 'restored');
    },
  },
  {
    name: 'max_mem of an unknown domain: ESRCH',
    async run(fx, a) {
      const e = await rejects(a, fx.hv.setMaxMem(fx.missingDomid, 1n << 20n), 'ESRCH', 'unknown domain');
      a.is(e.domid, fx.missingDomid);
      a.is(e.call, 'domctl(max_mem)');
    },
  },
  {
    name: 'mapForeign refuses unpopulated frames (EINVAL), unknown domains (ESRCH) and dom0 itself (the release\'s answer)',
    async run(fx, a, log) {
      const e = await rejects(a, fx.hv.mapForeign(fx.owner, range(fx.ownerGfnBase, 2)), 'EINVAL', 'unpopulated');
      a.is(e.pages?.length, 2, 'one error per page');
      await rejects(a, fx.hv.mapForeign(fx.missingDomid, [fx.ownerGfnBase]), 'ESRCH', 'unknown domain');
      // ESRCH before ARM_FOREIGN_SELF_EPERM (Arm 4.20.4, 4.21.2, 4.22; releases.ts), EPERM since.
      const v = await fx.hv.xenVersion();
      const self = rulesFor(v.arch, v).foreignSelfEperm ? 'EPERM' : 'ESRCH';
      log(`Xen ${v.version} ${v.arch}: dom0 mapping itself is ${self}`);
      await rejects(a, fx.hv.mapForeign(0, [0]), self, 'dom0 maps itself');
    },
  },
  {
    name: `the large region is populated in batches`,
    async run(fx, a, log) {
      a.true(fx.largePages > MAX_ADD_TO_PHYSMAP_BATCH, 'larger than one add_to_physmap_batch');
      const before = (await fx.hv.domainInfo(fx.owner))!.totPages;
      const t0 = Date.now();
      await fx.hv.populatePhysmap(fx.owner, range(fx.ownerGfnBase, fx.largePages));
      log(`populated ${fx.largePages} pages in ${Date.now() - t0} ms`);
      a.is((await fx.hv.domainInfo(fx.owner))!.totPages, before + fx.largePages);
    },
  },
  {
    name: 'borrowerSupport follows the release xen_version reports',
    async run(fx, a, log) {
      const v = await fx.hv.xenVersion();
      const rules = rulesFor(v.arch, v);
      const s = await fx.hv.borrowerSupport!(fx.borrower);
      log(`Xen ${v.version} ${v.arch}: domU borrower ${s.supported ? 'supported' : `refused (${s.reason})`}: ${s.rule}`);
      a.is(s.xenVersion, v.version, 'the rule of the running release');
      a.is(s.supported, rules.translatedDomUBorrowers, 'Arm always, x86 HVM/PVH from 4.19');
      if (s.supported) a.true(s.needsTarget, 'a domU needs the owner as its target');
      else {
        a.is(s.reason, 'borrower-release');
        a.is(s.allowedFrom, X86_TRANSLATED_FOREIGN_MAPS.since, 'names the release that allows it');
      }
      const missing = await fx.hv.borrowerSupport!(fx.missingDomid);
      a.deepEqual([missing.supported, missing.supported ? '' : missing.reason], [false, 'no-domain']);
    },
  },
  {
    name: 'a domU borrower without a target is refused (EPERM), nothing left mapped',
    async run(fx, a) {
      const e = await rejects(a, fx.hv.addToPhysmapForeign({
        borrower: fx.borrower, owner: fx.owner,
        ownerGfns: range(fx.ownerGfnBase, fx.largePages), borrowerGfns: range(fx.borrowerGfnBase, fx.largePages),
      }), 'EPERM', 'no target');
      if (await domUBorrows(fx)) {
        // Xen answers per page, with the call itself returning 0: every page of the first batch.
        a.is(e.pages?.length, MAX_ADD_TO_PHYSMAP_BATCH, 'every page of the first batch refused');
        a.true(e.message.includes(`has d${fx.owner} as its target`), 'the message states the rule');
        a.is(e.remoteDomid, fx.owner);
      } else {
        // x86 before 4.19: refused before trying, naming the release that allows it.
        a.deepEqual([e.reason, e.allowedFrom, e.pages], ['borrower-release', X86_TRANSLATED_FOREIGN_MAPS.since, undefined]);
        a.true(e.message.includes('hardware domain'), 'the message states the rule');
      }
      await rejects(a, fx.hv.removeFromPhysmap(fx.borrower, [fx.borrowerGfnBase]), 'ENOENT', 'nothing mapped');
    },
  },
  {
    name: 'mapping a domain onto itself: EINVAL per page (refused before trying where domUs cannot borrow)',
    async run(fx, a) {
      const borrows = await domUBorrows(fx);
      const e = await rejects(a, fx.hv.addToPhysmapForeign({
        borrower: fx.owner, owner: fx.owner, ownerGfns: [fx.ownerGfnBase], borrowerGfns: [fx.ownerGfnBase + fx.largePages + 2000],
      }), borrows ? 'EINVAL' : 'EPERM', 'self map');
      if (borrows) a.is(e.pages?.[0]?.code, 'EINVAL');
    },
  },
  {
    name: 'unknown borrower (ESRCH for the call) and unknown owner (ESRCH per page)',
    async run(fx, a) {
      const borrows = await domUBorrows(fx);
      await rejects(a, fx.hv.addToPhysmapForeign({
        borrower: fx.missingDomid, owner: fx.owner, ownerGfns: [fx.ownerGfnBase], borrowerGfns: [fx.borrowerGfnBase],
      }), borrows ? 'ESRCH' : 'EPERM', 'unknown borrower');
      const e = await rejects(a, fx.hv.addToPhysmapForeign({
        borrower: fx.borrower, owner: fx.missingDomid, ownerGfns: range(fx.ownerGfnBase, 3), borrowerGfns: range(fx.borrowerGfnBase, 3),
      }), borrows ? 'ESRCH' : 'EPERM', 'unknown owner');
      if (borrows) a.is(e.pages?.length, 3, 'per page');
    },
  },
  {
    name: 'set_target, then a region over 65,535 pages maps and aliases the owner\'s bytes',
    async run(fx, a, log) {
      const borrows = await domUBorrows(fx);
      await fx.hv.setTarget(fx.borrower, fx.owner);
      const n = fx.largePages;
      const ownerGfns = range(fx.ownerGfnBase, n);
      const borrowerGfns = range(fx.borrowerGfnBase, n);
      // Pages either side of the batch boundary, and the ends.
      const probes = [0, MAX_ADD_TO_PHYSMAP_BATCH - 1, MAX_ADD_TO_PHYSMAP_BATCH, n - 1];
      const view = await fx.hv.mapForeign(fx.owner, probes.map((i) => ownerGfns[i]));
      probes.forEach((i, k) => pattern('owner', i).copy(view.buffer, k * XEN_PAGE_SIZE));
      if (!borrows) {
        await rejects(a, fx.hv.addToPhysmapForeign({ borrower: fx.borrower, owner: fx.owner, ownerGfns, borrowerGfns }), 'EPERM', 'x86 domU borrower even with a target');
        // The x86 peer is dom0: a second dom0 view aliases the first.
        const second = await fx.hv.mapForeign(fx.owner, probes.map((i) => ownerGfns[i]));
        probes.forEach((i, k) => a.deepEqual(second.buffer.subarray(k * XEN_PAGE_SIZE, k * XEN_PAGE_SIZE + pattern('owner', i).length), pattern('owner', i)));
        second.unmap();
        view.unmap();
        return;
      }
      const progress: number[] = [];
      const t0 = Date.now();
      await fx.hv.addToPhysmapForeign({ borrower: fx.borrower, owner: fx.owner, ownerGfns, borrowerGfns, onProgress: (d) => progress.push(d) });
      log(`mapped ${n} pages in ${Date.now() - t0} ms, progress ${progress.join(', ')}`);
      a.deepEqual(progress, [MAX_ADD_TO_PHYSMAP_BATCH, n], 'one progress call per batch');
      for (const i of probes) {
        const want = pattern('owner', i);
        a.deepEqual(await fx.guestRead(fx.borrower, borrowerGfns[i], want.length), want, `the borrower reads the owner's page ${i}`);
        const back = pattern('borrower', i);
        await fx.guestWrite(fx.borrower, borrowerGfns[i], back);
      }
      probes.forEach((i, k) => a.deepEqual(view.buffer.subarray(k * XEN_PAGE_SIZE, k * XEN_PAGE_SIZE + pattern('borrower', i).length), pattern('borrower', i), `the owner's frame ${i} holds what the borrower wrote`));
      view.unmap();
    },
  },
  {
    name: 'an unpopulated owner frame fails the call (EINVAL) and undoes its other pages',
    async run(fx, a) {
      const borrows = await domUBorrows(fx);
      const { borrower } = small(fx, 1);
      const populated = fx.ownerGfnBase; // part of the large region
      const hole = fx.ownerGfnBase + fx.largePages + 1500;
      const e = await rejects(a, fx.hv.addToPhysmapForeign({
        borrower: fx.borrower, owner: fx.owner, ownerGfns: [populated, hole], borrowerGfns: [borrower[0], borrower[1]],
      }), borrows ? 'EINVAL' : 'EPERM', 'a hole in the owner');
      if (borrows) {
        a.deepEqual(e.pages?.map((p) => p.index), [1], 'only the hole is refused');
        await rejects(a, fx.hv.removeFromPhysmap(fx.borrower, [borrower[0]]), 'ENOENT', 'the good page was removed again');
      }
    },
  },
  {
    name: 'set_target is once per domain: a second one is EINVAL; unknown domains ESRCH',
    async run(fx, a) {
      const e = await rejects(a, fx.hv.setTarget(fx.borrower, fx.owner), 'EINVAL', 'second set_target');
      a.true(e.message.includes('already has a target'), 'the message states Xen\'s rule');
      await rejects(a, fx.hv.setTarget(fx.missingDomid, fx.owner), 'ESRCH', 'unknown domain');
      await rejects(a, fx.hv.setTarget(fx.owner, fx.missingDomid), 'ESRCH', 'unknown target');
    },
  },
  {
    name: 'remove_from_physmap through multicalls; a second remove is ENOENT per page',
    async run(fx, a) {
      const n = fx.largePages;
      const gfns = range(fx.borrowerGfnBase, n);
      if (!(await domUBorrows(fx))) {
        // Nothing could be mapped into a domU: every page is ENOENT.
        const e = await rejects(a, fx.hv.removeFromPhysmap(fx.borrower, gfns.subarray(0, 5)), 'ENOENT', 'x86: nothing mapped');
        a.is(e.pages?.length, 5);
        return;
      }
      const progress: number[] = [];
      await fx.hv.removeFromPhysmap(fx.borrower, gfns, { onProgress: (d) => progress.push(d) });
      a.is(progress[progress.length - 1], n, 'progress reaches the total');
      a.true(progress.length > 1, 'several multicalls');
      const e = await rejects(a, fx.hv.removeFromPhysmap(fx.borrower, gfns.subarray(0, 300)), 'ENOENT', 'second remove');
      a.is(e.pages?.length, 300, 'one ENOENT per page');
      await fx.hv.removeFromPhysmap(fx.borrower, gfns.subarray(0, 300), { missingOk: true });
    },
  },
  {
    name: 'event channels: alloc_unbound makes a port in the owner for the borrower; status reads it',
    async run(fx, a, log) {
      const hv = fx.hv;
      const p1 = await hv.evtchnAllocUnbound!(fx.owner, fx.borrower);
      const p2 = await hv.evtchnAllocUnbound!(fx.owner, fx.borrower);
      log(`ports ${p1} and ${p2} of d${fx.owner} for d${fx.borrower}`);
      a.true(p1 > 0 && p2 > 0 && p1 !== p2, 'two fresh ports (port 0 is reserved)');
      a.deepEqual(await hv.evtchnStatus!(fx.owner, p1), { state: 'unbound', remoteDom: fx.borrower });
      a.deepEqual(await hv.evtchnStatus!(fx.owner, p2), { state: 'unbound', remoteDom: fx.borrower });
      const bad = await rejects(a, hv.evtchnStatus!(fx.owner, 1 << 20), 'EINVAL', 'a port beyond the valid ones');
      a.is(bad.call, 'event_channel_op(status)');
      const gone = await rejects(a, hv.evtchnAllocUnbound!(fx.missingDomid, fx.borrower), 'ESRCH', 'alloc in a missing domain');
      a.deepEqual([gone.domid, gone.remoteDomid], [fx.missingDomid, fx.borrower]);
      await rejects(a, hv.evtchnStatus!(fx.missingDomid, 1), 'ESRCH', 'status in a missing domain');
      await rejects(a, hv.evtchnStatus!(fx.owner, -1), 'EINVAL', 'not a port: refused before any hypercall');
    },
  },
  {
    name: 'event channels: status of an interdomain port names its remote end',
    async run(fx, a, log) {
      const ip = await fx.interdomainPort();
      const s = await fx.hv.evtchnStatus!(fx.owner, ip.port);
      log(`d${fx.owner} port ${ip.port}: ${JSON.stringify(s)}`);
      a.is(s.state, 'interdomain');
      if (s.state !== 'interdomain') return;
      a.is(s.remoteDom, ip.remoteDom);
      if (ip.remotePort !== undefined) a.is(s.remotePort, ip.remotePort);
      else a.true(s.remotePort > 0, 'a remote port');
    },
  },
  {
    name: 'decrease_reservation gives the large region back',
    async run(fx, a) {
      const before = (await fx.hv.domainInfo(fx.owner))!.totPages;
      await fx.hv.decreaseReservation(fx.owner, range(fx.ownerGfnBase, fx.largePages));
      a.is((await fx.hv.domainInfo(fx.owner))!.totPages, before - fx.largePages);
    },
  },
  {
    // Last: the owner's ports stay used until it dies (dom0 cannot close them).
    name: 'event channels: alloc_unbound is ENOSPC once the owner has no free port',
    async run(fx, a, log) {
      let last = -1;
      let n = 0;
      for (;;) {
        try {
          last = await fx.hv.evtchnAllocUnbound!(fx.owner, fx.borrower);
          n++;
        } catch (e) {
          a.true(e instanceof HypercallError, String(e));
          a.is((e as HypercallError).code, 'ENOSPC', (e as Error).message);
          break;
        }
        if (n > 1 << 17) throw new Error('no ENOSPC after 2^17 ports');
      }
      log(`${n} more ports, up to ${last}, then ENOSPC`);
      a.true(n > 0 && last > 0, 'some were free');
      a.deepEqual(await fx.hv.evtchnStatus!(fx.owner, last), { state: 'unbound', remoteDom: fx.borrower });
    },
  },
];

export function defineBackendContract(label: string, makeBackend: () => Promise<ContractFixture>): BackendContract {
  return {
    label,
    checks: CHECKS,
    registerAva(test: TestFn): void {
      let fx: ContractFixture | undefined;
      let made: Error | undefined;
      test.before(async () => {
        try {
          fx = await makeBackend();
        } catch (e) {
          made = e as Error;
        }
      });
      test.after.always(async () => {
        await fx?.dispose();
      });
      for (const c of CHECKS) {
        test.serial(`${label}: ${c.name}`, async (t) => {
          if (!fx) throw made ?? new Error('no fixture');
          const a: Assert = {
            is: (x, y, m) => void t.is(x, y, m),
            true: (x, m) => void t.true(x, m),
            deepEqual: (x, y, m) => void t.deepEqual(x, y, m),
          };
          await c.run(fx, a, (s) => t.log(s));
        });
      }
    },
    async run(opts = {}): Promise<CheckResult[]> {
      const log = opts.log ?? ((s: string) => console.log(s));
      const a: Assert = {
        is: (x, y, m) => nodeAssert.equal(x, y, m),
        true: (x, m) => nodeAssert.ok(x, m),
        deepEqual: (x, y, m) => nodeAssert.deepEqual(x, y, m),
      };
      const fx = await makeBackend();
      const results: CheckResult[] = [];
      try {
        for (const c of CHECKS) {
          const t0 = Date.now();
          try {
            await c.run(fx, a, (s) => log(`    ${s}`));
            results.push({ name: c.name, ok: true, ms: Date.now() - t0 });
            log(`ok ${results.length} - ${label}: ${c.name}`);
          } catch (e) {
            results.push({ name: c.name, ok: false, ms: Date.now() - t0, error: (e as Error).message });
            log(`not ok ${results.length} - ${label}: ${c.name}\n    ${(e as Error).message}`);
          }
        }
      } finally {
        await fx.dispose();
      }
      return results;
    },
  };
}
