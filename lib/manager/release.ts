/**
 * Release: the mirror image of apply. Per mapping: claim (state unmapping, our lock, mirror
 * removed), RELEASE_STEPS (unmap a borrower's pages, free an owner's frames; skipped for a
 * domain that no longer runs), commit (records removed; the region goes with its last mapping,
 * or turns orphaned when the owner leaves before its borrowers).
 */
import type { XenstoreOps } from '../../xenstore-wire';
import { portOf, PORT_ALLOCATING, readRegion, removeMapping, removeMirror, removePort, removeRegion, writeMappingState, writeOwnerDoorbell, writePort, writeRegionState, type MappingRecord, type RegionRecord } from '../store';
import type { MappingRole } from '../vocabulary';
import { waitFor, type ManagerContext, type Wait } from './context';
import { domainAlive } from './domains';
import { findUnrecordedPort } from './doorbells';
import { freeOwnerFrames, unmapBorrower } from './frames';
import { lockStatus, ownLock } from './lock';
import { ownRegions } from './own-records';
import { lifecycle } from './refusals';
import type { ReleaseAction, ReleasedEntry, ReleaseRequest, ReleaseResult } from './types';

/** One mapping's release between its claim and its commit. */
export interface ReleaseWork {
  readonly id: string;
  readonly domid: number;
  readonly role: MappingRole;
  readonly region: RegionRecord;
  /** The mapping as claimed; its state before says how much is mapped (all if 'mapped'). */
  readonly mapping: MappingRecord;
  readonly stateBefore: MappingRecord['state'];
  /** Set by the doorbell step: the port a dead apply allocated and never recorded, or null. */
  adopted?: number | null;
}

/**
 * A step of a release, run only while the domain exists (`always`: whether or not it does);
 * `commit` adds to the commit transaction.
 */
export interface ReleaseStep {
  readonly name: string;
  readonly always?: boolean;
  run(ctx: ManagerContext, w: ReleaseWork): Promise<void>;
  commit?(tx: XenstoreOps, ctx: ManagerContext, w: ReleaseWork): Promise<void>;
}

export const OWNER_RELEASE_STEPS: ReleaseStep[] = [
  {
    name: 'free',
    // An apply that never committed (state mapping) may have populated any prefix of the region.
    run: (ctx, w) => freeOwnerFrames(ctx, w.id, w.domid, w.region, w.stateBefore !== 'mapped'),
  },
];

export const BORROWER_RELEASE_STEPS: ReleaseStep[] = [
  { name: 'unmap', run: (ctx, w) => unmapBorrower(ctx, w.id, w.domid, w.mapping) },
  {
    // The port stays (dom0 cannot close another domain's port) and stays recorded, for a
    // re-apply to reuse; the owner's mirror stops listing it. An intent a dead apply left
    // (`allocating`) is settled: the port it allocated is found in Xen and recorded, or the
    // intent goes. Whether or not the borrower still runs: the port is in the owner.
    name: 'doorbell',
    always: true,
    async run(ctx, w) {
      if (portOf(w.region, w.domid) === PORT_ALLOCATING) w.adopted = await findUnrecordedPort(ctx, w.region, w.domid);
    },
    async commit(tx, ctx, w) {
      const pending = portOf(w.region, w.domid) === PORT_ALLOCATING;
      await Promise.all([
        writeOwnerDoorbell(tx, ctx.paths, w.region.owner, w.id, w.domid, null),
        pending ? (typeof w.adopted === 'number' ? writePort(tx, ctx.paths, w.id, w.domid, w.adopted) : removePort(tx, ctx.paths, w.id, w.domid)) : undefined,
      ]);
    },
  },
];

const stepsOf = (role: MappingRole): ReleaseStep[] => (role === 'owner' ? OWNER_RELEASE_STEPS : BORROWER_RELEASE_STEPS);

type ReleaseClaim = { kind: 'claimed'; work: ReleaseWork } | { kind: 'absent' };

/**
 * Releases what a domain holds: its borrowed mappings, then the regions it owns (orphaned
 * while borrowers remain, unless `force` releases them first). A domain that no longer runs
 * counts as already unmapped. Releasing what is not there does nothing.
 */
export async function release(ctx: ManagerContext, req: ReleaseRequest): Promise<ReleaseResult> {
  // The domain's own regions (its index) and those asked for by ID: never the whole host.
  const regions = await ownRegions(ctx, req.domid, req.ids ?? []);
  const wanted = (r: RegionRecord) => !req.ids || req.ids.includes(r.id);
  for (const id of req.ids ?? []) if (!regions.some((r) => r.id === id)) throw lifecycle.notFound(ctx.paths, id, req.domid);
  const entries: ReleasedEntry[] = [];
  const add = (out: ReleasedEntry | null): void => void (out && entries.push(out));
  for (const r of regions.filter(wanted)) {
    if (r.owner !== req.domid && r.mappings.some((m) => m.domid === req.domid)) add(await releaseMapping(ctx, r.id, req.domid, {}));
  }
  for (const r of regions.filter(wanted)) {
    if (r.owner !== req.domid) continue;
    if (req.force) for (const m of r.mappings) if (m.domid !== r.owner) add(await releaseMapping(ctx, r.id, m.domid, {}));
    add(await releaseMapping(ctx, r.id, req.domid, {}));
  }
  return { domid: req.domid, entries };
}

/**
 * Releases one mapping. `takeover`: the lock of a dead process whose intent this call
 * finishes (reconcile).
 */
export async function releaseMapping(ctx: ManagerContext, id: string, domid: number, opts: { takeover?: string }): Promise<ReleasedEntry | null> {
  const lock = ownLock();
  const claim = await waitFor<ReleaseClaim>(ctx, id, domid, () => ctx.tx((tx) => claimRelease(ctx, tx, id, domid, lock, opts.takeover)));
  if (claim.kind === 'absent') return null;
  const w = claim.work;
  const alive = await domainAlive(ctx.hv, domid);
  for (const step of stepsOf(w.role)) if (alive || step.always) await step.run(ctx, w);
  const action = await ctx.tx((tx) => commitRelease(ctx, tx, w, lock));
  return { id, domid, role: w.role, action, hypercalls: alive };
}

async function claimRelease(ctx: ManagerContext, tx: XenstoreOps, id: string, domid: number, lock: string, takeover?: string): Promise<ReleaseClaim | Wait> {
  const region = await readRegion(tx, ctx.paths, id);
  const m = region?.mappings.find((x) => x.domid === domid);
  if (!region || !m) return { kind: 'absent' };
  if (m.lock !== null && m.lock !== lock && m.lock !== takeover) {
    const status = lockStatus(m.lock);
    if (status === 'alive') return { kind: 'wait', why: `d${domid}'s mapping is held by process ${m.lock} (state ${m.state})` };
    if (status === 'unknown') throw lifecycle.foreignReleaseLock(ctx.paths, id, domid, m.lock);
    // A dead process's intent: releasing finishes it, exactly as reconcile would.
  }
  const role: MappingRole = domid === region.owner ? 'owner' : 'borrower';
  await Promise.all([
    writeMappingState(tx, ctx.paths, id, domid, 'unmapping', lock),
    role === 'owner' ? writeRegionState(tx, ctx.paths, id, 'releasing') : undefined,
    removeMirror(tx, ctx.paths, domid, id),
  ]);
  return { kind: 'claimed', work: { id, domid, role, region, mapping: { ...m, lock }, stateBefore: m.state } };
}

async function commitRelease(ctx: ManagerContext, tx: XenstoreOps, w: ReleaseWork, lock: string): Promise<ReleaseAction> {
  const { id, domid } = w;
  const region = await readRegion(tx, ctx.paths, id);
  const m = region?.mappings.find((x) => x.domid === domid);
  if (!region || !m || m.lock !== lock) throw lifecycle.lostReleaseClaim(ctx.paths, id, domid);
  for (const step of stepsOf(w.role)) await step.commit?.(tx, ctx, w);
  const others = region.mappings.filter((x) => x.domid !== domid);
  const ownerLeft = domid === region.owner || region.state === 'orphaned';
  if (ownerLeft && others.length === 0) {
    await Promise.all([removeMirror(tx, ctx.paths, domid, id), removeRegion(tx, ctx.paths, region)]);
    return 'released';
  }
  await Promise.all([
    removeMirror(tx, ctx.paths, domid, id),
    removeMapping(tx, ctx.paths, region, domid),
    domid === region.owner ? writeRegionState(tx, ctx.paths, id, 'orphaned') : undefined,
  ]);
  return domid === region.owner ? 'orphaned' : 'released';
}
