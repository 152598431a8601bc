/**
 * xen_version (release, extraversion, capabilities: the architecture) and the domctl interface
 * version (the release's table value, else probed), and the release's rules (releases.ts).
 */
import { DOMCTL_INTERFACE_VERSIONS, DOMCTL_PROBE_LIMIT, DomctlCmd, Hypercall, XEN_CAPABILITIES_INFO_LEN, XEN_EXTRAVERSION_LEN, XenVer } from '../abi';
import { errnoName, HypercallError } from '../errors';
import { readCString, writeDomctlHeader, XEN_DOMCTL } from '../layout';
import { rulesFor, type XenRules } from '../releases';
import type { XenVersionInfo } from '../types';
import { EACCES, EINVAL, hex, type HypercallContext } from './context';

export function xenVersion(cx: HypercallContext): XenVersionInfo {
  if (cx.version) return cx.version;
  const call = 'xen_version';
  const v = cx.hypercall(Hypercall.xen_version, [XenVer.version, 0]);
  if (v < 0) throw new HypercallError({ call: `${call}(version)`, errno: -v, message: `xen_version(XENVER_version): ${errnoName(-v)}` });
  const b = cx.buf(XEN_CAPABILITIES_INFO_LEN);
  b.bytes.fill(0, 0, XEN_CAPABILITIES_INFO_LEN);
  let rc = cx.hypercall(Hypercall.xen_version, [XenVer.extraversion, b.address]);
  if (rc < 0) throw new HypercallError({ call: `${call}(extraversion)`, errno: -rc, message: `xen_version(XENVER_extraversion): ${errnoName(-rc)}` });
  const extraversion = readCString(b.bytes.subarray(0, XEN_EXTRAVERSION_LEN));
  b.bytes.fill(0, 0, XEN_CAPABILITIES_INFO_LEN);
  rc = cx.hypercall(Hypercall.xen_version, [XenVer.capabilities, b.address]);
  if (rc < 0) throw new HypercallError({ call: `${call}(capabilities)`, errno: -rc, message: `xen_version(XENVER_capabilities): ${errnoName(-rc)}` });
  const capabilities = readCString(b.bytes.subarray(0, XEN_CAPABILITIES_INFO_LEN));
  // arch_get_xen_caps(): "xen-3.0-aarch64 xen-3.0-armv7l" on Arm (xen/arch/arm/setup.c),
  // "xen-3.0-x86_64 hvm-3.0-x86_32 ..." on x86 (xen/arch/x86/setup.c).
  const arch = /\b(?:aarch64|armv7l)\b/.test(capabilities) ? 'arm'
    : /\bx86_(?:64|32p?)\b/.test(capabilities) ? 'x86' : undefined;
  if (!arch) {
    throw new HypercallError({ call: `${call}(capabilities)`, errno: EINVAL, message: `no known architecture in Xen's capabilities "${capabilities}"` });
  }
  const major = v >>> 16;
  const minor = v & 0xffff;
  cx.version = { major, minor, extraversion, version: `${major}.${minor}${extraversion}`, capabilities, arch };
  return cx.version;
}

/** The rules of the running release (releases.ts), from xen_version. */
export function xenRules(cx: HypercallContext): XenRules {
  if (cx.rules) return cx.rules;
  const v = xenVersion(cx);
  cx.rules = rulesFor(v.arch, v);
  return cx.rules;
}

/** Issues one domctl with the given interface version; `fill` writes the command's fields. */
export function domctl(cx: HypercallContext, cmd: number, version: number, domain: number, fill?: (v: DataView) => void): { rc: number; view: DataView } {
  const b = cx.buf(XEN_DOMCTL.size);
  writeDomctlHeader(b.view, 0, { cmd, interfaceVersion: version, domain });
  fill?.(b.view);
  const rc = cx.hypercall(Hypercall.domctl, [b.address]);
  return { rc, view: b.view };
}

/**
 * The XEN_DOMCTL_INTERFACE_VERSION this Xen accepts: the release table's value first, then every
 * known value (newest first), then 0x3f..1. getdomaininfo of dom0 is harmless and its header is
 * the same in every version: any answer but EACCES means the version was accepted.
 */
export function domctlInterfaceVersion(cx: HypercallContext): number {
  if (cx.domctlVersion !== undefined) return cx.domctlVersion;
  const v = xenVersion(cx);
  const candidates: number[] = [];
  const add = (x: number | undefined): void => {
    if (x !== undefined && !candidates.includes(x)) candidates.push(x);
  };
  add(DOMCTL_INTERFACE_VERSIONS[`${v.major}.${v.minor}`]);
  Object.values(DOMCTL_INTERFACE_VERSIONS).sort((a, b) => b - a).forEach(add);
  for (let x = DOMCTL_PROBE_LIMIT; x >= 1; x--) add(x);
  for (const c of candidates) {
    const { rc } = domctl(cx, DomctlCmd.getdomaininfo, c, 0);
    if (rc !== -EACCES) {
      cx.domctlVersion = c;
      return c;
    }
  }
  throw new HypercallError({
    call: 'domctl', errno: EACCES, xenVersion: v.version,
    message: `Xen ${v.version} refused every domctl interface version 1..${hex(DOMCTL_PROBE_LIMIT)} with EACCES (the release table in lib/hypervisor/abi.ts has ${DOMCTL_INTERFACE_VERSIONS[`${v.major}.${v.minor}`] === undefined ? 'no entry for it' : `0x${DOMCTL_INTERFACE_VERSIONS[`${v.major}.${v.minor}`].toString(16)}`}; an XSM policy may deny domctls to this domain)`,
  });
}
