/**
 * Locks name a process: `<hostname>:<pid>:<starttime>`, starttime being field 22 of
 * /proc/<pid>/stat (clock ticks since boot). A pid alone is not enough: after a crash the pid
 * may be reused by an unrelated process, which must not keep an intent alive forever.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

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
