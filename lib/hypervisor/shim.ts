/**
 * Loader and typed wrapper of the native shim (shim/, built by cmake-js during npm install).
 * The addon loads on any Linux; it touches /dev/xen only when a function is called. Its errors
 * carry `errno` and `syscall`; toHypercallError() names them.
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

/** Package root: dist/lib/hypervisor -> ../../.., lib/hypervisor (ts-node) -> ../.. */
function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '../../..');
}

/** Where the addon is looked for, in order. */
export function shimCandidates(): string[] {
  const root = packageRoot();
  const list: string[] = [];
  if (process.env.XEN_SSHM_SHIM) list.push(path.resolve(process.env.XEN_SSHM_SHIM));
  list.push(path.join(root, 'build', 'Release', 'xen_sshm_shim.node'));
  // The cross-built addon of scripts/cross-build-shim-arm64.sh, for arm64 dom0s.
  if (process.arch === 'arm64') list.push(path.join(root, 'build', 'arm64', 'xen_sshm_shim.node'));
  return list;
}

let loaded: Shim | undefined;

/** Loads the addon once. A missing or unloadable addon is a HypercallError naming the paths tried. */
export function loadShim(): Shim {
  if (loaded) return loaded;
  const tried: string[] = [];
  for (const p of shimCandidates()) {
    if (!fs.existsSync(p)) {
      tried.push(`${p} (absent)`);
      continue;
    }
    try {
      loaded = require(p) as Shim;
      return loaded;
    } catch (e) {
      tried.push(`${p} (${(e as Error).message})`);
    }
  }
  throw new HypercallError({
    call: 'dlopen', errno: errnoOf('ENOENT'), path: shimCandidates()[0],
    message: `the native shim xen_sshm_shim.node could not be loaded (tried ${tried.join('; ')}): run \`npm ci\` (or \`npx cmake-js compile\`), or set XEN_SSHM_SHIM to its path`,
  });
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
