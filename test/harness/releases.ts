/**
 * Which Xen release's real daemons and clients the harness runs (issue 14 point 2).
 *
 * - 4.17: Debian 12's xen-utils-4.17 and xenstore-utils as installed on this machine (.ci/run),
 *   run as they are, with the preload library cmake-js built (build/Release).
 * - 4.20: Debian 13 "trixie"'s xen-utils-4.20 and xenstore-utils (amd64), resolved by name
 *   through a private apt configuration (test/xen/apt.ts), downloaded and unpacked into a root
 *   of their own under .cache/, and run with that root's own loader and libraries (glibc 2.41
 *   on a Debian 12 machine): `ld-linux-x86-64.so.2 --library-path ROOT/usr/lib/... BIN`. The
 *   preload library is compiled for it against the root's libxen-dev 4.20 headers (the
 *   domain-info call changed: xc_domain_getinfo_single), with the machine's C compiler.
 *
 * Preparing the 4.20 root happens on first use, under a file lock (ava runs test files in
 * parallel workers), in a child process: prepare-release.ts. A prepared root is reused
 * without any apt command.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HarnessError } from './errors';

export type XenRelease = '4.17' | '4.20';
/** Every release the harness runs, oldest first. */
export const XEN_RELEASES: readonly XenRelease[] = ['4.17', '4.20'];
/** What a caller that names no release gets: the machine's own (Debian 12). */
export const DEFAULT_RELEASE: XenRelease = '4.17';

export interface ReleaseRuntime {
  release: XenRelease;
  /** Debian suite the binaries come from. */
  debian: 'bookworm' | 'trixie';
  /** xenstored, oxenstored, test-xenstore. */
  binDir: string;
  /** xenstore-read, -write ... */
  xenstoreUtilsDir: string;
  /** The LD_PRELOAD stand-in for the hypervisor, built for this release's headers. */
  preload: string;
  /** Extra environment for the daemons (the preload's root redirection). */
  daemonEnv: Record<string, string>;
  /** How to run one of the release's programs: the file to exec and the arguments before its own. */
  command(bin: string, args: string[]): { file: string; args: string[] };
  /** The Debian package a missing binary comes from (for error messages). */
  packageHint: string;
}

/** The project root: the nearest folder above this file holding the xen-sshm package.json. */
function findProjectRoot(): string {
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
    const up = resolve(dir, '..');
    if (up === dir) throw new HarnessError('preload', 'ENOENT', `no xen-sshm package.json above ${__dirname}`, __dirname);
    dir = up;
  }
}

/** Where the 4.20 root is prepared: .cache/xen-amd64-4.20 in the project (git-ignored). */
export function releaseCacheDir(release: XenRelease): string {
  return join(findProjectRoot(), '.cache', `xen-amd64-${release}`);
}

/** What prepare-release.ts leaves in the cache folder once the root is complete. */
export interface PreparedRoot {
  release: XenRelease;
  root: string;
  preload: string;
  loader: string;
  libraryPath: string[];
  packages: number;
  preparedAt: string;
}

export const PREPARED_FILE = 'prepared.json';

/** The preload library's source; its hash names the built library, so an edit rebuilds it. */
export function preloadSource(): string {
  return join(findProjectRoot(), 'test/harness/preload/xenstored_preload.c');
}

export function preloadSourceHash(): string {
  return createHash('sha256').update(readFileSync(preloadSource())).digest('hex').slice(0, 12);
}

const runtimes = new Map<XenRelease, ReleaseRuntime>();

function readPrepared(cacheDir: string): PreparedRoot | undefined {
  try {
    const p = JSON.parse(readFileSync(join(cacheDir, PREPARED_FILE), 'utf8')) as PreparedRoot;
    if (!p.preload.includes(preloadSourceHash())) return undefined;
    return [p.loader, p.preload, ...p.libraryPath].every((f) => existsSync(f)) ? p : undefined;
  } catch {
    return undefined;
  }
}

function prepareRoot(release: XenRelease): PreparedRoot {
  const cacheDir = releaseCacheDir(release);
  const ready = readPrepared(cacheDir);
  if (ready) return ready;
  const script = join(__dirname, 'prepare-release.js');
  mkdirSync(resolve(cacheDir, '..'), { recursive: true });
  // One preparation at a time across ava's workers: flock(1) waits for the lock, and the
  // script finds the root ready when another worker made it meanwhile.
  const r = spawnSync('flock', [`${cacheDir}.lock`, process.execPath, script, release, cacheDir], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 15 * 60_000,
  });
  if (r.error) throw new HarnessError('prepare', (r.error as NodeJS.ErrnoException).code ?? 'EIO', `cannot run flock ${script}: ${r.error.message}`, script);
  const prepared = readPrepared(cacheDir);
  if (r.status !== 0 || !prepared) {
    throw new HarnessError('prepare', 'ECHILD', `preparing the Xen ${release} root in ${cacheDir} failed (exit ${r.status})`, cacheDir,
      `${r.stdout ?? ''}${r.stderr ?? ''}`.slice(-4000));
  }
  return prepared;
}

/**
 * The release's daemons and clients. For 4.20 this prepares the private root on first use
 * (download ~7 MB of .debs, unpack, compile the preload: ~10 s) and throws a HarnessError
 * naming what failed.
 */
export function releaseRuntime(release: XenRelease = DEFAULT_RELEASE): ReleaseRuntime {
  const known = runtimes.get(release);
  if (known) return known;
  let rt: ReleaseRuntime;
  if (release === '4.17') {
    // Not cached: the variables below may change between calls (a test points the preload at
    // a missing file to see the harness fail loudly).
    const binDir = process.env.XEN_SSHM_XEN_BIN_DIR ?? '/usr/lib/xen-4.17/bin';
    rt = {
      release,
      debian: 'bookworm',
      binDir,
      xenstoreUtilsDir: process.env.XEN_SSHM_XENSTORE_UTILS_DIR ?? '/usr/bin',
      preload: process.env.XEN_SSHM_PRELOAD ?? resolve(findProjectRoot(), 'build', 'Release', 'libxenstored_preload.so'),
      daemonEnv: {},
      command: (bin, args) => ({ file: bin, args }),
      packageHint: 'install Debian package xen-utils-4.17 (xenstore-utils for the CLI tools)',
    };
    return rt;
  } else if (release === '4.20') {
    const p = prepareRoot(release);
    rt = {
      release,
      debian: 'trixie',
      binDir: join(p.root, 'usr/lib/xen-4.20/bin'),
      xenstoreUtilsDir: join(p.root, 'usr/bin'),
      preload: p.preload,
      daemonEnv: { XEN_SSHM_PRELOAD_ROOT: p.root },
      // The root's own loader: its glibc (2.41) is newer than the machine's.
      command: (bin, args) => ({ file: p.loader, args: ['--library-path', p.libraryPath.join(':'), '--argv0', bin, bin, ...args] }),
      packageHint: `Debian 13's xen-utils-4.20 was expected in ${p.root} (delete ${releaseCacheDir(release)} to prepare it again)`,
    };
  } else {
    throw new HarnessError('prepare', 'EINVAL', `unknown Xen release ${String(release)} (known: ${XEN_RELEASES.join(', ')})`);
  }
  runtimes.set(release, rt);
  return rt;
}
