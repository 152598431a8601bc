/**
 * The per-domain index, <root>/by-domain/<domid>/<ID> = range (schema.ts): which regions a domain
 * has a mapping in or owns, so that an apply, a release or the cleanup of a dead domain reads its own
 * records only. records.ts keeps it up to date in the transactions that write the mappings; this
 * file reads it, checks it against the regions, and builds it for records written by an older
 * version (which had no index).
 *
 * Older records: `<root>/by-domain` exists whenever the index is complete. When it is absent
 * while regions are recorded, the records predate the index: `rebuildIndex` writes it from every
 * region, in one transaction, the first time a newer version applies, releases or reconciles.
 * Records changed later by an older version (two versions on one host) can leave the index
 * behind; `reconcile` compares the index with every region and repairs it.
 */
import type { XenstoreOps } from '../../xenstore-wire';
import { mapWindowed } from './pipeline';
import { listOptional, listRegionIds, pruneIndex, readOptional, readRegions } from './records';
import { formatRange, parseDomid, parseRange, type RegionRecord, type StorePaths } from './schema';

/** One entry of a domain's index: the domain's range in region `id`. */
export interface IndexEntry {
  id: string;
  begin: bigint;
  end: bigint;
}

/** Whether the index is there: 'present', 'empty' (no region at all) or 'missing' (older records). */
export type IndexState = 'present' | 'empty' | 'missing';

/** The IDs of the regions `domid` has a mapping in, as the index says ([] when none). */
export async function readDomainIndex(ops: XenstoreOps, paths: StorePaths, domid: number): Promise<string[]> {
  return (await listOptional(ops, paths.domainIndex(domid))).sort();
}

/** A domain's index entries with their ranges, sorted by ID. */
export async function readIndexEntries(ops: XenstoreOps, paths: StorePaths, domid: number): Promise<IndexEntry[]> {
  const ids = await readDomainIndex(ops, paths, domid);
  const values = await Promise.all(ids.map((id) => readOptional(ops, paths.indexEntry(domid, id))));
  const out: IndexEntry[] = [];
  ids.forEach((id, i) => {
    const v = values[i];
    if (v !== undefined) out.push({ id, ...parseRange(v, paths.indexEntry(domid, id)) });
  });
  return out;
}

/** The domains the index lists, ascending; [] when there is no index. */
export async function readIndexedDomids(ops: XenstoreOps, paths: StorePaths): Promise<number[]> {
  const names = await listOptional(ops, paths.index());
  return names.map((n) => parseDomid(n, `${paths.index()}/${n}`)).sort((a, b) => a - b);
}

/** 'present' costs one read; telling 'empty' from 'missing' lists the root (only then). */
export async function indexState(ops: XenstoreOps, paths: StorePaths): Promise<IndexState> {
  if (await ops.exists(paths.index())) return 'present';
  return (await listRegionIds(ops, paths)).length === 0 ? 'empty' : 'missing';
}

/** Every index entry of every domain: domid -> ID -> range text. Reads the whole index. */
export async function readWholeIndex(ops: XenstoreOps, paths: StorePaths): Promise<Map<number, Map<string, string>>> {
  const domids = await readIndexedDomids(ops, paths);
  const entries = await mapWindowed(domids, async (d) => {
    const ids = await readDomainIndex(ops, paths, d);
    const values = await Promise.all(ids.map((id) => readOptional(ops, paths.indexEntry(d, id))));
    return new Map(ids.flatMap((id, i) => (values[i] === undefined ? [] : [[id, values[i]!] as const])));
  });
  return new Map(domids.map((d, i) => [d, entries[i]]));
}

/**
 * The index the regions call for: domid -> ID -> range text. Every mapping's domain has an
 * entry with the mapping's range, and the owner one with the region's range while the region
 * exists, orphaned too.
 */
export function expectedIndex(regions: readonly Pick<RegionRecord, 'id' | 'owner' | 'begin' | 'size' | 'mappings'>[]): Map<number, Map<string, string>> {
  const out = new Map<number, Map<string, string>>();
  const add = (domid: number, id: string, range: string): void => {
    const d = out.get(domid) ?? new Map<string, string>();
    d.set(id, range);
    out.set(domid, d);
  };
  for (const r of regions) {
    add(r.owner, r.id, formatRange(r.begin, r.begin + r.size));
    for (const m of r.mappings) add(m.domid, r.id, formatRange(m.begin, m.end));
  }
  return out;
}

/** Where an index and the regions disagree: one line per entry missing, stale or wrong. */
export interface IndexProblem {
  domid: number;
  id: string;
  /** What the regions call for (null: no mapping, the entry should not exist). */
  expected: string | null;
  /** What the index holds (null: no entry). */
  found: string | null;
}

/** Compares an index (readWholeIndex) with the index the regions call for (expectedIndex). */
export function indexProblems(want: ReadonlyMap<number, ReadonlyMap<string, string>>, index: ReadonlyMap<number, ReadonlyMap<string, string>>): IndexProblem[] {
  const out: IndexProblem[] = [];
  const domids = [...new Set([...want.keys(), ...index.keys()])].sort((a, b) => a - b);
  for (const domid of domids) {
    const w = want.get(domid) ?? new Map<string, string>();
    const f = index.get(domid) ?? new Map<string, string>();
    for (const id of [...new Set([...w.keys(), ...f.keys()])].sort()) {
      const expected = w.get(id) ?? null;
      const found = f.get(id) ?? null;
      if (expected !== found) out.push({ domid, id, expected, found });
    }
  }
  return out;
}

/**
 * Inside a transaction: writes the index of every region when `<root>/by-domain` is absent
 * (records of an older version), making `<root>/by-domain` (n0) even when no mapping is
 * recorded. Returns false when the index was there already (another process built it).
 */
export async function rebuildIndex(tx: XenstoreOps, paths: StorePaths): Promise<boolean> {
  if (await tx.exists(paths.index())) return false;
  const regions = (await readRegions(tx, paths, await listRegionIds(tx, paths))).filter((r): r is RegionRecord => r !== null);
  const writes: Promise<void>[] = [tx.mkdir(paths.index()), tx.setPerms(paths.index(), ['n0'])];
  for (const [domid, entries] of expectedIndex(regions)) {
    writes.push(tx.mkdir(paths.domainIndex(domid)), tx.setPerms(paths.domainIndex(domid), ['n0']));
    for (const [id, range] of entries) writes.push(tx.write(paths.indexEntry(domid, id), range));
  }
  await Promise.all(writes);
  return true;
}

/**
 * Inside a transaction: makes `domid`'s index agree with the regions of `ids` (the IDs the
 * caller found the domain in, and those its index names), read again here so that the repair
 * cannot race with an apply or a release. Returns the problems it fixed.
 */
export async function repairDomainIndex(tx: XenstoreOps, paths: StorePaths, domid: number, ids: readonly string[]): Promise<IndexProblem[]> {
  const indexed = await readDomainIndex(tx, paths, domid);
  const all = [...new Set([...ids, ...indexed])].sort();
  const [regions, values] = await Promise.all([readRegions(tx, paths, all), Promise.all(indexed.map((id) => readOptional(tx, paths.indexEntry(domid, id))))]);
  const found = new Map(indexed.flatMap((id, i) => (values[i] === undefined ? [] : [[id, values[i]!] as const])));
  const want = expectedIndex(regions.filter((r): r is RegionRecord => r !== null)).get(domid) ?? new Map<string, string>();
  const problems = indexProblems(new Map([[domid, want]]), new Map([[domid, found]]));
  if (problems.length === 0) return [];
  const writes: Promise<void>[] = [];
  const wasEmpty = indexed.length === 0;
  if (wasEmpty && problems.some((p) => p.expected !== null)) writes.push(tx.mkdir(paths.domainIndex(domid)), tx.setPerms(paths.domainIndex(domid), ['n0']));
  for (const p of problems) writes.push(p.expected === null ? tx.rm(paths.indexEntry(domid, p.id)) : tx.write(paths.indexEntry(domid, p.id), p.expected));
  await Promise.all(writes);
  // Stale entries removed may leave the folder (and the index) empty.
  if (problems.some((p) => p.expected === null)) await pruneIndex(tx, paths, [domid]);
  return problems;
}
