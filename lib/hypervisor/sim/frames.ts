/**
 * The simulated host's machine memory: one sparse file, frame (mfn) i at byte i * 4096. Every
 * view of a frame is an mmap of the same file page (through the shim), so an owner's and a
 * borrower's views alias the same bytes, across processes too (the sandbox keeps the file in its
 * state folder). Without a folder the file is created and unlinked at once: it lives as long as
 * the fd.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { XEN_PAGE_SIZE } from '../abi';
import { HypercallError } from '../errors';
import { loadShim, toHypercallError, type Shim } from '../shim';

/** The file grows in 2 MiB steps. */
const GROW_PAGES = 512;
/** Zeroing writes up to 1 MiB at a time. */
const ZERO_RUN_PAGES = 256;
const ZERO_RUN = Buffer.alloc(ZERO_RUN_PAGES * XEN_PAGE_SIZE);

export class FrameFile {
  private readonly shim: Shim;
  readonly fd: number;
  private pages = 0;
  private closed = false;
  private canPunch = true;

  /** file: the frames file to open or create; undefined: an anonymous, unlinked one. */
  constructor(readonly file?: string) {
    this.shim = loadShim();
    if (this.shim.pageSize() !== XEN_PAGE_SIZE) {
      throw new HypercallError({
        call: 'sim(frames)', errno: os.constants.errno.EINVAL,
        message: `the simulated host maps 4 KiB frames with mmap, which needs 4 KiB host pages (this host has ${this.shim.pageSize()})`,
      });
    }
    if (file) {
      this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    } else {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xen-sshm-frames-'));
      const p = path.join(dir, 'frames');
      this.fd = fs.openSync(p, 'w+', 0o600);
      fs.unlinkSync(p);
      fs.rmdirSync(dir);
    }
    this.pages = Math.floor(fs.fstatSync(this.fd).size / XEN_PAGE_SIZE);
  }

  /** Makes the file hold at least `pages` frames. Never shrinks it: another process may use more. */
  ensure(pages: number): void {
    if (pages <= this.pages) return;
    const now = Math.floor(fs.fstatSync(this.fd).size / XEN_PAGE_SIZE);
    if (now < pages) {
      const want = Math.ceil(pages / GROW_PAGES) * GROW_PAGES;
      fs.ftruncateSync(this.fd, want * XEN_PAGE_SIZE);
      this.pages = want;
    } else {
      this.pages = now;
    }
  }

  /**
   * Frees frames: their file pages become holes, which read as zeros (a frame given out again
   * holds no earlier owner's bytes) and give their storage back. Runs of consecutive frames go
   * in one call. Where the file system cannot punch holes, zeros are written instead.
   */
  release(mfns: number[]): void {
    if (mfns.length === 0) return;
    const sorted = Uint32Array.from(mfns).sort();
    let i = 0;
    while (i < sorted.length) {
      let j = i + 1;
      while (j < sorted.length && sorted[j] === sorted[j - 1] + 1) j++;
      this.zeroRun(sorted[i], j - i);
      i = j;
    }
  }

  private zeroRun(mfn: number, count: number): void {
    if (this.canPunch) {
      try {
        this.shim.punchHole(this.fd, mfn * XEN_PAGE_SIZE, count * XEN_PAGE_SIZE);
        return;
      } catch (e) {
        if ((e as { errno?: number }).errno !== os.constants.errno.EOPNOTSUPP) throw toHypercallError(e, 'fallocate');
        this.canPunch = false;
      }
    }
    for (let done = 0; done < count; done += ZERO_RUN_PAGES) {
      const n = Math.min(ZERO_RUN_PAGES, count - done);
      fs.writeSync(this.fd, ZERO_RUN, 0, n * XEN_PAGE_SIZE, (mfn + done) * XEN_PAGE_SIZE);
    }
  }

  /** Maps the frames, page i of the result = frame mfns[i]. */
  map(mfns: Uint32Array): ArrayBuffer {
    try {
      return this.shim.mapFilePages(this.fd, mfns);
    } catch (e) {
      throw toHypercallError(e, 'mmap', { message: `mapping ${mfns.length} simulated frames: ${(e as Error).message}` });
    }
  }

  unmap(buffer: ArrayBuffer): void {
    this.shim.unmap(buffer);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}
