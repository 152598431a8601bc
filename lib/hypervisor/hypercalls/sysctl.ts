/**
 * XEN_SYSCTL_getdomaininfolist: getdomaininfo of many domains in one hypercall (the manager's
 * liveness question over every indexed domain), and the sysctl interface version it needs.
 */
import { DomInfFlag, GETDOMAININFO_SIZES, Hypercall, SYSCTL_INTERFACE_VERSIONS, SysctlCmd } from '../abi';
import { errnoName, errnoOf, HypercallError } from '../errors';
import { readDomainInfoEntry, readGetDomainInfoList, writeGetDomainInfoList, writeSysctlHeader } from '../layout';
import type { DomainInfo } from '../types';
import { EACCES, hex, type HypercallContext } from './context';
import { xenVersion } from './version';

/**
 * The most domains one listing asks for: 8,192 entries of 120 bytes (Arm; 112 on x86) fill
 * just under the 1 MiB hypercall buffer (context.ts), and every domid (0..32751) is listed in at
 * most 4 calls. Xen itself has no limit but the guest buffer (common/sysctl.c:85-106).
 */
export const DOMAIN_INFO_LIST_MAX = 8192;
/** The entries start after the sysctl structure, 8-aligned. */
const ENTRIES_AT = 256;
/** Interface versions worth probing when the release is not in the table: 1 .. 0x3f. */
const SYSCTL_PROBE_LIMIT = 0x3f;
const EOPNOTSUPP = errnoOf('EOPNOTSUPP');
const EPROTO = errnoOf('EPROTO');

/** Issues one getdomaininfolist; the entries land at ENTRIES_AT of the scratch buffer. */
function listCall(cx: HypercallContext, version: number, first: number, max: number, stride: number): { rc: number; num: number; view: DataView } {
  const b = cx.buf(ENTRIES_AT + max * stride);
  writeSysctlHeader(b.view, 0, { cmd: SysctlCmd.getdomaininfolist, interfaceVersion: version });
  writeGetDomainInfoList(b.view, 0, { firstDomain: first, maxDomains: max, buffer: b.address + BigInt(ENTRIES_AT), numDomains: 0 });
  const rc = cx.hypercall(Hypercall.sysctl, [b.address]);
  return { rc, num: rc < 0 ? 0 : readGetDomainInfoList(b.view, 0).numDomains, view: b.view };
}

/**
 * The XEN_SYSCTL_INTERFACE_VERSION this Xen accepts: the release table's first, then every known
 * value, then 0x3f..1. A listing of no domain is harmless: any answer but EACCES (do_sysctl's
 * answer to another version, common/sysctl.c:42-43) means the version was accepted.
 */
export function sysctlInterfaceVersion(cx: HypercallContext): number {
  if (cx.sysctlVersion !== undefined) return cx.sysctlVersion;
  // Refused once, refused for this Hypervisor's life: a caller falling back to getdomaininfo per
  // domain must not pay the probe again on every question.
  if (cx.sysctlRefusal) throw cx.sysctlRefusal;
  const v = xenVersion(cx);
  const candidates: number[] = [];
  const add = (x: number | undefined): void => {
    if (x !== undefined && !candidates.includes(x)) candidates.push(x);
  };
  add(SYSCTL_INTERFACE_VERSIONS[`${v.major}.${v.minor}`]);
  Object.values(SYSCTL_INTERFACE_VERSIONS).sort((a, b) => b - a).forEach(add);
  for (let x = SYSCTL_PROBE_LIMIT; x >= 1; x--) add(x);
  let last = -EACCES;
  for (const c of candidates) {
    last = listCall(cx, c, 0, 0, 0).rc;
    if (last !== -EACCES) {
      if (last < 0) break;
      cx.sysctlVersion = c;
      return c;
    }
  }
  throw (cx.sysctlRefusal = new HypercallError({
    call: 'sysctl(getdomaininfolist)', errno: -last, xenVersion: v.version,
    message: last === -EACCES
      ? `Xen ${v.version} refused every sysctl interface version 1..${hex(SYSCTL_PROBE_LIMIT)} with EACCES (an XSM policy may deny sysctls to this domain)`
      : `getdomaininfolist of no domain: ${errnoName(-last)} (the default XSM policy allows sysctls to the control domain only)`,
  }));
}

/**
 * Up to `max` domains with an id >= `first`, in domid order (Xen keeps domain_list sorted by
 * domid: common/domain.c:719-721 at RELEASE-4.17.0, :78-81 at 4.20.0), dying ones included, as
 * getdomaininfo describes each. Fewer than `max` means none is left above the last.
 */
export function domainInfoList(cx: HypercallContext, first: number, max: number): DomainInfo[] {
  const call = 'sysctl(getdomaininfolist)';
  const v = xenVersion(cx);
  const stride = GETDOMAININFO_SIZES[v.arch][`${v.major}.${v.minor}`];
  if (stride === undefined) {
    throw new HypercallError({
      call, errno: EOPNOTSUPP, xenVersion: v.version,
      message: `the size of struct xen_domctl_getdomaininfo on Xen ${v.version} ${v.arch} is not in lib/hypervisor/abi.ts GETDOMAININFO_SIZES: no listing (ask domain by domain)`,
    });
  }
  const version = sysctlInterfaceVersion(cx);
  if (max === 0) return [];
  const { rc, num, view } = listCall(cx, version, first, max, stride);
  if (rc < 0) throw new HypercallError({ call, errno: -rc, message: `getdomaininfolist from d${first}, at most ${max}: ${errnoName(-rc)}` });
  if (num > max) throw new HypercallError({ call, errno: EPROTO, xenVersion: v.version, message: `getdomaininfolist answered ${num} domains for at most ${max}` });
  const out: DomainInfo[] = new Array<DomainInfo>(num);
  let prev = first - 1;
  for (let i = 0; i < num; i++) {
    const e = readDomainInfoEntry(view, ENTRIES_AT + i * stride);
    // Ascending ids from `first`: anything else means the entries are not `stride` apart.
    if (e.domain <= prev) {
      throw new HypercallError({
        call, errno: EPROTO, xenVersion: v.version,
        message: `getdomaininfolist entry ${i} names d${e.domain} after d${prev}: struct xen_domctl_getdomaininfo is not ${stride} bytes on Xen ${v.version} ${v.arch} (abi.ts GETDOMAININFO_SIZES)`,
      });
    }
    prev = e.domain;
    out[i] = toDomainInfo(e);
  }
  return out;
}

/** A DomainInfo from getdomaininfo's fields (the domctl's and the listing's). */
export function toDomainInfo(e: { domain: number; flags: number; totPages: number; maxPages: number; nrOnlineVcpus: number }): DomainInfo {
  return {
    domid: e.domain,
    totPages: e.totPages,
    maxPages: e.maxPages,
    headroomPages: Math.max(0, e.maxPages - e.totPages),
    dying: (e.flags & DomInfFlag.dying) !== 0,
    shutdown: (e.flags & DomInfFlag.shutdown) !== 0,
    paused: (e.flags & DomInfFlag.paused) !== 0,
    hvm: (e.flags & DomInfFlag.hvm_guest) !== 0,
    flags: e.flags,
    nrOnlineVcpus: e.nrOnlineVcpus,
  };
}
