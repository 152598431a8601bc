/**
 * Locks name a process: `<hostname>:<pid>:<starttime>`, starttime being field 22 of
 * /proc/<pid>/stat (clock ticks since boot). A pid alone is not enough: after a crash the pid
 * may be reused by an unrelated process, which must not keep an intent alive forever.
 *
 * Lock files cannot be half-made: the content is written to a private temporary file
 * (`<path>.<pid>.tmp`), which is then link()ed to the lock's name. link() fails with EEXIST
 * while the lock is held, and never leaves a name with partial content, so a process killed at
 * any point leaves either no lock or a complete one (plus perhaps its temporary file, which
 * sweepTemporaries() removes once that process is gone). A lock file that is empty or not a
 * lock (an older version wrote them in two steps) is recognised as half-made and may be removed.
 */
import { closeSync, linkSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

export interface ProcessIdentity {
  host: string;
  pid: number;
  /** /proc/<pid>/stat field 22, as text. */
  start: string;
}

/** Field 22 of /proc/<pid>/stat, or null when there is no such process. */
export function processStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // Field 2 (comm) is in parentheses and may hold spaces or ')': fields 3.. follow the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = rest[22 - 3];
  return start !== undefined && /^\d+$/.test(start) ? start : null;
}

let self: ProcessIdentity | undefined;

export function selfIdentity(): ProcessIdentity {
  if (!self || self.pid !== process.pid) {
    const start = processStartTime(process.pid);
    self = { host: hostname(), pid: process.pid, start: start ?? '0' };
  }
  return self;
}

export function formatLock(id: ProcessIdentity): string {
  return `${id.host}:${id.pid}:${id.start}`;
}

export function parseLock(text: string): ProcessIdentity | null {
  const m = /^([^:]+):(\d+):(\d+)$/.exec(text);
  return m ? { host: m[1], pid: Number(m[2]), start: m[3] } : null;
}

/** This process's lock string. */
export function ownLock(): string {
  return formatLock(selfIdentity());
}

/**
 * Whether the process a lock names still runs: 'alive', 'dead', or 'unknown' when the lock
 * names another host (xenstore is per host, but a renamed host or a shared store cannot be
 * checked from here). Text that is not a lock at all is 'dead'. Only 'dead' locks may be taken over.
 */
export function lockStatus(lock: string, host: string = hostname()): 'alive' | 'dead' | 'unknown' {
  const id = parseLock(lock);
  // Text that names no process cannot belong to a live one.
  if (!id) return 'dead';
  if (id.host !== host) return 'unknown';
  const start = processStartTime(id.pid);
  if (start === null) return 'dead';
  return start === id.start ? 'alive' : 'dead';
}

// ---- lock files ---------------------------------------------------------------------------------

/**
 * Writes `content` to `<path>.<pid>.tmp` completely, returning that name. Not fsynced: a lock
 * names a process, and after a machine crash every such process is gone (a lock that lost its
 * content then reads as half-made, which counts as dead).
 */
function writeTemporary(path: string, content: string): string {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/**
 * Creates the lock file `path` holding `content` (default: this process's lock string), whole
 * or not at all. Returns false when a lock file is there already.
 */
export function createLockFile(path: string, content: string = ownLock()): boolean {
  const tmp = writeTemporary(path, content);
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Replaces `path` with `content` whole (rename of a complete temporary file): pid and state files. */
export function replaceFile(path: string, content: string): void {
  renameSync(writeTemporary(path, content), path);
}

export type LockFileStatus = 'absent' | 'alive' | 'dead' | 'unknown' | 'half-made';

/**
 * What the lock file at `path` says: absent; held by a live process, a dead one, or one of
 * another host; or half-made (empty, or not a lock at all). A bare pid (older sim locks) is
 * judged by that pid alone.
 */
export function lockFileStatus(path: string): LockFileStatus {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
  if (/^[1-9]\d*$/.test(text)) return pidAlive(Number(text)) ? 'alive' : 'dead';
  if (!parseLock(text)) return 'half-made';
  return lockStatus(text);
}

/**
 * Removes the lock file at `path` when its holder is gone or it is half-made; returns what it
 * was. A live or foreign lock is left alone.
 */
export function clearStaleLock(path: string): LockFileStatus {
  const status = lockFileStatus(path);
  if (status === 'dead' || status === 'half-made') rmSync(path, { force: true });
  return status;
}

/**
 * Removes the temporary files `<name>.<pid>.tmp` in `dir` whose process is gone (a process
 * killed while writing one). Returns the paths removed.
 */
export function sweepTemporaries(dir: string, names: readonly string[]): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const f of entries) {
    const m = /^(.*)\.(\d+)\.tmp$/.exec(f);
    if (!m || !names.includes(m[1]) || pidAlive(Number(m[2]))) continue;
    rmSync(join(dir, f), { force: true });
    removed.push(join(dir, f));
  }
  return removed;
}

/** The temporary files of `path` (see sweepTemporaries), for callers that know one file. */
export function sweepTemporariesOf(path: string): string[] {
  return sweepTemporaries(dirname(path), [basename(path)]);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
