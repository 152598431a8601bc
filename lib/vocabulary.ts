/**
 * Xen's vocabulary, defined once: the sizes, limits and value sets that config, store,
 * hypervisor and manager all speak. Import from here; never restate one of these.
 */

/** Xen's page: 4 KiB on x86_64 and arm64 alike (XEN_PAGE_SHIFT 12), whatever Linux uses. */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** The same as bigint, for guest-physical addresses and sizes (64-bit). */
export const PAGE_SHIFT_N = 12n;
export const PAGE_SIZE_N = 4096n;
export const PAGES_PER_MIB = (1 << 20) / PAGE_SIZE;

/** Reserved domain ids (xen/include/public/xen.h). Real domains are 0 .. DOMID_FIRST_RESERVED - 1. */
export const DOMID_FIRST_RESERVED = 0x7ff0;
export const DOMID_SELF = 0x7ff0;
export const DOMID_INVALID = 0x7ff4;

/** A domain id that can name a real domain (0..32751). */
export function isDomid(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < DOMID_FIRST_RESERVED;
}

/** Roles of a domain in a region; master/slave are the 2017 series' aliases. */
export const ROLE_ALIASES: Readonly<Record<string, 'owner' | 'borrower'>> = { owner: 'owner', borrower: 'borrower', master: 'owner', slave: 'borrower' };
export type MappingRole = 'owner' | 'borrower';

export const PROTS = ['r', 'rw'] as const;
export type ShmProt = (typeof PROTS)[number];

export const CACHE_POLICIES = ['ARM_normal', 'x86_normal'] as const;
export type CachePolicy = (typeof CACHE_POLICIES)[number];

export const SPELLINGS = ['static_shm', 'static_shared_mem'] as const;
export type ShmSpelling = (typeof SPELLINGS)[number];

/** Region IDs name xenstore nodes: letters, digits and _. */
export const SHM_ID_RE = /^[A-Za-z0-9_]+$/;
/** The longest ID (the 2017 syntax: "no longer than 128 characters"). */
export const MAX_ID_LENGTH = 128;
/** The longest `xen,shm-id` Xen's dom0less static shared memory accepts. */
export const MAX_DOM0LESS_ID_LENGTH = 15;

/**
 * The most pages a domain can have: Xen keeps max_pages and tot_pages as `unsigned int` (struct
 * domain, xen/include/xen/sched.h; XEN_DOMCTL_max_mem clamps to it). 16 TiB less one page.
 */
export const MAX_DOMAIN_PAGES = 0xffffffff;
