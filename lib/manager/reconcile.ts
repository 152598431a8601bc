/**
 * Reconcile and list: what the records say, and putting right what dead processes and dead
 * domains left. Reconcile rolls back apply intents and finishes release intents whose locking
 * process is gone, never touching one whose process lives; with `deadDomains` (default) it
 * also releases what domains that no longer run held.
 */
import { readAllRegions, readMapping, readRegion, readTarget, type MappingRecord, type RegionRecord } from '../store';
import type { MappingRole } from '../vocabulary';
import type { ManagerContext } from './context';
import { domainAlive, listDomains } from './domains';
import { lockStatus, ownLock } from './lock';
import { lifecycle } from './refusals';
import { releaseMapping } from './release';
import type { ListResult, ReconcileAction, ReconcileOptions, ReconcileReport } from './types';

export async function reconcile(ctx: ManagerContext, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
  const actions: ReconcileAction[] = [];
  const regions = await readAllRegions(ctx.xs, ctx.paths);
  const aliveCache = new Map<number, boolean>();
  const alive = async (d: number): Promise<boolean> => {
    if (!aliveCache.has(d)) aliveCache.set(d, await domainAlive(ctx.hv, d));
    return aliveCache.get(d)!;
  };
  // Borrowers first, so that an owner whose borrowers are all gone is released, not orphaned.
  const order = (r: RegionRecord) => [...r.mappings].sort((a, b) => Number(a.domid === r.owner) - Number(b.domid === r.owner));
  for (const r of regions) {
    for (const m of order(r)) {
      const role: MappingRole = m.domid === r.owner ? 'owner' : 'borrower';
      const base = { id: r.id, domid: m.domid, role, state: m.state };
      if (m.lock !== null) {
        const status = m.lock === ownLock() ? 'alive' : lockStatus(m.lock);
        if (status !== 'dead') {
          actions.push({ ...base, action: status === 'alive' ? 'skipped-live' : 'skipped-unknown', lock: m.lock });
          continue;
        }
        const out = await releaseMapping(ctx, r.id, m.domid, { takeover: m.lock });
        if (out) actions.push({ ...base, lock: m.lock, action: m.state === 'mapping' ? 'rolled-back' : 'completed-release' });
        continue;
      }
      if (opts.deadDomains !== false && !(await alive(m.domid))) {
        const out = await releaseMapping(ctx, r.id, m.domid, {});
        if (out) actions.push({ ...base, action: out.action === 'orphaned' ? 'orphaned' : 'released' });
      }
    }
  }
  return { actions };
}

/** Every region with its mappings, and the domains involved (name, recorded set_target). */
export async function list(ctx: ManagerContext): Promise<ListResult> {
  const regions = await readAllRegions(ctx.xs, ctx.paths);
  const domids = new Set<number>();
  for (const r of regions) {
    domids.add(r.owner);
    for (const m of r.mappings) domids.add(m.domid);
  }
  const known = new Map((await listDomains(ctx.xs)).map((d) => [d.domid, d.name]));
  const domains = await Promise.all(
    [...domids].sort((a, b) => a - b).map(async (domid) => ({ domid, name: known.get(domid) ?? null, target: await readTarget(ctx.xs, ctx.paths, domid) })),
  );
  return { root: ctx.paths.root, regions, domains };
}

/** One region's record, or a ManagerError ENOENT. */
export async function region(ctx: ManagerContext, id: string): Promise<RegionRecord> {
  const r = await readRegion(ctx.xs, ctx.paths, id);
  if (!r) throw lifecycle.notFound(ctx.paths, id);
  return r;
}

/** The mapping of one domain in a region (null when it has none). */
export function mapping(ctx: ManagerContext, id: string, domid: number): Promise<MappingRecord | null> {
  return readMapping(ctx.xs, ctx.paths, id, domid);
}
