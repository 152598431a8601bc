/**
 * `xs-trace attach`: every connection of a running xenstore daemon, decoded, without restarting
 * it or sitting in front of it. C xenstored logs every message it reads and writes once asked
 * to (CONTROL `logfile FILE`, which also turns logging on; 4.18+ also needs its `io` and `obj`
 * trace switches, CONTROL `log +io`): xs-trace points that log at a file of its own, follows
 * the file as it grows, and decodes it with the same session logic as the proxy (tracefile.ts).
 * oxenstored cannot be switched at run time; its access log, when it writes one, is followed
 * as it is (access-log.ts).
 *
 * The daemon's previous logging state is learnt from /proc (daemon-proc.ts): whether its trace
 * file is open and which file it is, its `-T` file, and (4.18+) its trace switches. It is
 * written into the attach folder (state.json) before anything is changed, so that
 * `xs-trace detach` can put it back after an attach that was SIGKILLed; `stop()` puts it back
 * on any other exit:
 * - it was logging to F: CONTROL `logfile F` (F reopened in append mode; the daemon writes its
 *   "***" opening mark there);
 * - it was not logging: CONTROL `logfile` with its `-T` file, or an empty name when it had none
 *   (the daemon then fails to open "" and logs nowhere, and a later SIGHUP reopens nothing,
 *   tools/xenstore/xenstored_core.c reopen_log()), then `log off`;
 * - 4.18+: the trace switches xs-trace turned on are turned off again (`log -io`).
 * Meanwhile the log goes to a new file each ROTATE_BYTES, and the old one is deleted once read,
 * so the disk used stays bounded. SIGKILL leaves the daemon logging into the attach folder
 * without bound (and slower: bench/results/trace-attach.md) until `xs-trace detach`.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, XenstoreClient } from '../../xenstore-wire/client';
import { XenstoreError } from '../../xenstore-wire/errors';
import { elide } from '../elide';
import { AccessLogParser } from './access-log';
import { DaemonProcess, alive, findDaemon, OpenLog, optionValue } from './daemon-proc';
import { TraceError } from './errors';
import { FileFollower } from './follow';
import { TraceRecord } from './record';
import { CLogParser } from './tracefile';

/** Rotation size of the daemon's log while attached. */
export const ROTATE_BYTES = 64 * 1024 * 1024;
/** Name prefix of attach folders: `detach` recognises the daemon's log by it. */
export const ATTACH_DIR_PREFIX = 'xs-trace-attach-';
const STATE_FILE = 'state.json';
/** C xenstored 4.18+ trace switches an attach needs: every message, connections made and closed. */
const NEEDED_SWITCHES = ['io', 'obj'];

/** The daemon's logging before attach, as state.json keeps it. */
export interface PreviousLogging {
  /** Its trace file was open. */
  on: boolean;
  /** The file it logged to; when off, its `-T` file; null: none. */
  file: string | null;
  /** The file had been deleted while open (it is recreated on restore). */
  deleted?: boolean;
  /** 4.18+: the trace switches that were on. */
  switches?: string[];
}

export interface AttachState {
  tool: 'xs-trace attach';
  version: 1;
  ownerPid: number;
  daemonPid: number;
  socketPath: string;
  /** Log format of the daemon: 4.17, or 4.18+ (io:/obj: prefixes and trace switches). */
  format: '4.17' | '4.18+';
  previous: PreviousLogging;
  /** 4.18+ switches xs-trace turns on, to be turned off again. */
  switchesAdded: string[];
  startedAt: string;
}

export interface AttachOptions {
  /** The daemon's socket (CONTROL goes through it). */
  socketPath: string;
  /** The daemon's process id, when /proc cannot tell it from the socket. */
  pid?: number;
  /** Where the attach folder is made (default the system's temporary folder). */
  parentDir?: string;
  rotateBytes?: number;
  /** Every decoded record, in order. */
  onRecord: (r: TraceRecord) => void;
  pollMs?: number;
  /** Zone of the daemon's timestamps (C xenstored writes local time). */
  timeZone?: 'local' | 'utc';
  /** Show the daemon's own log lines (wrl:, store checks) as notes. */
  logLines?: boolean;
  /** Test seam: where /proc is. */
  procRoot?: string;
}

export interface AttachedSession {
  daemon: { pid: number; kind: 'cxenstored' | 'oxenstored'; format: string };
  /** The file being followed. */
  readonly logPath: string;
  /** The folder of the attach (C xenstored), null on oxenstored. */
  dir: string | null;
  /** What the daemon's logging returns to on stop (C), or null (oxenstored: nothing changed). */
  restoresTo: PreviousLogging | null;
  /** What this source does not show, compared with the wire. */
  lacks: string[];
  /** Which stats columns the source can fill. */
  caps: { latency: boolean; bytes: boolean };
  /** Ends the session: the daemon's logging restored (C), the rest of the log read. */
  stop(): Promise<void>;
  /** Resolves when the session ends by itself (the daemon went away). */
  ended: Promise<TraceError>;
}

/** Writes a file whole: a temporary file renamed into place. */
function writeWhole(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function readState(dir: string): AttachState | null {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, STATE_FILE), 'utf8')) as AttachState;
    return s.tool === 'xs-trace attach' ? s : null;
  } catch {
    return null;
  }
}

/** The attach folder a daemon's log file is in, or null when it is not one of ours. */
export function attachDirOf(logFile: string): string | null {
  const dir = path.dirname(logFile);
  return path.basename(dir).startsWith(ATTACH_DIR_PREFIX) && /\/log\.\d+$/.test(logFile) ? dir : null;
}

/** The daemon's trace file among its open logs: the one of -T, else the last opened. */
function traceFileOf(d: DaemonProcess): OpenLog | undefined {
  const t = optionValue(d.argv, ['-T', '--trace-file']);
  if (t !== undefined) {
    const byName = d.logs.find((l) => l.path === t || l.path === path.resolve('/', t));
    if (byName) return byName;
  }
  return d.logs[d.logs.length - 1];
}

/** 4.18+ `log` with no argument: "Log switch settings:\nobj     : on\n..." -> the switches on. */
export function parseSwitches(text: string): string[] {
  return [...text.matchAll(/^(\w+)\s*:\s*(on|off)$/gm)].filter((m) => m[2] === 'on').map((m) => m[1]);
}

/** Sends CONTROL `args`; a refusal becomes a TraceError naming the command. */
async function control(xs: XenstoreClient, ...args: string[]): Promise<string> {
  try {
    return await xs.control(args[0], ...args.slice(1));
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'EIO';
    throw new TraceError(code, `xenstored refused CONTROL ${args.map((a) => JSON.stringify(elide(a))).join(' ')}: ${code}`, { cause: e });
  }
}

/** Puts the daemon's logging back as `state` says (C xenstored). Each step is tried. */
export async function restoreLogging(xs: XenstoreClient, state: AttachState): Promise<string[]> {
  const done: string[] = [];
  const step = async (...args: string[]): Promise<void> => {
    await control(xs, ...args);
    done.push(args.join(' '));
  };
  for (const sw of state.switchesAdded) await step('log', `-${sw}`);
  const p = state.previous;
  if (p.on && p.file !== null) {
    await step('logfile', p.file);
  } else {
    await step('logfile', p.file ?? '');
    await step('log', 'off');
  }
  return done;
}

/** Attaches to the daemon behind `opts.socketPath`. */
export async function attach(opts: AttachOptions): Promise<AttachedSession> {
  const proc = findDaemon(opts.socketPath, opts.pid, opts.procRoot);
  return proc.kind === 'oxenstored' ? attachOxenstored(proc, opts) : attachCxenstored(proc, opts);
}

async function attachCxenstored(proc: DaemonProcess, opts: AttachOptions): Promise<AttachedSession> {
  const current = traceFileOf(proc);
  const ours = current ? attachDirOf(current.path) : null;
  if (ours) {
    const st = readState(ours);
    if (st && st.ownerPid !== process.pid && alive(st.ownerPid)) {
      throw new TraceError('EBUSY', `xs-trace attach (pid ${st.ownerPid}) is already attached to xenstored (pid ${proc.pid}); one attach per daemon`, { path: ours });
    }
    throw new TraceError('EBUSY', `xenstored (pid ${proc.pid}) still logs into ${ours}, left by an xs-trace attach that was killed; run \`xs-trace detach\` first`, { path: ours });
  }

  let xs: XenstoreClient;
  try {
    xs = await connect({ path: opts.socketPath });
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'EIO';
    throw new TraceError(code, `cannot connect to xenstored at ${elide(opts.socketPath)}: ${code}`, { path: opts.socketPath, cause: e });
  }
  const cleanup: Array<() => void> = [() => void xs.close().catch(() => undefined)];
  // Set once a CONTROL may have changed the daemon: a failure then restores it first.
  let changed: AttachState | null = null;
  try {
    // 4.18+ answers `log` with its trace switches; 4.17 refuses it (EINVAL: it needs on|off).
    let format: '4.17' | '4.18+' = '4.17';
    let switches: string[] | undefined;
    try {
      switches = parseSwitches(await xs.control('log'));
      format = '4.18+';
    } catch (e) {
      if (!(e instanceof XenstoreError) || e.code !== 'EINVAL') throw e;
    }
    const previous: PreviousLogging = current
      ? { on: true, file: current.path, ...(current.deleted ? { deleted: true } : {}) }
      : { on: false, file: optionValue(proc.argv, ['-T', '--trace-file']) ?? null };
    if (switches) previous.switches = switches;

    const parent = opts.parentDir ?? os.tmpdir();
    const dir = fs.mkdtempSync(path.join(parent, ATTACH_DIR_PREFIX));
    cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const state: AttachState = {
      tool: 'xs-trace attach',
      version: 1,
      ownerPid: process.pid,
      daemonPid: proc.pid,
      socketPath: opts.socketPath,
      format,
      previous,
      switchesAdded: switches ? NEEDED_SWITCHES.filter((s) => !switches!.includes(s)) : [],
      startedAt: new Date().toISOString(),
    };
    // The state is on disk before the daemon is changed: `detach` can always undo.
    writeWhole(path.join(dir, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
    let n = 1;
    let logPath = path.join(dir, `log.${n}`);
    fs.writeFileSync(logPath, '', { mode: 0o600, flag: 'wx' });

    const parser = new CLogParser({ timeZone: opts.timeZone, logLines: opts.logLines });
    const marker = `xs-trace-attach-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
    let ownConn: number | null = null;
    let held: TraceRecord[] | null = [];
    const deliver = (records: TraceRecord[]): void => {
      for (const r of records) {
        if (held) {
          // Until our own CONTROL connection is known (its `print` of the marker), records wait.
          if (r.kind === 'request' && r.type === 'CONTROL' && r.args?.[0] === 'print' && r.args[1] === marker) {
            ownConn = r.conn;
            const before = held;
            held = null;
            deliver(before);
          } else {
            held.push(r);
          }
          continue;
        }
        if (r.conn === ownConn && ownConn !== null) continue;
        if (r.kind === 'note' && r.text === 'log file opened') continue;
        try {
          opts.onRecord(r);
        } catch {
          // Output trouble must not stop the restore at the end.
        }
      }
    };
    const follower = new FileFollower({
      path: logPath,
      from: 'start',
      pollMs: opts.pollMs,
      onData: (b) => deliver(parser.push(b)),
      onIdle: () => deliver(parser.flush()),
    });
    cleanup.push(() => follower.stop());

    changed = state;
    for (const sw of state.switchesAdded) await control(xs, 'log', `+${sw}`);
    // `logfile` closes the current log, opens ours and turns logging on (reopen_log()).
    await control(xs, 'logfile', logPath);
    if (fs.statSync(logPath).size === 0) {
      throw new TraceError(
        'EACCES',
        `xenstored (pid ${proc.pid}) did not write to ${elide(logPath)} after CONTROL logfile: does it see the same ${elide(parent)} (mount namespace, PrivateTmp), as the same user? Give --dir`,
        { path: logPath },
      );
    }
    await control(xs, 'print', marker);
    follower.poll();
    deliver(parser.flush());
    if (held !== null) {
      throw new TraceError('EPROTO', `xenstored (pid ${proc.pid}) logs into ${elide(logPath)} but not in a format xs-trace knows (the marker it printed was not found)`, { path: logPath });
    }
    follower.start();

    const rotateBytes = opts.rotateBytes ?? ROTATE_BYTES;
    let rotating = false;
    let stopping: Promise<void> | null = null;
    let endedResolve!: (e: TraceError) => void;
    const ended = new Promise<TraceError>((r) => (endedResolve = r));
    const rotateTimer = setInterval(() => {
      if (rotating || stopping || follower.position < rotateBytes) return;
      rotating = true;
      const next = path.join(dir, `log.${n + 1}`);
      fs.writeFileSync(next, '', { mode: 0o600 });
      control(xs, 'logfile', next)
        .then(() => {
          const old = logPath;
          follower.switchTo(next);
          n++;
          logPath = next;
          fs.rmSync(old, { force: true });
        })
        .catch(() => fs.rmSync(next, { force: true }))
        .finally(() => (rotating = false));
    }, Math.max(50, (opts.pollMs ?? 20) * 5));
    rotateTimer.unref();

    const finish = (): void => {
      clearInterval(rotateTimer);
      follower.stop();
      deliver(parser.end());
      fs.rmSync(dir, { recursive: true, force: true });
    };
    void xs.closed.then((err) => {
      if (stopping) return;
      // The daemon went away: nothing to restore; what it logged is read, the folder removed.
      stopping = Promise.resolve();
      finish();
      endedResolve(new TraceError('ECONNRESET', `xenstored (pid ${proc.pid}) closed the connection${err ? `: ${err.code}` : ''}; the trace ends`, { cause: err ?? undefined }));
    });

    return {
      daemon: { pid: proc.pid, kind: 'cxenstored', format },
      get logPath() {
        return logPath;
      },
      dir,
      restoresTo: previous,
      lacks: [
        'request and transaction ids (pairing is by order: the daemon answers a connection in order)',
        'which operations belong to which transaction (starts and ends are shown)',
        'sub-second times, so no latencies',
        'NUL bytes inside values (logged as spaces)',
        ...(format === '4.17' ? ['the domain of connections made before the attach (4.17 logs it only for a connection introduced while attached)'] : []),
      ],
      caps: { latency: false, bytes: true },
      ended,
      stop(): Promise<void> {
        stopping ??= (async () => {
          while (rotating) await new Promise((r) => setTimeout(r, 5));
          try {
            await restoreLogging(xs, state);
          } finally {
            finish();
            await xs.close().catch(() => undefined);
          }
        })();
        return stopping;
      },
    };
  } catch (e) {
    // Whatever was changed is put back before the error is reported.
    if (changed) await restoreLogging(xs, changed).catch(() => undefined);
    for (const f of cleanup.reverse()) {
      try {
        f();
      } catch {
        // best effort
      }
    }
    throw e;
  }
}

/** oxenstored's access-log-file from its configuration file (`key = value` lines). */
function oxenstoredConfig(proc: DaemonProcess): Record<string, string> {
  const file = optionValue(proc.argv, ['--config-file']) ?? '/etc/xen/oxenstored.conf';
  const out: Record<string, string> = { '(file)': file };
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const m = /^\s*([\w-]+)\s*=\s*(.*?)\s*$/.exec(line);
      if (m && !line.trimStart().startsWith('#')) out[m[1]] = m[2];
    }
  } catch {
    // unreadable: the defaults of logging.ml apply
  }
  return out;
}

async function attachOxenstored(proc: DaemonProcess, opts: AttachOptions): Promise<AttachedSession> {
  if (proc.argv.includes('--no-access-log')) {
    throw new TraceError('ENODATA', `oxenstored (pid ${proc.pid}) runs with --no-access-log: it logs no access to follow, and cannot be told to at run time`, {});
  }
  const conf = oxenstoredConfig(proc);
  const configured = conf['access-log-file'] ?? '/var/log/xen/xenstored-access.log';
  if (configured.startsWith('syslog:')) {
    throw new TraceError('ENODATA', `oxenstored (pid ${proc.pid}) sends its access log to ${configured} (${conf['(file)']}): xs-trace follows a file only`, {});
  }
  const open = proc.logs.find((l) => l.path === configured || l.path === path.resolve(configured)) ?? proc.logs.find((l) => /access/.test(path.basename(l.path)));
  if (!open) {
    throw new TraceError('ENOENT', `oxenstored (pid ${proc.pid}) has no access log open (expected ${elide(configured)} from ${elide(conf['(file)'])})`, { path: configured });
  }
  const lineChars = Number(conf['access-log-nb-chars'] ?? 180) || 180;
  const parser = new AccessLogParser({ lineChars });
  const follower = new FileFollower({
    path: open.path,
    from: 'end',
    pollMs: opts.pollMs,
    reopenRenamed: true,
    onData: (b) => {
      for (const r of parser.push(b)) opts.onRecord(r);
    },
  });
  follower.start();
  const flag = (k: string) => conf[k] === 'true';
  const lacks = [
    'replies other than errors and watch events (nothing is paired, no latencies)',
    ...(flag('access-log-read-ops') ? [] : ['reads, directory listings and permission reads (access-log-read-ops is off)']),
    ...(flag('access-log-transactions-ops') ? [] : ['transaction starts and ends (access-log-transactions-ops is off; operations still carry their transaction id)']),
    ...(flag('access-log-special-ops') ? [] : ['introduce, release, getdomain, is-introduced, resume (access-log-special-ops is off)']),
    `request ids; payloads beyond ${lineChars - 1} characters a line (access-log-nb-chars), NUL bytes (logged as spaces)`,
    'requests refused before processing (malformed paths)',
  ];
  let stopping: Promise<void> | null = null;
  return {
    daemon: { pid: proc.pid, kind: 'oxenstored', format: 'access log' },
    get logPath() {
      return follower.currentPath;
    },
    dir: null,
    restoresTo: null,
    lacks,
    caps: { latency: false, bytes: false },
    ended: new Promise<TraceError>(() => undefined),
    stop(): Promise<void> {
      stopping ??= (async () => {
        follower.stop();
        for (const r of parser.end()) opts.onRecord(r);
      })();
      return stopping;
    },
  };
}

export interface DetachResult {
  daemonPid: number;
  /** What was found: an attach folder the daemon logs into, or nothing to repair. */
  found: 'attach-log' | 'nothing';
  /** The folder of the killed attach. */
  dir?: string;
  /** The state it recorded, when readable. */
  state?: AttachState;
  /** CONTROL commands sent. */
  commands: string[];
  /** Attach folders of this daemon left behind (the daemon no longer logs into them) and removed. */
  removed: string[];
}

/**
 * Repairs what an attach killed with SIGKILL left: the daemon logging into an attach folder.
 * Its logging is put back as that attach recorded (or turned off when its state is unreadable),
 * and the folder removed. Refuses while the attach that made it is still running.
 */
export async function detach(opts: { socketPath: string; pid?: number; parentDir?: string; force?: boolean; procRoot?: string }): Promise<DetachResult> {
  const proc = findDaemon(opts.socketPath, opts.pid, opts.procRoot);
  const result: DetachResult = { daemonPid: proc.pid, found: 'nothing', commands: [], removed: [] };
  // Folders of attaches to this daemon whose owner is gone, the daemon no longer logging there.
  const parent = opts.parentDir ?? os.tmpdir();
  const leftovers = (): void => {
    let names: string[] = [];
    try {
      names = fs.readdirSync(parent).filter((d) => d.startsWith(ATTACH_DIR_PREFIX));
    } catch {
      return;
    }
    for (const d of names) {
      const dir = path.join(parent, d);
      const st = readState(dir);
      if (!st || st.daemonPid !== proc.pid || alive(st.ownerPid) || dir === result.dir) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      result.removed.push(dir);
    }
  };
  if (proc.kind === 'oxenstored') {
    leftovers();
    return result;
  }
  const current = traceFileOf(proc);
  const dir = current ? attachDirOf(current.path) : null;
  if (!dir) {
    leftovers();
    return result;
  }
  result.found = 'attach-log';
  result.dir = dir;
  const state = readState(dir);
  if (state) result.state = state;
  if (state && state.ownerPid !== process.pid && alive(state.ownerPid) && !opts.force) {
    throw new TraceError('EBUSY', `xs-trace attach (pid ${state.ownerPid}) is running: stop it (SIGINT or SIGTERM) and it restores the daemon itself; --force to repair anyway`, { path: dir });
  }
  const xs = await connect({ path: opts.socketPath }).catch((e: unknown) => {
    const code = (e as { code?: string }).code ?? 'EIO';
    throw new TraceError(code, `cannot connect to xenstored at ${elide(opts.socketPath)}: ${code}`, { path: opts.socketPath, cause: e });
  });
  try {
    // Without a readable state: logging off, no file (and 4.18+ switches left as they are).
    const st: AttachState = state ?? {
      tool: 'xs-trace attach',
      version: 1,
      ownerPid: 0,
      daemonPid: proc.pid,
      socketPath: opts.socketPath,
      format: '4.17',
      previous: { on: false, file: null },
      switchesAdded: [],
      startedAt: '',
    };
    result.commands = await restoreLogging(xs, st);
  } finally {
    await xs.close().catch(() => undefined);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  leftovers();
  return result;
}
