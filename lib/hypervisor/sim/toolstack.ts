/**
 * What a toolstack does on the simulated host (xl create, destroy, mem-max): not hypercalls of
 * xen-sshm, but the sandbox and the tests need domains to exist and to die as Xen makes them.
 */
import * as os from 'node:os';
import { DOMID_FIRST_RESERVED, PAGE_SIZE } from '../../vocabulary';
import { HypercallError } from '../errors';
import { closeAll, DOMU_MAX_PORT } from './evtchn';
import { SimDomain, type SimDomainSpec, type SimHost } from './host';

const E = os.constants.errno;

function mustGet(h: SimHost, domid: number, call: string): SimDomain {
  const d = h.domains.get(domid);
  if (!d) throw new HypercallError({ call, errno: E.ESRCH, domid, message: `d${domid} does not exist` });
  return d;
}

export function createDomain(h: SimHost, spec: SimDomainSpec): number {
  const call = 'sim(createdomain)';
  let domid = spec.domid;
  if (domid === undefined) {
    domid = 1;
    while (h.domains.has(domid)) domid++;
  }
  if (!Number.isInteger(domid) || domid < 1 || domid >= DOMID_FIRST_RESERVED) {
    throw new HypercallError({ call, errno: E.EINVAL, message: `${domid} is not a domU id (1..${DOMID_FIRST_RESERVED - 1})` });
  }
  if (h.domains.has(domid)) {
    throw new HypercallError({ call, errno: E.EEXIST, domid, message: `d${domid} exists already${h.domains.get(domid)!.dying ? ' (a dying domain, kept by pages still mapped elsewhere)' : ''}` });
  }
  const extra = spec.extraPages ?? 0;
  if (!(Number.isInteger(spec.maxPages) && spec.maxPages >= 0 && Number.isInteger(extra) && extra >= 0 && extra <= spec.maxPages)) {
    throw new HypercallError({ call, errno: E.EINVAL, domid, message: `maxPages ${spec.maxPages} / extraPages ${extra}: need 0 <= extraPages <= maxPages` });
  }
  const maxPort = spec.maxEvtchnPort ?? DOMU_MAX_PORT;
  if (!(Number.isInteger(maxPort) && maxPort >= 1 && maxPort <= 0x7fffffff)) {
    throw new HypercallError({ call, errno: E.EINVAL, domid, message: `maxEvtchnPort ${maxPort}: need an integer in 1..2^31-1` });
  }
  const type = h.arch === 'arm' ? 'hvm' : spec.type ?? 'pvh';
  h.domains.set(domid, new SimDomain(domid, spec.name ?? `d${domid}`, spec.maxPages, extra, type, maxPort));
  h.dirty = true;
  return domid;
}

/** xl mem-max, in pages: the max_mem domctl with maxPages * 4 KiB. */
export function setMaxPages(h: SimHost, domid: number, maxPages: number): void {
  if (!(Number.isInteger(maxPages) && maxPages >= 0)) {
    throw new HypercallError({ call: 'sim(max_mem)', errno: E.EINVAL, domid, message: `maxPages ${maxPages}: need an integer >= 0` });
  }
  mustGet(h, domid, 'sim(max_mem)');
  h.maxMem(domid, BigInt(maxPages) * BigInt(PAGE_SIZE / 1024));
}

/**
 * xl destroy: domain_kill(). The domain's own references go (the foreign pages it maps, its
 * allocation of its own pages, its event channels); pages other domains still map keep it as a
 * dying "zombie" until they are unmapped, as does being another domain's target.
 */
export function destroyDomain(h: SimHost, domid: number): void {
  const d = mustGet(h, domid, 'sim(destroydomain)');
  if (domid === 0) throw new HypercallError({ call: 'sim(destroydomain)', errno: E.EPERM, domid, message: 'dom0 cannot be destroyed' });
  if (d.dying) return;
  // evtchn_destroy() closes every port: the remote ends return to unbound
  // (common/event_channel.c:1530-1563).
  closeAll(h, domid);
  d.dying = true;
  // relinquish_p2m_mapping() (arch/arm/p2m.c:1859; x86 from 4.19, commit 845a60b63b) puts the
  // foreign pages the p2m holds (p2m_put_l3_page(), arch/arm/p2m.c:865-886).
  const foreign: number[] = [];
  d.physmap.forEach((_gfn, mfn) => {
    if (h.frames.owner[mfn] !== domid) foreign.push(mfn);
  });
  d.physmap.clear();
  d.extraPages = 0;
  for (const mfn of foreign) h.putRef(mfn);
  // relinquish_memory(): the allocation reference of each own page is dropped; a page still
  // referenced by someone else's mapping stays allocated to the dying domain.
  const f = h.frames;
  for (let mfn = 0; mfn < f.highWater; mfn++) {
    if (f.owner[mfn] === domid && f.alloc[mfn]) {
      f.alloc[mfn] = 0;
      if (f.refs[mfn] === 0) h.freeFrame(mfn);
    }
  }
  // XEN_DOMCTL_set_target holds a reference on the target until this domain is destroyed
  // (common/domctl.c:811-812: "Hold reference on @e until we destroy @d").
  const target = d.target;
  d.target = null;
  h.reap(d);
  if (target !== null) {
    const t = h.domains.get(target);
    if (t) h.reap(t);
  }
  h.dirty = true;
}
