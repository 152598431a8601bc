/**
 * The running xenstore daemon behind a socket, as /proc shows it: which process, which daemon
 * (C xenstored or oxenstored), its command line, and the log files it has open. This is how
 * `xs-trace attach` learns the daemon's logging state before changing it: neither daemon can be
 * asked over the protocol whether it logs or where (C xenstored 4.17 and 4.20: CONTROL `log` and
 * `logfile` only set it, tools/xenstore/xenstored_control.c, tools/xenstored/control.c; 4.20's
 * `log` with no argument lists the trace switches, not the file). Reading another process's
 * /proc/PID/fd needs the same user or root: in dom0, root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { elide } from '../elide';
import { TraceError } from './errors';

export type DaemonKind = 'cxenstored' | 'oxenstored';

/** A file the daemon has open for writing, appending: its trace file, its logs. */
export interface OpenLog {
  fd: number;
  /** Where the file is (readlink of /proc/PID/fd/N), without a " (deleted)" mark. */
  path: string;
  /** The file was unlinked while open. */
  deleted: boolean;
}

export interface DaemonProcess {
  pid: number;
  kind: DaemonKind;
  /** The command line, from the daemon's own binary on (a loader in front of it is skipped). */
  argv: string[];
  /** Regular files open for appending, by fd order. */
  logs: OpenLog[];
}

/** O_WRONLY | O_APPEND, as fdinfo prints flags (octal). */
const O_WRONLY = 0o1;
const O_APPEND = 0o2000;

/** The inode of the listening Unix socket bound at `socketPath` (/proc/net/unix). */
export function listeningSocketInode(socketPath: string, procRoot = '/proc'): number | null {
  let table: string;
  try {
    table = fs.readFileSync(path.join(procRoot, 'net', 'unix'), 'latin1');
  } catch {
    return null;
  }
  const want = realpathOr(socketPath);
  for (const line of table.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path; the path may hold spaces.
    const m = /^\S+: \S+ \S+ (\S+) \S+ \S+ +(\d+) (.+)$/.exec(line);
    if (!m) continue;
    // __SO_ACCEPTCON (0x10000): a listening socket, not a client connected to it.
    if ((parseInt(m[1], 16) & 0x10000) === 0) continue;
    if (m[3] === socketPath || realpathOr(m[3]) === want) return Number(m[2]);
  }
  return null;
}

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** The processes holding socket inode `inode` open. */
export function socketHolders(inode: number, procRoot = '/proc'): number[] {
  const want = `socket:[${inode}]`;
  const out: number[] = [];
  for (const d of fs.readdirSync(procRoot)) {
    if (!/^\d+$/.test(d)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(path.join(procRoot, d, 'fd'));
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(path.join(procRoot, d, 'fd', fd)) === want) {
          out.push(Number(d));
          break;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

/** The daemon's arguments from its binary on, and which daemon it is; null for another program. */
export function daemonArgv(cmdline: string[]): { kind: DaemonKind; argv: string[] } | null {
  for (let i = 0; i < cmdline.length; i++) {
    const base = path.basename(cmdline[i]);
    if (base === 'xenstored') return { kind: 'cxenstored', argv: cmdline.slice(i) };
    if (base === 'oxenstored') return { kind: 'oxenstored', argv: cmdline.slice(i) };
  }
  return null;
}

function readCmdline(pid: number, procRoot: string): string[] {
  const raw = fs.readFileSync(path.join(procRoot, String(pid), 'cmdline'), 'latin1');
  const parts = raw.split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** Files the process has open for appending: regular files with O_WRONLY|O_APPEND in fdinfo. */
export function openLogs(pid: number, procRoot = '/proc'): OpenLog[] {
  const dir = path.join(procRoot, String(pid), 'fd');
  let fds: string[];
  try {
    fds = fs.readdirSync(dir);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TraceError(err.code ?? 'EIO', `cannot read ${dir} to learn xenstored's logging state: ${err.code ?? err.message} (xs-trace attach needs the daemon's user or root)`, { path: dir, cause: e });
  }
  const out: OpenLog[] = [];
  for (const name of fds.sort((a, b) => Number(a) - Number(b))) {
    const fd = Number(name);
    let target: string;
    let flags: number;
    try {
      target = fs.readlinkSync(path.join(dir, name));
      const info = fs.readFileSync(path.join(procRoot, String(pid), 'fdinfo', name), 'latin1');
      const m = /^flags:\s+([0-7]+)$/m.exec(info);
      if (!m) continue;
      flags = parseInt(m[1], 8);
    } catch {
      continue;
    }
    if (!target.startsWith('/') || (flags & O_WRONLY) === 0 || (flags & O_APPEND) === 0) continue;
    const deleted = target.endsWith(' (deleted)');
    const p = deleted ? target.slice(0, -' (deleted)'.length) : target;
    // Regular files only: the link of a device or a pipe is not one.
    try {
      if (!fs.statSync(path.join(dir, name)).isFile()) continue;
    } catch {
      continue;
    }
    out.push({ fd, path: p, deleted });
  }
  return out;
}

/**
 * The daemon listening on `socketPath`: found through /proc/net/unix and the processes' fds,
 * or given as `pid`. Throws TraceError ESRCH when no xenstored or oxenstored serves it.
 */
export function findDaemon(socketPath: string, pid?: number, procRoot = '/proc'): DaemonProcess {
  let candidates: number[];
  if (pid !== undefined) {
    candidates = [pid];
  } else {
    const inode = listeningSocketInode(socketPath, procRoot);
    if (inode === null) {
      throw new TraceError('ESRCH', `no process listens on ${elide(socketPath)} (is xenstored running here, in this network namespace?)`, { path: socketPath });
    }
    candidates = socketHolders(inode, procRoot);
    if (candidates.length === 0) {
      throw new TraceError('ESRCH', `the process listening on ${elide(socketPath)} is not visible in ${procRoot} (another user's: run as root, or give --pid)`, { path: socketPath });
    }
  }
  for (const p of candidates) {
    let cmd: string[];
    try {
      cmd = readCmdline(p, procRoot);
    } catch {
      continue;
    }
    const d = daemonArgv(cmd);
    if (!d) continue;
    return { pid: p, kind: d.kind, argv: d.argv, logs: openLogs(p, procRoot) };
  }
  throw new TraceError('ESRCH', `process ${candidates.join(', ')} serving ${elide(socketPath)} is neither xenstored nor oxenstored`, { path: socketPath });
}

/** The value of option `names` in `argv` (`-T FILE`, `--trace-file FILE`, `--trace-file=FILE`). */
export function optionValue(argv: string[], names: string[]): string | undefined {
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (names.includes(a) && i + 1 < argv.length) return argv[i + 1];
    for (const n of names) if (n.startsWith('--') && a.startsWith(n + '=')) return a.slice(n.length + 1);
    // getopt's joined short form: -TFILE.
    for (const n of names) if (/^-[A-Za-z]$/.test(n) && a.startsWith(n) && a.length > 2) return a.slice(2);
  }
  return undefined;
}

/** Is process `pid` alive (signal 0)? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
