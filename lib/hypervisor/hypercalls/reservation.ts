/**
 * populate_physmap and decrease_reservation: the owner's frames. Populate uses 2 MiB extents
 * (extent_order 9) wherever the guest range is 2 MiB-aligned and falls back to 4 KiB extents
 * when Xen cannot supply a large one; decrease goes page by page (4 KiB extents, so that a stop
 * names the exact page). Each hypercall carries up to RESERVATION_BATCH extents.
 * Both calls answer with a count and stop short without saying why (xen/common/memory.c,
 * do_memory_op: `rc = args.nr_done;`), so the errno and the facts are inferred afterwards.
 */
import { Hypercall, XenMem } from '../abi';
import { errnoName, HypercallError } from '../errors';
import { writeMemoryReservation, XEN_MEMORY_RESERVATION } from '../layout';
import type { GfnList, GfnSpan, ProgressCallback } from '../types';
import { PAGE_SIZE } from '../../vocabulary';
import { checkGfns, checkGfnSpan, ENOENT, ENOMEM, ESRCH, hex, HYPERCALL_BUFFER_BYTES, isGfnSpan, slice, writeU64List, writeU64Seq, type HypercallContext } from './context';
import { domainInfo } from './domctl';
import { mapForeign } from './foreign';

/** 2 MiB extents: 2^9 pages. Dom0 may ask for up to order 18 (max_order(), ctldom_max_order). */
export const EXTENT_ORDER_2M = 9;
export const PAGES_2M = 1 << EXTENT_ORDER_2M;
/**
 * Extents per populate_physmap / decrease_reservation call: 16,384 (a 128 KiB list), not a
 * whole buffer's 131,068. On Arm, Linux runs a privcmd hypercall without preemption
 * (xen_preemptible_hcall_begin() is empty there), and Xen frees a 4 KiB page in 30-140 µs under
 * QEMU: an undo of ~68,000 pages in one call ran past 20 s on a loaded host and tripped dom0's
 * soft-lockup watchdog. 16,384 pages keep a call to a few seconds at worst; a 2 MiB extent
 * counts as one.
 */
export const RESERVATION_BATCH = Math.min(16384, Math.floor((HYPERCALL_BUFFER_BYTES - XEN_MEMORY_RESERVATION.size) / 8));

const mib = (pages: number): string => `${((pages * PAGE_SIZE) / 2 ** 20).toFixed(pages < 256 ? 2 : 0)} MiB`;

/** What populate issued, for tests and the real-Xen figures. */
export interface PopulateStats {
  /** 2 MiB extents Xen accepted. */
  largeExtents: number;
  /** 4 KiB extents, including those that replaced refused large ones. */
  smallExtents: number;
  /** Large extents Xen could not supply (then populated as 4 KiB pages). */
  largeRefused: number;
  hypercalls: number;
}

/**
 * The positions in gfns where a 2 MiB extent starts: a 2 MiB-aligned gfn followed by the next
 * 511 gfns in order. Returns a Uint8Array: 1 at the first page of each large extent.
 */
export function largeExtentStarts(gfns: GfnList): Uint8Array {
  const n = gfns.length;
  const starts = new Uint8Array(n);
  let i = 0;
  while (i < n) {
    const g = gfns[i];
    if (g % PAGES_2M === 0 && i + PAGES_2M <= n && gfns[i + PAGES_2M - 1] === g + PAGES_2M - 1) {
      let k = 1;
      while (k < PAGES_2M && gfns[i + k] === g + k) k++;
      if (k === PAGES_2M) {
        starts[i] = 1;
        i += PAGES_2M;
        continue;
      }
    }
    i++;
  }
  return starts;
}

/** One populate_physmap or decrease_reservation of `count` extents of `order`; Xen's count. */
function reservationCall(cx: HypercallContext, op: number, domid: number, gfns: GfnList, from: number, count: number, order: number): number {
  const listOff = XEN_MEMORY_RESERVATION.size;
  const b = cx.buf(listOff + 8 * count);
  writeU64List(b, listOff, gfns, from, count);
  writeMemoryReservation(b.view, 0, { extentStart: b.address + BigInt(listOff), nrExtents: count, extentOrder: order, memFlags: 0, domid });
  return cx.hypercall(Hypercall.memory_op, [op, b.address]);
}

/** The same call with the extents first, first + step, ... written arithmetically (spans). */
function reservationCallSeq(cx: HypercallContext, op: number, domid: number, first: number, step: number, count: number, order: number): number {
  const listOff = XEN_MEMORY_RESERVATION.size;
  const b = cx.buf(listOff + 8 * count);
  writeU64Seq(b, listOff, first, step, count);
  writeMemoryReservation(b.view, 0, { extentStart: b.address + BigInt(listOff), nrExtents: count, extentOrder: order, memFlags: 0, domid });
  return cx.hypercall(Hypercall.memory_op, [op, b.address]);
}

/**
 * Counts one populate_physmap call of `asked` extents in `stats`: the extents Xen made (it stops
 * at the first it cannot make), or null when privcmd refused the call (rc < 0, -errno).
 */
function extentsMade(stats: PopulateStats, rc: number, asked: number, large: boolean): number | null {
  stats.hypercalls++;
  if (rc < 0) return null;
  const ok = Math.min(rc, asked);
  if (large) {
    stats.largeExtents += ok;
    stats.largeRefused += asked - ok;
  } else {
    stats.smallExtents += ok;
  }
  return ok;
}

/**
 * populatePrefix for a span: the same extents in the same order (2 MiB wherever 512 gfns start
 * 2 MiB-aligned, 4 KiB before, after and once Xen refuses a large one), found by arithmetic:
 * dom0's work is per extent and per call, not per page. The 4 KiB extents' lists are written
 * page by page (Xen reads one entry per extent).
 */
function populateSpanPrefix(cx: HypercallContext, domid: number, span: GfnSpan, stats: PopulateStats, onProgress: ProgressCallback | undefined, largeExtents: boolean): { done: number; errno?: number } {
  const { start, length: n } = span;
  let large = largeExtents;
  let done = 0;
  while (done < n) {
    const g = start + done;
    if (large && g % PAGES_2M === 0 && n - done >= PAGES_2M) {
      const k = Math.min(RESERVATION_BATCH, Math.floor((n - done) / PAGES_2M));
      const rc = reservationCallSeq(cx, XenMem.populate_physmap, domid, g, PAGES_2M, k, EXTENT_ORDER_2M);
      const ok = extentsMade(stats, rc, k, true);
      if (ok === null) return { done, errno: -rc };
      done += ok * PAGES_2M;
      if (ok > 0) onProgress?.(done, n);
      // Xen could not supply a 2 MiB extent (or the domain is full): 4 KiB pages from here on.
      if (ok < k) large = false;
      continue;
    }
    // 4 KiB extents up to the next 2 MiB boundary if a large extent fits after it, else on.
    let end = Math.min(n, done + RESERVATION_BATCH);
    if (large) {
      const aligned = done + ((PAGES_2M - (g % PAGES_2M)) % PAGES_2M);
      if (aligned > done && aligned + PAGES_2M <= n) end = Math.min(end, aligned);
    }
    const count = end - done;
    const rc = reservationCallSeq(cx, XenMem.populate_physmap, domid, g, 1, count, 0);
    const ok = extentsMade(stats, rc, count, false);
    if (ok === null) return { done, errno: -rc };
    done += ok;
    if (ok > 0) onProgress?.(done, n);
    if (ok < count) return { done };
  }
  return { done };
}

/**
 * populate_physmap of every gfn, 2 MiB extents where aligned. Returns the pages done (a prefix
 * of gfns: extents are issued in list order and Xen stops at the first it cannot do) and the
 * errno when privcmd itself refused the call.
 */
function populatePrefix(cx: HypercallContext, domid: number, gfns: GfnList, stats: PopulateStats, onProgress: ProgressCallback | undefined, largeExtents: boolean): { done: number; errno?: number } {
  const n = gfns.length;
  const starts = largeExtentStarts(gfns);
  let large = largeExtents;
  let done = 0;
  // Large extents: their first gfns, gathered in list order from `done`.
  const firsts = new Float64Array(Math.min(RESERVATION_BATCH, Math.ceil(n / PAGES_2M) + 1));
  while (done < n) {
    if (large && starts[done]) {
      let k = 0;
      let at = done;
      while (at < n && starts[at] && k < firsts.length) {
        firsts[k++] = gfns[at];
        at += PAGES_2M;
      }
      const rc = reservationCall(cx, XenMem.populate_physmap, domid, firsts, 0, k, EXTENT_ORDER_2M);
      const ok = extentsMade(stats, rc, k, true);
      if (ok === null) return { done, errno: -rc };
      done += ok * PAGES_2M;
      if (ok > 0) onProgress?.(done, n);
      if (ok < k) large = false;
      continue;
    }
    // 4 KiB extents up to the next large extent (or to the end once large ones failed).
    let end = done + 1;
    while (end < n && end - done < RESERVATION_BATCH && !(large && starts[end])) end++;
    const count = end - done;
    const rc = reservationCall(cx, XenMem.populate_physmap, domid, gfns, done, count, 0);
    const ok = extentsMade(stats, rc, count, false);
    if (ok === null) return { done, errno: -rc };
    done += ok;
    if (ok > 0) onProgress?.(done, n);
    if (ok < count) return { done };
  }
  return { done };
}

/** decrease_reservation of every gfn, 4 KiB extents; the pages done (a prefix) and privcmd's errno. */
export function decreasePrefix(cx: HypercallContext, domid: number, gfns: GfnList, onProgress?: ProgressCallback): { done: number; errno?: number } {
  const n = gfns.length;
  let done = 0;
  while (done < n) {
    const count = Math.min(RESERVATION_BATCH, n - done);
    const rc = reservationCall(cx, XenMem.decrease_reservation, domid, gfns, done, count, 0);
    if (rc < 0) return { done, errno: -rc };
    done += Math.min(rc, count);
    if (rc < count) return { done };
    onProgress?.(done, n);
  }
  return { done };
}

/** The first `count` gfns of a list or a span, as a list (undo paths only). */
function prefixList(gfns: GfnList | GfnSpan, count: number): Float64Array {
  if (!isGfnSpan(gfns)) return slice(gfns, 0, count);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = gfns.start + i;
  return out;
}

export function populate(cx: HypercallContext, domid: number, gfns: GfnList | GfnSpan, onProgress?: ProgressCallback, largeExtents = true): PopulateStats {
  const call = 'memory_op(populate_physmap)';
  const span = isGfnSpan(gfns);
  if (span) checkGfnSpan(gfns, call, domid);
  else checkGfns(gfns, call, domid);
  const stats: PopulateStats = { largeExtents: 0, smallExtents: 0, largeRefused: 0, hypercalls: 0 };
  const n = gfns.length;
  const { done, errno } = span ? populateSpanPrefix(cx, domid, gfns, stats, onProgress, largeExtents) : populatePrefix(cx, domid, gfns, stats, onProgress, largeExtents);
  if (done === n) return stats;
  const gfnAt = (i: number): number => (span ? gfns.start + i : gfns[i]);
  // Undo this call's pages, then say why Xen stopped: it does not tell.
  let undo = '';
  if (done > 0) {
    const freed = decreasePrefix(cx, domid, prefixList(gfns, done)).done;
    undo = freed === done ? `; the ${done} pages populated before were freed again`
      : `; freeing the ${done} pages populated before stopped after ${freed}: gfns ${hex(gfnAt(freed))}.. are still populated`;
  }
  const gfn = gfnAt(done);
  const base = { call, domid, gfn, done, pagesRequested: n };
  if (errno !== undefined) {
    throw new HypercallError({ ...base, errno, message: `populate_physmap d${domid}: ${errnoName(errno)} after ${done} of ${n} pages${undo}` });
  }
  const info = domainInfo(cx, domid);
  if (!info) {
    throw new HypercallError({ ...base, errno: ESRCH, reason: 'no-domain', message: `populate_physmap: d${domid} does not exist${undo}` });
  }
  const facts = { totPages: info.totPages, maxPages: info.maxPages };
  if (info.dying) {
    throw new HypercallError({ ...base, ...facts, errno: ESRCH, reason: 'dying', message: `populate_physmap: d${domid} is dying${undo}` });
  }
  if (info.headroomPages < n) {
    // Counted from tot_pages: a max lowered below current use leaves no room and a deficit.
    const short = info.totPages + n - info.maxPages;
    throw new HypercallError({
      ...base, ...facts, errno: ENOMEM, reason: 'max-pages',
      message: `populate_physmap: d${domid} needs ${n} pages (${mib(n)}) and its max memory leaves room for ${info.headroomPages} ` +
        `(tot_pages ${info.totPages}, max_pages ${info.maxPages}${info.totPages > info.maxPages ? ': the max is below what it holds' : ''}): ` +
        `${short} pages (${mib(short)}) short${undo}`,
    });
  }
  throw new HypercallError({
    ...base, ...facts, errno: ENOMEM, reason: 'host-memory',
    message: `populate_physmap: Xen populated ${done} of ${n} pages for d${domid} and stopped at gfn ${hex(gfn)} with ${info.headroomPages} pages of room left in the domain${undo}`,
  });
}

/** Pages zeroed per dom0 mapping before they are freed (16 MiB). */
export const SCRUB_BATCH = 4096;

/**
 * Zeroes the domain's pages at gfns through dom0 mappings (MMAPBATCH_V2), SCRUB_BATCH at a
 * time. Xen scrubs only a dying domain's pages (common/page_alloc.c, free_domheap_pages():
 * "Normally we expect a domain to clear pages before freeing them"), so pages freed for a live
 * domain reach the next domain Xen gives them to with their bytes. A page that cannot be mapped
 * fails the call (its HypercallError, call ioctl(MMAPBATCH_V2)) before anything is freed.
 */
function scrub(cx: HypercallContext, domid: number, gfns: GfnList): void {
  for (let from = 0; from < gfns.length; from += SCRUB_BATCH) {
    const m = mapForeign(cx, domid, slice(gfns, from, Math.min(gfns.length, from + SCRUB_BATCH)));
    m.buffer.fill(0);
    m.unmap();
  }
}

export function decrease(cx: HypercallContext, domid: number, gfns: GfnList, onProgress?: ProgressCallback, scrubFirst = false): void {
  const call = 'memory_op(decrease_reservation)';
  checkGfns(gfns, call, domid);
  if (scrubFirst && gfns.length > 0) scrub(cx, domid, gfns);
  const { done, errno } = decreasePrefix(cx, domid, gfns, onProgress);
  if (done === gfns.length) return;
  const gfn = gfns[done];
  if (errno !== undefined) {
    throw new HypercallError({ call, errno, domid, gfn, done, message: `decrease_reservation d${domid}: ${errnoName(errno)} after ${done} of ${gfns.length} pages` });
  }
  if (!domainInfo(cx, domid)) {
    throw new HypercallError({ call, errno: ESRCH, domid, gfn, done, reason: 'no-domain', message: `decrease_reservation: d${domid} does not exist` });
  }
  // guest_remove_page() refuses a gfn without a page of the domain's own (memory.c).
  throw new HypercallError({
    call, errno: ENOENT, domid, gfn, done, reason: 'not-own-page',
    message: `decrease_reservation in d${domid} stopped at gfn ${hex(gfn)} after ${done} of ${gfns.length} pages: no page of d${domid}'s own there (not populated, already freed, or a foreign mapping)`,
  });
}
