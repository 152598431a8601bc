/**
 * Following a log file as a daemon appends to it (`tail -f`): new bytes are read every few
 * milliseconds from where the last read stopped. The daemon's writes are plain appends, so a
 * read may end in the middle of a line; the parser downstream keeps the partial line.
 *
 * Two ways the file can change under the follower:
 * - xs-trace itself moves the daemon to another file (`switchTo`, when the current one has grown
 *   past the rotation size): the old file is read to its end first; the daemon closed it before
 *   it answered the CONTROL `logfile`, so nothing more will be added to it.
 * - oxenstored rotates its access log by renaming it and opening a new one under the same name
 *   (logging.ml, log_rotate): with `reopenRenamed`, a file whose path now names another inode is
 *   read to its end, then the new one is followed from its start.
 */
import * as fs from 'node:fs';

export interface FollowerOptions {
  path: string;
  /** Where to begin: the start of the file, or its current end (only what is added later). */
  from: 'start' | 'end';
  onData: (chunk: Buffer) => void;
  /** Called once after a poll that found nothing new, when the previous one found data. */
  onIdle?: () => void;
  /** Poll period in milliseconds (default 20). */
  pollMs?: number;
  /** Reopen `path` when it has been replaced by another file (rotation by rename). */
  reopenRenamed?: boolean;
}

/** Read size: the records of one read (a line each, at worst) are held at once. */
const READ_SIZE = 64 * 1024;

export class FileFollower {
  /** Bytes read so far, over every file followed. */
  bytesRead = 0;
  private fd: number;
  private ino: number;
  private pos: number;
  private path: string;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private hadData = false;
  private readonly buf = Buffer.allocUnsafe(READ_SIZE);

  constructor(private readonly opts: FollowerOptions) {
    this.path = opts.path;
    this.fd = fs.openSync(opts.path, 'r');
    const st = fs.fstatSync(this.fd);
    this.ino = st.ino;
    this.pos = opts.from === 'end' ? st.size : 0;
  }

  /** The file being followed. */
  get currentPath(): string {
    return this.path;
  }

  /** Bytes of the current file read so far (its size as far as the follower knows). */
  get position(): number {
    return this.pos;
  }

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.poll();
      this.schedule();
    }, this.opts.pollMs ?? 20);
  }

  /** Reads what the file holds beyond the last read; returns the number of bytes. */
  private readNew(): number {
    let total = 0;
    for (;;) {
      const n = fs.readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
      if (n <= 0) break;
      this.pos += n;
      total += n;
      this.bytesRead += n;
      // A copy: the buffer is reused by the next read.
      this.opts.onData(Buffer.from(this.buf.subarray(0, n)));
      if (n < this.buf.length) break;
    }
    return total;
  }

  /** One poll: new bytes, and the rename check. Synchronous: a local file reads at once. */
  poll(): void {
    if (this.stopped) return;
    const n = this.readNew();
    if (n > 0) {
      this.hadData = true;
      return;
    }
    if (this.hadData) {
      this.hadData = false;
      this.opts.onIdle?.();
    }
    if (this.opts.reopenRenamed) {
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(this.path);
      } catch {
        st = undefined; // renamed away, the new one not created yet
      }
      if (st && st.ino !== this.ino) this.reopen(this.path);
    }
  }

  private reopen(p: string): void {
    // Whatever the old file got before it was left is read first.
    this.readNew();
    fs.closeSync(this.fd);
    this.path = p;
    this.fd = fs.openSync(p, 'r');
    this.ino = fs.fstatSync(this.fd).ino;
    this.pos = 0;
    this.readNew();
  }

  /** Reads the current file to its end, then follows `p` from its start. */
  switchTo(p: string): void {
    this.reopen(p);
  }

  /** Reads everything written so far (for the end of a session). */
  drain(): void {
    this.readNew();
    this.opts.onIdle?.();
  }

  /** Stops polling after reading what is there; closes the file. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.drain();
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    fs.closeSync(this.fd);
  }
}
