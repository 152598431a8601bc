/**
 * XEN_SYSCTL_getdomaininfolist on the simulated host: Xen's rules at the hypercall level (raw
 * structures through the sim transport: the interface version, whole entries in domid order,
 * dying domains listed, EFAULT copying nothing back), the interface version probe, and the
 * manager's liveness question (domainsAlive): one listing for any number of domains, getdomaininfo
 * per domain where the listing is refused.
 */
import test from 'ava';
import * as os from 'node:os';
import { gfnRange, HypercallError, intercept, SimHypervisor } from '../../lib/hypervisor';
import { GETDOMAININFO_SIZES, Hypercall, SYSCTL_INTERFACE_VERSIONS, SysctlCmd } from '../../lib/hypervisor/abi';
import { readDomainInfoEntry, readGetDomainInfoList, writeGetDomainInfoList, writeSysctlHeader } from '../../lib/hypervisor/layout';
import { SimStore } from '../../lib/hypervisor/sim/store';
import { SimTransport } from '../../lib/hypervisor/sim/transport';
import { domainsAlive } from '../../lib/manager/domains';

const E = os.constants.errno;

function rawSim(arch: 'arm' | 'x86', minor = 17): { t: SimTransport; store: SimStore } {
  const store = new SimStore(undefined, { arch, explicitArch: true, xen: { major: 4, minor, extraversion: '.0' }, domctlInterfaceVersion: 0x15 });
  return { t: new SimTransport(store), store };
}

/** One raw getdomaininfolist; `room` entries of buffer (fewer than max: the EFAULT case). */
function rawList(t: SimTransport, version: number, first: number, max: number, stride: number, room = max): { rc: number; num: number; domids: number[] } {
  const b = t.allocBuffer(4096);
  const entries = t.allocBuffer(Math.max(1, max * stride));
  // The array ends `room` entries before the end of its buffer (a guard page follows it).
  const at = entries.size - room * stride;
  b.view.setUint32(0, 0xdeadbeef, true);
  writeSysctlHeader(b.view, 0, { cmd: SysctlCmd.getdomaininfolist, interfaceVersion: version });
  writeGetDomainInfoList(b.view, 0, { firstDomain: first, maxDomains: max, buffer: entries.address + BigInt(at), numDomains: 0xffff });
  const rc = t.hypercall(Hypercall.sysctl, [b.address]);
  const num = readGetDomainInfoList(b.view, 0).numDomains;
  const domids = rc === 0 ? Array.from({ length: num }, (_, i) => readDomainInfoEntry(entries.view, at + i * stride).domain) : [];
  t.freeBuffer(b);
  t.freeBuffer(entries);
  return { rc, num, domids };
}

for (const arch of ['arm', 'x86'] as const) {
  test(`${arch}: getdomaininfolist follows do_sysctl: interface version, domid order, dying domains, max, EFAULT`, async (t) => {
    const { t: x, store } = rawSim(arch);
    const version = SYSCTL_INTERFACE_VERSIONS['4.17'];
    const stride = GETDOMAININFO_SIZES[arch]['4.17'];
    await x.exclusive(() => {
      const h = x.current();
      // Made out of order: the listing is by domid, not by creation.
      for (const d of [9, 3, 5]) h.createDomain({ domid: d, maxPages: 100 });
      t.is(rawList(x, version - 1, 0, 10, stride).rc, -E.EACCES, 'another interface version');
      t.deepEqual(rawList(x, version, 0, 10, stride), { rc: 0, num: 4, domids: [0, 3, 5, 9] });
      t.deepEqual(rawList(x, version, 4, 10, stride).domids, [5, 9], 'from a missing id: the domains above it');
      t.deepEqual(rawList(x, version, 3, 2, stride).domids, [3, 5], 'max_domains');
      t.deepEqual(rawList(x, version, 10, 10, stride), { rc: 0, num: 0, domids: [] }, 'none above');
      // A buffer of two entries for three: -EFAULT, num_domains not copied back (copyback -1).
      t.deepEqual(rawList(x, version, 0, 3, stride, 2), { rc: -E.EFAULT, num: 0xffff, domids: [] });
      // A domain destroyed while another maps its page stays, dying (a zombie), and is listed.
      const owner = h.domains.get(5)!;
      h.populate(owner, 0x100);
      h.setTarget(3, 5);
      t.is(h.addForeignPage(h.domains.get(3)!, owner, 0x100, 0x200), 0);
      h.destroyDomain(5);
      t.deepEqual(rawList(x, version, 5, 1, stride).domids, [5], 'the zombie is listed');
    });
    const hv = new SimHypervisor({ arch });
    const d = await hv.createDomain({ maxPages: 100 });
    const listed = await hv.domainInfoList(0, 10);
    t.deepEqual(listed.map((i) => i.domid), [0, d]);
    t.deepEqual(listed[1], await hv.domainInfo(d), 'each entry is getdomaininfo of the domain');
    await hv.close();
    store.close();
  });
}

test('a release whose struct xen_domctl_getdomaininfo size is not in the table: EOPNOTSUPP, no listing', async (t) => {
  // Xen 4.16 in the sim: its sysctl version is known (0x14), the size of its getdomaininfo is
  // not in the table: the listing is refused before any hypercall of its own.
  const hv = new SimHypervisor({ arch: 'arm', xenVersion: { major: 4, minor: 16 }, domctlInterfaceVersion: 0x14 });
  const e = await t.throwsAsync(hv.domainInfoList(0, 10));
  t.true(e instanceof HypercallError);
  t.is((e as HypercallError).code, 'EOPNOTSUPP');
  t.regex(e!.message, /GETDOMAININFO_SIZES/);
  await hv.close();
});

test('domainsAlive: one getdomaininfolist for the span of the ids asked, dying and missing domains not alive', async (t) => {
  const sim = new SimHypervisor({ arch: 'arm' });
  const calls: string[] = [];
  const hv = intercept(sim, { before: (c) => void calls.push(c.label) });
  const ids: number[] = [];
  for (let i = 0; i < 40; i++) ids.push(await sim.createDomain({ maxPages: 200 }));
  // A zombie: destroyed while its page is mapped in another domain.
  const [owner, borrower] = [ids[10], ids[11]];
  await sim.populatePhysmap(owner, gfnRange(0x100, 1));
  await sim.setTarget(borrower, owner);
  await sim.addToPhysmapForeign({ owner, borrower, ownerGfns: gfnRange(0x100, 1), borrowerGfns: gfnRange(0x900, 1) });
  await sim.destroyDomain(owner);
  await sim.destroyDomain(ids[20]);
  t.true((await sim.domainInfo(owner))?.dying, 'the owner lingers, dying');
  const asked = [...ids, 5000];
  const alive = await domainsAlive(hv, asked);
  t.deepEqual(calls, [`domainInfoList from d${ids[0]}, at most ${5000 - ids[0] + 1}`]);
  for (const d of asked) t.is(alive.get(d), d !== owner && d !== ids[20] && d !== 5000, `d${d}`);
  calls.length = 0;
  t.deepEqual([...(await domainsAlive(hv, [ids[3]])).entries()], [[ids[3], true]]);
  t.deepEqual(calls, [`domainInfoList from d${ids[3]}, at most 1`], 'one id: a listing of one');
  await sim.close();
});

test('domainsAlive: where Xen refuses the listing, getdomaininfo per domain gives the same answers', async (t) => {
  const sim = new SimHypervisor({ arch: 'arm', xenVersion: { major: 4, minor: 16 }, domctlInterfaceVersion: 0x14 });
  const calls: string[] = [];
  const hv = intercept(sim, { before: (c) => void calls.push(c.method) });
  const a = await sim.createDomain({ maxPages: 100 });
  const b = await sim.createDomain({ maxPages: 100 });
  await sim.destroyDomain(b);
  const alive = await domainsAlive(hv, [a, b, 77]);
  t.deepEqual([...alive.entries()].sort((x, y) => x[0] - y[0]), [[a, true], [b, false], [77, false]]);
  t.deepEqual(calls.sort(), ['domainInfo', 'domainInfo', 'domainInfo', 'domainInfoList']);
  await sim.close();
});
