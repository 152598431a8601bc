/**
 * Errors of the hypervisor layer: one class, `HypercallError`, for everything a hypercall, a
 * privcmd ioctl or a device open can answer, with the errno name as `code`.
 */
import * as os from 'node:os';

const ERRNO_NAMES = new Map<number, string>();
// Linux has aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK, ENOTSUP = EOPNOTSUPP): the name
// Xen's public/errno.h uses wins, else the first, usual one.
for (const name of ['EOPNOTSUPP', 'EAGAIN', 'EDEADLK'] as const) ERRNO_NAMES.set(os.constants.errno[name], name);
for (const [name, num] of Object.entries(os.constants.errno)) {
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

/**
 * What xen-sshm inferred where Xen answers with a count or a bare errno, so that callers can tell
 * the cases apart without reading the message:
 * - `max-pages`: populate stopped because the domain reached its max memory (max_pages); the
 *   error carries pagesRequested, totPages and maxPages.
 * - `host-memory`: populate stopped while the domain had room: Xen had no free memory left (or
 *   the gfn is beyond the domain's physical address space).
 * - `no-domain` / `dying`: the domain does not exist / is being destroyed.
 * - `not-own-page`: decrease_reservation found no page of the domain's own at a gfn.
 * - `borrower-release`: an x86 HVM/PVH domU cannot receive foreign frames on this release
 *   (xenVersion), only from allowedFrom on.
 * - `borrower-pv`: the borrower is an x86 PV domain (not translated): never a borrower.
 */
export type HypercallReason = 'max-pages' | 'host-memory' | 'no-domain' | 'dying' | 'not-own-page' | 'borrower-release' | 'borrower-pv';

export interface HypercallErrorInit {
  call: string;
  errno: number;
  message: string;
  domid?: number;
  gfn?: number;
  path?: string;
  pages?: readonly PageError[];
  done?: number;
  remoteDomid?: number;
  reason?: HypercallReason;
  pagesRequested?: number;
  totPages?: number;
  maxPages?: number;
  xenVersion?: string;
  allowedFrom?: string;
}

/**
 * A refusal from Xen, privcmd or the device files. It states facts only (what was refused, by
 * whom, with which numbers); what to do about it is the caller's business (the manager keeps
 * its advice in its own catalogue). `code` is the errno name ('ESRCH', 'EPERM'...), `call` names
 * the hypercall or syscall ('memory_op(add_to_physmap_batch)', 'domctl(set_target)', 'open'),
 * `domid`/`gfn` say which domain and page, `remoteDomid` the other domain of a two-domain call
 * (the owner of a foreign map, the target of set_target, the remote end of an event channel),
 * `path` which device. For batches, `pages` holds every per-page error that was returned and
 * `done` how many pages had been completed (and were then undone, where the call documents a
 * rollback). `reason` and the numbers after it are set where xen-sshm inferred the cause
 * (HypercallReason).
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
  readonly remoteDomid?: number;
  readonly reason?: HypercallReason;
  readonly pagesRequested?: number;
  readonly totPages?: number;
  readonly maxPages?: number;
  readonly xenVersion?: string;
  readonly allowedFrom?: string;

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
    if (init.remoteDomid !== undefined) this.remoteDomid = init.remoteDomid;
    if (init.reason !== undefined) this.reason = init.reason;
    if (init.pagesRequested !== undefined) this.pagesRequested = init.pagesRequested;
    if (init.totPages !== undefined) this.totPages = init.totPages;
    if (init.maxPages !== undefined) this.maxPages = init.maxPages;
    if (init.xenVersion !== undefined) this.xenVersion = init.xenVersion;
    if (init.allowedFrom !== undefined) this.allowedFrom = init.allowedFrom;
  }
}

/** Describes a list of page errors briefly: "3 pages: gfn 0x40000 ESRCH, ...". */
export function describePages(pages: readonly PageError[], max = 3): string {
  const shown = pages.slice(0, max).map((p) => `gfn 0x${p.gfn.toString(16)} ${p.code}`);
  const more = pages.length > max ? `, and ${pages.length - max} more` : '';
  return `${pages.length} page${pages.length === 1 ? '' : 's'} refused: ${shown.join(', ')}${more}`;
}
