/**
 * Runs the real xenstore clients against a daemon (a RunningDaemon, or anything with a socket
 * path, e.g. the in-memory server): xenstore-utils' CLI tools, Debian's pyxs, and Xen's own
 * test-xenstore. Each gets XENSTORED_PATH pointing at that socket and returns what it printed.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HarnessError } from './errors';
import { DEFAULT_RELEASE, releaseRuntime, XenRelease } from './releases';

export type XenstoreCliTool =
  | 'xenstore-read'
  | 'xenstore-write'
  | 'xenstore-ls'
  | 'xenstore-list'
  | 'xenstore-rm'
  | 'xenstore-exists'
  | 'xenstore-chmod'
  | 'xenstore-watch'
  | 'xenstore-control';

export interface ClientResult {
  code: number | null;
  /** Set when the tool was ended by a signal (e.g. by the timeout). */
  signal?: NodeJS.Signals;
  stdout: string;
  stderr: string;
  /** Wall time of the run, in milliseconds. */
  ms: number;
}

export interface ClientRunOptions {
  /** Bytes for the tool's stdin. */
  input?: string | Buffer;
  /**
   * Kill the tool (SIGTERM) after this long and return what it printed so far. Default 60 s;
   * xenstore-watch callers use it to stop the otherwise endless watch.
   */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: NodeJS.ProcessEnv;
}

/**
 * The minimum a client needs: where the xenstore socket is. RunningDaemon satisfies it, and
 * its `release` picks that release's own clients (xenstore-utils, test-xenstore); an endpoint
 * without one (the in-memory server) gets the machine's own (4.17).
 */
export interface XenstoreEndpoint {
  socketPath: string;
  env?: NodeJS.ProcessEnv;
  release?: XenRelease;
}

/** Debian's Python, which has python3-pyxs (`python3` on PATH may be another one). */
export const PYTHON = process.env.XEN_SSHM_PYTHON ?? '/usr/bin/python3';
/** Where the machine's (4.17) xenstore-utils are; 4.20's are in its root. */
export const XENSTORE_UTILS_DIR = process.env.XEN_SSHM_XENSTORE_UTILS_DIR ?? '/usr/bin';

function clientEnv(target: XenstoreEndpoint, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...(target.env ?? {}), ...(extra ?? {}) };
  env.XENSTORED_PATH = target.socketPath;
  delete env.LD_PRELOAD;
  return env;
}

/** Run `file args` to completion; throws HarnessError only when it cannot be started at all. */
export function runTool(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: ClientRunOptions = {},
  installHint = '',
  release?: XenRelease,
): Promise<ClientResult> {
  if (!existsSync(file)) {
    return Promise.reject(new HarnessError('client', 'ENOENT', `${file} missing${installHint ? `: ${installHint}` : ''}`, file));
  }
  // A newer release's tool runs with its root's own loader and libraries.
  const cmd = release ? releaseRuntime(release).command(file, args) : { file, args };
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(cmd.file, cmd.args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs ?? 60_000);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new HarnessError('client', e.code ?? 'EIO', `cannot run ${file}: ${e.message}`, file));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r: ClientResult = {
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: Date.now() - started,
      };
      if (signal) r.signal = signal;
      resolve(r);
    });
    // A tool that exits without reading stdin makes this write fail with EPIPE: not our error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Run one xenstore-utils tool (`xenstore-read` ...) against the daemon. */
export function runXenstoreCli(
  target: XenstoreEndpoint,
  tool: XenstoreCliTool,
  args: string[],
  opts: ClientRunOptions = {},
): Promise<ClientResult> {
  const release = target.release ?? DEFAULT_RELEASE;
  const dir = release === DEFAULT_RELEASE ? XENSTORE_UTILS_DIR : releaseRuntime(release).xenstoreUtilsDir;
  return runTool(join(dir, tool), args, clientEnv(target, opts.env), opts, `install Debian package xenstore-utils (${release})`, release);
}

/**
 * Run a Python program with Debian's pyxs importable; it finds the daemon through
 * XENSTORED_PATH (pyxs.connection honours it), e.g. `with pyxs.Client() as c: ...`.
 */
export function runPyxs(target: XenstoreEndpoint, pythonSource: string, opts: ClientRunOptions = {}): Promise<ClientResult> {
  return runTool(PYTHON, ['-c', pythonSource], clientEnv(target, opts.env), opts, 'install Debian package python3-pyxs');
}

/**
 * Run Xen's test-xenstore of the target's release (xen-utils-4.17, or 4.20's from its root)
 * against the daemon; `args` e.g. ['-t', 'read'].
 */
export function runTestXenstore(target: XenstoreEndpoint, args: string[] = [], opts: ClientRunOptions = {}): Promise<ClientResult> {
  const rt = releaseRuntime(target.release ?? DEFAULT_RELEASE);
  return runTool(join(rt.binDir, 'test-xenstore'), args, clientEnv(target, opts.env), opts, rt.packageHint, rt.release);
}
