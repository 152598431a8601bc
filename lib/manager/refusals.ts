/**
 * The manager's refusal catalogue: every ManagerError an apply, release or reconcile raises,
 * with its errno name, its stable reason word and the advice for the administrator. The layers
 * below state facts (a ConfigError names the rule and the place, a HypercallError the call and
 * the errno); the advice is derived here from those facts, and only here.
 */
import { XenstoreError } from '../../xenstore-wire';
import type { ConfigError, RuleId } from '../config/errors';
import { hex, humanSize } from '../config/numbers';
import { HypercallError } from '../hypervisor/errors';
import type { BorrowerSupport, DomainInfo } from '../hypervisor/types';
import type { MappingRecord, RegionRecord, StorePaths } from '../store';
import { DOMID_FIRST_RESERVED, PAGE_SIZE_N, PAGES_PER_MIB } from '../vocabulary';
import { ManagerError, type ManagerReason } from './errors';

/** The config being applied, as far as refusals need it. */
interface Who {
  domid: number;
  /** The domain's name (records or config), for messages. */
  name: string | null;
}

const whoOf = (w: Who): string => w.name ?? `d${w.domid}`;

// ---- config and plan --------------------------------------------------------------------------

/** The config breaks rules of its own (each ConfigError says which): nothing was applied. */
export function configRefusal(file: string, errors: ConfigError[]): ManagerError {
  return new ManagerError({
    code: 'EINVAL', reason: 'config', path: file, errors, rule: errors[0]?.rule,
    message: `${file}: ${errors.length} config error${errors.length === 1 ? '' : 's'}, nothing applied`,
    hint: `xen-sshm check ${file} explains each`,
  });
}

const SET_TARGET_ADVICE =
  "on stock Xen a domU maps another domU's pages only after XEN_DOMCTL_set_target(borrower -> owner), once per domain and never undone: " +
  'let one domain own every region this domain borrows, or use a FLASK policy that allows the mapping';

/** How each rule broken against the records is reported by apply: errno, reason, advice. */
const AGAINST_RECORDS: Partial<Record<RuleId, { code: string; reason: ManagerReason; node: (p: StorePaths, id: string, domid: number) => string; advice: (id: string, w: Who, e: ConfigError) => string | undefined }>> = {
  'owner.multiple': { code: 'EEXIST', reason: 'owner-exists', node: (p, id) => p.field(id, 'owner'), advice: (id, w) => `exactly one domain owns ${id}: make ${whoOf(w)} role=borrower` },
  'owner.missing': { code: 'ENOENT', reason: 'no-owner', node: (p, id) => p.region(id), advice: () => "apply the owner's config first (role=owner, or the first static_shared_mem domain)" },
  'id.mixed-spelling': { code: 'EINVAL', reason: 'mismatch', node: (p, id) => p.field(id, 'spelling'), advice: () => 'use one spelling for all entries of an ID' },
  'size.mismatch': { code: 'EINVAL', reason: 'mismatch', node: (p, id) => p.field(id, 'size'), advice: (_id, _w, e) => e.hint },
  window: { code: 'EINVAL', reason: 'mismatch', node: (p, id) => p.field(id, 'size'), advice: (_id, _w, e) => e.hint },
  'prot.above-owner': { code: 'EINVAL', reason: 'mismatch', node: (p, id) => p.field(id, 'prot'), advice: () => 'use prot=r' },
  'range.overlap': { code: 'EEXIST', reason: 'overlap', node: (p, id, domid) => p.mapping(id, domid), advice: () => 'give each region of a domain its own guest physical range' },
  'doorbell.owner': { code: 'EINVAL', reason: 'mismatch', node: (p, id) => p.field(id, 'doorbell'), advice: (_id, _w, e) => e.hint },
  'set-target': { code: 'EINVAL', reason: 'set-target', node: (p, _id, domid) => p.target(domid), advice: () => SET_TARGET_ADVICE },
};

/** The first planner error of an apply, as the manager reports it. */
export function planRefusal(paths: StorePaths, w: Who, file: string, errors: ConfigError[], againstRecords: ReadonlyMap<ConfigError, { id: string }>): ManagerError {
  // Rules the config breaks by itself come first, all of them: the records were not the problem.
  const own = errors.filter((e) => !againstRecords.has(e));
  if (own.length > 0) return configRefusal(file, own);
  const e = errors[0];
  const entryId = againstRecords.get(e)!.id;
  const how = AGAINST_RECORDS[e.rule];
  if (!how) return configRefusal(file, errors);
  return new ManagerError({
    code: how.code, reason: how.reason, rule: e.rule, id: entryId, domid: w.domid, path: how.node(paths, entryId, w.domid), errors: [e],
    message: e.rule === 'owner.missing' ? `${entryId} has no owner yet: ${whoOf(w)} borrows it, so its owner must be applied first` : e.reason,
    hint: how.advice(entryId, w, e),
  });
}

// ---- the domain ------------------------------------------------------------------------------

export const domainRefusal = {
  noneNamed: (name: string) =>
    new ManagerError({
      code: 'ESRCH', reason: 'domain', domain: name, path: '/local/domain',
      message: `no domain is named ${JSON.stringify(name)} (no /local/domain/<domid>/name holds it)`,
      hint: 'create it first (xl create -p CFG), or give --domid',
    }),
  severalNamed: (name: string, domids: number[]) =>
    new ManagerError({
      code: 'EINVAL', reason: 'domain', domain: name, path: '/local/domain',
      message: `${domids.length} domains are named ${JSON.stringify(name)}: ${domids.join(', ')}`,
      hint: 'give --domid',
    }),
  noneGiven: () => new ManagerError({ code: 'EINVAL', reason: 'domain', message: 'no domain given and the config has no name', hint: 'give --domid N or --domain NAME' }),
  notTheConfigs: (asked: string, cfgName: string, file: string) =>
    new ManagerError({
      code: 'EINVAL', reason: 'domain', domain: asked, path: file,
      message: `the config describes ${JSON.stringify(cfgName)}, not ${JSON.stringify(asked)}`,
      hint: 'apply each domain its own config',
    }),
  notADomid: (domid: number) => new ManagerError({ code: 'EINVAL', reason: 'domain', domid, message: `${domid} is not a domain id (1..${DOMID_FIRST_RESERVED - 1})` }),
  dom0: () =>
    new ManagerError({
      code: 'EINVAL', reason: 'domain', domid: 0,
      message: "dom0 is not given shared memory from a config: it is the tool's own domain",
      hint: "dom0 reaches any region through `xen-sshm peek ID` or the library's openRegion()",
    }),
  absent: (domid: number, info: DomainInfo | null) =>
    new ManagerError({
      code: 'ESRCH', reason: 'domain', domid,
      message: info ? `d${domid} is dying` : `d${domid} does not exist`,
      hint: 'create the domain paused first (xl create -p CFG), apply, then xl unpause',
    }),
  nameDiffers: (domid: number, recorded: string, cfgName: string) =>
    new ManagerError({
      code: 'EINVAL', reason: 'domain', domid, domain: recorded, path: `/local/domain/${domid}/name`,
      message: `d${domid} is ${JSON.stringify(recorded)} but the config describes ${JSON.stringify(cfgName)}`,
      hint: 'apply each domain its own config',
    }),
};

// ---- host facts: architecture, consent, memory -------------------------------------------------

/**
 * The hypervisor layer's rule refuses this borrower on this Xen (Hypervisor.borrowerSupport):
 * an x86 HVM/PVH domU before the release that allows it, an x86 PV domain, a missing domain.
 */
export function borrowerRefused(id: string, domid: number, owner: number, s: BorrowerSupport & { supported: false }): ManagerError {
  const peer = `the peer of an owner can be dom0: read and write ${id} from dom0 with \`xen-sshm peek ${id}\` or the library's openRegion()`;
  if (s.reason === 'no-domain') return domainRefusal.absent(domid, null);
  if (s.reason === 'borrower-pv') {
    return new ManagerError({
      code: 'EPERM', reason: 'x86-borrower', id, domid,
      message: `d${domid} is an x86 PV domain: Xen maps another domain's frames only into a translated (HVM or PVH) guest, so it cannot borrow ${id} from d${owner} (Xen ${s.xenVersion}; ${s.rule})`,
      hint: `create the borrower as type = "pvh" or "hvm"; otherwise ${peer}`,
    });
  }
  return new ManagerError({
    code: 'EPERM', reason: 'x86-borrower', id, domid,
    message: `on x86, Xen ${s.xenVersion} maps another domain's frames only into the hardware domain: d${domid} cannot borrow ${id} from d${owner}` +
      (s.allowedFrom ? `; Xen ${s.allowedFrom} and later let an HVM/PVH domU borrow` : '') + ` (${s.rule})`,
    hint: s.allowedFrom ? `run Xen ${s.allowedFrom} or later (Debian 13 ships 4.20), or: ${peer}` : peer,
  });
}

export function consentMissing(paths: StorePaths, id: string, domid: number, owner: number): ManagerError {
  return new ManagerError({
    code: 'EPERM', reason: 'set-target', id, domid, path: paths.target(domid),
    message: `d${domid} can map ${id} only after XEN_DOMCTL_set_target(d${domid} -> d${owner}), which needs your consent`,
    hint: `set_target is done once per domain and never undone: d${domid} can then borrow from d${owner} only, and gets device-model rights over all of d${owner}'s memory (it could map any of its pages). If that is acceptable, apply again with --allow-set-target`,
  });
}

/**
 * The max_pages an owner needs so that `pages` more frames fit: counted from what it holds, since
 * Xen refuses every allocation while tot_pages >= max_pages (the max may be below tot_pages).
 */
export function maxPagesFor(info: DomainInfo, pages: number): number {
  return info.totPages + pages;
}

export function memoryShort(ids: string[], w: Who, pages: number, info: DomainInfo, cause?: unknown): ManagerError {
  const toPages = maxPagesFor(info, pages);
  const short = toPages - info.maxPages;
  const newMax = Math.ceil(toPages / PAGES_PER_MIB);
  const who = w.name ?? String(w.domid);
  return new ManagerError({
    code: 'ENOMEM', reason: 'memory', id: ids.join(','), domid: w.domid, cause,
    message: `${who} (d${w.domid}) needs ${pages} pages (${humanSize(BigInt(pages) * PAGE_SIZE_N)}) for ${ids.join(', ')}, but its maximum memory leaves room for ${info.headroomPages} ` +
      `(${info.totPages} of ${info.maxPages} pages in use): frames populated for an owner count against its max memory`,
    hint: `raise ${who}'s maximum by at least ${humanSize(BigInt(short) * PAGE_SIZE_N)} (to ${newMax} MiB): apply again with --raise-maxmem, which does it ` +
      `through XEN_DOMCTL_max_mem (Debian's xl 4.17 cannot on Arm: \`xl mem-max\` aborts there and maxmem > memory fails to build); on x86, \`xl mem-max ${who} ${newMax}m\` works too`,
  });
}

/** Mapping a region's frames into dom0 (peek, openRegion) failed. */
export function dom0MapFailed(id: string, owner: number, e: unknown): ManagerError {
  return new ManagerError({ code: (e as { code?: string }).code ?? 'EIO', reason: 'hypercall', id, domid: owner, cause: e, message: `${id}: mapping the owner's frames into dom0 failed: ${(e as Error).message}` });
}

/**
 * A HypercallError as a ManagerError saying what to do about it, from its errno and call. `info`:
 * the domain as read after the failure (for ENOMEM: was it the owner's max, or Xen's free memory).
 */
export function hypercallRefusal(e: unknown, id: string, w: Who, pages: number, info: DomainInfo | null): unknown {
  if (!(e instanceof HypercallError)) return e;
  if (e.code === 'ENOMEM' && e.call.includes('populate_physmap')) {
    if (info && info.headroomPages < pages) return memoryShort([id], w, pages, info, e);
    return new ManagerError({
      code: 'ENOMEM', reason: 'memory', id, domid: w.domid, cause: e, message: `${id}: ${e.message}`,
      hint: 'the owner has room, so Xen itself is short of free memory: see `xl info` (free_memory)',
    });
  }
  const setTarget = e.code === 'EPERM' && e.call.includes('add_to_physmap');
  return new ManagerError({
    code: e.code, reason: setTarget ? 'set-target' : 'hypercall', id, domid: w.domid, cause: e, message: `${id}: ${e.message}`,
    hint: setTarget
      ? `Xen refused the mapping: d${w.domid}'s target is not the owner. Its set_target was made for another domain (never undone), or this Xen uses an XSM policy that denies it`
      : undefined,
  });
}

// ---- the region's lifecycle -------------------------------------------------------------------

export const lifecycle = {
  ownerMoved: (paths: StorePaths, w: Who, region: RegionRecord, begin: bigint, size: bigint, prot: string) =>
    new ManagerError({
      code: 'EEXIST', reason: 'conflict', id: region.id, domid: w.domid, path: paths.region(region.id),
      message: `${whoOf(w)} already owns ${region.id} at ${hex(region.begin)}+${hex(region.size)} (${region.prot}); the config now says ${hex(begin)}+${hex(size)} (${prot})`,
      hint: `release it first: xen-sshm release --domid ${w.domid} --id ${region.id}`,
    }),
  mappingMoved: (paths: StorePaths, w: Who, id: string, m: MappingRecord, want: { begin: bigint; end: bigint; offset: bigint; prot: string }) =>
    new ManagerError({
      code: 'EEXIST', reason: 'conflict', id, domid: w.domid, path: paths.mapping(id, w.domid),
      message: `${whoOf(w)} already maps ${id} at ${hex(m.begin)}-${hex(m.end)} offset ${hex(m.offset)} (${m.prot}); the config now says ${hex(want.begin)}-${hex(want.end)} offset ${hex(want.offset)} (${want.prot})`,
      hint: `release it first: xen-sshm release --domid ${w.domid} --id ${id}`,
    }),
  orphaned: (paths: StorePaths, domid: number, region: RegionRecord, asOwner: boolean) =>
    new ManagerError({
      code: 'EBUSY', reason: 'state', id: region.id, domid, path: paths.field(region.id, 'state'),
      message: asOwner ? `${region.id} is orphaned: its owner went away while borrowers still map the old frames` : `${region.id} is orphaned: its owner d${region.owner} went away`,
      hint: asOwner ? `release the borrowers first (xen-sshm release --domid B --id ${region.id} for each), then apply again` : 'release its borrowers, then apply the owner again',
    }),
  /** The config's doorbell differs from what is recorded (the owner's region, or a mapped borrower). */
  doorbellChanged: (paths: StorePaths, w: Who, region: RegionRecord, want: boolean, borrower?: number) =>
    new ManagerError({
      code: 'EEXIST', reason: 'conflict', id: region.id, domid: w.domid, path: borrower === undefined ? paths.field(region.id, 'doorbell') : paths.port(region.id, borrower),
      message: borrower === undefined
        ? `${whoOf(w)} already owns ${region.id} ${region.doorbell ? 'with' : 'without'} a doorbell; the config now says doorbell=${want ? 'yes' : 'no'}`
        : `${whoOf(w)} already maps ${region.id} without a doorbell; the config now gives it one`,
      hint: borrower === undefined
        ? `release it first (xen-sshm release --domid ${w.domid} --id ${region.id} --force), then apply again`
        : `release it first: xen-sshm release --domid ${w.domid} --id ${region.id}, then apply again`,
    }),
  noOwnerMapping: (paths: StorePaths, domid: number, region: RegionRecord) =>
    new ManagerError({ code: 'EBUSY', reason: 'state', id: region.id, domid, path: paths.region(region.id), message: `${region.id} is ${region.state} without an owner mapping of d${domid}`, hint: 'run xen-sshm reconcile' }),
  /** An intent whose process is gone (reconcile rolls it back) or lives on another host. */
  lockedDeadOrForeign: (paths: StorePaths, id: string, domid: number, m: MappingRecord, what: string, status: 'dead' | 'unknown') =>
    new ManagerError({
      code: 'EBUSY', reason: 'busy', id, domid, path: paths.mappingField(id, m.domid, 'lock'),
      message: status === 'dead'
        ? `${id}: ${what} was left half-done by process ${m.lock}, which is gone (state ${m.state})`
        : `${id}: ${what} is locked by ${m.lock}, a process of another host (state ${m.state})`,
      hint: status === 'dead' ? 'run xen-sshm reconcile to roll it back, then apply again' : 'check the other host; xen-sshm reconcile leaves foreign locks alone',
    }),
  foreignReleaseLock: (paths: StorePaths, id: string, domid: number, lock: string) =>
    new ManagerError({
      code: 'EBUSY', reason: 'busy', id, domid, path: paths.mappingField(id, domid, 'lock'),
      message: `${id}: d${domid}'s mapping is locked by ${lock}, a process of another host`,
      hint: 'check the other host',
    }),
  stillBusy: (paths: StorePaths, id: string, domid: number, why: string, waitedMs: number) =>
    new ManagerError({
      code: 'EBUSY', reason: 'busy', id, domid, path: paths.region(id),
      message: `${id}: ${why}, still after ${Math.round(waitedMs / 1000)} s`,
      hint: 'wait for the other xen-sshm to finish; if it hangs, stop it and run xen-sshm reconcile',
    }),
  lostApplyClaim: (paths: StorePaths, id: string, domid: number, m: MappingRecord | undefined) =>
    new ManagerError({
      code: 'ESTALE', reason: 'lost-claim', id, domid, path: paths.mapping(id, domid),
      message: `${id}: the claim of d${domid} was changed by someone else while its hypercalls ran (now ${m ? `${m.state}, lock ${m.lock}` : 'gone'})`,
      hint: 'run xen-sshm reconcile, then check with xen-sshm ls',
    }),
  lostReleaseClaim: (paths: StorePaths, id: string, domid: number) =>
    new ManagerError({
      code: 'ESTALE', reason: 'lost-claim', id, domid, path: paths.mapping(id, domid),
      message: `${id}: the release claim of d${domid} was changed by someone else while its hypercalls ran`,
      hint: 'run xen-sshm reconcile, then check with xen-sshm ls',
    }),
  notReady: (paths: StorePaths, region: RegionRecord) =>
    new ManagerError({
      code: 'EBUSY', reason: 'state', id: region.id, domid: region.owner, path: paths.field(region.id, 'state'),
      message: `${region.id} is ${region.state}: ${region.state === 'orphaned' ? 'its owner is gone, so its frames can no longer be mapped from the owner' : 'wait until it is ready'}`,
    }),
  outsideRegion: (paths: StorePaths, id: string, offset: bigint, length: bigint, size: bigint) =>
    new ManagerError({
      code: 'EINVAL', reason: 'mismatch', id, path: paths.field(id, 'size'),
      message: `${id}: window ${hex(offset)}+${hex(length)} is outside the region's ${hex(size)} bytes`,
    }),
  notFound: (paths: StorePaths, id: string, domid?: number) =>
    new ManagerError({ code: 'ENOENT', reason: 'not-found', id, domid, path: paths.region(id), message: `no region ${id} under ${paths.root}` }),
};

/** Re-exported for callers that check error classes without importing the lower layers. */
export { XenstoreError };
