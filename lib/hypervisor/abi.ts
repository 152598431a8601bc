/**
 * Numbers of Xen's hypercall ABI used by xen-sshm, named once. Sources: Xen's public headers
 * (xen/include/public/xen.h, memory.h, domctl.h, version.h; Debian libxen-dev installs them under
 * /usr/include/xen) and Linux's include/uapi/xen/privcmd.h. test/hypervisor/layout.test.ts checks
 * the values against the installed headers with the C compiler.
 */

// Xen's page and the reserved domain ids are shared vocabulary (lib/vocabulary.ts); re-exported
// under the headers' names so that test/hypervisor/c-check.ts holds them to xen.h.
export { PAGE_SHIFT as XEN_PAGE_SHIFT, PAGE_SIZE as XEN_PAGE_SIZE, DOMID_FIRST_RESERVED, DOMID_SELF, DOMID_INVALID } from '../vocabulary';

/** Hypercall numbers (xen.h `__HYPERVISOR_*`). */
export const Hypercall = {
  memory_op: 12,
  multicall: 13,
  xen_version: 17,
  event_channel_op: 32,
  sysctl: 35,
  domctl: 36,
} as const;

/** EVTCHNOP_* sub-operations of event_channel_op (event_channel.h). */
export const EvtchnOp = {
  bind_interdomain: 0,
  close: 3,
  send: 4,
  status: 5,
  alloc_unbound: 6,
  unmask: 9,
} as const;

/** EVTCHNSTAT_* values of evtchn_status.status (event_channel.h). */
export const EvtchnStat = {
  closed: 0,
  unbound: 1,
  interdomain: 2,
  pirq: 3,
  virq: 4,
  ipi: 5,
} as const;

/** XENMEM_* sub-operations of memory_op (memory.h). */
export const XenMem = {
  decrease_reservation: 1,
  populate_physmap: 6,
  maximum_gpfn: 14,
  remove_from_physmap: 15,
  add_to_physmap_batch: 23,
} as const;

/** Map spaces of add_to_physmap(_batch) (memory.h `XENMAPSPACE_*`). */
export const XenMapSpace = {
  gmfn: 2,
  /** Another domain's frames; `foreign_domid` names the owner. */
  gmfn_foreign: 4,
} as const;

/** XENVER_* sub-operations of xen_version (version.h). */
export const XenVer = {
  version: 0,
  extraversion: 1,
  capabilities: 3,
} as const;
/** xen_extraversion_t and xen_capabilities_info_t are fixed-size char arrays. */
export const XEN_EXTRAVERSION_LEN = 16;
export const XEN_CAPABILITIES_INFO_LEN = 1024;

/** XEN_DOMCTL_* commands (domctl.h). */
export const DomctlCmd = {
  getdomaininfo: 5,
  max_mem: 11,
  set_target: 46,
} as const;

/**
 * The largest max memory Xen can hold, in pages: `struct domain.max_pages` is an unsigned int
 * (xen/include/xen/sched.h:396 at RELEASE-4.17.0, unchanged to 4.19), and XEN_DOMCTL_max_mem
 * clamps to it (xen/common/domctl.c:660). Xen-internal, so not checked by the compiler.
 */
export const DOMAIN_MAX_PAGES_LIMIT = 0xffffffff;

/** XEN_DOMINF_* flags of getdomaininfo (domctl.h). */
export const DomInfFlag = {
  dying: 1 << 0,
  hvm_guest: 1 << 1,
  shutdown: 1 << 2,
  paused: 1 << 3,
  blocked: 1 << 4,
  running: 1 << 5,
} as const;

/**
 * memory_op continuations keep the start extent in cmd >> MEMOP_EXTENT_SHIFT. Xen-internal
 * (xen/include/xen/hypercall.h:51, not in the public headers), so not checked by the compiler.
 */
export const MEMOP_EXTENT_SHIFT = 6;

/**
 * `xen_add_to_physmap_batch.size` is a uint16_t: one call maps at most this many pages, so
 * larger regions take several calls (the 2017 libxl patches overflowed it).
 */
export const MAX_ADD_TO_PHYSMAP_BATCH = 0xffff;

/**
 * XEN_DOMCTL_INTERFACE_VERSION of each Xen release, read from domctl.h at the RELEASE-x.y.0 tags
 * of xen-project/xen. Xen refuses a domctl whose header carries another value with EACCES
 * (xen/common/domctl.c, do_domctl: `if ( op->interface_version != XEN_DOMCTL_INTERFACE_VERSION )
 * return -EACCES;`), so the version is looked up here from xen_version, then probed
 * (lib/hypervisor/xen.ts); never one hard-coded value.
 */
export const DOMCTL_INTERFACE_VERSIONS: Readonly<Record<string, number>> = {
  '4.0': 0x06,
  '4.1': 0x07,
  '4.2': 0x08,
  '4.3': 0x09,
  '4.4': 0x09,
  '4.5': 0x0a,
  '4.6': 0x0b,
  '4.7': 0x0b,
  '4.8': 0x0c,
  '4.9': 0x0d,
  '4.10': 0x0e,
  '4.11': 0x10,
  '4.12': 0x11,
  '4.13': 0x12,
  '4.14': 0x12,
  '4.15': 0x13,
  '4.16': 0x14,
  '4.17': 0x15,
  '4.18': 0x16,
  '4.19': 0x17,
  '4.20': 0x17,
  '4.21': 0x17,
  '4.22': 0x18,
};

/** XEN_SYSCTL_* commands (sysctl.h). */
export const SysctlCmd = {
  getdomaininfolist: 6,
} as const;

/**
 * XEN_SYSCTL_INTERFACE_VERSION of each Xen release, read from xen/include/public/sysctl.h at the
 * RELEASE-x.y.0 tags (4.17.0-4.20.0: 0x15, sysctl.h:21 / :31 at 4.20.0; 4.21.0, 4.22.0: 0x16).
 * do_sysctl() refuses any other value with -EACCES (xen/common/sysctl.c:42-43 at RELEASE-4.17.0
 * and RELEASE-4.20.0), so it is looked up, then probed, as the domctl's is.
 */
export const SYSCTL_INTERFACE_VERSIONS: Readonly<Record<string, number>> = {
  '4.13': 0x12,
  '4.14': 0x13,
  '4.15': 0x13,
  '4.16': 0x14,
  '4.17': 0x15,
  '4.18': 0x15,
  '4.19': 0x15,
  '4.20': 0x15,
  '4.21': 0x16,
  '4.22': 0x16,
};

/**
 * sizeof(struct xen_domctl_getdomaininfo): the stride of XEN_SYSCTL_getdomaininfolist's buffer
 * (Xen copies whole structures, copy_to_guest_offset(buffer, num_domains, &info, 1),
 * common/sysctl.c:98 at RELEASE-4.17.0, :97 at 4.20.0). Its tail, struct xen_arch_domainconfig,
 * differs per architecture and release (domctl.h and arch-arm.h / arch-x86/xen.h at the tags):
 * from 4.17.0 to 4.22.0 arch_config sits at 104 after gpaddr_bits and pad2[7]; Arm's is 12 bytes
 * to 4.20 (gic_version, sve_vl from 4.18, tee_type, nr_spis, clock_frequency), 16 in 4.21
 * (arm_sci_type) and 4.22 (v8r_el1_msa, pad), so the struct (8-aligned) is 120 in every one;
 * x86's is 8 (emulation_flags, misc_flags): 112. The compiler checks the installed headers' and
 * Debian 13's 4.20 (test/hypervisor/c-check.ts). Releases not listed are not listed in one call.
 */
export const GETDOMAININFO_SIZES: Readonly<Record<'arm' | 'x86', Readonly<Record<string, number>>>> = {
  arm: { '4.17': 120, '4.18': 120, '4.19': 120, '4.20': 120, '4.21': 120, '4.22': 120 },
  x86: { '4.17': 112, '4.18': 112, '4.19': 112, '4.20': 112, '4.21': 112, '4.22': 112 },
};

/** Interface versions worth probing when the release is not in the table: 1 .. 0x3f. */
export const DOMCTL_PROBE_LIMIT = 0x3f;
