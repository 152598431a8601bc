/**
 * Starts Debian's real xenstore daemons without a hypervisor, one private daemon per caller, for
 * the real-daemon test tier (FACTS.md section 3): Xen 4.17 (Debian 12's xen-utils-4.17, as
 * installed) by default, or 4.20 (Debian 13's, from a private root: releases.ts) with
 * `{ release: '4.20' }`.
 *
 * - C xenstored: `xenstored -N [-T TRACE]` with XENSTORED_RUNDIR = a fresh folder; it puts its
 *   socket there and keeps its database in memory (4.17's default `--internal-db`), so nothing
 *   is shared between daemons.
 * - oxenstored: `oxenstored --no-fork --config-file F --pid-file P`. Its socket directory is
 *   compiled in; the preload library redirects /var/run/xenstored/* under XENSTORED_RUNDIR.
 *
 * Both run with LD_PRELOAD = build/Release/libxenstored_preload.so (test/harness/preload/),
 * and under `setpriv --pdeathsig KILL` so that a test process that dies, even by SIGKILL, takes
 * its daemons with it. The harness does not use the project's own xenstore client: it probes
 * readiness with one hand-built frame, so it stays usable while that client is broken.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { endianness, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { HarnessError } from './errors';
import { DEFAULT_RELEASE, releaseRuntime, XenRelease, XEN_RELEASES } from './releases';

export { HarnessError } from './errors';
export { DEFAULT_RELEASE, XenRelease, XEN_RELEASES } from './releases';

export type DaemonKind = 'cxenstored' | 'oxenstored';
export const DAEMON_KINDS: DaemonKind[] = ['cxenstored', 'oxenstored'];

/** One real daemon: its kind and its Xen release. */
export interface RealDaemon {
  kind: DaemonKind;
  release: XenRelease;
}

/** The four real daemons the suites run on: C and OCaml, 4.17 and 4.20. */
export const REAL_DAEMONS: readonly RealDaemon[] = XEN_RELEASES.flatMap((release) => DAEMON_KINDS.map((kind) => ({ kind, release })));

/** "cxenstored 4.20": how tests name a real daemon. */
export function daemonLabel(d: RealDaemon): string {
  return `${d.kind} ${d.release}`;
}

export interface DaemonOptions {
  /** Which Xen release's daemon: 4.17 (default, the machine's own) or 4.20 (Debian 13's). */
  release?: XenRelease;
  /** oxenstored only: `test-eagain = true`, commits fail with EAGAIN at random. */
  testEagain?: boolean;
  /**
   * Log every message: C xenstored's `-T` trace file, oxenstored's access log. Off by default
   * because it costs the daemon time on every request (the benches compare against it).
   */
  trace?: boolean;
  /** Extra command-line arguments for the daemon (e.g. C xenstored's `-E 50` quota). */
  extraArgs?: string[];
  /**
   * Guest domids the fake hypervisor reports as existing (besides dom0), e.g. [1, 2, 3]: the
   * daemon then accepts INTRODUCE for them and keeps their permission entries. Default none.
   */
  fakeDomains?: number[];
  /** How long to wait for the socket to answer. Default 20 s: the machine may be loaded. */
  startTimeoutMs?: number;
}

export interface RunningDaemon {
  kind: DaemonKind;
  release: XenRelease;
  socketPath: string;
  rundir: string;
  /** The trace (C) or access log (OCaml) file, when `trace` was asked for. */
  tracePath?: string;
  pid: number;
  /** Env for child clients: XENSTORED_PATH = socketPath, XENSTORED_RUNDIR = rundir. */
  env: NodeJS.ProcessEnv;
  /** SIGTERM, wait for exit (SIGKILL after 5 s), remove rundir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL now and wait until the process is gone (its sockets are then closed). */
  kill(): Promise<void>;
  /** What the daemon printed so far (stdout and stderr, last 64 KiB). */
  output(): string;
  /**
   * C xenstored only: a Unix socket whose client is guest `domid` speaking over its xenstore
   * ring (xs-ring-bridge), i.e. an unprivileged connection to the real daemon. The domain must
   * be in `fakeDomains` and already INTRODUCEd (from dom0, on socketPath).
   */
  guestSocket(domid: number): Promise<string>;
}

/**
 * Where Debian's xen-utils-4.17 puts the daemons and test-xenstore; override for other distros.
 * (4.20's are in its private root: releaseRuntime('4.20').binDir.)
 */
export const XEN_BIN_DIR = process.env.XEN_SSHM_XEN_BIN_DIR ?? '/usr/lib/xen-4.17/bin';

const BUILD_HINT = 'build it with `npm ci` or `npx cmake-js compile` in the project root (needs libxen-dev, cmake, a C compiler)';

/** The project root: the nearest folder above this file holding the xen-sshm package.json. */
export function projectRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'xen-sshm') return dir;
      } catch {
        // not ours, keep climbing
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new HarnessError('preload', 'ENOENT', `no xen-sshm package.json above ${__dirname}`, __dirname);
    dir = up;
  }
}

/** Path of the built xs-ring-bridge helper; throws a HarnessError with the build command if absent. */
export function ringBridgeBinary(): string {
  const bin = resolve(dirname(preloadLibrary()), 'xs_ring_bridge');
  if (!existsSync(bin)) throw new HarnessError('preload', 'ENOENT', `xs-ring-bridge missing at ${bin}: ${BUILD_HINT}`, bin);
  return bin;
}

/**
 * Path of the built preload library of a release (4.17: cmake-js's build/Release; 4.20: built
 * against its own headers in its root's cache); throws a HarnessError with the build command if
 * absent.
 */
export function preloadLibrary(release: XenRelease = DEFAULT_RELEASE): string {
  const lib = releaseRuntime(release).preload;
  if (!existsSync(lib)) {
    throw new HarnessError('preload', 'ENOENT', `xenstored preload library missing at ${lib}: ${BUILD_HINT}`, lib);
  }
  return lib;
}

function daemonBinary(kind: DaemonKind, release: XenRelease): string {
  const rt = releaseRuntime(release);
  const bin = join(rt.binDir, kind === 'cxenstored' ? 'xenstored' : 'oxenstored');
  if (!existsSync(bin)) {
    throw new HarnessError('binary', 'ENOENT', `${bin} missing: ${rt.packageHint}`, bin);
  }
  return bin;
}

/**
 * oxenstored's configuration: Debian's /etc/xen/oxenstored.conf values, with every file it
 * writes moved into the private rundir.
 */
function oxenstoredConfig(rundir: string, opts: DaemonOptions): string {
  const lines = [
    `pid-file = ${join(rundir, 'oxenstored.pid')}`,
    `test-eagain = ${opts.testEagain ? 'true' : 'false'}`,
    'merge-activate = true',
    'conflict-burst-limit = 5.0',
    'conflict-max-history-seconds = 0.05',
    'conflict-rate-limit-is-aggregate = true',
    'perms-activate = true',
    'perms-watch-activate = true',
    'quota-activate = true',
    'quota-maxentity = 1000',
    'quota-maxsize = 2048',
    'quota-maxwatch = 100',
    'quota-transaction = 10',
    'quota-maxrequests = 1024',
    'quota-path-max = 1024',
    'quota-maxoutstanding = 1024',
    'quota-maxwatchevents = 1024',
    'persistent = false',
    `xenstored-log-file = ${join(rundir, 'xenstored.log')}`,
    `access-log-file = ${join(rundir, 'access.log')}`,
    // Intercepted by the preload library (FACTS.md section 3).
    'xenstored-kva = /proc/xen/xsd_kva',
    'xenstored-port = /proc/xen/xsd_port',
  ];
  return lines.join('\n') + '\n';
}

/** Bounded tail of a child's output, for error messages. */
class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit = 64 * 1024) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.limit && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Daemons started by this process, killed synchronously if the process exits without stop(). */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * One round trip with a hand-built DIRECTORY "/" frame: resolves true when a reply with our
 * req_id arrives, false on connect error, close or timeout.
 */
function probe(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((done) => {
    const reqId = 0x5e5e;
    const payload = Buffer.from('/\0');
    const header = Buffer.alloc(16);
    const le = endianness() === 'LE';
    const put = (v: number, o: number) => (le ? header.writeUInt32LE(v, o) : header.writeUInt32BE(v, o));
    put(1 /* DIRECTORY */, 0);
    put(reqId, 4);
    put(0, 8);
    put(payload.length, 12);
    let got = Buffer.alloc(0);
    let finished = false;
    const sock = netConnect(socketPath);
    const finish = (ok: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      done(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('connect', () => sock.write(Buffer.concat([header, payload])));
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 16) {
        const id = le ? got.readUInt32LE(4) : got.readUInt32BE(4);
        finish(id === reqId);
      }
    });
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
  });
}

/** Resolves when the (unref'd) child has exited; a timer keeps the event loop alive meanwhile. */
function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const keepAlive = setInterval(() => undefined, 1000);
  return new Promise((r) =>
    child.once('exit', () => {
      clearInterval(keepAlive);
      r();
    }),
  );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Start a private daemon of `kind`. Resolves once its socket answers a request; rejects with a
 * HarnessError (naming the missing file or carrying the daemon's output) otherwise.
 */
export async function startDaemon(kind: DaemonKind, opts: DaemonOptions = {}): Promise<RunningDaemon> {
  const release = opts.release ?? DEFAULT_RELEASE;
  const rt = releaseRuntime(release);
  const preload = preloadLibrary(release);
  const bin = daemonBinary(kind, release);
  let rundir: string;
  try {
    rundir = mkdtempSync(join(tmpdir(), `xen-sshm-${kind}-${release}-`));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new HarnessError('rundir', err.code ?? 'EIO', `cannot create a rundir under ${tmpdir()}: ${err.message}`, tmpdir());
  }
  const socketPath = join(rundir, 'socket');
  let tracePath: string | undefined;
  let args: string[];
  if (kind === 'cxenstored') {
    args = ['-N'];
    if (opts.trace) {
      tracePath = join(rundir, 'trace');
      args.push('-T', tracePath);
    }
  } else {
    const conf = join(rundir, 'oxenstored.conf');
    writeFileSync(conf, oxenstoredConfig(rundir, opts));
    args = ['--no-fork', '--config-file', conf, '--pid-file', join(rundir, 'oxenstored.pid')];
    if (opts.trace) tracePath = join(rundir, 'access.log');
    else args.push('--no-access-log');
  }
  args.push(...(opts.extraArgs ?? []));

  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...rt.daemonEnv, XENSTORED_RUNDIR: rundir, LD_PRELOAD: preload };
  delete childEnv.XENSTORED_PATH;
  delete childEnv.XEN_SSHM_FAKE_DOMAINS;
  if (opts.fakeDomains && opts.fakeDomains.length > 0) childEnv.XEN_SSHM_FAKE_DOMAINS = opts.fakeDomains.join(',');
  // A daemon run from a private root names itself as installed (/tool/xenstored), not as the loader.
  const root = rt.daemonEnv.XEN_SSHM_PRELOAD_ROOT;
  if (root && bin.startsWith(root)) childEnv.XEN_SSHM_EXE = bin.slice(root.length);
  const cmd = rt.command(bin, args);
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', cmd.file, ...cmd.args], {
    env: childEnv,
    cwd: rundir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const tail = new OutputTail();
  child.stdout!.on('data', (b: Buffer) => tail.push(b));
  child.stderr!.on('data', (b: Buffer) => tail.push(b));
  let spawnError: NodeJS.ErrnoException | undefined;
  child.on('error', (e) => (spawnError = e));
  child.on('exit', () => live.delete(child));
  // The test process must be free to exit while a daemon runs; 'exit' above cleans up.
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();

  const cleanup = () => {
    try {
      rmSync(rundir, { recursive: true, force: true });
    } catch {
      // best effort: a leftover temp folder is not worth failing a test over
    }
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
  for (;;) {
    if (spawnError) {
      cleanup();
      throw new HarnessError('spawn', spawnError.code ?? 'EIO', `cannot run setpriv ${bin}: ${spawnError.message}`, bin);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      const how = child.exitCode !== null ? `exit code ${child.exitCode}` : `signal ${child.signalCode}`;
      const out = tail.text() + (tracePath && existsSync(tracePath) ? readFileSync(tracePath, 'utf8').slice(-4000) : '');
      cleanup();
      throw new HarnessError('startup', 'ECHILD', `${kind} ${release} (${bin}) exited during start-up with ${how}`, bin, out);
    }
    if (existsSync(socketPath) && (await probe(socketPath, 2000))) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await waitExit(child);
      const out = tail.text();
      cleanup();
      throw new HarnessError('startup', 'ETIMEDOUT', `${kind} ${release} did not answer on ${socketPath} in time`, socketPath, out);
    }
    await sleep(20);
  }

  let stopping: Promise<void> | undefined;
  const bridges = new Map<number, Promise<string>>();
  const bridgeProcs: ChildProcess[] = [];
  const startBridge = async (domid: number): Promise<string> => {
    if (kind !== 'cxenstored') {
      throw new HarnessError('client', 'ENOTSUP', `guest rings are bridged for C xenstored only (oxenstored maps guest rings through libxenctrl)`, bin);
    }
    const sock = join(rundir, `guest-${domid}.socket`);
    const helper = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ringBridgeBinary(), rundir, String(domid), sock], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(helper);
    bridgeProcs.push(helper);
    helper.on('exit', () => live.delete(helper));
    helper.unref();
    const out = new OutputTail();
    helper.stderr!.on('data', (b: Buffer) => out.push(b));
    (helper.stderr as unknown as { unref?: () => void }).unref?.();
    await new Promise<void>((ok, fail) => {
      helper.stdout!.once('data', () => ok());
      helper.once('exit', (code) => fail(new HarnessError('spawn', 'ECHILD', `xs-ring-bridge for domain ${domid} exited with ${code}`, sock, out.text())));
      helper.once('error', (e: NodeJS.ErrnoException) => fail(new HarnessError('spawn', e.code ?? 'EIO', `cannot run xs-ring-bridge: ${e.message}`, sock)));
    });
    (helper.stdout as unknown as { unref?: () => void }).unref?.();
    return sock;
  };
  const daemon: RunningDaemon = {
    kind,
    release,
    socketPath,
    rundir,
    tracePath,
    pid: child.pid!,
    env: { ...process.env, XENSTORED_PATH: socketPath, XENSTORED_RUNDIR: rundir },
    output: () => tail.text(),
    guestSocket(domid: number) {
      let p = bridges.get(domid);
      if (!p) {
        p = startBridge(domid);
        bridges.set(domid, p);
        p.catch(() => bridges.delete(domid));
      }
      return p;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await waitExit(child);
      for (const b of bridgeProcs) if (b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
    },
    stop() {
      stopping ??= (async () => {
        for (const b of bridgeProcs) {
          if (b.exitCode === null && b.signalCode === null) {
            b.kill('SIGKILL');
            await waitExit(b);
          }
        }
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 5000);
          await waitExit(child);
          clearTimeout(t);
        }
        cleanup();
      })();
      return stopping;
    },
  };
  delete daemon.env.LD_PRELOAD;
  if (tracePath === undefined) delete daemon.tracePath;
  return daemon;
}
