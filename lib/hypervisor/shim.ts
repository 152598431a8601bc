/**
 * Loader and typed wrapper of the native shim (shim/). The package ships it prebuilt for
 * linux-x64 and linux-arm64 (prebuilds/<platform>-<arch>/, made by scripts/prebuild.sh when the
 * package is packed); elsewhere, and in a development checkout, it is built from source into
 * build/Release/ (cmake-js, `npm run build:shim`). The addon loads on any Linux and touches
 * /dev/xen only when a function is called. Its errors carry `errno` and `syscall`;
 * toHypercallError() names them. Only privcmd needs it: config checks, the xenstore client,
 * xs-trace and the sandbox do not.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoOf, HypercallError } from './errors';

export interface ShimMapping {
  address: bigint;
  buffer: ArrayBuffer;
}

/** The addon's functions (shim/addon.cc). */
export interface Shim {
  open(path: string): number;
  close(fd: number): void;
  pageSize(): number;
  /** call = [op, a0..a4]; returns the result, negative = -errno. */
  hypercall(fd: number, call: BigUint64Array): number;
  /** hypercallFd -1: mlock'd anonymous pages. */
  allocBuffer(hypercallFd: number, bytes: number): ShimMapping;
  mmapBatchV2(fd: number, domid: number, gfns: BigUint64Array, errs: Int32Array): { buffer: ArrayBuffer; rc: number };
  restrict(fd: number, domid: number): void;
  mapFilePages(fd: number, pages: Uint32Array): ArrayBuffer;
  punchHole(fd: number, offset: number, length: number): void;
  unmap(buffer: ArrayBuffer): void;
}

/** The addon's file name, in every place it is looked for. */
export const SHIM_FILE = 'xen_sshm_shim.node';

/** Package root: dist/lib/hypervisor -> ../../.., lib/hypervisor (ts-node) -> ../.. */
function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '../../..');
}

export interface ShimCandidate {
  path: string;
  /** `prebuilt`: shipped in the package for this platform; `local`: built from source here. */
  origin: 'prebuilt' | 'local';
}

/** Where the addon is looked for, in order: the prebuilt binary for this platform, then a local build. */
export function shimCandidates(root: string = packageRoot(), platform: string = `${process.platform}-${process.arch}`): ShimCandidate[] {
  return [
    { path: path.join(root, 'prebuilds', platform, SHIM_FILE), origin: 'prebuilt' },
    { path: path.join(root, 'build', 'Release', SHIM_FILE), origin: 'local' },
  ];
}

let loaded: { shim: Shim; from: ShimCandidate } | undefined;

/**
 * Loads the addon once. A missing or unloadable addon is a HypercallError (call `dlopen`, code
 * ENOENT) naming every place tried and why each failed.
 */
export function loadShim(): Shim {
  if (loaded) return loaded.shim;
  const tried: string[] = [];
  for (const c of shimCandidates()) {
    if (!fs.existsSync(c.path)) {
      tried.push(`${c.path} (absent)`);
      continue;
    }
    try {
      loaded = { shim: require(c.path) as Shim, from: c };
      return loaded.shim;
    } catch (e) {
      // dlopen's own words (wrong architecture, a missing libstdc++...), first line only.
      tried.push(`${c.path} (${String((e as Error)?.message ?? e).split('\n')[0].slice(0, 200)})`);
    }
  }
  throw new HypercallError({
    call: 'dlopen', errno: errnoOf('ENOENT'), path: shimCandidates()[0].path,
    message: `the native addon ${SHIM_FILE}, needed for /dev/xen/privcmd, could not be loaded for ${process.platform}-${process.arch}; ` +
      `tried ${tried.join(', ')}. Build it from source with \`npm run build:shim\` in the package (needs cmake and a C/C++ compiler); ` +
      'everything that does not need privcmd works without it (check, ls, reconcile, xs-trace, the xenstore client, --sandbox)',
  });
}

/** Which file the addon was loaded from (null before the first loadShim()). */
export function loadedShim(): ShimCandidate | null {
  return loaded ? { ...loaded.from } : null;
}

/** Turns an error thrown by the addon ({errno, syscall, path}) into a HypercallError. */
export function toHypercallError(e: unknown, call: string, extra: { domid?: number; message?: string } = {}): Error {
  const x = e as { errno?: unknown; syscall?: unknown; path?: unknown; message?: string };
  if (typeof x?.errno !== 'number') return e as Error;
  return new HypercallError({
    call: call || String(x.syscall), errno: x.errno,
    ...(typeof x.path === 'string' ? { path: x.path } : {}),
    ...(extra.domid !== undefined ? { domid: extra.domid } : {}),
    message: extra.message ?? x.message ?? String(e),
  });
}
