/**
 * Layouts: every structure the TypeScript writes or reads, and every ABI number it uses, checked
 * by the C compiler against Xen's public headers (Debian libxen-dev) for x86_64 and arm64; the
 * encoders' bytes compared with what C writes on x86_64; decoders round-trip.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as abi from '../../lib/hypervisor/abi';
import {
  LAYOUTS,
  readAddToPhysmapBatch,
  readDomctlHeader,
  readGetDomainInfo,
  readMaxMem,
  readMemoryReservation,
  readMulticallEntry,
  readRemoveFromPhysmap,
  readSetTarget,
  writeAddToPhysmapBatch,
  writeDomctlHeader,
  writeGetDomainInfo,
  writeMaxMem,
  writeMemoryReservation,
  writeMulticallEntry,
  writeRemoveFromPhysmap,
  writeSetTarget,
  XEN_ADD_TO_PHYSMAP_BATCH,
  XEN_DOMCTL,
  XEN_MEMORY_RESERVATION,
  XEN_REMOVE_FROM_PHYSMAP,
  MULTICALL_ENTRY,
  EVTCHN_ALLOC_UNBOUND,
  EVTCHN_STATUS,
  readEvtchnAllocUnbound,
  readEvtchnStatus,
  writeEvtchnAllocUnbound,
  writeEvtchnStatus,
  type StructLayout,
} from '../../lib/hypervisor/layout';
import { compile, PRELUDE, staticAsserts, xenHeaderRelease } from './c-check';

const SOURCE = [...PRELUDE, ...staticAsserts(), 'int xen_sshm_layout_ok;', ''].join('\n');

for (const [arch, compiler] of [['x86_64', 'gcc'], ['arm64', 'aarch64-linux-gnu-gcc']] as const) {
  test(`${arch}: ${compiler} accepts every size, offset and constant of the TypeScript tables`, (t) => {
    const r = compile(compiler, SOURCE, ['-fsyntax-only']);
    t.true(r.ok, `${compiler} rejected the layout checks:\n${r.stderr}`);
    t.is(r.stderr.includes('static assertion failed'), false);
    const asserts = SOURCE.split('\n').filter((l) => l.startsWith('_Static_assert')).length;
    t.true(asserts > 100, `${asserts} assertions`);
    fs.rmSync(r.dir, { recursive: true, force: true });
  });

  test(`${arch}: a wrong table entry is caught (test of the test)`, (t) => {
    // Move one field of add_to_physmap_batch by 8 bytes and shrink multicall_entry.
    const bad: ReadonlyArray<{ layout: StructLayout; wholeSize: boolean }> = LAYOUTS.map(({ layout, wholeSize }) => {
      if (layout === XEN_ADD_TO_PHYSMAP_BATCH) {
        return { wholeSize, layout: { ...layout, fields: { ...layout.fields, gpfns: { ...layout.fields.gpfns, offset: 24 } } } };
      }
      if (layout === MULTICALL_ENTRY) return { wholeSize, layout: { ...layout, size: 56 } };
      return { layout, wholeSize };
    });
    const r = compile(compiler, [...PRELUDE, ...staticAsserts(bad), ''].join('\n'), ['-fsyntax-only']);
    t.false(r.ok);
    t.regex(r.stderr, /offsetof\(struct xen_add_to_physmap_batch, gpfns\) == 24/);
    t.regex(r.stderr, /sizeof\(struct multicall_entry\) == 56/);
    fs.rmSync(r.dir, { recursive: true, force: true });
  });
}

test('the release table holds the headers\' XEN_DOMCTL_INTERFACE_VERSION (0x15 for 4.17)', (t) => {
  const rel = xenHeaderRelease();
  const header = fs.readFileSync('/usr/include/xen/domctl.h', 'utf8');
  const m = /#define XEN_DOMCTL_INTERFACE_VERSION\s+(0x[0-9a-fA-F]+)/.exec(header);
  t.truthy(m, 'domctl.h defines XEN_DOMCTL_INTERFACE_VERSION');
  t.is(abi.DOMCTL_INTERFACE_VERSIONS[`${rel.major}.${rel.minor}`], Number(m![1]));
  t.is(abi.DOMCTL_INTERFACE_VERSIONS['4.17'], 0x15);
  // Versions never go down from one release to the next.
  const values = Object.entries(abi.DOMCTL_INTERFACE_VERSIONS).sort(([a], [b]) => {
    const [am, an] = a.split('.').map(Number);
    const [bm, bn] = b.split('.').map(Number);
    return am - bm || an - bn;
  }).map(([, v]) => v);
  t.deepEqual(values, [...values].sort((a, b) => a - b));
});

// ---- the encoders' bytes against C's, on x86_64 --------------------------------------------------

const FILL_C = `
#include <stdio.h>
#include <string.h>
static void dump(const char *name, const void *p, size_t n) {
  const unsigned char *b = p; printf("%s ", name);
  for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
  printf("\\n");
}
int main(void) {
  struct xen_memory_reservation r; memset(&r, 0, sizeof r);
  set_xen_guest_handle(r.extent_start, (xen_pfn_t *)0x00007f5100001000ULL);
  r.nr_extents = 65536; r.extent_order = 0; r.mem_flags = 0x11; r.domid = 7;
  dump("reservation", &r, sizeof r);

  struct xen_add_to_physmap_batch b; memset(&b, 0, sizeof b);
  b.domid = 9; b.space = XENMAPSPACE_gmfn_foreign; b.size = 65535; b.u.foreign_domid = 7;
  set_xen_guest_handle(b.idxs, (xen_ulong_t *)0x00007f5100002020ULL);
  set_xen_guest_handle(b.gpfns, (xen_pfn_t *)0x00007f5100082018ULL);
  set_xen_guest_handle(b.errs, (int *)0x00007f5100102010ULL);
  dump("batch", &b, sizeof b);

  struct xen_remove_from_physmap x; memset(&x, 0, sizeof x);
  x.domid = 9; x.gpfn = 0x123456789aULL;
  dump("remove", &x, sizeof x);

  struct multicall_entry e; memset(&e, 0, sizeof e);
  e.op = __HYPERVISOR_memory_op; e.args[0] = XENMEM_remove_from_physmap; e.args[1] = 0x00007f5100040000ULL;
  dump("multicall", &e, sizeof e);

  struct xen_domctl d; memset(&d, 0, sizeof d);
  d.cmd = XEN_DOMCTL_set_target; d.interface_version = XEN_DOMCTL_INTERFACE_VERSION; d.domain = 9;
  d.u.set_target.target = 7;
  dump("set_target", &d, sizeof d);

  struct xen_domctl m; memset(&m, 0, sizeof m);
  m.cmd = XEN_DOMCTL_max_mem; m.interface_version = XEN_DOMCTL_INTERFACE_VERSION; m.domain = 7;
  m.u.max_mem.max_memkb = 0xfedcba9876543210ULL;
  dump("max_mem", &m, sizeof m);
  m.u.max_mem.max_memkb = 401408; /* 98 MiB: a number, written exactly */
  dump("max_mem_small", &m, sizeof m);

  struct xen_domctl g; memset(&g, 0, sizeof g);
  g.cmd = XEN_DOMCTL_getdomaininfo; g.interface_version = XEN_DOMCTL_INTERFACE_VERSION; g.domain = 7;
  g.u.getdomaininfo.domain = 7; g.u.getdomaininfo.flags = XEN_DOMINF_hvm_guest | XEN_DOMINF_dying;
  g.u.getdomaininfo.tot_pages = 33000; g.u.getdomaininfo.max_pages = 100000;
  g.u.getdomaininfo.outstanding_pages = 3; g.u.getdomaininfo.shr_pages = 4; g.u.getdomaininfo.paged_pages = 5;
  g.u.getdomaininfo.shared_info_frame = 0x40000; g.u.getdomaininfo.cpu_time = 123456789012ULL;
  g.u.getdomaininfo.nr_online_vcpus = 2; g.u.getdomaininfo.max_vcpu_id = 1;
  dump("getdomaininfo", &g, sizeof g);

  struct evtchn_alloc_unbound au; memset(&au, 0, sizeof au);
  au.dom = 5; au.remote_dom = 7; au.port = 0x12345;
  dump("alloc_unbound", &au, sizeof au);

  struct evtchn_status st; memset(&st, 0, sizeof st);
  st.dom = 5; st.port = 33; st.status = EVTCHNSTAT_interdomain; st.vcpu = 1;
  st.u.interdomain.dom = 7; st.u.interdomain.port = 0x10002;
  dump("status_interdomain", &st, sizeof st);
  memset(&st, 0, sizeof st);
  st.dom = 5; st.port = 34; st.status = EVTCHNSTAT_unbound; st.u.unbound.dom = 9;
  dump("status_unbound", &st, sizeof st);
  return 0;
}
`;

function cBytes(t: { log(s: string): void }): Map<string, Buffer> {
  const src = [...PRELUDE, FILL_C].join('\n');
  const r = compile('gcc', src, ['-o', 'fill']);
  let run;
  try {
    if (!r.ok) throw new Error(`gcc failed:\n${r.stderr}`);
    run = spawnSync(path.join(r.dir, 'fill'), { encoding: 'utf8' });
  } finally {
    fs.rmSync(r.dir, { recursive: true, force: true });
  }
  if (run.status !== 0) throw new Error(`the fill program failed: ${run.stderr}`);
  t.log(`C wrote ${run.stdout.trim().split('\n').length} structures`);
  return new Map(run.stdout.trim().split('\n').map((l) => {
    const [name, hex] = l.split(' ');
    return [name, Buffer.from(hex, 'hex')] as [string, Buffer];
  }));
}

const view = (n: number): DataView => new DataView(new ArrayBuffer(n));
const bytes = (v: DataView): Buffer => Buffer.from(v.buffer);
const dv = (b: Buffer): DataView => new DataView(b.buffer, b.byteOffset, b.length);

test('x86_64: the encoders write the same bytes as C, the decoders read C\'s bytes', (t) => {
  const c = cBytes(t);
  const ver = abi.DOMCTL_INTERFACE_VERSIONS[`${xenHeaderRelease().major}.${xenHeaderRelease().minor}`];

  let v = view(XEN_MEMORY_RESERVATION.size);
  const r = { extentStart: 0x7f5100001000n, nrExtents: 65536, extentOrder: 0, memFlags: 0x11, domid: 7 };
  writeMemoryReservation(v, 0, r);
  t.deepEqual(bytes(v), c.get('reservation'));
  t.deepEqual(readMemoryReservation(dv(c.get('reservation')!), 0), r);

  v = view(XEN_ADD_TO_PHYSMAP_BATCH.size);
  const b = { domid: 9, space: 4, size: 65535, foreignDomid: 7, idxs: 0x7f5100002020n, gpfns: 0x7f5100082018n, errs: 0x7f5100102010n };
  writeAddToPhysmapBatch(v, 0, b);
  t.deepEqual(bytes(v), c.get('batch'));
  t.deepEqual(readAddToPhysmapBatch(v, 0), b);
  t.throws(() => writeAddToPhysmapBatch(v, 0, { ...b, size: 65536 }), { instanceOf: RangeError });

  v = view(XEN_REMOVE_FROM_PHYSMAP.size);
  writeRemoveFromPhysmap(v, 0, { domid: 9, gpfn: 0x123456789a });
  t.deepEqual(bytes(v), c.get('remove'));
  t.deepEqual(readRemoveFromPhysmap(v, 0), { domid: 9, gpfn: 0x123456789a });

  v = view(MULTICALL_ENTRY.size);
  writeMulticallEntry(v, 0, { op: abi.Hypercall.memory_op, args: [abi.XenMem.remove_from_physmap, 0x7f5100040000n] });
  t.deepEqual(bytes(v), c.get('multicall'));
  const e = readMulticallEntry(v, 0);
  t.is(e.op, 12);
  t.is(e.args[1], 0x7f5100040000n);

  v = view(XEN_DOMCTL.size);
  writeDomctlHeader(v, 0, { cmd: abi.DomctlCmd.set_target, interfaceVersion: ver, domain: 9 });
  writeSetTarget(v, 0, 7);
  t.deepEqual(bytes(v), c.get('set_target'));
  t.deepEqual(readDomctlHeader(v, 0), { cmd: 46, interfaceVersion: ver, domain: 9 });
  t.is(readSetTarget(v, 0), 7);

  // max_mem: a full uint64_t (bigint) and a plain number give C's bytes.
  v = view(XEN_DOMCTL.size);
  writeDomctlHeader(v, 0, { cmd: abi.DomctlCmd.max_mem, interfaceVersion: ver, domain: 7 });
  writeMaxMem(v, 0, 0xfedcba9876543210n);
  t.deepEqual(bytes(v), c.get('max_mem'));
  t.is(readMaxMem(dv(c.get('max_mem')!), 0), 0xfedcba9876543210n);
  writeMaxMem(v, 0, 401408);
  t.deepEqual(bytes(v), c.get('max_mem_small'));
  t.is(readMaxMem(v, 0), 401408n);
  t.throws(() => writeMaxMem(v, 0, 2n ** 64n), { instanceOf: RangeError });
  t.throws(() => writeMaxMem(v, 0, 2 ** 53), { instanceOf: RangeError });
  t.throws(() => writeMaxMem(v, 0, -1), { instanceOf: RangeError });

  const g = dv(c.get('getdomaininfo')!);
  const info = readGetDomainInfo(g, 0);
  t.deepEqual(info, {
    domain: 7, flags: abi.DomInfFlag.hvm_guest | abi.DomInfFlag.dying, totPages: 33000, maxPages: 100000,
    outstandingPages: 3, shrPages: 4, pagedPages: 5, sharedInfoFrame: 0x40000, cpuTime: 123456789012n,
    nrOnlineVcpus: 2, maxVcpuId: 1,
  });
  // The sim writes getdomaininfo with writeGetDomainInfo: the same bytes as C for the prefix.
  v = view(XEN_DOMCTL.size);
  writeDomctlHeader(v, 0, { cmd: abi.DomctlCmd.getdomaininfo, interfaceVersion: ver, domain: 7 });
  writeGetDomainInfo(v, 0, info);
  t.deepEqual(bytes(v), c.get('getdomaininfo'));

  // Event channels: alloc_unbound, and status with either member of its union.
  v = view(EVTCHN_ALLOC_UNBOUND.size);
  writeEvtchnAllocUnbound(v, 0, { dom: 5, remoteDom: 7, port: 0x12345 });
  t.deepEqual(bytes(v), c.get('alloc_unbound'));
  t.deepEqual(readEvtchnAllocUnbound(v, 0), { dom: 5, remoteDom: 7, port: 0x12345 });
  v = view(EVTCHN_STATUS.size);
  const inter = { dom: 5, port: 33, status: abi.EvtchnStat.interdomain, vcpu: 1, remoteDom: 7, remotePort: 0x10002 };
  writeEvtchnStatus(v, 0, inter);
  t.deepEqual(bytes(v), c.get('status_interdomain'));
  t.deepEqual(readEvtchnStatus(dv(c.get('status_interdomain')!), 0), inter);
  const unbound = readEvtchnStatus(dv(c.get('status_unbound')!), 0);
  t.deepEqual([unbound.status, unbound.remoteDom, unbound.remotePort], [abi.EvtchnStat.unbound, 9, 0], 'u.unbound.dom is read where u.interdomain.dom is');
});
