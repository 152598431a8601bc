/**
 * The release rules (lib/hypervisor/releases.ts) held to Xen's source, release by release, and
 * the sim modelling each one: the table below is what xen-project/xen says at each RELEASE tag
 * (read with `git show RELEASE-4.x.0:<file>`; the lines are cited in releases.ts too), and every
 * row is played on the sim at raw hypercall level, through xen.ts, and through borrowerSupport.
 */
import test from 'ava';
import * as os from 'node:os';
import {
  ARM_FOREIGN_SELF_EPERM,
  GETDOMAININFO_EXACT,
  HypercallError,
  pointRelease,
  rulesFor,
  SET_TARGET_HVM_FIRST,
  SimHypervisor,
  SIM_RELEASES,
  X86_TRANSLATED_FOREIGN_MAPS,
  type SimRelease,
} from '../../lib/hypervisor';

import { DOMCTL_INTERFACE_VERSIONS, Hypercall, XenMapSpace, XenMem } from '../../lib/hypervisor/abi';
import { writeAddToPhysmapBatch } from '../../lib/hypervisor/layout';
import { SimStore } from '../../lib/hypervisor/sim/store';
import { SimTransport } from '../../lib/hypervisor/sim/transport';

const E = os.constants.errno;

/**
 * x86: who may receive foreign frames, per release: arch_acquire_resource_check(), called by
 * p2m_add_foreign() (`if ( !arch_acquire_resource_check(tdom) ) return -EPERM;`).
 */
const X86_BORROWER_SOURCE: ReadonlyArray<{
  release: SimRelease;
  file: string;
  line: number;
  /** The condition at that line: who may receive foreign frames. */
  condition: string;
  caller: string;
  domUBorrows: boolean;
}> = [
  { release: '4.17', file: 'xen/arch/x86/include/asm/p2m.h', line: 411, condition: '!paging_mode_translate(d) || is_hardware_domain(d)', caller: 'xen/arch/x86/mm/p2m.c:2351', domUBorrows: false },
  { release: '4.18', file: 'xen/arch/x86/include/asm/p2m.h', line: 399, condition: '!paging_mode_translate(d) || is_hardware_domain(d)', caller: 'xen/arch/x86/mm/p2m.c:2331', domUBorrows: false },
  // 845a60b63b: "xen/x86: remove foreign mappings from the p2m on teardown".
  { release: '4.19', file: 'xen/arch/x86/mm/p2m-basic.c', line: 223, condition: 'is_pv_domain(d) || (altp2m disabled && !nestedhvm_enabled(d))', caller: 'xen/arch/x86/mm/p2m.c:1865', domUBorrows: true },
  { release: '4.20', file: 'xen/arch/x86/mm/p2m-basic.c', line: 224, condition: 'is_pv_domain(d) || (altp2m disabled && !nestedhvm_enabled(d))', caller: 'xen/arch/x86/mm/p2m.c:1867', domUBorrows: true },
  { release: '4.21', file: 'xen/arch/x86/mm/p2m-basic.c', line: 224, condition: 'is_pv_domain(d) || (altp2m disabled && !nestedhvm_enabled(d))', caller: 'xen/arch/x86/mm/p2m.c:1897', domUBorrows: true },
  { release: '4.22', file: 'xen/arch/x86/mm/p2m-basic.c', line: 224, condition: 'is_pv_domain(d) || (altp2m disabled && !nestedhvm_enabled(d))', caller: 'xen/arch/x86/mm/p2m.c:1912', domUBorrows: true },
];

/** XEN_DOMCTL_INTERFACE_VERSION in xen/include/public/domctl.h at each RELEASE-x.y.0 tag. */
const DOMCTL_VERSION_SOURCE: Readonly<Record<SimRelease, number>> = {
  '4.17': 0x15, '4.18': 0x16, '4.19': 0x17, '4.20': 0x17, '4.21': 0x17, '4.22': 0x18,
};

/** One raw add_to_physmap_batch(gmfn_foreign) of one page: the call's rc and the page's errno. */
function rawMap(t: SimTransport, borrower: number, owner: number, idx: number, gpfn: number): [number, number] {
  const b = t.allocBuffer(64);
  b.view.setBigUint64(32, BigInt(idx), true);
  b.view.setBigUint64(40, BigInt(gpfn), true);
  b.view.setInt32(48, 0x7fffffff, true);
  writeAddToPhysmapBatch(b.view, 0, {
    domid: borrower, space: XenMapSpace.gmfn_foreign, size: 1, foreignDomid: owner,
    idxs: b.address + 32n, gpfns: b.address + 40n, errs: b.address + 48n,
  });
  const rc = t.hypercall(Hypercall.memory_op, [XenMem.add_to_physmap_batch, b.address]);
  const err = b.view.getInt32(48, true);
  t.freeBuffer(b);
  return [rc, err];
}

test('the table covers every release the sim models, and the rule\'s boundary is 845a60b63b\'s release', (t) => {
  t.deepEqual(X86_BORROWER_SOURCE.map((r) => r.release), [...SIM_RELEASES]);
  t.is(X86_TRANSLATED_FOREIGN_MAPS.commit, '845a60b63b');
  t.is(X86_TRANSLATED_FOREIGN_MAPS.since, '4.19');
  for (const row of X86_BORROWER_SOURCE) {
    const [major, minor] = row.release.split('.').map(Number);
    t.is(rulesFor('x86', { major, minor }).translatedDomUBorrowers, row.domUBorrows, `${row.release}: ${row.file}:${row.line} ${row.condition}`);
    t.true(rulesFor('arm', { major, minor }).translatedDomUBorrowers, `${row.release}: Arm guests always may`);
  }
});

for (const row of X86_BORROWER_SOURCE) {
  test(`x86 Xen ${row.release}: an HVM/PVH domU with a target ${row.domUBorrows ? 'receives' : 'is refused'} foreign frames (${row.file}:${row.line})`, async (t) => {
    const [major, minor] = row.release.split('.').map(Number);
    // Raw: Xen's own answer, per page.
    const store = new SimStore(undefined, { arch: 'x86', explicitArch: true, xen: { major, minor, extraversion: '.0' }, domctlInterfaceVersion: DOMCTL_VERSION_SOURCE[row.release] });
    const x = new SimTransport(store);
    await x.exclusive(() => {
      const h = x.current();
      const owner = h.createDomain({ domid: 1, maxPages: 16 });
      const domU = h.createDomain({ domid: 2, maxPages: 16 });
      const pv = h.createDomain({ domid: 3, maxPages: 16, type: 'pv' });
      h.populate(h.domains.get(owner)!, 0x100);
      t.deepEqual(rawMap(x, domU, owner, 0x100, 0x200), [0, -E.EPERM], 'without a target: the XSM check refuses it on every release');
      h.setTarget(domU, owner);
      t.deepEqual(rawMap(x, domU, owner, 0x100, 0x200), [0, row.domUBorrows ? 0 : -E.EPERM], `with a target: ${row.condition}`);
      t.deepEqual(rawMap(x, pv, owner, 0x100, 0x200), [-E.EACCES, 0x7fffffff], 'a PV borrower: not translated, refused for the call');
    });
    store.close();

    // Through the Hypervisor: borrowerSupport says so, and the refusal names the release.
    const hv = new SimHypervisor({ arch: 'x86', release: row.release });
    const owner = await hv.createDomain({ maxPages: 16 });
    const domU = await hv.createDomain({ maxPages: 16 });
    const pv = await hv.createDomain({ maxPages: 16, type: 'pv' });
    await hv.populatePhysmap(owner, [0x100]);
    await hv.setTarget(domU, owner);
    const s = await hv.borrowerSupport(domU);
    t.is(s.supported, row.domUBorrows);
    t.is(s.xenVersion, `${row.release}.0`);
    t.deepEqual(await hv.borrowerSupport(pv), { supported: false, borrower: pv, arch: 'x86', xenVersion: `${row.release}.0`, reason: 'borrower-pv', rule: (await hv.borrowerSupport(pv)).rule });
    if (row.domUBorrows) {
      await hv.addToPhysmapForeign({ borrower: domU, owner, ownerGfns: [0x100], borrowerGfns: [0x200] });
      t.is((await hv.physmapEntry(domU, 0x200)).kind, 'foreign');
    } else {
      t.false(s.supported);
      if (!s.supported) t.deepEqual([s.reason, s.allowedFrom], ['borrower-release', '4.19']);
      const e = await t.throwsAsync(hv.addToPhysmapForeign({ borrower: domU, owner, ownerGfns: [0x100], borrowerGfns: [0x200] }), { instanceOf: HypercallError });
      t.deepEqual([e.code, e.reason, e.xenVersion, e.allowedFrom, e.remoteDomid], ['EPERM', 'borrower-release', `${row.release}.0`, '4.19', owner]);
      t.regex(e.message, new RegExp(`Xen ${row.release}\\.0 on x86 .* from Xen 4\\.19 \\(commit 845a60b63b\\)`));
      t.is((await hv.physmapEntry(domU, 0x200)).kind, 'none', 'refused before any hypercall');
    }
    await hv.close();
  });
}

test('the domctl interface version of each release, as domctl.h defines it, is what the sim accepts and xen.ts finds', async (t) => {
  for (const release of SIM_RELEASES) {
    t.is(DOMCTL_INTERFACE_VERSIONS[release], DOMCTL_VERSION_SOURCE[release], release);
    const hv = new SimHypervisor({ release });
    t.is(await hv.domctlInterfaceVersion(), DOMCTL_VERSION_SOURCE[release], release);
    t.is((await hv.xenVersion()).version, `${release}.0`);
    await hv.close();
  }
});

test('getdomaininfo of a missing domain: the next domain up until 4.17, ESRCH from 4.18 (31c6554974); null either way', async (t) => {
  t.deepEqual([GETDOMAININFO_EXACT.since, GETDOMAININFO_EXACT.commit], ['4.18', '31c6554974']);
  for (const release of SIM_RELEASES) {
    const [major, minor] = release.split('.').map(Number);
    const store = new SimStore(undefined, { arch: 'arm', explicitArch: true, xen: { major, minor, extraversion: '.0' }, domctlInterfaceVersion: DOMCTL_VERSION_SOURCE[release] });
    const x = new SimTransport(store);
    await x.exclusive(() => {
      const h = x.current();
      h.createDomain({ domid: 7, maxPages: 4 });
      const r = h.getDomainInfo(5);
      if (release === '4.17') t.is(typeof r === 'number' ? r : r.domid, 7, '4.17: the next domain up');
      else t.is(r, -E.ESRCH, `${release}: ESRCH`);
    });
    store.close();
    const hv = new SimHypervisor({ release });
    await hv.createDomain({ domid: 7, maxPages: 4 });
    t.is(await hv.domainInfo(5), null, release);
    await hv.close();
  }
});

test('set_target: a second target is EINVAL before the HVM check until 4.21, after it from 4.22 (4a93d1fb4f); x86 targets must be HVM', async (t) => {
  t.deepEqual([SET_TARGET_HVM_FIRST.since, SET_TARGET_HVM_FIRST.commit], ['4.22', '4a93d1fb4f']);
  for (const release of SIM_RELEASES) {
    const hv = new SimHypervisor({ arch: 'x86', release });
    const a = await hv.createDomain({ maxPages: 4 });
    const b = await hv.createDomain({ maxPages: 4 });
    const pv = await hv.createDomain({ maxPages: 4, type: 'pv' });
    const self = await t.throwsAsync(hv.setTarget(a, a), { instanceOf: HypercallError });
    t.is(self.code, 'EINVAL', `${release}: itself`);
    const toPv = await t.throwsAsync(hv.setTarget(a, pv), { instanceOf: HypercallError });
    t.is(toPv.code, 'EOPNOTSUPP', `${release}: a PV target`);
    t.regex(toPv.message, /is not an HVM\/PVH domain/);
    await hv.setTarget(a, b);
    // A second target that is also PV: which refusal comes first depends on the release.
    const second = await t.throwsAsync(hv.setTarget(a, pv), { instanceOf: HypercallError });
    t.is(second.code, release === '4.22' ? 'EOPNOTSUPP' : 'EINVAL', `${release}: second target, PV`);
    const again = await t.throwsAsync(hv.setTarget(a, b), { instanceOf: HypercallError });
    t.is(again.code, 'EINVAL', `${release}: second target, HVM`);
    t.regex(again.message, /already has a target/);
    await hv.close();
  }
});

test('a release the sim does not model is refused', (t) => {
  const e = t.throws(() => new SimHypervisor({ release: '4.16' as SimRelease }), { instanceOf: HypercallError });
  t.is(e.code, 'EINVAL');
  t.regex(e.message, /4\.17, 4\.18, 4\.19, 4\.20, 4\.21, 4\.22/);
});

/**
 * Arm: dom0 naming itself as the foreign domain, per point release, as xen/arch/arm/mm.c's
 * XENMAPSPACE_gmfn_foreign case reads at each tag (`git show RELEASE-x.y.z:xen/arch/arm/mm.c`):
 * get_pg_owner() (ESRCH for the caller) or, with f795a9c491's backports,
 * rcu_lock_remote_domain_by_id() (EPERM for the caller). 4.20.5-pre is what Debian 13's
 * 4.20.4+63 reports; on it the real-Xen tier's contract sees EPERM.
 */
const ARM_SELF_MAP_SOURCE: ReadonlyArray<{ version: string; lookup: string; errno: 'ESRCH' | 'EPERM' }> = [
  { version: '4.17.0', lookup: 'get_pg_owner (mm.c:1358)', errno: 'ESRCH' },
  { version: '4.17.7', lookup: 'get_pg_owner', errno: 'ESRCH' },
  { version: '4.18.6', lookup: 'get_pg_owner', errno: 'ESRCH' },
  { version: '4.19.6', lookup: 'get_pg_owner', errno: 'ESRCH' },
  { version: '4.20.0', lookup: 'get_pg_owner (mm.c:139)', errno: 'ESRCH' },
  { version: '4.20.3', lookup: 'get_pg_owner', errno: 'ESRCH' },
  { version: '4.20.4', lookup: 'rcu_lock_remote_domain_by_id (35b75699a1, mm.c:141)', errno: 'EPERM' },
  { version: '4.20.5-pre', lookup: 'rcu_lock_remote_domain_by_id', errno: 'EPERM' },
  { version: '4.21.0', lookup: 'get_pg_owner', errno: 'ESRCH' },
  { version: '4.21.1', lookup: 'get_pg_owner', errno: 'ESRCH' },
  { version: '4.21.2', lookup: 'rcu_lock_remote_domain_by_id (ade0c35777)', errno: 'EPERM' },
  { version: '4.22.0', lookup: 'rcu_lock_remote_domain_by_id (c8e99384ac)', errno: 'EPERM' },
];

test('point releases: ".4" is 4, ".5-pre" and ".5-rc1" hold 4, anything else counts as 0', (t) => {
  t.deepEqual(['.4', '.5-pre', '.5-rc1', '.0', '', '-rc', undefined, '.0-pre'].map(pointRelease), [4, 4, 4, 0, 0, 0, 0, 0]);
});

for (const row of ARM_SELF_MAP_SOURCE) {
  test(`Arm Xen ${row.version}: dom0 mapping its own frame is ${row.errno} (${row.lookup}); x86 keeps its own rule`, async (t) => {
    const m = /^(\d+)\.(\d+)(.*)$/.exec(row.version)!;
    const [major, minor, extraversion] = [Number(m[1]), Number(m[2]), m[3]];
    t.is(rulesFor('arm', { major, minor, extraversion }).foreignSelfEperm, row.errno === 'EPERM');
    t.false(rulesFor('x86', { major, minor, extraversion }).foreignSelfEperm, 'an Arm rule');
    const release = `${major}.${minor}` as SimRelease;
    const hv = new SimHypervisor({ arch: 'arm', release, xenVersion: { major, minor, extraversion } });
    t.is((await hv.xenVersion()).version, row.version);
    const e = await t.throwsAsync(hv.mapForeign(0, [0]), { instanceOf: HypercallError });
    t.is(e.code, row.errno, e.message);
    // An unknown domain stays ESRCH either way.
    const gone = await t.throwsAsync(hv.mapForeign(0x7000, [0]), { instanceOf: HypercallError });
    t.is(gone.code, 'ESRCH');
    await hv.close();
  });
}

test('ARM_FOREIGN_SELF_EPERM names the master commit and each backport', (t) => {
  t.deepEqual([ARM_FOREIGN_SELF_EPERM.commit, ARM_FOREIGN_SELF_EPERM.since], ['f795a9c491', '4.23']);
  t.deepEqual(ARM_FOREIGN_SELF_EPERM.backports, {
    '4.20': { point: 4, commit: '35b75699a1' }, '4.21': { point: 2, commit: 'ade0c35777' }, '4.22': { point: 0, commit: 'c8e99384ac' },
  });
});
