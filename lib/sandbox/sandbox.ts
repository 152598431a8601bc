/**
 * The sandbox: the embedded default of `--sandbox`, a folder holding a simulated Xen host and
 * a background in-memory xenstored, so that create, apply, ls, peek and release can be run
 * one after another (and at the same time) without Xen:
 *
 *   DIR/socket            the in-memory xenstored (Xen 4.17 C xenstored semantics)
 *   DIR/xenstore.json     its tree, kept across restarts (--persist)
 *   DIR/xenstored.pid     the daemon's lock string (host:pid:starttime)
 *   DIR/xenstored.log     what it printed
 *   DIR/domain-<N>.socket a connection as guest N (unprivileged), while N is introduced
 *   DIR/sim/              the simulated host (domains, physmaps, frames)
 *
 * Any invocation starts the daemon on demand; concurrent invocations agree through an
 * exclusive start file, and share the daemon. It exits by itself after a while without
 * clients (XEN_SSHM_SANDBOX_IDLE_MS, default 30 minutes); the state stays in the folder.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect, type ConnectOptions, type XenstoreClient } from '../../xenstore-wire';
import type { XenArch } from '../hypervisor';
import { SimHypervisor } from '../hypervisor/sim';
import { clearStaleLock, createLockFile, lockStatus, parseLock, sweepTemporaries } from '../lockfile';
import { ManagerError } from '../manager';

/** Unix socket paths are limited to 107 bytes (sun_path). */
const SUN_PATH_MAX = 107;
const START_TIMEOUT_MS = 20_000;

export function defaultSandboxDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.XEN_SSHM_SANDBOX || join(homedir(), '.xen-sshm', 'sandbox'));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when something accepts connections on the socket. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const s = netConnect(path);
    const t = setTimeout(() => finish(false), timeoutMs);
    function finish(ok: boolean): void {
      clearTimeout(t);
      s.destroy();
      done(ok);
    }
    s.once('connect', () => finish(true));
    s.once('error', () => finish(false));
  });
}

export interface SandboxOptions {
  /** Architecture of a new simulated host (default arm). An existing folder keeps its own. */
  arch?: XenArch;
  /** Idle time after which the background xenstored exits (ms). */
  idleMs?: number;
}

export class Sandbox {
  readonly dir: string;

  constructor(dir: string = defaultSandboxDir(), private readonly opts: SandboxOptions = {}) {
    this.dir = resolve(dir);
  }

  get socketPath(): string {
    return join(this.dir, 'socket');
  }

  get simDir(): string {
    return join(this.dir, 'sim');
  }

  get persistPath(): string {
    return join(this.dir, 'xenstore.json');
  }

  get pidPath(): string {
    return join(this.dir, 'xenstored.pid');
  }

  get logPath(): string {
    return join(this.dir, 'xenstored.log');
  }

  private get startPath(): string {
    return join(this.dir, 'xenstored.start');
  }

  domainSocketPath(domid: number): string {
    return join(this.dir, `domain-${domid}.socket`);
  }

  /** The simulated host (explicitly asked for: allowed even on a machine running Xen). */
  openHypervisor(): SimHypervisor {
    mkdirSync(this.simDir, { recursive: true });
    return new SimHypervisor({ dir: this.simDir, allowOnXenHost: true, ...(this.opts.arch ? { arch: this.opts.arch } : {}) });
  }

  /** Starts the background xenstored unless one answers already. Safe to call concurrently. */
  async start(): Promise<void> {
    if (Buffer.byteLength(this.socketPath) > SUN_PATH_MAX) {
      throw new ManagerError({
        code: 'ENAMETOOLONG', reason: 'domain', path: this.socketPath,
        message: `the sandbox socket path ${this.socketPath} is longer than a Unix socket allows (${SUN_PATH_MAX} bytes)`,
        hint: 'use a shorter --sandbox-dir',
      });
    }
    mkdirSync(this.dir, { recursive: true });
    this.sweep();
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (await socketAnswers(this.socketPath)) return;
      // The start file is linked into place whole (lib/lockfile.ts): never seen empty.
      if (!createLockFile(this.startPath)) {
        // Another invocation is starting it: wait, unless that one died meanwhile.
        clearStaleLock(this.startPath);
        await sleep(30);
        continue;
      }
      try {
        if (await socketAnswers(this.socketPath)) return;
        await this.spawnDaemon(deadline);
        return;
      } finally {
        rmSync(this.startPath, { force: true });
      }
    }
    throw new ManagerError({
      code: 'ETIMEDOUT', reason: 'busy', path: this.socketPath,
      message: `the sandbox xenstored did not start on ${this.socketPath} within ${START_TIMEOUT_MS / 1000} s`,
      hint: `see ${this.logPath}`,
    });
  }

  private async spawnDaemon(deadline: number): Promise<void> {
    const main = join(__dirname, 'xenstored-main.js');
    const log = openSync(this.logPath, 'a', 0o600);
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (this.opts.idleMs !== undefined) env.XEN_SSHM_SANDBOX_IDLE_MS = String(this.opts.idleMs);
    const child = spawn(process.execPath, [main, this.dir], { detached: true, stdio: ['ignore', log, log], env, cwd: this.dir });
    closeSync(log);
    let exited: string | null = null;
    child.once('exit', (code, signal) => (exited = signal ? `signal ${signal}` : `exit code ${code}`));
    child.once('error', (e) => (exited = e.message));
    child.unref();
    while (Date.now() < deadline) {
      if (await socketAnswers(this.socketPath)) return;
      if (exited) break;
      await sleep(20);
    }
    const tail = readOr(this.logPath).split('\n').slice(-8).join('\n');
    throw new ManagerError({
      code: 'ECHILD', reason: 'busy', path: this.logPath,
      message: `the sandbox xenstored ${exited ? `ended (${exited})` : 'did not answer'} during start-up${tail.trim() ? `:\n${tail}` : ''}`,
      hint: `see ${this.logPath}`,
    });
  }

  /**
   * Removes what killed processes left half-made in the folder: temporary files of dead
   * processes, and start, pid or sim lock files that are empty or whose process is gone.
   * Runs before every start (so every sandbox command, reconcile included, clears them).
   * Returns the paths removed.
   */
  sweep(): string[] {
    const removed = [
      ...sweepTemporaries(this.dir, ['xenstored.start', 'xenstored.pid']),
      ...sweepTemporaries(this.simDir, ['lock', 'host.bin']),
    ];
    for (const p of [this.startPath, this.pidPath, join(this.simDir, 'lock')]) {
      const status = clearStaleLock(p);
      if (status === 'dead' || status === 'half-made') removed.push(p);
    }
    return removed;
  }

  /** Starts the daemon if needed and connects to it (dom0's privileged socket). */
  async connect(opts: Omit<ConnectOptions, 'path'> = {}): Promise<XenstoreClient> {
    await this.start();
    return connect({ ...opts, path: this.socketPath });
  }

  /** The pid of the running daemon, or null. */
  daemonPid(): number | null {
    const text = readOr(this.pidPath);
    const id = text ? parseLock(text.trim()) : null;
    return id && lockStatus(text.trim()) === 'alive' ? id.pid : null;
  }

  /** Stops the background daemon (the tree is saved). Resolves once it is gone. */
  async stop(): Promise<boolean> {
    const pid = this.daemonPid();
    if (pid === null) return false;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return false;
    }
    const until = Date.now() + 5000;
    while (Date.now() < until && this.daemonPid() === pid) await sleep(20);
    if (this.daemonPid() === pid) process.kill(pid, 'SIGKILL');
    while (this.daemonPid() === pid) await sleep(20);
    return true;
  }

  /** Stops the daemon and removes the folder. */
  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  exists(): boolean {
    return existsSync(this.dir);
  }
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
