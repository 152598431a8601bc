/**
 * What one apply, release or dead domain's cleanup reads: the regions its domain has a mapping
 * in (the per-domain index, lib/store/domain-index.ts) plus the IDs it names, never the whole
 * host. Records of an older version have no index: the first call builds it (one transaction
 * reading every region, once per host).
 */
import { listRegionIds, readDomainIndex, readRegions, rebuildIndex, type RegionRecord } from '../store';
import type { ManagerContext } from './context';

/**
 * Builds the index when older records have none; true when it did. `absent`: the caller saw
 * <root>/by-domain missing already. Telling a host with no region from older records costs a
 * listing of the root, made only when the index is missing.
 */
export async function ensureIndex(ctx: ManagerContext, absent = false): Promise<boolean> {
  if (!absent && (await ctx.xs.exists(ctx.paths.index()))) return false;
  if ((await listRegionIds(ctx.xs, ctx.paths)).length === 0) return false;
  return ctx.tx((tx) => rebuildIndex(tx, ctx.paths));
}

/**
 * The regions `domid` has a mapping in, as the index says, and the regions of `ids` (recorded or
 * not), sorted by ID. The index's presence is checked in the same burst as the domain's entries.
 */
export async function ownRegions(ctx: ManagerContext, domid: number, ids: readonly string[] = []): Promise<RegionRecord[]> {
  const [present, first] = await Promise.all([ctx.xs.exists(ctx.paths.index()), readDomainIndex(ctx.xs, ctx.paths, domid)]);
  const indexed = !present && (await ensureIndex(ctx, true)) ? await readDomainIndex(ctx.xs, ctx.paths, domid) : first;
  const all = [...new Set([...ids, ...indexed])].sort();
  return (await readRegions(ctx.xs, ctx.paths, all)).filter((r): r is RegionRecord => r !== null);
}
