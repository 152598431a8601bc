/**
 * The simulated host's machine frames: who owns each, the references foreign mappings hold, and
 * the allocator Xen's heap stands for. Frames are handed out lowest first, one at a time or as
 * an aligned 2 MiB extent (512 frames: alloc_domheap_pages() with order 9 needs a free, aligned
 * run), within `hostPages` frames in all, so that a large extent can be refused while single
 * pages are still there (a fragmented heap), as on real Xen.
 *
 * Per frame, beside owner and references: an epoch, bumped whenever the frame is freed (a view
 * made before must not write into whatever the frame becomes), and a dirty bit: the frame's
 * bytes in the frame store may be non-zero (views wrote them). Only dirty frames are read into
 * views, and zeroed when freed with `scrub` (as Xen scrubs only a dying domain's pages).
 */

/** Owner value of a free frame (domids are < 0x7ff0). */
export const FREE = 0xffff;
/** Frames per 2 MiB extent, and the order of one. */
export const EXTENT_FRAMES = 512;
export const EXTENT_ORDER = 9;

export class FrameTable {
  owner = new Uint16Array(1024).fill(FREE);
  refs = new Uint32Array(1024);
  /** The owner's allocation reference still holds (cleared when the owner frees it or dies). */
  alloc = new Uint8Array(1024);
  epoch = new Uint32Array(1024);
  dirty = new Uint8Array(1024);
  /** Frames ever handed out: mfns >= highWater were never used (zero, not dirty). */
  highWater = 0;
  /** Free frames below highWater, in all and per 512-frame block. */
  private freeBelow = 0;
  private blockFree = new Uint16Array(2);
  /** No block below this one has a free frame. */
  private lowBlock = 0;
  /** Frames freed since the last flush: their views are dealt with then. */
  freed: number[] = [];
  /** Of those, the ones to scrub (zero in the store). */
  scrubbed: number[] = [];
  /** Set when a dirty bit changed outside the host's own rules (a view wrote a frame back). */
  changed = false;

  constructor(readonly hostPages: number) {}

  private grow(min: number): void {
    let cap = this.owner.length;
    if (min <= cap) return;
    while (cap < min) cap *= 2;
    const owner = new Uint16Array(cap).fill(FREE);
    owner.set(this.owner);
    this.owner = owner;
    this.refs = copyInto(new Uint32Array(cap), this.refs);
    this.alloc = copyInto(new Uint8Array(cap), this.alloc);
    this.epoch = copyInto(new Uint32Array(cap), this.epoch);
    this.dirty = copyInto(new Uint8Array(cap), this.dirty);
    const blocks = Math.ceil(cap / EXTENT_FRAMES);
    if (blocks > this.blockFree.length) this.blockFree = copyInto(new Uint16Array(blocks), this.blockFree);
  }

  /** Free frames Xen still has: below highWater, and never used. */
  get freeFrames(): number {
    return this.freeBelow + (this.hostPages - this.highWater);
  }

  private take(mfn: number, domid: number): void {
    this.owner[mfn] = domid;
    this.alloc[mfn] = 1;
    this.refs[mfn] = 0;
  }

  /** One frame for domid (lowest free first), or -1 when the host has none. */
  allocFrame(domid: number): number {
    if (this.freeBelow > 0) {
      for (let b = this.lowBlock; b < this.blockFree.length; b++) {
        if (this.blockFree[b] === 0) continue;
        this.lowBlock = b;
        const end = Math.min((b + 1) * EXTENT_FRAMES, this.highWater);
        for (let m = b * EXTENT_FRAMES; m < end; m++) {
          if (this.owner[m] !== FREE) continue;
          this.blockFree[b]--;
          this.freeBelow--;
          this.take(m, domid);
          return m;
        }
      }
    }
    if (this.highWater >= this.hostPages) return -1;
    const m = this.highWater++;
    this.grow(this.highWater);
    this.take(m, domid);
    return m;
  }

  /**
   * An aligned run of 512 free frames for domid (alloc_domheap_pages(d, 9)): a free block below
   * highWater, else a fresh one above it. The first mfn, or -1 when there is none.
   */
  allocExtent(domid: number): number {
    let first = -1;
    if (this.freeBelow >= EXTENT_FRAMES) {
      for (let b = this.lowBlock; b < this.blockFree.length; b++) {
        if (this.blockFree[b] === EXTENT_FRAMES) {
          first = b * EXTENT_FRAMES;
          this.blockFree[b] = 0;
          this.freeBelow -= EXTENT_FRAMES;
          break;
        }
      }
    }
    if (first < 0) {
      const aligned = Math.ceil(this.highWater / EXTENT_FRAMES) * EXTENT_FRAMES;
      if (aligned + EXTENT_FRAMES > this.hostPages) return -1;
      this.grow(aligned + EXTENT_FRAMES);
      // The frames skipped for alignment are free frames below the new highWater.
      for (let m = this.highWater; m < aligned; m++) this.markFree(m);
      this.highWater = aligned + EXTENT_FRAMES;
      first = aligned;
    }
    for (let m = first; m < first + EXTENT_FRAMES; m++) this.take(m, domid);
    return first;
  }

  private markFree(mfn: number): void {
    const b = Math.floor(mfn / EXTENT_FRAMES);
    this.blockFree[b]++;
    this.freeBelow++;
    if (b < this.lowBlock) this.lowBlock = b;
  }

  /**
   * free_domheap_page(): the frame is free again; returns its owner before. Its bytes stay
   * unless `scrub` (the owner is dying): the next domain to get the frame sees them.
   */
  free(mfn: number, scrub: boolean): number {
    const was = this.owner[mfn];
    this.owner[mfn] = FREE;
    this.alloc[mfn] = 0;
    this.refs[mfn] = 0;
    this.epoch[mfn] = (this.epoch[mfn] + 1) >>> 0;
    this.markFree(mfn);
    this.freed.push(mfn);
    if (scrub) this.scrubbed.push(mfn);
    return was;
  }

  /** Recomputes the free counts from the owner table (after loading a saved host). */
  recount(): void {
    this.grow(Math.max(this.highWater, 1));
    this.blockFree.fill(0);
    this.freeBelow = 0;
    this.lowBlock = this.blockFree.length;
    for (let m = 0; m < this.highWater; m++) if (this.owner[m] === FREE) this.markFree(m);
  }

  /** Loads saved arrays of highWater frames. */
  restore(hw: number, arrays: { owner: Uint16Array; refs: Uint32Array; alloc: Uint8Array; epoch: Uint32Array; dirty: Uint8Array }): void {
    this.highWater = hw;
    this.grow(Math.max(1024, hw));
    this.owner.set(arrays.owner);
    this.refs.set(arrays.refs);
    this.alloc.set(arrays.alloc);
    this.epoch.set(arrays.epoch);
    this.dirty.set(arrays.dirty);
    this.recount();
  }
}

function copyInto<T extends Uint8Array | Uint16Array | Uint32Array>(to: T, from: T): T {
  to.set(from as never);
  return to;
}
