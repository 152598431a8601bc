/**
 * Where a simulated host lives: in this process only, or in a folder shared by successive (or
 * concurrent) processes, as the sandbox CLI needs. A folder holds:
 *   host.bin   domains, physmaps and the frame table (SimHost.toBytes), replaced atomically
 *   frames     the frames' bytes, a sparse file mmap'd by every view (frames.ts)
 *   lock       the pid of the process changing the host; a lock whose process is gone is broken
 * Each call of withHost() takes the lock, reloads host.bin if another process replaced it, runs
 * the hypercalls, and saves once.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HypercallError } from '../errors';
import { FrameFile } from './frames';
import { SimHost, type SimHostInit } from './host';

const E = os.constants.errno;
const LOCK_TIMEOUT_MS = 30_000;

export class SimStore {
  private host?: SimHost;
  private frames?: FrameFile;
  /** Identity of the host.bin the in-memory host came from: reload when it changes. */
  private loadedFrom = '';
  private busy = false;

  /** dir: persist there; undefined: this process only. init: for a host created now. */
  constructor(readonly dir: string | undefined, private readonly init: SimHostInit & { explicitArch: boolean }) {}

  private get statePath(): string {
    return path.join(this.dir!, 'host.bin');
  }

  /** Runs fn on the current host, with the folder locked; saves what fn changed. */
  async withHost<T>(fn: (h: SimHost) => T): Promise<T> {
    if (!this.dir) {
      const h = this.memoryHost();
      try {
        return fn(h);
      } finally {
        h.flushFrames();
        h.dirty = false;
      }
    }
    await this.lock();
    try {
      const h = this.load();
      try {
        return fn(h);
      } finally {
        h.flushFrames();
        if (h.dirty) this.save(h);
      }
    } finally {
      this.unlock();
    }
  }

  close(): void {
    this.frames?.close();
    this.frames = undefined;
    this.host = undefined;
  }

  private memoryHost(): SimHost {
    if (!this.host) {
      this.frames = new FrameFile();
      this.host = SimHost.create(this.init, this.frames);
    }
    return this.host;
  }

  private load(): SimHost {
    const dir = this.dir!;
    if (!this.frames) {
      fs.mkdirSync(dir, { recursive: true });
      this.frames = new FrameFile(path.join(dir, 'frames'));
    }
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(this.statePath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (!st) {
      this.host = SimHost.create(this.init, this.frames);
      this.save(this.host);
      return this.host;
    }
    const id = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (!this.host || id !== this.loadedFrom) {
      this.host = SimHost.fromBytes(fs.readFileSync(this.statePath), this.frames);
      this.loadedFrom = id;
      if (this.init.explicitArch && this.host.arch !== this.init.arch) {
        throw new HypercallError({
          call: 'sim(load)', errno: E.EINVAL, path: this.statePath,
          message: `the simulated host in ${dir} is ${this.host.arch}, not ${this.init.arch}: use another folder, or remove this one to start afresh`,
        });
      }
    }
    return this.host;
  }

  private save(h: SimHost): void {
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      for (const b of h.toBytes()) fs.writeSync(fd, b);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.statePath);
    const st = fs.statSync(this.statePath);
    this.loadedFrom = `${st.ino}:${st.size}:${st.mtimeMs}`;
    h.dirty = false;
  }

  private async lock(): Promise<void> {
    // One holder per process at a time (calls of one store are already serialised by the
    // Hypervisor; two stores on one folder in one process wait here like two processes).
    const lockPath = path.join(this.dir!, 'lock');
    fs.mkdirSync(this.dir!, { recursive: true });
    const start = Date.now();
    let wait = 1;
    for (;;) {
      try {
        fs.writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
        this.busy = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = Number(readOr(lockPath, ''));
      if (holder > 0 && !alive(holder)) {
        // The holder died mid-call: host.bin is still the last complete save.
        fs.rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() - start > LOCK_TIMEOUT_MS) {
        throw new HypercallError({
          call: 'sim(lock)', errno: E.EBUSY, path: lockPath,
          message: `the simulated host in ${this.dir} is locked by process ${holder} for over ${LOCK_TIMEOUT_MS / 1000} s`,
        });
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 20);
    }
  }

  private unlock(): void {
    if (!this.busy) return;
    this.busy = false;
    fs.rmSync(path.join(this.dir!, 'lock'), { force: true });
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
