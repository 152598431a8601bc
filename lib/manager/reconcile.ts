/**
 * Reconcile and list: what the records say, and putting right what dead processes and dead
 * domains left. Reconcile rolls back apply intents and finishes release intents whose locking
 * process is gone, never touching one whose process lives; with `deadDomains` (default) it
 * also releases what domains that no longer run held.
 *
 * Two scopes. 'host' (the command, the daemon at start) reads every region, pipelined, and also
 * checks the per-domain index against them (building it for older records, repairing what an
 * older version left behind). 'dead-domains' (the daemon after @releaseDomain) asks Xen which
 * of the domains the index lists are gone and reads their index only: its cost follows the
 * dead domains' own records, not the host's.
 */
import {
  expectedIndex,
  indexProblems,
  listRegionIds,
  mapWindowed,
  readAllRegions,
  readIndexedDomids,
  readMapping,
  readRegion,
  readTarget,
  readWholeIndex,
  listKeptPortOwners,
  readKeptPorts,
  removeKeptPorts,
  KEPT_PORTS_NODE,
  portOf,
  PORT_ALLOCATING,
  removePort,
  repairDomainIndex,
  writePort,
  type IndexProblem,
  type MappingRecord,
  type RegionRecord,
} from '../store';
import type { MappingRole } from '../vocabulary';
import type { ManagerContext } from './context';
import { domainAlive, domainName, domainsAlive } from './domains';
import { findUnrecordedPort, isDoorbellOf, portState } from './doorbells';
import { lockStatus, ownLock } from './lock';
import { ensureIndex, ownRegions } from './own-records';
import { lifecycle } from './refusals';
import { releaseMapping } from './release';
import type { ListResult, PortListing, ReconcileAction, ReconcileOptions, ReconcileReport } from './types';

export async function reconcile(ctx: ManagerContext, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
  if (opts.scope === 'dead-domains') {
    // Older records without an index: the host scope builds it.
    const indexed = await ctx.xs.exists(ctx.paths.index());
    if (indexed || (await listRegionIds(ctx.xs, ctx.paths)).length === 0) return { actions: opts.deadDomains === false ? [] : [...(await deadDomains(ctx)), ...(await settleKeptPorts(ctx, false))] };
  }
  const rebuilt = await ensureIndex(ctx);
  const [regions, index] = await Promise.all([readAllRegions(ctx.xs, ctx.paths), readWholeIndex(ctx.xs, ctx.paths)]);
  const repaired = await repairIndex(ctx, indexProblems(expectedIndex(regions), index));
  // Liveness is Xen's to say: asked only when dead domains are to be released (--no-dead-domains
  // works on records alone, without privcmd).
  const releaseDead = opts.deadDomains !== false;
  const alive = releaseDead ? await livenessOf(ctx, domidsOf(regions)) : new Map<number, boolean>();
  const actions = await settle(ctx, regions, { deadDomains: releaseDead, alive });
  // Kept ports ask Xen too (is the owner alive, is the port still the borrower's).
  if (releaseDead) actions.push(...(await settleKeptPorts(ctx, true)));
  // Said only when the index needed work, so that a healthy host's report is as before.
  return rebuilt || repaired.length > 0 ? { actions, index: { rebuilt, repaired } } : { actions };
}

/** The daemon's cleanup after @releaseDomain: the domains of the index that Xen no longer runs. */
async function deadDomains(ctx: ManagerContext): Promise<ReconcileAction[]> {
  const domids = await readIndexedDomids(ctx.xs, ctx.paths);
  const alive = await livenessOf(ctx, domids);
  const dead = domids.filter((d) => !alive.get(d));
  if (dead.length === 0) return [];
  const byId = new Map<string, RegionRecord>();
  for (const regions of await mapWindowed(dead, (d) => ownRegions(ctx, d))) for (const r of regions) byId.set(r.id, r);
  const regions = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return settle(ctx, regions, { deadDomains: true, alive, only: new Set(dead) });
}

/** Puts right, in transactions that read again what they change, the index entries found wrong. */
async function repairIndex(ctx: ManagerContext, problems: IndexProblem[]): Promise<IndexProblem[]> {
  const byDomain = new Map<number, string[]>();
  for (const p of problems) byDomain.set(p.domid, [...(byDomain.get(p.domid) ?? []), p.id]);
  const fixed: IndexProblem[] = [];
  for (const [domid, ids] of byDomain) fixed.push(...(await ctx.tx((tx) => repairDomainIndex(tx, ctx.paths, domid, ids))));
  return fixed;
}

function domidsOf(regions: readonly RegionRecord[]): number[] {
  const out = new Set<number>();
  for (const r of regions) for (const m of r.mappings) out.add(m.domid);
  return [...out];
}

/**
 * Whether Xen runs each domain, asked for all at once: getdomaininfolist, a few hypercalls
 * whatever the number of domains (domains.ts domainsAlive).
 */
function livenessOf(ctx: ManagerContext, domids: readonly number[]): Promise<Map<number, boolean>> {
  return domainsAlive(ctx.hv, domids);
}

/**
 * Each mapping of the regions (of `only`'s domains, when given), borrowers first within a region
 * so that an owner whose borrowers are all gone is released, not orphaned: a dead process's
 * intent is finished, a dead domain's mapping released.
 */
async function settle(ctx: ManagerContext, regions: readonly RegionRecord[], opts: { deadDomains: boolean; alive: Map<number, boolean>; only?: Set<number> }): Promise<ReconcileAction[]> {
  const actions: ReconcileAction[] = [];
  const order = (r: RegionRecord) => [...r.mappings].sort((a, b) => Number(a.domid === r.owner) - Number(b.domid === r.owner));
  for (const r of regions) {
    for (const m of order(r)) {
      if (opts.only && !opts.only.has(m.domid)) continue;
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
      if (opts.deadDomains && !(opts.alive.get(m.domid) ?? (await domainAlive(ctx.hv, m.domid)))) {
        const out = await releaseMapping(ctx, r.id, m.domid, {});
        if (out) actions.push({ ...base, action: out.action === 'orphaned' ? 'orphaned' : 'released' });
      }
    }
    actions.push(...(await settlePortIntents(ctx, r, opts.only)));
  }
  return actions;
}

/**
 * Port intents (`allocating`) that no apply is finishing: no mapping holds a lock for that
 * borrower (a rolled-back apply settles its own through release). The port a dead apply
 * allocated is found with EVTCHNOP_status and recorded; when there is none, the intent goes.
 * So after reconcile no port made for a region is unrecorded and no record lacks its port.
 */
async function settlePortIntents(ctx: ManagerContext, r: RegionRecord, only?: Set<number>): Promise<ReconcileAction[]> {
  const out: ReconcileAction[] = [];
  for (const p of r.ports ?? []) {
    if (p.port !== PORT_ALLOCATING || (only && !only.has(p.borrower) && !only.has(r.owner))) continue;
    if (r.mappings.some((m) => m.domid === p.borrower && m.lock !== null)) continue;
    const adopted = await findUnrecordedPort(ctx, r, p.borrower);
    const done = await ctx.tx(async (tx) => {
      const now = await readRegion(tx, ctx.paths, r.id);
      if (!now || portOf(now, p.borrower) !== PORT_ALLOCATING || now.mappings.some((m) => m.domid === p.borrower && m.lock !== null)) return false;
      await (adopted !== null ? writePort(tx, ctx.paths, r.id, p.borrower, adopted) : removePort(tx, ctx.paths, r.id, p.borrower));
      return true;
    });
    if (done) out.push({ id: r.id, domid: p.borrower, role: 'borrower', action: adopted !== null ? 'port-recorded' : 'port-intent-removed', state: PORT_ALLOCATING });
  }
  return out;
}

/**
 * Kept ports (their regions are gone): those of owners that died went with them, and (host
 * scope, `check`) those that are no longer the borrower's doorbell in Xen (the owner closed
 * them) are forgotten. Neither is a port anyone could still use.
 */
async function settleKeptPorts(ctx: ManagerContext, check: boolean, deadOwners = true): Promise<ReconcileAction[]> {
  const owners = await listKeptPortOwners(ctx.xs, ctx.paths);
  if (owners.length === 0) return [];
  const alive = await livenessOf(ctx, owners);
  const out: ReconcileAction[] = [];
  for (const owner of owners) {
    const base = { id: KEPT_PORTS_NODE, domid: owner, role: 'owner' as const, state: 'kept' };
    if (!alive.get(owner)) {
      if (!deadOwners) continue;
      await ctx.tx((tx) => removeKeptPorts(tx, ctx.paths, owner));
      out.push({ ...base, action: 'ports-gone' });
      continue;
    }
    if (!check) continue;
    const kept = await readKeptPorts(ctx.xs, ctx.paths, owner);
    const states = await mapWindowed(kept, (k) => portState(ctx, owner, k.port));
    const stale = kept.filter((k, i) => !isDoorbellOf(states[i], k.borrower)).map((k) => k.port);
    if (stale.length === 0) continue;
    await ctx.tx((tx) => removeKeptPorts(tx, ctx.paths, owner, stale));
    out.push({ ...base, action: 'ports-gone' });
  }
  return out;
}

/** Every region with its mappings, and the domains involved (name, recorded set_target). */
export async function list(ctx: ManagerContext): Promise<ListResult> {
  const regions = await readAllRegions(ctx.xs, ctx.paths);
  const domids = new Set<number>();
  for (const r of regions) {
    domids.add(r.owner);
    for (const m of r.mappings) domids.add(m.domid);
    for (const p of r.ports ?? []) domids.add(p.borrower);
  }
  const sorted = [...domids].sort((a, b) => a - b);
  // The involved domains only, each name and target in one burst.
  const domains = await mapWindowed(sorted, async (domid) => {
    const [name, target] = await Promise.all([domainName(ctx.xs, domid), readTarget(ctx.xs, ctx.paths, domid)]);
    return { domid, name, target };
  });
  // Each recorded port with its live state (EVTCHNOP_status): only regions with a doorbell ask Xen.
  const recorded: PortListing[] = regions.flatMap((r) => (r.ports ?? []).map((p) => ({ id: r.id, owner: r.owner, borrower: p.borrower, port: p.port, kept: !r.mappings.some((x) => x.domid === p.borrower) })));
  // And the ports of regions that are gone, kept until their owner dies.
  for (const owner of await listKeptPortOwners(ctx.xs, ctx.paths)) {
    for (const k of await readKeptPorts(ctx.xs, ctx.paths, owner)) recorded.push({ id: null, owner, borrower: k.borrower, port: k.port, kept: true });
  }
  const owners = [...new Set(recorded.map((p) => p.owner))];
  const ownerAlive = new Map(owners.map((o, i) => [o, i]));
  const alive = await mapWindowed(owners, (o) => domainAlive(ctx.hv, o).catch(() => true));
  const ports = await mapWindowed(recorded, async (entry) => {
    if (typeof entry.port === 'number') entry.live = await portState(ctx, entry.owner, entry.port);
    if (!alive[ownerAlive.get(entry.owner)!]) entry.ownerGone = true;
    return entry;
  });
  const extra = recorded.flatMap((p) => [p.owner, p.borrower]).filter((d) => !domids.has(d));
  if (extra.length > 0) {
    for (const d of extra) domids.add(d);
    domains.push(...(await mapWindowed([...new Set(extra)], async (domid) => ({ domid, name: await domainName(ctx.xs, domid), target: await readTarget(ctx.xs, ctx.paths, domid) }))));
    domains.sort((a, b) => a.domid - b.domid);
  }
  return { root: ctx.paths.root, regions, domains, ports };
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
