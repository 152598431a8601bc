/**
 * The xenstore schema of static shared memory (DESIGN.md "Xenstore schema"), under a
 * configurable root (default the proposal's /local/shared_mem):
 *
 *   <root>/<ID>                                  dom0 only (perms n0)
 *     owner = "<domid>"                          decimal, always (the 2017 patches wrote it in
 *                                                decimal and read it back as hex)
 *     begin = "0x..."   size = "0x..."           owner guest-physical address and bytes
 *     prot = "rw" | "r"   cache_policy = "ARM_normal" | "x86_normal"
 *     state = allocating | ready | orphaned | releasing
 *     spelling = static_shm | static_shared_mem  (extension: which config spelling made it)
 *     mappings/<domid> = "0xBEGIN-0xEND"         one per domain using the region, owner included
 *     mappings/<domid>/offset, prot, state (mapping | mapped | unmapping), lock
 *     doorbell = "yes"                           the region carries a doorbell (absent: none)
 *     ports/<borrower> = "<port>" | "allocating" the owner's event channel port for that
 *                                                borrower, or the intent before allocating it
 *                                                (docs/doorbells.md); kept after the borrower's
 *                                                release: dom0 cannot close another's port
 *   /local/domain/<domid>/shared_mem/<ID>        guest-readable mirror (perms n0 r<domid>)
 *     role, begin, size, offset, prot
 *     owner: doorbells/<borrower> = "<port>"     (doorbells present, maybe empty, iff doorbell)
 *     borrower: owner = "<domid>", doorbell = "<port>"   (only with a port)
 *   /local/domain/<domid>/target = "<owner>"     the set_target this tool made (n0 r<domid>)
 *
 * The per-domain index (extension, so that what an apply or a release reads depends on its own
 * entries, not on the host's size):
 *
 *   <root>/by-domain                             present while any mapping is recorded; its
 *                                                presence says the index is complete (records
 *                                                of older versions have none: see ensureIndex)
 *   <root>/by-domain/<domid>                     one per domain with a mapping or a region (n0)
 *   <root>/by-domain/<domid>/<ID> = "0xB-0xE"    that domain's range in region ID, equal to
 *                                                <root>/<ID>/mappings/<domid>; the owner's
 *                                                entry stays while its region is orphaned
 *
 * Ports outliving their region (extension, docs/doorbells.md):
 *
 *   <root>/kept-ports/<owner>/<port> = "<borrower>"   written when a region with ports is
 *                                                removed; taken back by the borrower's next
 *                                                apply in that owner; gone when the owner dies
 *
 * An entry is written and removed in the same transaction as its mapping (records.ts does both),
 * so the index never disagrees with the records a transaction commits. `by-domain` cannot be a
 * region: IDs are letters, digits and _ only.
 *
 * Only this file knows the node names and the text formats.
 */
import { joinPath } from '../../xenstore-wire/paths';
import { CACHE_POLICIES, isDomid, MAX_ID_LENGTH, PAGE_SHIFT_N, PROTS, SHM_ID_RE, SPELLINGS, type CachePolicy, type MappingRole, type ShmProt, type ShmSpelling } from '../vocabulary';
import { StoreError } from './errors';

export const DEFAULT_ROOT = '/local/shared_mem';
/** The per-domain index under the root (not an ID: IDs have no '-'). */
export const INDEX_NODE = 'by-domain';
/**
 * Ports of regions that are gone, per owner (not an ID either): dom0 cannot close them, so they
 * stay recorded until the owner dies, for `ls` and for a borrower's next apply to reuse.
 */
export const KEPT_PORTS_NODE = 'kept-ports';
/** Xen's page as bigint shift and size (lib/vocabulary.ts), under the names the store has used. */
export { PAGE_SHIFT_N as PAGE_SHIFT, PAGE_SIZE_N as PAGE_BYTES } from '../vocabulary';
export type { MappingRole } from '../vocabulary';

export const REGION_STATES = ['allocating', 'ready', 'orphaned', 'releasing'] as const;
export type RegionState = (typeof REGION_STATES)[number];
export const MAPPING_STATES = ['mapping', 'mapped', 'unmapping'] as const;
export type MappingState = (typeof MAPPING_STATES)[number];

/** One domain's use of a region (the owner's own mapping included). */
export interface MappingRecord {
  domid: number;
  /** Guest-physical range in that domain, END exclusive. */
  begin: bigint;
  end: bigint;
  /** Where the window starts inside the owner's region (0 for the owner). */
  offset: bigint;
  prot: ShmProt;
  state: MappingState;
  /** The process holding an intent on this mapping (lock.ts format), or null once committed. */
  lock: string | null;
}

export interface RegionRecord {
  id: string;
  owner: number;
  begin: bigint;
  size: bigint;
  prot: ShmProt;
  cachePolicy: CachePolicy;
  state: RegionState;
  /** null for records written by another tool without the extension. */
  spelling: ShmSpelling | null;
  /** Sorted by domid. */
  mappings: MappingRecord[];
  /** The region carries a doorbell (docs/doorbells.md). readRegion always sets it. */
  doorbell?: boolean;
  /** The owner's ports, one per borrower given one, sorted by borrower. readRegion always sets it. */
  ports?: PortRecord[];
}

/** The intent recorded before the port is allocated (claim), replaced by the number at commit. */
export const PORT_ALLOCATING = 'allocating';

/** One borrower's doorbell: the port in the owner that only this borrower may bind. */
export interface PortRecord {
  borrower: number;
  port: number | typeof PORT_ALLOCATING;
}

/** The guest-readable mirror of one region in one domain. */
export interface MirrorRecord {
  role: MappingRole;
  begin: bigint;
  size: bigint;
  offset: bigint;
  prot: ShmProt;
  /** A borrower with a doorbell: the owner's domid and the port to bind. */
  owner?: number;
  doorbell?: number;
  /** An owner whose region carries a doorbell: its port per borrower (maybe none yet). */
  doorbells?: ReadonlyArray<{ borrower: number; port: number }>;
}

export function roleOf(region: RegionRecord, m: MappingRecord): MappingRole {
  return m.domid === region.owner ? 'owner' : 'borrower';
}

/** Node names, in one place. */
export class StorePaths {
  /**
   * The root as a prefix of "/<ID>...": the region paths are built by concatenation (a listing
   * of the host builds one per request); the same names as joinPath() for the non-empty IDs
   * the ID rule allows, an empty one goes through joinPath().
   */
  private readonly prefix: string;

  constructor(readonly root: string = DEFAULT_ROOT) {
    this.prefix = root.endsWith('/') ? root.slice(0, -1) : root;
  }

  region(id: string): string {
    return id === '' ? joinPath(this.root, id) : `${this.prefix}/${id}`;
  }

  field(id: string, name: 'owner' | 'begin' | 'size' | 'prot' | 'cache_policy' | 'state' | 'spelling' | 'doorbell'): string {
    return id === '' ? joinPath(this.root, id, name) : `${this.prefix}/${id}/${name}`;
  }

  /** <root>/<ID>/ports: the owner's port per borrower. */
  ports(id: string): string {
    return joinPath(this.root, id, 'ports');
  }

  port(id: string, borrower: number): string {
    return joinPath(this.root, id, 'ports', String(borrower));
  }

  /** The owner's mirror's list of ports, and one borrower's entry in it. */
  mirrorDoorbells(owner: number, id: string): string {
    return `/local/domain/${owner}/shared_mem/${id}/doorbells`;
  }

  mirrorDoorbell(owner: number, id: string, borrower: number): string {
    return `/local/domain/${owner}/shared_mem/${id}/doorbells/${borrower}`;
  }

  mappings(id: string): string {
    return id === '' ? joinPath(this.root, id, 'mappings') : `${this.prefix}/${id}/mappings`;
  }

  mapping(id: string, domid: number): string {
    return id === '' ? joinPath(this.root, id, 'mappings', String(domid)) : `${this.prefix}/${id}/mappings/${domid}`;
  }

  mappingField(id: string, domid: number, name: 'offset' | 'prot' | 'state' | 'lock'): string {
    return id === '' ? joinPath(this.root, id, 'mappings', String(domid), name) : `${this.prefix}/${id}/mappings/${domid}/${name}`;
  }

  domain(domid: number): string {
    return `/local/domain/${domid}`;
  }

  mirrorDir(domid: number): string {
    return `/local/domain/${domid}/shared_mem`;
  }

  mirror(domid: number, id: string): string {
    return `/local/domain/${domid}/shared_mem/${id}`;
  }

  target(domid: number): string {
    return `/local/domain/${domid}/target`;
  }

  /** <root>/kept-ports, <root>/kept-ports/<owner>, <root>/kept-ports/<owner>/<port>. */
  keptPorts(owner?: number, port?: number): string {
    if (owner === undefined) return joinPath(this.root, KEPT_PORTS_NODE);
    return port === undefined ? joinPath(this.root, KEPT_PORTS_NODE, String(owner)) : joinPath(this.root, KEPT_PORTS_NODE, String(owner), String(port));
  }

  /** <root>/by-domain: the per-domain index. */
  index(): string {
    return joinPath(this.root, INDEX_NODE);
  }

  /** <root>/by-domain/<domid>: the IDs a domain has a mapping in. */
  domainIndex(domid: number): string {
    return joinPath(this.root, INDEX_NODE, String(domid));
  }

  /** <root>/by-domain/<domid>/<ID> = the domain's range in the region. */
  indexEntry(domid: number, id: string): string {
    return joinPath(this.root, INDEX_NODE, String(domid), id);
  }
}

/** Children of the root that are regions (the index node is not). */
export function isRegionName(name: string): boolean {
  return name !== INDEX_NODE && name !== KEPT_PORTS_NODE;
}

// ---- value formats ----------------------------------------------------------------------------

export function formatHex(n: bigint): string {
  return '0x' + n.toString(16);
}

export function formatRange(begin: bigint, end: bigint): string {
  return `${formatHex(begin)}-${formatHex(end)}`;
}

/** Domids are written in decimal and read back in decimal (never parseInt with a guessed radix). */
export function formatDomid(domid: number): string {
  return String(domid);
}

export function parseDomid(text: string, path: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || !isDomid(Number(text))) {
    throw new StoreError('EINVAL', path, `${JSON.stringify(text)} is not a decimal domid`);
  }
  return Number(text);
}

/** Ports as recorded: decimal, 1 .. 2^31 - 1 (port 0 is reserved in every domain). */
export function formatPort(port: number): string {
  return String(port);
}

export function parsePort(text: string, path: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(text) || Number(text) > 0x7fffffff) throw new StoreError('EINVAL', path, `${JSON.stringify(text)} is not an event channel port`);
  return Number(text);
}

/** A port record's value: a port, or the intent before allocating one. */
export function parsePortRecord(text: string, path: string): number | typeof PORT_ALLOCATING {
  return text === PORT_ALLOCATING ? PORT_ALLOCATING : parsePort(text, path);
}

export function parseHex(text: string, path: string): bigint {
  if (!/^0x[0-9a-f]{1,16}$/.test(text)) throw new StoreError('EINVAL', path, `${JSON.stringify(text)} is not a 0x hex number`);
  return BigInt(text);
}

export function parseRange(text: string, path: string): { begin: bigint; end: bigint } {
  const m = /^(0x[0-9a-f]{1,16})-(0x[0-9a-f]{1,17})$/.exec(text);
  if (!m) throw new StoreError('EINVAL', path, `${JSON.stringify(text)} is not a range 0xBEGIN-0xEND`);
  const begin = BigInt(m[1]);
  const end = BigInt(m[2]);
  if (end <= begin) throw new StoreError('EINVAL', path, `range ${text} is empty`);
  return { begin, end };
}

export function parseEnum<T extends string>(text: string, values: readonly T[], path: string): T {
  if (!(values as readonly string[]).includes(text)) {
    throw new StoreError('EINVAL', path, `${JSON.stringify(text)} is not one of ${values.join(', ')}`);
  }
  return text as T;
}

export const PROT_VALUES: readonly ShmProt[] = PROTS;
export const CACHE_POLICY_VALUES: readonly CachePolicy[] = CACHE_POLICIES;
export const SPELLING_VALUES: readonly ShmSpelling[] = SPELLINGS;

/** Page numbers of [begin, begin + size) : the gfn list of a range. */
export function gfnsOf(begin: bigint, size: bigint): Float64Array {
  const first = Number(begin >> PAGE_SHIFT_N);
  const n = Number(size >> PAGE_SHIFT_N);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = first + i;
  return out;
}

/** IDs name xenstore nodes: the config's rule (letters, digits, _; lib/vocabulary.ts). */
export function isValidId(id: string): boolean {
  return SHM_ID_RE.test(id) && id.length <= MAX_ID_LENGTH;
}
