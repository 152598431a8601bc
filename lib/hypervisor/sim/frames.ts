/**
 * The simulated host's machine memory, with no native code: the bytes of frame (mfn) i live in
 * a frame store (a sparse file in the host's folder, at byte i * 4096, or chunks in this
 * process's memory), and a view of frames (a guest's view of its pages, a dom0 mapping) is a
 * Buffer that holds copies of them.
 *
 * Aliasing, which the tests and the sandbox rely on, is kept this way:
 * - In one process, views of the same frames are the same memory: a new view whose frames are a
 *   run of an existing live view's (same frames, same order: a borrower's window of an owner's
 *   region, a page of a region) is a slice of that view's ArrayBuffer. A new view overlapping a
 *   live one in any other way is refused (EBUSY): without mmap there is no way to alias it.
 * - Between processes (the sandbox's CLI runs), a view's bytes reach the frame store when it is
 *   unmapped (or its Hypervisor closed), and a view reads the store when it is made: like
 *   munmap/msync and mmap of a shared file, but at those points only. Only the bytes a view
 *   changed are written, merged into the store's page, so writers of different bytes of one page
 *   in different processes do not undo each other.
 * - A frame freed while a view holds it reads as zeros in that view, and later writes there go
 *   nowhere: each frame has an epoch (frame-table.ts) that a view compares before writing back.
 *   (On Xen, dom0's mapping would keep the page; the sim's dom0 mappings hold no reference.)
 * - A freed frame keeps its bytes for the next domain that gets it, as on Xen, unless it was
 *   scrubbed (its domain was dying).
 * Only frames whose store bytes may be non-zero (dirty) are read or zeroed, so populating,
 * mapping and freeing a region costs no I/O until someone writes into it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { PAGE_SIZE } from '../../vocabulary';
import { HypercallError } from '../errors';
import type { FrameTable } from './frame-table';

const E = os.constants.errno;
/** Memory store chunks: 512 frames (2 MiB). */
const CHUNK_FRAMES = 512;
/** Zeroing and comparing go through buffers of up to 1 MiB. */
const RUN_FRAMES = 256;
const ZERO_RUN = Buffer.alloc(RUN_FRAMES * PAGE_SIZE);
/** mfns[] value of a view page whose frame was freed under it. */
const DEAD = 0xffffffff;
const TWO32 = 2 ** 32;

/** Where the frames' bytes live between views. */
export interface FrameStore {
  /** Reads `count` frames from mfn into `into` at byte `at`. */
  read(mfn: number, count: number, into: Uint8Array, at: number): void;
  write(mfn: number, count: number, from: Uint8Array, at: number): void;
  /** The frames read as zeros again. */
  zero(mfn: number, count: number): void;
  close(): void;
}

/** Frames in this process's memory: 2 MiB chunks made on first write. */
export class MemoryFrameStore implements FrameStore {
  private readonly chunks = new Map<number, Buffer>();

  private each(mfn: number, count: number, fn: (chunk: Buffer | undefined, key: number, off: number, frames: number, done: number) => void): void {
    let done = 0;
    while (done < count) {
      const m = mfn + done;
      const key = Math.floor(m / CHUNK_FRAMES);
      const first = m - key * CHUNK_FRAMES;
      const frames = Math.min(CHUNK_FRAMES - first, count - done);
      fn(this.chunks.get(key), key, first * PAGE_SIZE, frames, done);
      done += frames;
    }
  }

  read(mfn: number, count: number, into: Uint8Array, at: number): void {
    this.each(mfn, count, (c, _k, off, frames, done) => {
      const dst = at + done * PAGE_SIZE;
      if (c) into.set(c.subarray(off, off + frames * PAGE_SIZE), dst);
      else into.fill(0, dst, dst + frames * PAGE_SIZE);
    });
  }

  write(mfn: number, count: number, from: Uint8Array, at: number): void {
    this.each(mfn, count, (c, key, off, frames, done) => {
      let chunk = c;
      if (!chunk) {
        chunk = Buffer.alloc(CHUNK_FRAMES * PAGE_SIZE);
        this.chunks.set(key, chunk);
      }
      const src = at + done * PAGE_SIZE;
      chunk.set(from.subarray(src, src + frames * PAGE_SIZE), off);
    });
  }

  zero(mfn: number, count: number): void {
    this.each(mfn, count, (c, _k, off, frames) => c?.fill(0, off, off + frames * PAGE_SIZE));
  }

  close(): void {
    this.chunks.clear();
  }
}

/** Frames in a file (the sandbox's folder), frame i at byte i * 4096: pread/pwrite. */
export class FileFrameStore implements FrameStore {
  readonly fd: number;
  private closed = false;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  }

  read(mfn: number, count: number, into: Uint8Array, at: number): void {
    const want = count * PAGE_SIZE;
    let got = 0;
    while (got < want) {
      const n = fs.readSync(this.fd, into, at + got, want - got, mfn * PAGE_SIZE + got);
      if (n === 0) break;
      got += n;
    }
    // Past the end of the file: frames never written, zero.
    if (got < want) into.fill(0, at + got, at + want);
  }

  write(mfn: number, count: number, from: Uint8Array, at: number): void {
    const want = count * PAGE_SIZE;
    let put = 0;
    while (put < want) put += fs.writeSync(this.fd, from, at + put, want - put, mfn * PAGE_SIZE + put);
  }

  zero(mfn: number, count: number): void {
    for (let done = 0; done < count; done += RUN_FRAMES) {
      const n = Math.min(RUN_FRAMES, count - done);
      this.write(mfn + done, n, ZERO_RUN, 0);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/** One live block of frames in this process: the memory every view of these frames shares. */
interface Block {
  readonly id: number;
  readonly bytes: Uint8Array;
  /** Frame at each page of the block; DEAD once freed under it. */
  readonly mfns: Uint32Array;
  /** The frames' epochs when the block was made. */
  readonly epochs: Uint32Array;
  /**
   * What each page held when last read from or written to the store (absent: zeros): a write-back
   * sends only the bytes the view changed since, merged into what the store holds now, so that
   * two processes writing different bytes of one page both keep theirs.
   */
  readonly base: Map<number, Uint8Array>;
  /** Live views of the block. */
  views: number;
}

/** A view handed out: a Buffer over pages [first, first + count) of a block. */
export interface FrameView {
  readonly buffer: Buffer;
  readonly byteOffset: number;
  /** Ends the view: its bytes are written back (now, or at the next call when the host is busy). */
  unmap(): void;
}

/**
 * The live views of one process on one frame store. `writeBack` is how an unmapped view reaches
 * the store: the SimStore runs it against the current host (under the folder's lock), at once
 * when it can, else at its next call.
 */
export class FrameViews {
  /** mfn -> (block id * 2^32 + page in the block), for the frames of live blocks. */
  private readonly index = new Map<number, number>();
  private readonly blocks = new Map<number, Block>();
  private nextBlock = 1;
  /** Pages of ended views not yet written back: [block, first, count]. */
  private readonly pending: Array<[Block, number, number]> = [];

  constructor(readonly store: FrameStore, private readonly writeBack: (fn: (table: FrameTable) => void) => boolean) {}

  /**
   * A view of these frames (page i = frame mfns[i]), with the frame table of the host as it is
   * now (the caller holds the host).
   */
  view(table: FrameTable, mfns: Uint32Array): FrameView {
    const n = mfns.length;
    if (n === 0) throw new HypercallError({ call: 'sim(map)', errno: E.EINVAL, message: 'a view needs at least one frame' });
    // Views made before a frame was freed (by another process) no longer hold it.
    if (this.index.size > 0) {
      for (let i = 0; i < n; i++) {
        const at = this.at(mfns[i]);
        if (at && at.block.epochs[at.pos] !== table.epoch[mfns[i]]) this.kill(at.block, at.pos);
      }
    }
    const first = this.at(mfns[0]);
    if (first) {
      const { block, pos } = first;
      let k = 1;
      while (k < n && pos + k < block.mfns.length && block.mfns[pos + k] === mfns[k]) k++;
      if (k === n) return this.hand(block, pos, n);
    }
    for (let i = 0; i < n && this.index.size > 0; i++) {
      if (this.index.has(mfns[i])) {
        throw new HypercallError({
          call: 'sim(map)', errno: E.EBUSY,
          message: `frame ${mfns[i]} (page ${i} of this view) is in a live view of this process at another place: ` +
            'the simulated host aliases a new view with a live one only when its pages are a run of that view\'s pages, in order',
        });
      }
    }
    const id = this.nextBlock++;
    const block: Block = { id, bytes: new Uint8Array(n * PAGE_SIZE), mfns: Uint32Array.from(mfns), epochs: new Uint32Array(n), base: new Map(), views: 0 };
    const key = id * TWO32;
    for (let i = 0; i < n; i++) {
      block.epochs[i] = table.epoch[mfns[i]];
      this.index.set(mfns[i], key + i);
    }
    // Only frames the store may hold bytes for are read; the others are zero already.
    forRuns(block.mfns, 0, n, (i, count) => {
      this.store.read(block.mfns[i], count, block.bytes, i * PAGE_SIZE);
      const copy = block.bytes.slice(i * PAGE_SIZE, (i + count) * PAGE_SIZE);
      for (let k = 0; k < count; k++) block.base.set(i + k, copy.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE));
    }, (i) => table.dirty[block.mfns[i]] === 1);
    this.blocks.set(id, block);
    return this.hand(block, 0, n);
  }

  /** The live block holding frame mfn, and its page there. */
  private at(mfn: number): { block: Block; pos: number } | undefined {
    const v = this.index.get(mfn);
    if (v === undefined) return undefined;
    const id = Math.floor(v / TWO32);
    return { block: this.blocks.get(id)!, pos: v - id * TWO32 };
  }

  private hand(block: Block, first: number, count: number): FrameView {
    block.views++;
    const state = { live: true };
    let buffer = Buffer.from(block.bytes.buffer, block.bytes.byteOffset + first * PAGE_SIZE, count * PAGE_SIZE);
    const view = {
      get buffer() {
        return buffer;
      },
      byteOffset: block.bytes.byteOffset + first * PAGE_SIZE,
      unmap: (): void => {
        if (!state.live) return;
        this.end(block, first, count, state);
        buffer = Buffer.alloc(0);
      },
    };
    return view;
  }

  private end(block: Block, first: number, count: number, state: { live: boolean }): void {
    state.live = false;
    block.views--;
    this.pending.push([block, first, count]);
    this.flushPending();
  }

  /** Writes back what ended views left, if the host can be had now. */
  flushPending(): void {
    if (this.pending.length === 0) return;
    this.writeBack((table) => this.writePending(table));
  }

  /** Writes back every ended view's pages (the caller holds the host); drops unused blocks. */
  writePending(table: FrameTable): void {
    const jobs = this.pending.splice(0);
    for (const [block, first, count] of jobs) this.writePages(table, block, first, count);
    for (const [block] of jobs) if (block.views === 0) this.drop(block);
  }

  /** Writes back every live view too (close). */
  writeAll(table: FrameTable): void {
    this.writePending(table);
    for (const block of this.blocks.values()) this.writePages(table, block, 0, block.mfns.length);
  }

  /**
   * The pages of a block whose frame is still the one the block was made for: the bytes that
   * differ from the page's base are written into the store's page as it is now. A frame the
   * store holds no bytes for (not dirty) reads as zeros there, and becomes dirty when written.
   */
  private writePages(table: FrameTable, block: Block, first: number, count: number): void {
    let store: Buffer | undefined;
    for (let i = first; i < first + count; i++) {
      // Pages that were zero when read and are zero still: skipped a run at a time.
      if (!block.base.has(i)) {
        let end = i;
        while (end < first + count && end - i < RUN_FRAMES && !block.base.has(end)) end++;
        if (isZero(block.bytes.subarray(i * PAGE_SIZE, end * PAGE_SIZE))) {
          i = end - 1;
          continue;
        }
      }
      const m = block.mfns[i];
      if (m === DEAD || m >= table.owner.length || table.epoch[m] !== block.epochs[i]) continue;
      const page = block.bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      const base = block.base.get(i);
      if (base ? Buffer.compare(page, base) === 0 : isZero(page)) continue;
      store ??= Buffer.allocUnsafe(PAGE_SIZE);
      if (table.dirty[m]) this.store.read(m, 1, store, 0);
      else store.fill(0);
      // The bytes this process changed win; the others keep what the store has now.
      for (let b = 0; b < PAGE_SIZE; b++) if (page[b] !== (base ? base[b] : 0)) store[b] = page[b];
      this.store.write(m, 1, store, 0);
      if (!table.dirty[m]) {
        table.dirty[m] = 1;
        table.changed = true;
      }
      block.base.set(i, page.slice());
    }
  }

  /**
   * Frames freed by the host (frame-table.ts `freed`): views of this process read them as zero
   * and let go of them; the store zeroes the dirty ones among those scrubbed. Called at the end
   * of every call.
   */
  freed(table: FrameTable): void {
    const mfns = table.freed.splice(0);
    const scrubbed = table.scrubbed.splice(0);
    if (mfns.length === 0) return;
    const zero: number[] = [];
    for (const m of mfns) {
      const at = this.index.size > 0 ? this.at(m) : undefined;
      if (at) this.kill(at.block, at.pos);
    }
    for (const m of scrubbed) {
      // Freed and given out again within one call: the new owner's frame is zero all the same.
      if (table.dirty[m]) {
        table.dirty[m] = 0;
        table.changed = true;
        zero.push(m);
      }
    }
    zero.sort((a, b) => a - b);
    forRuns(Uint32Array.from(zero), 0, zero.length, (i, count) => this.store.zero(zero[i], count));
  }

  /** The page of a block whose frame went away: zero, no longer written back or aliased. */
  private kill(block: Block, pos: number): void {
    this.index.delete(block.mfns[pos]);
    block.mfns[pos] = DEAD;
    block.bytes.fill(0, pos * PAGE_SIZE, (pos + 1) * PAGE_SIZE);
  }

  private drop(block: Block): void {
    if (!this.blocks.delete(block.id)) return;
    const key = block.id * TWO32;
    for (let i = 0; i < block.mfns.length; i++) {
      const m = block.mfns[i];
      if (m !== DEAD && this.index.get(m) === key + i) this.index.delete(m);
    }
  }

  /** Live views and pending write-backs (tests). */
  stats(): { blocks: number; frames: number; pending: number } {
    return { blocks: this.blocks.size, frames: this.index.size, pending: this.pending.length };
  }
}

/** Calls fn(start, count) for each run of consecutive frames in mfns[from, to) that pass `keep`. */
function forRuns(mfns: Uint32Array, from: number, to: number, fn: (start: number, count: number) => void, keep: (i: number) => boolean = () => true): void {
  let i = from;
  while (i < to) {
    if (!keep(i)) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < to && keep(j) && mfns[j] === mfns[j - 1] + 1) j++;
    fn(i, j - i);
    i = j;
  }
}

function isZero(page: Uint8Array): boolean {
  return Buffer.compare(page, ZERO_RUN.subarray(0, page.length)) === 0;
}
