/**
 * Apply: a domain's config turned into shared memory, entry by entry, each in three phases
 * (DESIGN.md "Crash-safe apply and release"):
 *
 *   claim     one transaction: decide the entry again on the region it reads (decide.ts),
 *             check the region's lifecycle, write the region or mapping with state
 *             allocating/mapping and a lock naming this process
 *   steps     outside any transaction: OWNER_STEPS or BORROWER_STEPS in order (populate the
 *             owner's frames; set_target and map the borrower's pages); when one fails, the
 *             ones done before are undone in reverse
 *   commit    one transaction: state ready/mapped, lock removed, guest mirror written, plus
 *             what each step records
 *
 * All or nothing across a config's entries: everything the records can tell is checked before
 * the first change, and a failing entry releases the entries this call created.
 */
import { ConnectionError, type XenstoreOps } from '../../xenstore-wire';
import { domainName as configDomainName } from '../config/shm-entries';
import type { ShmEntry } from '../config/shm-entries';
import {
  mirrorOf,
  portOf,
  PORT_ALLOCATING,
  readKeptPorts,
  readRegion,
  removeKeptPorts,
  removePort,
  writeOwnerDoorbell,
  writePort,
  readTarget,
  removeMapping,
  removeRegion,
  writeMapping,
  writeIndexDir,
  writeMappingState,
  writeMirror,
  writeRegion,
  writeRegionState,
  writeTarget,
  type MappingRecord,
  type RegionRecord,
} from '../store';
import { isDomid, PAGE_SHIFT_N, type MappingRole } from '../vocabulary';
import { lockedBy, waitFor, type ManagerContext, type Wait } from './context';
import { decideApply, readConfig, type Decision } from './decide';
import type { ReadResult } from '../config/plan';
import { domainName, findDomainByName } from './domains';
import { freeOwnerFrames, makeRoom, mapBorrower, populate, setTarget, unmapBorrower } from './frames';
import { ownLock } from './lock';
import { ownRegions } from './own-records';
import { allocatePort, findUnrecordedPort, reusable } from './doorbells';
import { domainRefusal, lifecycle, memoryShort } from './refusals';
import { releaseMapping } from './release';
import type { AppliedEntry, ApplyAction, ApplyRequest, ApplyResult } from './types';

/** One entry's apply between its claim and its commit. */
export interface EntryWork {
  readonly id: string;
  readonly domid: number;
  readonly name: string | null;
  readonly role: MappingRole;
  readonly region: RegionRecord;
  readonly mapping: MappingRecord;
  readonly req: ApplyRequest;
  /** For a borrower: whether set_target is to be made, or is recorded already. */
  readonly setTarget?: 'needed' | 'recorded';
  /** Set by the steps: 'done' once this apply made the set_target. */
  setTargetDone?: boolean;
  /** Set by the raise step: the owner's max memory before and after. */
  raised?: { fromPages: number; toPages: number };
  /**
   * A borrower with a doorbell: 'reuse' a recorded port still its doorbell in Xen (claim), or
   * 'allocate' one (the claim recorded the intent); 'adopt-first' when the claim found an intent
   * no one finished (a port may exist already: found with EVTCHNOP_status before allocating).
   */
  readonly doorbell?: 'reuse' | 'allocate' | 'adopt-first';
  /** The borrower's port: the reused one (claim), or the one the doorbell step got. */
  port?: number;
}

/**
 * A step of an entry's apply, between claim and commit. `run` undoes its own partial work
 * before throwing; `undo` reverses a completed run when a later step or the commit fails
 * (absent: it cannot be undone, like set_target); `commit` adds to the commit transaction.
 */
export interface ApplyStep {
  readonly name: string;
  run(ctx: ManagerContext, w: EntryWork): Promise<void>;
  undo?(ctx: ManagerContext, w: EntryWork): Promise<void>;
  commit?(tx: XenstoreOps, ctx: ManagerContext, w: EntryWork): Promise<void>;
}

const pagesOf = (size: bigint): number => Number(size >> PAGE_SHIFT_N);

/** The owner's steps: room in its max memory (when asked), then its frames. */
export const OWNER_STEPS: ApplyStep[] = [
  {
    name: 'raise-maxmem',
    async run(ctx, w) {
      if (!w.req.raiseMaxMem) return;
      const r = await makeRoom(ctx, w.domid, pagesOf(w.region.size));
      if (r) w.raised = r;
    },
  },
  {
    name: 'populate',
    run: (ctx, w) => populate(ctx, w.id, w.domid, w.region, w.name),
    undo: (ctx, w) => freeOwnerFrames(ctx, w.id, w.domid, w.region, true),
  },
];

/** The borrower's steps: set_target (once, never undone; recorded at commit), then the mapping. */
export const BORROWER_STEPS: ApplyStep[] = [
  {
    name: 'set-target',
    async run(ctx, w) {
      if (w.setTarget !== 'needed') return;
      await setTarget(ctx, w.id, w.domid, w.region.owner);
      w.setTargetDone = true;
    },
    async commit(tx, ctx, w) {
      if (w.setTargetDone) await writeTarget(tx, ctx.paths, w.domid, w.region.owner);
    },
  },
  {
    name: 'map',
    run: (ctx, w) => mapBorrower(ctx, w.id, w.domid, w.region, w.mapping),
    undo: (ctx, w) => unmapBorrower(ctx, w.id, w.domid, w.mapping),
  },
  {
    // Last, so that a failure of an earlier step never leaves a port behind. No undo: dom0
    // cannot close another domain's port; a failed apply records it (unclaim), as release keeps it.
    name: 'doorbell',
    async run(ctx, w) {
      if (!w.doorbell || w.doorbell === 'reuse') return;
      const adopted = w.doorbell === 'adopt-first' ? await findUnrecordedPort(ctx, w.region, w.domid) : null;
      w.port = adopted ?? (await allocatePort(ctx, w.id, w.region.owner, w.domid));
    },
    async commit(tx, ctx, w) {
      if (w.port === undefined) return;
      await Promise.all([writePort(tx, ctx.paths, w.id, w.domid, w.port), writeOwnerDoorbell(tx, ctx.paths, w.region.owner, w.id, w.domid, w.port)]);
    },
  },
];

const stepsOf = (role: MappingRole): ApplyStep[] => (role === 'owner' ? OWNER_STEPS : BORROWER_STEPS);

type Claim =
  | { kind: 'claimed'; work: EntryWork }
  | { kind: 'unchanged'; region: RegionRecord; mapping: MappingRecord; role: MappingRole };

/**
 * Applies a domain's static shared memory entries. All or nothing: when an entry fails, the
 * entries this call created are released again before the error is thrown. Applying the same
 * config twice changes nothing the second time.
 */
export async function apply(ctx: ManagerContext, req: ApplyRequest): Promise<ApplyResult> {
  // The config's own rules first: a broken config is refused before the host is asked anything.
  const read = readConfig(req.config, { dom0less: req.dom0less, doorbell: req.doorbell });
  const cfgName = configDomainName(req.config).name;
  const { domid, recorded } = await resolveDomain(ctx, req, cfgName);
  const name = recorded ?? cfgName;
  const decisions = await prepare(ctx, req, read, domid, name);
  if (decisions.length === 0) return { domid, domain: name, entries: [] };

  const done: AppliedEntry[] = [];
  const raised: { fromPages: number; toPages: number }[] = [];
  try {
    for (const d of decisions) done.push(await applyEntry(ctx, req, read, d.entry, domid, name, raised));
  } catch (e) {
    // Undo what this call created; what was already there stays.
    for (const d of done.reverse()) {
      if (d.action === 'unchanged') continue;
      try {
        await releaseMapping(ctx, d.id, domid, {});
      } catch (undoErr) {
        if (e instanceof Error) (e as Error & { rollbackError?: unknown }).rollbackError = undoErr;
      }
    }
    throw e;
  }
  const out: ApplyResult = { domid, domain: name, entries: done };
  if (raised.length > 0) out.maxMemRaised = { fromPages: raised[0].fromPages, toPages: raised[raised.length - 1].toPages };
  return out;
}

/** The domid applied to, and the name the toolstack recorded for it. */
async function resolveDomain(ctx: ManagerContext, req: ApplyRequest, cfgName: string | null): Promise<{ domid: number; recorded: string | null }> {
  let domid: number;
  if (req.domid !== undefined) domid = req.domid;
  else {
    const name = req.domain ?? cfgName;
    if (!name) throw domainRefusal.noneGiven();
    if (req.domain !== undefined && cfgName !== null && req.domain !== cfgName) throw domainRefusal.notTheConfigs(req.domain, cfgName, req.config.file);
    domid = await findDomainByName(ctx.xs, name);
  }
  if (!isDomid(domid)) throw domainRefusal.notADomid(domid);
  if (domid === 0) throw domainRefusal.dom0();
  const [info, recorded] = await Promise.all([ctx.hv.domainInfo(domid), domainName(ctx.xs, domid)]);
  if (!info || info.dying) throw domainRefusal.absent(domid, info);
  if (recorded !== null && cfgName !== null && recorded !== cfgName) throw domainRefusal.nameDiffers(domid, recorded, cfgName);
  return { domid, recorded };
}

/**
 * Decides every entry against a snapshot of the records and refuses what cannot work, before any
 * change. The snapshot is the domain's own: the regions its entries name and those it has a
 * mapping in (the index), which is all the planner's rules look at for one domain (ownership,
 * windows and sizes by ID; overlaps among the domain's own mappings; its set_target).
 */
async function prepare(ctx: ManagerContext, req: ApplyRequest, read: ReadResult, domid: number, name: string | null): Promise<Decision[]> {
  const ids = read.domains.flatMap((d) => d.valid.map((e) => e.id));
  const [regions, target] = await Promise.all([ownRegions(ctx, domid, ids), readTarget(ctx.xs, ctx.paths, domid)]);
  const decisions = await decideApply(ctx, req, { read, domid, name, allowSetTarget: req.allowSetTarget }, { regions, targets: targetsOf(domid, target) });
  for (const d of decisions) lifecycleCheck(ctx, d, domid, name);
  // Frames populated for an owner count against its max memory: say so before any change.
  const fresh = decisions.filter((d) => d.role === 'owner' && !d.region);
  const pages = fresh.reduce((n, d) => n + pagesOf(d.entry.size), 0);
  if (pages > 0 && !req.raiseMaxMem) {
    const info = await ctx.hv.domainInfo(domid);
    if (info && info.headroomPages < pages) throw memoryShort(fresh.map((d) => d.entry.id), { domid, name }, pages, info);
  }
  return decisions;
}

function targetsOf(domid: number, target: number | null): Map<number, number> {
  return target === null ? new Map() : new Map([[domid, target]]);
}

/** What the region's lifecycle forbids: an owner or a mapping moved, an orphaned region. */
function lifecycleCheck(ctx: ManagerContext, d: Decision, domid: number, name: string | null): void {
  const { entry: e, region } = d;
  if (!region) return;
  if (d.role === 'owner') {
    if (region.begin !== e.begin || region.size !== e.size || region.prot !== e.prot) throw lifecycle.ownerMoved(ctx.paths, { domid, name }, region, e.begin, e.size, e.prot);
    if (region.state === 'orphaned') throw lifecycle.orphaned(ctx.paths, domid, region, true);
    if (!!region.doorbell !== d.doorbell) throw lifecycle.doorbellChanged(ctx.paths, { domid, name }, region, d.doorbell);
    return;
  }
  if (region.state === 'orphaned') throw lifecycle.orphaned(ctx.paths, domid, region, false);
  const m = region.mappings.find((x) => x.domid === domid);
  if (m && m.lock === null && (m.begin !== e.begin || m.end !== e.end || m.offset !== e.offset || m.prot !== e.prot)) {
    throw lifecycle.mappingMoved(ctx.paths, { domid, name }, e.id, m, e);
  }
  // A mapped borrower that now wants a port it was not given: its mapping would stay as it is.
  if (m && m.lock === null && d.doorbell && typeof portOf(region, domid) !== 'number') throw lifecycle.doorbellChanged(ctx.paths, { domid, name }, region, true, domid);
}

async function applyEntry(ctx: ManagerContext, req: ApplyRequest, read: ReadResult, entry: ShmEntry, domid: number, name: string | null, raised: { fromPages: number; toPages: number }[]): Promise<AppliedEntry> {
  const lock = ownLock();
  const claim = await waitFor<Claim>(ctx, entry.id, domid, () => ctx.tx((tx) => claimApply(ctx, tx, req, read, entry, domid, name, lock)));
  if (claim.kind === 'unchanged') return appliedEntry(claim.region, claim.mapping, claim.role, 'unchanged');
  const w = claim.work;
  const steps = stepsOf(w.role);
  const done: ApplyStep[] = [];
  try {
    for (const step of steps) {
      await step.run(ctx, w);
      done.push(step);
    }
  } catch (e) {
    await undoSteps(ctx, w, done);
    await unclaim(ctx, entry.id, domid, lock, e, w);
    throw e;
  }
  if (w.raised) raised.push(w.raised);
  try {
    await ctx.tx((tx) => commitApply(ctx, tx, w, lock));
  } catch (e) {
    // The daemon answered: nothing was committed, so undo. A lost connection may have
    // committed: leave the intent to reconcile, which judges it once this process is gone.
    if (!(e instanceof ConnectionError) && !(e instanceof Error && (e as { reason?: string }).reason === 'lost-claim')) {
      await undoSteps(ctx, w, done);
      await unclaim(ctx, entry.id, domid, lock, e, w);
    }
    throw e;
  }
  const out = appliedEntry(w.region, { ...w.mapping, state: 'mapped', lock: null }, w.role, w.role === 'owner' ? 'created' : 'mapped', w.port ?? null);
  if (w.setTargetDone) out.setTarget = 'done';
  else if (w.setTarget === 'recorded') out.setTarget = 'recorded';
  return out;
}

/** Undoes completed steps in reverse; an undo that fails leaves the rest to reconcile. */
async function undoSteps(ctx: ManagerContext, w: EntryWork, done: ApplyStep[]): Promise<void> {
  for (const step of [...done].reverse()) await step.undo?.(ctx, w).catch(() => undefined);
}

function appliedEntry(region: RegionRecord, m: MappingRecord, role: MappingRole, action: ApplyAction, port?: number | null): AppliedEntry {
  const out: AppliedEntry = { id: region.id, role, action, owner: region.owner, begin: m.begin, end: m.end, offset: m.offset, pages: pagesOf(m.end - m.begin) };
  if (region.doorbell) out.doorbell = true;
  const p = port !== undefined ? port : role === 'borrower' ? portOf(region, m.domid) : undefined;
  if (typeof p === 'number') out.port = p;
  return out;
}

/** The claim transaction of one entry: decided again on what it reads, then the lifecycle. */
async function claimApply(ctx: ManagerContext, tx: XenstoreOps, req: ApplyRequest, read: ReadResult, entry: ShmEntry, domid: number, name: string | null, lock: string): Promise<Claim | Wait> {
  const id = entry.id;
  // Independent reads in one burst: the region, the domain's target, its index folder.
  const [region, target, indexed, arch] = await Promise.all([readRegion(tx, ctx.paths, id), readTarget(tx, ctx.paths, domid), tx.exists(ctx.paths.domainIndex(domid)), ctx.xenArch()]);
  const decided = { read, domid, name, allowSetTarget: req.allowSetTarget, only: id };
  const [d] = await decideApply(ctx, req, decided, { regions: region ? [region] : [], targets: targetsOf(domid, target) });
  lifecycleCheck(ctx, d, domid, name);
  const mapping: MappingRecord = { domid, begin: entry.begin, end: entry.end, offset: entry.offset, prot: entry.prot, state: 'mapping', lock };
  if (d.role === 'owner') {
    if (region) {
      const m = region.mappings.find((x) => x.domid === domid);
      if (m?.lock) return lockedBy(ctx, id, domid, m, "the owner's apply");
      if (m && m.state === 'mapped' && region.state === 'ready') return { kind: 'unchanged', region, mapping: m, role: 'owner' };
      if (region.state === 'releasing') return { kind: 'wait', why: 'the region is being released' };
      throw lifecycle.noOwnerMapping(ctx.paths, domid, region);
    }
    const cachePolicy = entry.cachePolicy ?? (arch === 'x86' ? 'x86_normal' : 'ARM_normal');
    const fresh: RegionRecord = { id, owner: domid, begin: entry.begin, size: entry.size, prot: entry.prot, cachePolicy, state: 'allocating', spelling: entry.spelling, mappings: [mapping], doorbell: d.doorbell, ports: [] };
    // One burst (the daemon keeps the order): the domain's index folder when it is new (so
    // that on a fresh host by-domain is listed before the regions), the region, its mapping.
    await Promise.all([indexed ? undefined : writeIndexDir(tx, ctx.paths, domid), writeRegion(tx, ctx.paths, fresh), writeMapping(tx, ctx.paths, id, mapping, true)]);
    return { kind: 'claimed', work: { id, domid, name, role: 'owner', region: fresh, mapping, req } };
  }
  const r = d.region!;
  if (r.state === 'allocating' || r.state === 'releasing') {
    const om = r.mappings.find((x) => x.domid === r.owner);
    if (om?.lock) return lockedBy(ctx, id, r.owner, om, r.state === 'allocating' ? "the owner's apply" : "the owner's release");
    return { kind: 'wait', why: `the region is ${r.state}` };
  }
  const m = r.mappings.find((x) => x.domid === domid);
  if (m?.lock) return lockedBy(ctx, id, domid, m, `d${domid}'s mapping`);
  if (m) return { kind: 'unchanged', region: r, mapping: m, role: 'borrower' };
  // The doorbell: a recorded port that is still the borrower's in Xen is reused (re-apply after
  // a release); otherwise the intent is recorded with the mapping's claim, before the hypercall.
  // EVTCHNOP_status only reads, so a redone transaction may ask again.
  let doorbell: EntryWork['doorbell'];
  let port: number | undefined;
  const writes: Array<Promise<void>> = [writeMapping(tx, ctx.paths, id, mapping, indexed)];
  if (d.doorbell) {
    const recorded = portOf(r, domid);
    if (typeof recorded === 'number' && (await reusable(ctx, r.owner, recorded, domid))) [doorbell, port] = ['reuse', recorded];
    else {
      // A port kept from a region of this owner that is gone, still the borrower's: taken back.
      // Those no longer its doorbell in Xen (closed by the owner) are forgotten.
      const kept = (await readKeptPorts(tx, ctx.paths, r.owner)).filter((k) => k.borrower === domid);
      const gone: number[] = [];
      for (const k of kept) {
        const ok = await reusable(ctx, r.owner, k.port, domid);
        if (ok && port === undefined) [doorbell, port] = ['reuse', k.port];
        else if (!ok) gone.push(k.port);
      }
      if (port !== undefined || gone.length > 0) writes.push(removeKeptPorts(tx, ctx.paths, r.owner, port !== undefined ? [port, ...gone] : gone));
      if (port !== undefined) writes.push(writePort(tx, ctx.paths, id, domid, port));
      else {
        doorbell = recorded === PORT_ALLOCATING ? 'adopt-first' : 'allocate';
        writes.push(writePort(tx, ctx.paths, id, domid, PORT_ALLOCATING));
      }
    }
  }
  await Promise.all(writes);
  return { kind: 'claimed', work: { id, domid, name, role: 'borrower', region: r, mapping, req, setTarget: d.setTarget, doorbell, port } };
}

/** The commit transaction: state ready/mapped, lock gone, guest mirror written, the steps' records. */
async function commitApply(ctx: ManagerContext, tx: XenstoreOps, w: EntryWork, lock: string): Promise<void> {
  const { id, domid } = w;
  const region = await readRegion(tx, ctx.paths, id);
  const m = region?.mappings.find((x) => x.domid === domid);
  if (!region || !m || m.lock !== lock || m.state !== 'mapping') throw lifecycle.lostApplyClaim(ctx.paths, id, domid, m);
  await Promise.all([
    writeMappingState(tx, ctx.paths, id, domid, 'mapped', null),
    w.role === 'owner' ? writeRegionState(tx, ctx.paths, id, 'ready') : undefined,
    writeMirror(tx, ctx.paths, domid, id, mirrorOfWork(region, m, w)),
  ]);
  for (const step of stepsOf(w.role)) await step.commit?.(tx, ctx, w);
}

/** The guest mirror at commit: a borrower's doorbell keys from this apply's port, or none. */
function mirrorOfWork(region: RegionRecord, m: MappingRecord, w: EntryWork): ReturnType<typeof mirrorOf> {
  if (w.role === 'owner') return mirrorOf(region, m);
  const { owner: _o, doorbell: _d, ...plain } = mirrorOf(region, m);
  return w.port === undefined ? plain : { ...plain, owner: region.owner, doorbell: w.port };
}

/**
 * Removes this process's claim (apply failed before anything stayed mapped). A borrower's port
 * intent becomes the port when one was allocated (it cannot be closed: kept, as a release keeps
 * it), or goes when none was.
 */
async function unclaim(ctx: ManagerContext, id: string, domid: number, lock: string, cause: unknown, w: EntryWork): Promise<void> {
  try {
    await ctx.tx(async (tx) => {
      const region = await readRegion(tx, ctx.paths, id);
      const m = region?.mappings.find((x) => x.domid === domid);
      if (!region || !m || m.lock !== lock) return;
      if (domid === region.owner && region.mappings.length === 1) await removeRegion(tx, ctx.paths, region);
      else if (domid === region.owner) await Promise.all([removeMapping(tx, ctx.paths, region, domid), writeRegionState(tx, ctx.paths, id, 'orphaned')]);
      else {
        const port = portOf(region, domid);
        await Promise.all([
          removeMapping(tx, ctx.paths, region, domid),
          port === PORT_ALLOCATING ? (w.port !== undefined ? writePort(tx, ctx.paths, id, domid, w.port) : removePort(tx, ctx.paths, id, domid)) : undefined,
        ]);
      }
    });
  } catch (e) {
    // Left for reconcile (the lock dies with this process); the first error is what matters.
    if (cause instanceof Error) (cause as Error & { rollbackError?: unknown }).rollbackError = e;
  }
}
