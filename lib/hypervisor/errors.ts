/**
 * Errors of the hypervisor layer: one class, `HypercallError`, for everything a hypercall, a
 * privcmd ioctl or a device open can answer, with the errno name as `code`.
 */
import * as os from 'node:os';

const ERRNO_NAMES = new Map<number, string>();
for (const [name, num] of Object.entries(os.constants.errno)) {
  // Linux has aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK): keep the first, usual name.
  if (!ERRNO_NAMES.has(num)) ERRNO_NAMES.set(num, name);
}

/**
 * The errno name of a positive errno value. Xen's public/errno.h uses Linux's numbers for the
 * values it shares with Linux, and privcmd passes Xen's -errno through, so the host's table
 * names both.
 */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

/** The errno value of a name such as 'EINVAL'. */
export function errnoOf(name: keyof typeof os.constants.errno): number {
  return os.constants.errno[name];
}

/** One page of a batch that Xen (or privcmd) refused, from the per-page error array. */
export interface PageError {
  /** Position of the page in the caller's list. */
  readonly index: number;
  /** The gfn the call was about in the domain it changed (borrower gfn, or the mapped domain's gfn). */
  readonly gfn: number;
  /** For gmfn_foreign maps: the owner's gfn that was to appear at `gfn`. */
  readonly foreignGfn?: number;
  readonly errno: number;
  readonly code: string;
}

export interface HypercallErrorInit {
  call: string;
  errno: number;
  message: string;
  domid?: number;
  gfn?: number;
  path?: string;
  pages?: readonly PageError[];
  done?: number;
}

/**
 * A refusal from Xen, privcmd or the device files. `code` is the errno name ('ESRCH', 'EPERM'...),
 * `call` names the hypercall or syscall ('memory_op(add_to_physmap_batch)', 'domctl(set_target)',
 * 'open'), `domid`/`gfn` say which domain and page, `path` which device. For batches, `pages`
 * holds every per-page error that was returned and `done` how many pages had been completed
 * (and were then undone, where the call documents a rollback).
 */
export class HypercallError extends Error {
  readonly kind = 'hypercall' as const;
  readonly code: string;
  readonly errno: number;
  readonly call: string;
  readonly domid?: number;
  readonly gfn?: number;
  readonly path?: string;
  readonly pages?: readonly PageError[];
  readonly done?: number;

  constructor(init: HypercallErrorInit) {
    super(init.message);
    this.name = 'HypercallError';
    this.errno = init.errno;
    this.code = errnoName(init.errno);
    this.call = init.call;
    if (init.domid !== undefined) this.domid = init.domid;
    if (init.gfn !== undefined) this.gfn = init.gfn;
    if (init.path !== undefined) this.path = init.path;
    if (init.pages !== undefined) this.pages = init.pages;
    if (init.done !== undefined) this.done = init.done;
  }
}

/** Describes a list of page errors briefly: "3 pages: gfn 0x40000 ESRCH, ...". */
export function describePages(pages: readonly PageError[], max = 3): string {
  const shown = pages.slice(0, max).map((p) => `gfn 0x${p.gfn.toString(16)} ${p.code}`);
  const more = pages.length > max ? `, and ${pages.length - max} more` : '';
  return `${pages.length} page${pages.length === 1 ? '' : 's'} refused: ${shown.join(', ')}${more}`;
}
