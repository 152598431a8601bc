/**
 * Generates C that checks the TypeScript layout tables and constants against Xen's public
 * headers (Debian libxen-dev, /usr/include/xen) with _Static_assert, and compiles it with a real
 * compiler. Used by layout.test.ts for x86_64 (gcc) and arm64 (aarch64-linux-gnu-gcc).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as abi from '../../lib/hypervisor/abi';
import { FIELD_BYTES, LAYOUTS, type StructLayout } from '../../lib/hypervisor/layout';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const XEN_INCLUDE = '/usr/include/xen';

export interface CompileResult {
  ok: boolean;
  status: number | null;
  stderr: string;
}

/**
 * Every assertion, one per line, with a message naming what it checks. `release` is the Xen
 * release of the headers compiled against (default: the installed libxen-dev's).
 */
export function staticAsserts(
  layouts: ReadonlyArray<{ layout: StructLayout; wholeSize: boolean }> = LAYOUTS,
  release: { major: number; minor: number } = xenHeaderRelease(),
): string[] {
  const out: string[] = [];
  const sa = (cond: string, what: string): void => {
    out.push(`_Static_assert(${cond}, ${JSON.stringify(what)});`);
  };
  for (const { layout: L, wholeSize } of layouts) {
    if (wholeSize) sa(`sizeof(${L.c}) == ${L.size}`, `sizeof(${L.c}) == ${L.size}`);
    else sa(`sizeof(${L.c}) >= ${L.size}`, `sizeof(${L.c}) >= ${L.size} (the prefix read)`);
    for (const [name, f] of Object.entries(L.fields)) {
      sa(`offsetof(${L.c}, ${f.c}) == ${f.offset}`, `offsetof(${L.c}, ${f.c}) == ${f.offset} (${name})`);
      const bytes = f.kind === 'chars' ? f.bytes! : FIELD_BYTES[f.kind];
      sa(`sizeof(((${L.c} *)0)->${f.c}) == ${bytes}`, `sizeof(${L.c}.${f.c}) == ${bytes} (${name})`);
    }
  }
  const eq = (c: string, v: number): void => sa(`${c} == ${v}`, `${c} == ${v}`);
  eq('__HYPERVISOR_memory_op', abi.Hypercall.memory_op);
  eq('__HYPERVISOR_multicall', abi.Hypercall.multicall);
  eq('__HYPERVISOR_xen_version', abi.Hypercall.xen_version);
  eq('__HYPERVISOR_domctl', abi.Hypercall.domctl);
  eq('__HYPERVISOR_sysctl', abi.Hypercall.sysctl);
  for (const [k, v] of Object.entries(abi.SysctlCmd)) eq(`XEN_SYSCTL_${k}`, v);
  eq('__HYPERVISOR_event_channel_op', abi.Hypercall.event_channel_op);
  for (const [k, v] of Object.entries(abi.EvtchnOp)) eq(`EVTCHNOP_${k}`, v);
  for (const [k, v] of Object.entries(abi.EvtchnStat)) eq(`EVTCHNSTAT_${k}`, v);
  for (const [k, v] of Object.entries(abi.XenMem)) eq(`XENMEM_${k}`, v);
  for (const [k, v] of Object.entries(abi.XenMapSpace)) eq(`XENMAPSPACE_${k}`, v);
  for (const [k, v] of Object.entries(abi.XenVer)) eq(`XENVER_${k}`, v);
  for (const [k, v] of Object.entries(abi.DomctlCmd)) eq(`XEN_DOMCTL_${k}`, v);
  for (const [k, v] of Object.entries(abi.DomInfFlag)) eq(`XEN_DOMINF_${k}`, v);
  eq('sizeof(xen_extraversion_t)', abi.XEN_EXTRAVERSION_LEN);
  eq('sizeof(xen_capabilities_info_t)', abi.XEN_CAPABILITIES_INFO_LEN);
  eq('DOMID_FIRST_RESERVED', abi.DOMID_FIRST_RESERVED);
  eq('DOMID_SELF', abi.DOMID_SELF);
  eq('DOMID_INVALID', abi.DOMID_INVALID);
  // The batch limit is the range of the uint16_t size field.
  eq('(__typeof__(((struct xen_add_to_physmap_batch *)0)->size))-1', abi.MAX_ADD_TO_PHYSMAP_BATCH);
  // The release table's entry for the headers' Xen: Debian 12 ships 4.17.
  eq('XEN_DOMCTL_INTERFACE_VERSION', abi.DOMCTL_INTERFACE_VERSIONS[`${release.major}.${release.minor}`]);
  eq('XEN_SYSCTL_INTERFACE_VERSION', abi.SYSCTL_INTERFACE_VERSIONS[`${release.major}.${release.minor}`]);
  // getdomaininfolist's stride: the whole struct, whose arch_config tail differs per architecture.
  const rel = `${release.major}.${release.minor}`;
  out.push('#if defined(__aarch64__) || defined(__arm__)');
  eq('sizeof(struct xen_domctl_getdomaininfo)', abi.GETDOMAININFO_SIZES.arm[rel]);
  out.push('#else');
  eq('sizeof(struct xen_domctl_getdomaininfo)', abi.GETDOMAININFO_SIZES.x86[rel]);
  out.push('#endif');
  // The shim's restated privcmd ABI (shim/privcmd_abi.h) against Xen's copy of Linux's header.
  sa('sizeof(struct xs_privcmd_hypercall) == sizeof(privcmd_hypercall_t)', 'privcmd_hypercall size');
  sa('offsetof(struct xs_privcmd_hypercall, arg) == offsetof(privcmd_hypercall_t, arg)', 'privcmd_hypercall.arg');
  sa('sizeof(struct xs_privcmd_mmapbatch_v2) == sizeof(privcmd_mmapbatch_v2_t)', 'privcmd_mmapbatch_v2 size');
  for (const m of ['num', 'dom', 'addr', 'arr', 'err']) {
    sa(`offsetof(struct xs_privcmd_mmapbatch_v2, ${m}) == offsetof(privcmd_mmapbatch_v2_t, ${m})`, `privcmd_mmapbatch_v2.${m}`);
  }
  sa('XS_IOCTL_PRIVCMD_HYPERCALL == IOCTL_PRIVCMD_HYPERCALL', 'IOCTL_PRIVCMD_HYPERCALL');
  sa('XS_IOCTL_PRIVCMD_MMAPBATCH_V2 == IOCTL_PRIVCMD_MMAPBATCH_V2', 'IOCTL_PRIVCMD_MMAPBATCH_V2');
  sa('XS_IOCTL_PRIVCMD_RESTRICT == IOCTL_PRIVCMD_RESTRICT', 'IOCTL_PRIVCMD_RESTRICT');
  return out;
}

/** The Xen release of the installed headers, from Debian's package version (e.g. 4.17.5). */
export function xenHeaderRelease(): { major: number; minor: number } {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'libxen-dev'], { encoding: 'utf8' });
  const m = /^(\d+)\.(\d+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) throw new Error(`cannot read libxen-dev's version (dpkg-query: ${r.stderr || r.status}): install libxen-dev`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

export const PRELUDE = [
  '/* Generated by test/hypervisor/c-check.ts: TypeScript tables against Xen public headers. */',
  '#define __XEN_TOOLS__ 1',
  '#include <stddef.h>',
  '#include <stdint.h>',
  '#include <linux/types.h>',
  '#include <xen/xen.h>',
  '#include <xen/memory.h>',
  '#include <xen/domctl.h>',
  '#include <xen/sysctl.h>',
  '#include <xen/version.h>',
  '#include <xen/event_channel.h>',
  '#include <xen/sys/privcmd.h>',
  '#include "privcmd_abi.h"',
];

/**
 * An include folder holding only `xen` -> /usr/include/xen: the cross compiler must find Xen's
 * headers without also seeing the host's own /usr/include.
 */
export function xenIncludeDir(tmp: string, xenInclude = XEN_INCLUDE): string {
  if (!fs.existsSync(path.join(xenInclude, 'memory.h'))) {
    throw new Error(`${xenInclude}/memory.h is missing: install Debian's libxen-dev (see .ci/run)`);
  }
  const dir = path.join(tmp, 'inc');
  fs.mkdirSync(dir, { recursive: true });
  if (!fs.existsSync(path.join(dir, 'xen'))) fs.symlinkSync(xenInclude, path.join(dir, 'xen'));
  return dir;
}

/**
 * Compiles C with a compiler (gcc, aarch64-linux-gnu-gcc); extra args e.g. -fsyntax-only.
 * `xenInclude` is the headers' folder (default the machine's /usr/include/xen; Debian 13's 4.20
 * headers come from the harness's private root, test/harness/releases.ts).
 */
export function compile(compiler: string, source: string, args: string[], tmp?: string, xenInclude = XEN_INCLUDE): CompileResult & { dir: string } {
  const dir = tmp ?? fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-layout-'));
  const file = path.join(dir, 'check.c');
  fs.writeFileSync(file, source);
  const r = spawnSync(compiler, ['-std=gnu11', '-Wall', '-I', xenIncludeDir(dir, xenInclude), '-I', path.join(REPO, 'shim'), ...args, file], {
    encoding: 'utf8', cwd: dir,
  });
  if (r.error) throw new Error(`${compiler}: ${r.error.message} (install it: see .ci/run)`);
  return { ok: r.status === 0, status: r.status, stderr: r.stderr, dir };
}
