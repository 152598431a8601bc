/**
 * Where a simulated host lives: in this process only, or in a folder shared by successive (or
 * concurrent) processes, as the sandbox CLI needs. A folder holds:
 *   host.bin   domains, physmaps, ports and the frame table (persistence.ts); replaced only by
 *              renaming a complete, fsync'd temporary file (host.bin.<pid>.tmp) over it
 *   frames     the frames' bytes, frame i at byte i * 4096 (frames.ts), read and written with
 *              plain file I/O: no native code
 *   lock       the pid of the process changing the host. Made complete, then linked into place,
 *              so it is never seen half-written; a lock whose process is gone is broken
 * Each call (withHost) takes the lock, reloads host.bin if another process replaced it, writes
 * back views ended since the last call, runs the hypercalls, and saves once. Temporary files
 * left by processes that died are removed under the lock.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HypercallError } from '../errors';
import type { FrameTable } from './frame-table';
import { FileFrameStore, FrameViews, MemoryFrameStore } from './frames';
import { SimHost, type SimHostInit } from './host';
import { fromBytes, toBytes } from './persistence';

const E = os.constants.errno;
const LOCK_TIMEOUT_MS = 30_000;
/** A lock file with no pid in it (left by an older xen-sshm) is stale after this long. */
const INVALID_LOCK_STALE_MS = 2_000;
/** Temporary files of this store: host.bin.<pid>.tmp, lock.<pid>.<n>.tmp. */
const TMP_RE = /^(?:host\.bin|lock)\.(\d+)(?:\.\d+)?\.tmp$/;

export class SimStore {
  private host?: SimHost;
  /** The host while a call holds it: write-backs then run on it directly. */
  private holding?: SimHost;
  private frameViews?: FrameViews;
  /** Identity of the host.bin the in-memory host came from: reload when it changes. */
  private loadedFrom = '';
  private locked = false;
  private lockSeq = 0;

  /** dir: persist there; undefined: this process only. init: for a host created now. */
  constructor(readonly dir: string | undefined, private readonly init: SimHostInit & { explicitArch: boolean }) {}

  private get statePath(): string {
    return path.join(this.dir!, 'host.bin');
  }

  private get lockPath(): string {
    return path.join(this.dir!, 'lock');
  }

  /** The views of this process on the host's frames (frames.ts). */
  get views(): FrameViews {
    if (!this.frameViews) {
      const store = this.dir ? (fs.mkdirSync(this.dir, { recursive: true }), new FileFrameStore(path.join(this.dir, 'frames'))) : new MemoryFrameStore();
      this.frameViews = new FrameViews(store, (fn) => this.trySync(fn));
    }
    return this.frameViews;
  }

  /** Runs fn on the current host, with the folder locked; saves what fn changed. */
  async withHost<T>(fn: (h: SimHost) => T): Promise<T> {
    if (this.dir) await this.lock();
    try {
      const h = this.dir ? this.load() : this.memoryHost();
      return this.hold(h, fn);
    } finally {
      if (this.dir) this.unlock();
    }
  }

  /** With the host in hand: pending write-backs, fn, then freed frames and the save. */
  private hold<T>(h: SimHost, fn: (h: SimHost) => T): T {
    this.holding = h;
    try {
      this.views.writePending(h.frames);
      return fn(h);
    } finally {
      this.holding = undefined;
      this.views.freed(h.frames);
      if (h.changed) this.save(h);
    }
  }

  /**
   * Runs a write-back now if the host can be had without waiting (this process holds it, or the
   * folder's lock is free); false otherwise (the views keep it for the next call).
   */
  private trySync(fn: (table: FrameTable) => void): boolean {
    if (this.holding) {
      fn(this.holding.frames);
      return true;
    }
    if (!this.dir) {
      if (!this.host) return false;
      this.hold(this.host, (h) => fn(h.frames));
      return true;
    }
    if (this.locked || !this.tryLock()) return false;
    try {
      this.hold(this.load(), (h) => fn(h.frames));
    } finally {
      this.unlock();
    }
    return true;
  }

  /** Writes back every view still mapped (before close). */
  writeAllViews(h: SimHost): void {
    this.frameViews?.writeAll(h.frames);
  }

  close(): void {
    this.frameViews?.store.close();
    this.frameViews = undefined;
    this.host = undefined;
  }

  private memoryHost(): SimHost {
    if (!this.host) this.host = SimHost.create(this.init);
    return this.host;
  }

  private load(): SimHost {
    const dir = this.dir!;
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(this.statePath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (!st) {
      this.host = SimHost.create(this.init);
      this.save(this.host);
      return this.host;
    }
    const id = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (!this.host || id !== this.loadedFrom) {
      this.host = fromBytes(fs.readFileSync(this.statePath));
      this.loadedFrom = id;
      if (this.init.explicitArch && this.host.arch !== this.init.arch) {
        throw new HypercallError({
          call: 'sim(load)', errno: E.EINVAL, path: this.statePath,
          message: `the simulated host in ${dir} is ${this.host.arch}, not ${this.init.arch}`,
        });
      }
    }
    return this.host;
  }

  /** host.bin replaced by renaming a complete temporary file: a reader sees the old or the new. */
  private save(h: SimHost): void {
    h.dirty = false;
    h.frames.changed = false;
    if (!this.dir) return;
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      for (const b of toBytes(h)) fs.writeSync(fd, b);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.statePath);
    const st = fs.statSync(this.statePath);
    this.loadedFrom = `${st.ino}:${st.size}:${st.mtimeMs}`;
  }

  // ---- the folder's lock -------------------------------------------------------------------------

  /** One attempt: the lock file, complete, linked into place (EEXIST when held); stale ones broken. */
  private tryLock(): boolean {
    const dir = this.dir!;
    fs.mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `lock.${process.pid}.${++this.lockSeq}.tmp`);
    fs.writeFileSync(tmp, String(process.pid), { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          fs.linkSync(tmp, this.lockPath);
          this.locked = true;
          this.cleanTemporaries();
          return true;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        if (!this.breakStaleLock()) return false;
      }
      return false;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  private async lock(): Promise<void> {
    const start = Date.now();
    let wait = 1;
    for (;;) {
      if (this.tryLock()) return;
      if (Date.now() - start > LOCK_TIMEOUT_MS) {
        throw new HypercallError({
          call: 'sim(lock)', errno: E.EBUSY, path: this.lockPath,
          message: `the simulated host in ${this.dir} is locked by process ${readOr(this.lockPath, '?').trim() || '?'} for over ${LOCK_TIMEOUT_MS / 1000} s`,
        });
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 20);
    }
  }

  /**
   * Removes the lock if its process is gone (or, for a lock with no pid in it, after
   * INVALID_LOCK_STALE_MS): renamed aside first, and put back if what was renamed turns out to
   * be another process's fresh lock. True when the lock was broken.
   */
  private breakStaleLock(): boolean {
    let st: fs.Stats;
    let text: string;
    try {
      st = fs.statSync(this.lockPath);
      text = fs.readFileSync(this.lockPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
      throw e;
    }
    const holder = /^\d+$/.test(text.trim()) ? Number(text.trim()) : 0;
    const stale = holder > 0 ? !alive(holder) : Date.now() - st.mtimeMs > INVALID_LOCK_STALE_MS;
    if (!stale) return false;
    const aside = path.join(this.dir!, `lock.${process.pid}.${++this.lockSeq}.tmp`);
    try {
      fs.renameSync(this.lockPath, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
      throw e;
    }
    if (fs.statSync(aside).ino !== st.ino) {
      // Someone broke it and took the lock between our look and the rename: give it back.
      try {
        fs.linkSync(aside, this.lockPath);
      } catch {
        // Taken again meanwhile: the process whose lock this was finds it gone when it unlocks.
      }
    }
    fs.rmSync(aside, { force: true });
    return true;
  }

  private unlock(): void {
    if (!this.locked) return;
    this.locked = false;
    fs.rmSync(this.lockPath, { force: true });
  }

  /** Removes temporary files of processes that are gone (the caller holds the lock). */
  private cleanTemporaries(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir!);
    } catch {
      return;
    }
    for (const name of names) {
      const m = TMP_RE.exec(name);
      if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) fs.rmSync(path.join(this.dir!, name), { force: true });
    }
  }
}

function readOr(p: string, dflt: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return dflt;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
