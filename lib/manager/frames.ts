/**
 * Frames: the hypercalls of apply and release, in batches of ctx.batchPages pages (progress and
 * crash granularity), each undoing its own partial work when a batch fails. They run between
 * a claim and its commit, outside any transaction, so a retried transaction never repeats them.
 */
import { HypercallError } from '../hypervisor/errors';
import type { GfnList } from '../hypervisor/types';
import { gfnSpan } from '../hypervisor/xen';
import { gfnsOf, type MappingRecord, type RegionRecord } from '../store';
import { PAGE_SIZE } from '../vocabulary';
import { progressOf, type ManagerContext } from './context';
import { hypercallRefusal, maxPagesFor } from './refusals';

/** Calls fn on consecutive chunks of at most batchPages pages. */
async function chunked(ctx: ManagerContext, gfns: GfnList, fn: (chunk: Float64Array, start: number) => Promise<void>): Promise<void> {
  for (let start = 0; start < gfns.length; start += ctx.batchPages) {
    const n = Math.min(ctx.batchPages, gfns.length - start);
    const chunk = new Float64Array(n);
    for (let i = 0; i < n; i++) chunk[i] = gfns[start + i];
    await fn(chunk, start);
  }
}

/** A HypercallError with the manager's advice, the domain read again after the failure. */
async function explain(ctx: ManagerContext, e: unknown, id: string, domid: number, name: string | null, pages: number): Promise<unknown> {
  if (!(e instanceof HypercallError)) return e;
  // Read after the call undid its pages: the headroom the region would have had.
  const info = e.code === 'ENOMEM' ? await ctx.hv.domainInfo(domid).catch(() => null) : null;
  return hypercallRefusal(e, id, { domid, name }, pages, info);
}

/** Raises the owner's max memory so that `pages` more fit (XEN_DOMCTL_max_mem), if needed. */
export async function makeRoom(ctx: ManagerContext, domid: number, pages: number): Promise<{ fromPages: number; toPages: number } | null> {
  const info = await ctx.hv.domainInfo(domid);
  if (!info || info.headroomPages >= pages) return null;
  const toPages = maxPagesFor(info, pages);
  await ctx.hv.setMaxMem(domid, toPages * (PAGE_SIZE / 1024));
  return { fromPages: info.maxPages, toPages };
}

/** Populates the owner's frames; on failure frees what this call populated, then explains. */
export async function populate(ctx: ManagerContext, id: string, owner: number, region: RegionRecord, name: string | null): Promise<void> {
  // The region's gfns are consecutive: spans, so that dom0's work is per extent, not per page
  // (a 2 MiB extent is one entry); the list is made only to undo.
  const first = Number(region.begin / BigInt(PAGE_SIZE));
  const n = Number(region.size / BigInt(PAGE_SIZE));
  const report = progressOf(ctx, id, owner, 'populate', n);
  let populated = 0;
  try {
    for (let start = 0; start < n; start += ctx.batchPages) {
      const count = Math.min(ctx.batchPages, n - start);
      await ctx.hv.populatePhysmap(owner, gfnSpan(first + start, count), (d) => report(d, start));
      populated = start + count;
    }
  } catch (e) {
    // populatePhysmap undid its own chunk; the chunks before it are whole.
    if (populated > 0) await ctx.hv.decreaseReservation(owner, gfnsOf(region.begin, region.size).subarray(0, populated)).catch(() => undefined);
    throw await explain(ctx, e, id, owner, name, n);
  }
}

/**
 * XEN_DOMCTL_set_target(borrower -> owner). EINVAL means the domain has a target already
 * (perhaps from an apply that died before recording it): mapping then tells whether it is this
 * owner, since Xen refuses with EPERM if not.
 */
export async function setTarget(ctx: ManagerContext, id: string, domid: number, owner: number): Promise<void> {
  try {
    await ctx.hv.setTarget(domid, owner);
  } catch (e) {
    if (!(e instanceof HypercallError && e.code === 'EINVAL')) throw await explain(ctx, e, id, domid, null, 0);
  }
}

/** The borrower's pages in batches; on failure unmaps what this call mapped, then explains. */
export async function mapBorrower(ctx: ManagerContext, id: string, domid: number, region: RegionRecord, m: MappingRecord): Promise<void> {
  const ownerGfns = gfnsOf(region.begin + m.offset, m.end - m.begin);
  const borrowerGfns = gfnsOf(m.begin, m.end - m.begin);
  const report = progressOf(ctx, id, domid, 'map', ownerGfns.length);
  let mapped = 0;
  try {
    for (let start = 0; start < ownerGfns.length; start += ctx.batchPages) {
      const n = Math.min(ctx.batchPages, ownerGfns.length - start);
      await ctx.hv.addToPhysmapForeign({
        borrower: domid, owner: region.owner,
        ownerGfns: ownerGfns.subarray(start, start + n), borrowerGfns: borrowerGfns.subarray(start, start + n),
        onProgress: (d) => report(d, start),
      });
      mapped = start + n;
    }
  } catch (e) {
    if (mapped > 0) await ctx.hv.removeFromPhysmap(domid, borrowerGfns.subarray(0, mapped), { missingOk: true }).catch(() => undefined);
    throw await explain(ctx, e, id, domid, null, ownerGfns.length);
  }
}

/** Unmaps a borrower's window (pages already gone count as unmapped). */
export async function unmapBorrower(ctx: ManagerContext, id: string, domid: number, m: { begin: bigint; end: bigint }): Promise<void> {
  const gfns = gfnsOf(m.begin, m.end - m.begin);
  const report = progressOf(ctx, id, domid, 'unmap', gfns.length);
  await chunked(ctx, gfns, async (chunk, start) => {
    await ctx.hv.removeFromPhysmap(domid, chunk, { missingOk: true, onProgress: (d) => report(d, start) });
  });
}

/**
 * Frees the owner's frames of the region. `unknownProgress`: an apply or release died part-way,
 * so some pages may not be populated: dom0 maps the pages first (MMAPBATCH_V2 reports each page
 * that holds no frame of the owner) and frees exactly the populated ones.
 */
export async function freeOwnerFrames(ctx: ManagerContext, id: string, owner: number, region: { begin: bigint; size: bigint }, unknownProgress: boolean): Promise<void> {
  const gfns = gfnsOf(region.begin, region.size);
  const report = progressOf(ctx, id, owner, 'free', gfns.length);
  await chunked(ctx, gfns, async (chunk, start) => {
    if (!unknownProgress) {
      try {
        await ctx.hv.decreaseReservation(owner, chunk, (d) => report(d, start));
        return;
      } catch (e) {
        if (!(e instanceof HypercallError)) throw e;
        // Some page was not there: fall through to the exact path for this chunk.
      }
    }
    const present = await populatedSubset(ctx, owner, chunk);
    if (present.length > 0) await ctx.hv.decreaseReservation(owner, present);
    report(chunk.length, start);
  });
}

/** The gfns among `chunk` that hold a page of `domid` (told by mapping them into dom0). */
async function populatedSubset(ctx: ManagerContext, domid: number, chunk: Float64Array): Promise<Float64Array> {
  try {
    const m = await ctx.hv.mapForeign(domid, chunk);
    m.unmap();
    return chunk;
  } catch (e) {
    if (!(e instanceof HypercallError) || !e.pages) throw e;
    const refused = new Set(e.pages.map((p) => p.index));
    return chunk.filter((_g, i) => !refused.has(i));
  }
}
