/**
 * The static shared memory manager: turns a domain's validated config entries into shared
 * memory on a running host, with every piece of metadata changed in xenstore transactions
 * (DESIGN.md "Crash-safe apply and release"):
 *
 *   claim     one transaction: check against the current records, write the region or the
 *             mapping with state allocating/mapping and a lock naming this process
 *   hypercalls  outside any transaction: populate the owner's frames, or set_target and map
 *             the borrower's pages in batches; whatever fails is undone before reporting
 *   commit    one transaction: state ready/mapped, lock removed, guest mirror written
 *
 * A transaction retried after EAGAIN only re-reads and re-writes records: the hypercalls sit
 * between transactions, so they run exactly once per page whatever the retries. A process
 * that dies leaves a locked intent; `reconcile()` rolls it back (or finishes a release) once
 * the lock's process is gone, and never while it lives. Release is the mirror image.
 */
import { EventEmitter } from 'node:events';
import { ConnectionError, XenstoreError, type TransactionOptions, type XenstoreClient, type XenstoreOps } from '../../xenstore-wire';
import { ConfigError } from '../config/errors';
import { hex, humanSize } from '../config/numbers';
import { domainName as configDomainName, parseSharedMemEntries, type ShmEntry } from '../config/shm-entries';
import { planConfigs, type ValidateOptions } from '../config/validate';
import type { XlConfig } from '../config/xl-reader';
import { HypercallError } from '../hypervisor/errors';
import type { DomainInfo, GfnList, Hypervisor, XenArch } from '../hypervisor/types';
import {
  DEFAULT_ROOT,
  gfnsOf,
  MappingRecord,
  MappingRole,
  PAGE_BYTES,
  PAGE_SHIFT,
  readAllRegions,
  readMapping,
  readRegion,
  readTarget,
  RegionRecord,
  removeMapping,
  removeMirror,
  removeRegion,
  StorePaths,
  writeMapping,
  writeMappingState,
  writeMirror,
  mirrorOf,
  writeRegion,
  writeRegionState,
  writeTarget,
} from '../store';
import { domainAlive, domainName, findDomainByName, listDomains } from './domains';
import { ManagerError } from './errors';
import { lockStatus, ownLock } from './lock';
import { crashHook, crashPlanFromEnv, instrumentHypervisor, instrumentXenstore, type StepHook, Steps } from './steps';

export interface ManagerOptions {
  xenstore: XenstoreClient;
  hypervisor: Hypervisor;
  /** Where the records live. Default /local/shared_mem. */
  root?: string;
  /** How long to wait for another live process's intent on the same region. Default 30 s. */
  lockWaitMs?: number;
  /** Pages per hypercall call the manager makes (progress and crash granularity). Default 32768. */
  batchPages?: number;
  /** Retry policy of the claim and commit transactions. */
  transaction?: TransactionOptions;
  /**
   * Called before and after every xenstore request and hypercall (tests: fail or crash at a
   * chosen step). Default: XEN_SSHM_CRASH_AT from the environment, if set; null for none.
   */
  stepHook?: StepHook | null;
}

export interface ApplyRequest {
  config: XlConfig;
  /** The domain to apply to; or `domain` (a name); or neither: the config's own `name`. */
  domid?: number;
  domain?: string;
  /**
   * Consent to XEN_DOMCTL_set_target(borrower -> owner) when a domU borrower needs it (stock
   * Xen on Arm): once per domain, never undone, and it gives the borrower device-model rights
   * over all of the owner's memory.
   */
  allowSetTarget?: boolean;
  /** Also enforce the dom0less export limits (IDs of at most 15 characters). */
  dom0less?: boolean;
  /**
   * Raise an owner's max memory (XEN_DOMCTL_max_mem) when it has no room for the frames its
   * regions populate. Otherwise such an apply is refused with the amount needed. The raise is
   * not undone at release.
   */
  raiseMaxMem?: boolean;
}

export type ApplyAction = 'created' | 'mapped' | 'unchanged';

export interface AppliedEntry {
  id: string;
  role: MappingRole;
  action: ApplyAction;
  owner: number;
  /** This domain's range (END exclusive) and its window's offset in the region. */
  begin: bigint;
  end: bigint;
  offset: bigint;
  pages: number;
  /** For a borrower: 'done' when this apply made the set_target, 'recorded' when it existed. */
  setTarget?: 'done' | 'recorded';
}

export interface ApplyResult {
  domid: number;
  domain: string | null;
  entries: AppliedEntry[];
  /** Set when raiseMaxMem raised the domain's max memory: pages before and after. */
  maxMemRaised?: { fromPages: number; toPages: number };
}

export interface ReleaseRequest {
  domid: number;
  /** Only these IDs; default every region the domain owns or borrows. */
  ids?: string[];
  /** Release the borrowers of an owned region first, instead of leaving it orphaned. */
  force?: boolean;
}

export type ReleaseAction = 'released' | 'orphaned';

export interface ReleasedEntry {
  id: string;
  domid: number;
  role: MappingRole;
  action: ReleaseAction;
  /** False when the domain no longer ran: counted as already unmapped, no hypercall made. */
  hypercalls: boolean;
}

export interface ReleaseResult {
  domid: number;
  entries: ReleasedEntry[];
}

export type ReconcileActionKind =
  | 'rolled-back' // an apply intent of a dead process, undone
  | 'completed-release' // a release intent of a dead process, finished
  | 'released' // a mapping of a domain that no longer runs
  | 'orphaned' // the owner no longer runs and borrowers remain
  | 'skipped-live' // the intent's process runs: left alone
  | 'skipped-unknown'; // the lock names another host: left alone

export interface ReconcileAction {
  id: string;
  domid: number;
  role: MappingRole;
  action: ReconcileActionKind;
  /** The mapping's state before. */
  state: string;
  lock?: string;
}

export interface ReconcileOptions {
  /** Also release what domains that no longer run held (the daemon's job). Default true. */
  deadDomains?: boolean;
}

export interface ReconcileReport {
  actions: ReconcileAction[];
}

export interface DomainSummary {
  domid: number;
  name: string | null;
  /** The owner recorded by this tool's set_target, if any. */
  target: number | null;
}

export interface ListResult {
  root: string;
  regions: RegionRecord[];
  domains: DomainSummary[];
}

export interface ProgressEvent {
  id: string;
  domid: number;
  op: 'populate' | 'map' | 'unmap' | 'free';
  done: number;
  total: number;
}

export interface ManagerEvents {
  progress: [ProgressEvent];
  /** Waiting for another live process's intent on a region. */
  wait: [{ id: string; domid: number; why: string }];
  /** A transaction conflicted and is being redone. */
  retry: [{ attempt: number; code: string }];
}

/** What the entry asks of the region, decided against the current records. */
interface EntryPlan {
  entry: ShmEntry;
  role: MappingRole;
}

type Claim =
  | { kind: 'claimed'; region: RegionRecord; mapping: MappingRecord; role: MappingRole; needSetTarget: boolean; targetRecorded: boolean }
  | { kind: 'unchanged'; region: RegionRecord; mapping: MappingRecord; role: MappingRole }
  | { kind: 'wait'; why: string };

type ReleaseClaim =
  | { kind: 'claimed'; region: RegionRecord; mapping: MappingRecord; role: MappingRole }
  | { kind: 'absent' }
  | { kind: 'wait'; why: string };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const mib = (pages: number): number => Math.ceil(pages / 256);

export class SharedMemoryManager extends EventEmitter<ManagerEvents> {
  readonly paths: StorePaths;
  readonly xs: XenstoreClient;
  readonly hv: Hypervisor;
  private readonly lockWaitMs: number;
  private readonly batchPages: number;
  private readonly txOptions: TransactionOptions;
  private readonly steps?: Steps;
  private readonly uninstrument?: () => void;
  private arch?: XenArch;

  constructor(opts: ManagerOptions) {
    super();
    this.paths = new StorePaths(opts.root ?? DEFAULT_ROOT);
    this.lockWaitMs = opts.lockWaitMs ?? 30_000;
    this.batchPages = Math.max(1, opts.batchPages ?? 32768);
    this.txOptions = {
      maxAttempts: 200,
      baseDelayMs: 1,
      maxDelayMs: 100,
      ...(opts.transaction ?? {}),
      onRetry: (attempt, err) => {
        this.emit('retry', { attempt, code: err.code });
        opts.transaction?.onRetry?.(attempt, err);
      },
    };
    let hook = opts.stepHook;
    if (hook === undefined) {
      const plan = crashPlanFromEnv();
      hook = plan ? crashHook(plan) : null;
    }
    if (hook) {
      this.steps = new Steps(hook);
      this.uninstrument = instrumentXenstore(opts.xenstore, this.steps);
      this.hv = instrumentHypervisor(opts.hypervisor, this.steps);
    } else {
      this.hv = opts.hypervisor;
    }
    this.xs = opts.xenstore;
  }

  /** Steps counted so far (0 without a step hook). */
  get stepCount(): number {
    return this.steps?.count ?? 0;
  }

  /** Removes the step instrumentation from the client. Does not close the client or hypervisor. */
  dispose(): void {
    this.uninstrument?.();
  }

  private tx<T>(fn: (tx: XenstoreOps) => Promise<T>): Promise<T> {
    return this.xs.transaction(fn, this.txOptions);
  }

  private async xenArch(): Promise<XenArch> {
    this.arch ??= (await this.hv.xenVersion()).arch;
    return this.arch;
  }

  // =============================================================================== apply

  /**
   * Applies a domain's static shared memory entries. All or nothing: when an entry fails, the
   * entries this call created are released again before the error is thrown. Applying the same
   * config twice changes nothing the second time.
   */
  async apply(req: ApplyRequest): Promise<ApplyResult> {
    const cfg = req.config;
    const entries = this.validateConfig(cfg, { dom0less: req.dom0less });
    const cfgName = configDomainName(cfg).name;
    const domid = await this.resolveDomain(req, cfgName);
    const name = (await domainName(this.xs, domid)) ?? cfgName;
    if (entries.length === 0) return { domid, domain: name, entries: [] };

    // Everything the records can tell is checked before the first change: bad input changes nothing.
    const plans = await this.prepare(entries, domid, name, req);

    const done: AppliedEntry[] = [];
    const raised: { fromPages: number; toPages: number }[] = [];
    try {
      for (const plan of plans) done.push(await this.applyEntry(plan, domid, name, req, raised));
    } catch (e) {
      // Undo what this call created; what was already there stays.
      for (const d of done.reverse()) {
        if (d.action === 'unchanged') continue;
        try {
          await this.releaseMapping(d.id, domid, {});
        } catch (undoErr) {
          if (e instanceof Error) (e as Error & { rollbackError?: unknown }).rollbackError = undoErr;
        }
      }
      throw e;
    }
    const out: ApplyResult = { domid, domain: name, entries: done };
    if (raised.length > 0) out.maxMemRaised = { fromPages: raised[0].fromPages, toPages: raised[raised.length - 1].toPages };
    return out;
  }

  /** Per-config and per-domain rules of lib/config; cross-domain ones are checked against the store. */
  private validateConfig(cfg: XlConfig, opts: ValidateOptions): ShmEntry[] {
    const r = planConfigs([cfg], opts);
    // A borrower's owner lives in another config: that rule is checked against the records.
    const errors = r.errors.filter((e) => e.rule !== 'owner.missing');
    if (errors.length > 0) {
      throw new ManagerError({
        code: 'EINVAL', reason: 'config', path: cfg.file, errors,
        message: `${cfg.file}: ${errors.length} config error${errors.length === 1 ? '' : 's'}, nothing applied`,
        hint: `xen-sshm check ${cfg.file} explains each`,
      });
    }
    return parseSharedMemEntries(cfg).entries;
  }

  private async resolveDomain(req: ApplyRequest, cfgName: string | null): Promise<number> {
    let domid: number;
    if (req.domid !== undefined) domid = req.domid;
    else {
      const name = req.domain ?? cfgName;
      if (!name) {
        throw new ManagerError({ code: 'EINVAL', reason: 'domain', message: 'no domain given and the config has no name', hint: 'give --domid N or --domain NAME' });
      }
      if (req.domain !== undefined && cfgName !== null && req.domain !== cfgName) {
        throw new ManagerError({
          code: 'EINVAL', reason: 'domain', domain: req.domain, path: req.config.file,
          message: `the config describes ${JSON.stringify(cfgName)}, not ${JSON.stringify(req.domain)}`,
          hint: 'apply each domain its own config',
        });
      }
      domid = await findDomainByName(this.xs, name);
    }
    if (!Number.isInteger(domid) || domid < 0 || domid >= 0x7ff0) {
      throw new ManagerError({ code: 'EINVAL', reason: 'domain', domid, message: `${domid} is not a domain id (1..32751)` });
    }
    if (domid === 0) {
      throw new ManagerError({
        code: 'EINVAL', reason: 'domain', domid,
        message: 'dom0 is not given shared memory from a config: it is the tool\'s own domain',
        hint: 'dom0 reaches any region through `xen-sshm peek ID` or the library\'s openRegion()',
      });
    }
    const info = await this.hv.domainInfo(domid);
    if (!info || info.dying) {
      throw new ManagerError({
        code: 'ESRCH', reason: 'domain', domid,
        message: info ? `d${domid} is dying` : `d${domid} does not exist`,
        hint: 'create the domain paused first (xl create -p CFG), apply, then xl unpause',
      });
    }
    const recorded = await domainName(this.xs, domid);
    if (recorded !== null && cfgName !== null && recorded !== cfgName) {
      throw new ManagerError({
        code: 'EINVAL', reason: 'domain', domid, domain: recorded, path: `/local/domain/${domid}/name`,
        message: `d${domid} is ${JSON.stringify(recorded)} but the config describes ${JSON.stringify(cfgName)}`,
        hint: 'apply each domain its own config',
      });
    }
    return domid;
  }

  /** Decides each entry's role against a snapshot of the records and refuses what cannot work. */
  private async prepare(entries: ShmEntry[], domid: number, name: string | null, req: ApplyRequest): Promise<EntryPlan[]> {
    const regions = new Map((await readAllRegions(this.xs, this.paths)).map((r) => [r.id, r]));
    const target = await readTarget(this.xs, this.paths, domid);
    const arch = await this.xenArch();
    const plans: EntryPlan[] = [];
    const owners = new Map<number, string>();
    for (const entry of entries) {
      const region = regions.get(entry.id) ?? null;
      const role = this.roleFor(entry, region, domid);
      this.checkEntry(entry, region, role, domid, name);
      if (role === 'borrower' && region) {
        if (arch === 'x86') throw this.x86Error(entry, domid, region.owner);
        const prev = owners.get(region.owner);
        owners.set(region.owner, entry.id);
        if (owners.size > 1 && prev === undefined) {
          const [firstOwner, firstId] = [...owners.entries()][0];
          throw this.setTargetError(entry, domid, `${name ?? `d${domid}`} would borrow ${firstId} from d${firstOwner} and ${entry.id} from d${region.owner}: a domain can borrow from one owner only`);
        }
        if (target !== null && target !== region.owner) {
          throw this.setTargetError(entry, domid, `d${domid} already has d${target} as its target (set_target is never undone), so it cannot borrow ${entry.id} from d${region.owner}`);
        }
        if (target === null && !req.allowSetTarget) throw this.consentError(entry, domid, region.owner);
      }
      // Ranges of this domain taken by other IDs (any state: a claim in progress occupies them too).
      for (const other of regions.values()) {
        if (other.id === entry.id) continue;
        const m = other.mappings.find((x) => x.domid === domid);
        if (m && entry.begin < m.end && m.begin < entry.end) {
          throw new ManagerError({
            code: 'EEXIST', reason: 'overlap', id: entry.id, domid, path: this.paths.mapping(other.id, domid),
            message: `${entry.id} at ${hex(entry.begin)}-${hex(entry.end)} overlaps ${other.id} at ${hex(m.begin)}-${hex(m.end)} in d${domid}`,
            hint: 'give each region of a domain its own guest physical range',
          });
        }
      }
      plans.push({ entry, role });
    }
    // Frames populated for the owner count against its max memory: say so before any change.
    const fresh = plans.filter((p) => p.role === 'owner' && !regions.has(p.entry.id));
    const pages = fresh.reduce((n, p) => n + Number(p.entry.size >> PAGE_SHIFT), 0);
    if (pages > 0 && !req.raiseMaxMem) {
      const info = await this.hv.domainInfo(domid);
      if (info && info.headroomPages < pages) throw this.memoryError(fresh.map((p) => p.entry.id), domid, name, pages, info);
    }
    return plans;
  }

  private memoryError(ids: string[], domid: number, name: string | null, pages: number, info: DomainInfo, cause?: unknown): ManagerError {
    const toPages = maxPagesFor(info, pages);
    const short = toPages - info.maxPages;
    const newMax = mib(toPages);
    const who = name ?? String(domid);
    return new ManagerError({
      code: 'ENOMEM', reason: 'memory', id: ids.join(','), domid, cause,
      message: `${who} (d${domid}) needs ${pages} pages (${humanSize(BigInt(pages) * PAGE_BYTES)}) for ${ids.join(', ')}, but its maximum memory leaves room for ${info.headroomPages} ` +
        `(${info.totPages} of ${info.maxPages} pages in use): frames populated for an owner count against its max memory`,
      hint: `raise ${who}'s maximum by at least ${humanSize(BigInt(short) * PAGE_BYTES)} (to ${newMax} MiB): apply again with --raise-maxmem, which does it ` +
        `through XEN_DOMCTL_max_mem (Debian's xl 4.17 cannot on Arm: \`xl mem-max\` aborts there and maxmem > memory fails to build); on x86, \`xl mem-max ${who} ${newMax}m\` works too`,
    });
  }

  private roleFor(entry: ShmEntry, region: RegionRecord | null, domid: number): MappingRole {
    if (entry.role === 'owner') return 'owner';
    if (entry.role === 'borrower') return 'borrower';
    // static_shared_mem: the first domain to apply an ID owns it.
    return !region || region.owner === domid ? 'owner' : 'borrower';
  }

  /** The cross-domain rules of the config checker, against the region as recorded. */
  private checkEntry(entry: ShmEntry, region: RegionRecord | null, role: MappingRole, domid: number, name: string | null): void {
    const id = entry.id;
    const who = name ?? `d${domid}`;
    if (region && region.spelling !== null && region.spelling !== entry.spelling) {
      throw new ManagerError({
        code: 'EINVAL', reason: 'mismatch', id, domid, path: this.paths.field(id, 'spelling'),
        message: `${id} was declared with ${region.spelling} by its owner d${region.owner}; ${who}'s config uses ${entry.spelling}`,
        hint: 'use one spelling for all entries of an ID',
      });
    }
    if (role === 'owner') {
      if (region && region.owner !== domid) {
        throw new ManagerError({
          code: 'EEXIST', reason: 'owner-exists', id, domid, path: this.paths.field(id, 'owner'),
          message: `${id} is already owned by d${region.owner}`,
          hint: entry.role === 'owner' ? `exactly one domain owns ${id}: make ${who} role=borrower` : undefined,
        });
      }
      if (region && (region.begin !== entry.begin || region.size !== entry.size || region.prot !== entry.prot)) {
        throw new ManagerError({
          code: 'EEXIST', reason: 'conflict', id, domid, path: this.paths.region(id),
          message: `${who} already owns ${id} at ${hex(region.begin)}+${hex(region.size)} (${region.prot}); the config now says ${hex(entry.begin)}+${hex(entry.size)} (${entry.prot})`,
          hint: `release it first: xen-sshm release --domid ${domid} --id ${id}`,
        });
      }
      if (region && region.state === 'orphaned') {
        throw new ManagerError({
          code: 'EBUSY', reason: 'state', id, domid, path: this.paths.field(id, 'state'),
          message: `${id} is orphaned: its owner went away while borrowers still map the old frames`,
          hint: `release the borrowers first (xen-sshm release --domid B --id ${id} for each), then apply again`,
        });
      }
      return;
    }
    if (!region) {
      throw new ManagerError({
        code: 'ENOENT', reason: 'no-owner', id, domid, path: this.paths.region(id),
        message: `${id} has no owner yet: ${who} borrows it, so its owner must be applied first`,
        hint: 'apply the owner\'s config first (role=owner, or the first static_shared_mem domain)',
      });
    }
    if (region.state === 'orphaned') {
      throw new ManagerError({
        code: 'EBUSY', reason: 'state', id, domid, path: this.paths.field(id, 'state'),
        message: `${id} is orphaned: its owner d${region.owner} went away`,
        hint: 'release its borrowers, then apply the owner again',
      });
    }
    if (entry.spelling === 'static_shared_mem' && entry.size !== region.size) {
      throw new ManagerError({
        code: 'EINVAL', reason: 'mismatch', id, domid, path: this.paths.field(id, 'size'),
        message: `${id} is ${hex(entry.size)} bytes in ${who}'s config but ${hex(region.size)} in its owner d${region.owner}`,
        hint: `static_shared_mem maps the whole region: give the same size (${humanSize(region.size)})`,
      });
    }
    if (entry.offset + entry.size > region.size) {
      throw new ManagerError({
        code: 'EINVAL', reason: 'mismatch', id, domid, path: this.paths.field(id, 'size'),
        message: `window offset ${hex(entry.offset)} + size ${hex(entry.size)} ends past ${id}'s ${hex(region.size)} bytes`,
        hint: `keep offset + size <= ${hex(region.size)}`,
      });
    }
    if (entry.prot === 'rw' && region.prot === 'r') {
      throw new ManagerError({
        code: 'EINVAL', reason: 'mismatch', id, domid, path: this.paths.field(id, 'prot'),
        message: `${who} asks rw on ${id}, which its owner shares read-only`,
        hint: 'use prot=r',
      });
    }
    const m = region.mappings.find((x) => x.domid === domid);
    if (m && m.lock === null && (m.begin !== entry.begin || m.end !== entry.end || m.offset !== entry.offset || m.prot !== entry.prot)) {
      throw new ManagerError({
        code: 'EEXIST', reason: 'conflict', id, domid, path: this.paths.mapping(id, domid),
        message: `${who} already maps ${id} at ${hex(m.begin)}-${hex(m.end)} offset ${hex(m.offset)} (${m.prot}); the config now says ${hex(entry.begin)}-${hex(entry.end)} offset ${hex(entry.offset)} (${entry.prot})`,
        hint: `release it first: xen-sshm release --domid ${domid} --id ${id}`,
      });
    }
  }

  private x86Error(entry: ShmEntry, domid: number, owner: number): ManagerError {
    return new ManagerError({
      code: 'EPERM', reason: 'x86-borrower', id: entry.id, domid,
      message: `on x86, Xen maps another domain's frames only into the hardware domain: d${domid} cannot borrow ${entry.id} from d${owner} (p2m_add_foreign refuses it with EPERM)`,
      hint: `on x86 the peer of an owner is dom0: read and write ${entry.id} from dom0 with \`xen-sshm peek ${entry.id}\` or the library's openRegion()`,
    });
  }

  private setTargetError(entry: ShmEntry, domid: number, why: string): ManagerError {
    return new ManagerError({
      code: 'EINVAL', reason: 'set-target', id: entry.id, domid, path: this.paths.target(domid),
      message: why,
      hint: 'on stock Xen a domU maps another domU\'s pages only after XEN_DOMCTL_set_target(borrower -> owner), once per domain and never undone: let one domain own every region this domain borrows, or use a FLASK policy that allows the mapping',
    });
  }

  private consentError(entry: ShmEntry, domid: number, owner: number): ManagerError {
    return new ManagerError({
      code: 'EPERM', reason: 'set-target', id: entry.id, domid, path: this.paths.target(domid),
      message: `d${domid} can map ${entry.id} only after XEN_DOMCTL_set_target(d${domid} -> d${owner}), which needs your consent`,
      hint: `set_target is done once per domain and never undone: d${domid} can then borrow from d${owner} only, and gets device-model rights over all of d${owner}'s memory (it could map any of its pages). If that is acceptable, apply again with --allow-set-target`,
    });
  }

  private async applyEntry(plan: EntryPlan, domid: number, name: string | null, req: ApplyRequest, raised: { fromPages: number; toPages: number }[]): Promise<AppliedEntry> {
    const { entry } = plan;
    const lock = ownLock();
    const claim = await this.waitFor(entry.id, domid, () => this.tx((tx) => this.claimApply(tx, plan, domid, name, req, lock)));
    if (claim.kind === 'unchanged') return this.appliedEntry(claim.region, claim.mapping, claim.role, 'unchanged');
    const { region, mapping, role } = claim;
    let setTarget: AppliedEntry['setTarget'];
    try {
      if (role === 'owner') {
        if (req.raiseMaxMem) {
          const r = await this.makeRoom(domid, Number(region.size >> PAGE_SHIFT));
          if (r) raised.push(r);
        }
        await this.populate(entry.id, domid, region, name);
      }
      else setTarget = await this.mapBorrower(entry.id, domid, region, mapping, claim.needSetTarget, claim.targetRecorded);
    } catch (e) {
      await this.unclaim(entry.id, domid, lock, e);
      throw e;
    }
    try {
      await this.tx((tx) => this.commitApply(tx, entry.id, domid, role, lock, setTarget === 'done'));
    } catch (e) {
      // The daemon answered: nothing was committed, so undo. A lost connection may have
      // committed: leave the intent to reconcile, which judges it once this process is gone.
      if (!(e instanceof ConnectionError) && !(e instanceof ManagerError && e.reason === 'lost-claim')) {
        await this.undoHypercalls(entry.id, domid, role, region, mapping).catch(() => undefined);
        await this.unclaim(entry.id, domid, lock, e);
      }
      throw e;
    }
    const out = this.appliedEntry(region, { ...mapping, state: 'mapped', lock: null }, role, role === 'owner' ? 'created' : 'mapped');
    if (setTarget) out.setTarget = setTarget;
    return out;
  }

  private appliedEntry(region: RegionRecord, m: MappingRecord, role: MappingRole, action: ApplyAction): AppliedEntry {
    return { id: region.id, role, action, owner: region.owner, begin: m.begin, end: m.end, offset: m.offset, pages: Number((m.end - m.begin) >> PAGE_SHIFT) };
  }

  /** Re-runs `attempt` while it answers 'wait', up to lockWaitMs; then EBUSY. */
  private async waitFor<T extends { kind: string; why?: string }>(id: string, domid: number, attempt: () => Promise<T>): Promise<Exclude<T, { kind: 'wait' }>> {
    const deadline = Date.now() + this.lockWaitMs;
    let delay = 5;
    for (;;) {
      const r = await attempt();
      if (r.kind !== 'wait') return r as Exclude<T, { kind: 'wait' }>;
      const why = (r as { why: string }).why;
      if (Date.now() >= deadline) {
        throw new ManagerError({
          code: 'EBUSY', reason: 'busy', id, domid, path: this.paths.region(id),
          message: `${id}: ${why}, still after ${Math.round(this.lockWaitMs / 1000)} s`,
          hint: 'wait for the other xen-sshm to finish; if it hangs, stop it and run xen-sshm reconcile',
        });
      }
      this.emit('wait', { id, domid, why });
      await sleep(delay * (0.5 + Math.random()));
      delay = Math.min(200, delay * 2);
    }
  }

  /** Tells why a locked intent blocks us: wait for a live one; a dead one needs reconcile. */
  private lockedBy(id: string, domid: number, m: MappingRecord, what: string): { kind: 'wait'; why: string } {
    const status = lockStatus(m.lock!);
    if (status === 'alive') return { kind: 'wait', why: `${what} by process ${m.lock} (state ${m.state})` };
    throw new ManagerError({
      code: 'EBUSY', reason: 'busy', id, domid, path: this.paths.mappingField(id, m.domid, 'lock'),
      message: status === 'dead'
        ? `${id}: ${what} was left half-done by process ${m.lock}, which is gone (state ${m.state})`
        : `${id}: ${what} is locked by ${m.lock}, a process of another host (state ${m.state})`,
      hint: status === 'dead' ? 'run xen-sshm reconcile to roll it back, then apply again' : 'check the other host; xen-sshm reconcile leaves foreign locks alone',
    });
  }

  /** The claim transaction of one entry. */
  private async claimApply(tx: XenstoreOps, plan: EntryPlan, domid: number, name: string | null, req: ApplyRequest, lock: string): Promise<Claim> {
    const { entry } = plan;
    const id = entry.id;
    const region = await readRegion(tx, this.paths, id);
    // The snapshot may be stale: decide again on what the transaction sees.
    const role = this.roleFor(entry, region, domid);
    if (role !== plan.role && entry.role === 'auto' && role === 'borrower' && !req.allowSetTarget && (await this.xenArch()) === 'arm') {
      // Lost the race to own it: we now borrow, which needs what prepare() checked for borrowers.
      const target = await readTarget(tx, this.paths, domid);
      if (target === null) throw this.consentError(entry, domid, region!.owner);
    }
    this.checkEntry(entry, region, role, domid, name);
    const mapping: MappingRecord = { domid, begin: entry.begin, end: entry.end, offset: entry.offset, prot: entry.prot, state: 'mapping', lock };
    if (role === 'owner') {
      if (region) {
        const m = region.mappings.find((x) => x.domid === domid);
        if (m?.lock) return this.lockedBy(id, domid, m, 'the owner\'s apply');
        if (m && m.state === 'mapped' && region.state === 'ready') return { kind: 'unchanged', region, mapping: m, role };
        if (region.state === 'releasing') return { kind: 'wait', why: 'the region is being released' };
        throw new ManagerError({ code: 'EBUSY', reason: 'state', id, domid, path: this.paths.region(id), message: `${id} is ${region.state} without an owner mapping of d${domid}`, hint: 'run xen-sshm reconcile' });
      }
      const cachePolicy = entry.cachePolicy ?? ((await this.xenArch()) === 'x86' ? 'x86_normal' : 'ARM_normal');
      const fresh: RegionRecord = {
        id, owner: domid, begin: entry.begin, size: entry.size, prot: entry.prot, cachePolicy, state: 'allocating', spelling: entry.spelling, mappings: [mapping],
      };
      await writeRegion(tx, this.paths, fresh);
      await writeMapping(tx, this.paths, id, mapping);
      return { kind: 'claimed', region: fresh, mapping, role, needSetTarget: false, targetRecorded: false };
    }
    const r = region!;
    if ((await this.xenArch()) === 'x86') throw this.x86Error(entry, domid, r.owner);
    if (r.state === 'allocating' || r.state === 'releasing') {
      const om = r.mappings.find((x) => x.domid === r.owner);
      if (om?.lock) return this.lockedBy(id, r.owner, om, r.state === 'allocating' ? 'the owner\'s apply' : 'the owner\'s release');
      return { kind: 'wait', why: `the region is ${r.state}` };
    }
    const m = r.mappings.find((x) => x.domid === domid);
    if (m?.lock) return this.lockedBy(id, domid, m, `d${domid}'s mapping`);
    if (m) return { kind: 'unchanged', region: r, mapping: m, role };
    const target = await readTarget(tx, this.paths, domid);
    if (target !== null && target !== r.owner) {
      throw this.setTargetError(entry, domid, `d${domid} already has d${target} as its target (set_target is never undone), so it cannot borrow ${id} from d${r.owner}`);
    }
    if (target === null && !req.allowSetTarget) throw this.consentError(entry, domid, r.owner);
    await writeMapping(tx, this.paths, id, mapping);
    return { kind: 'claimed', region: r, mapping, role, needSetTarget: target === null, targetRecorded: target !== null };
  }

  /** The commit transaction: state ready/mapped, lock gone, guest mirror (and target) written. */
  private async commitApply(tx: XenstoreOps, id: string, domid: number, role: MappingRole, lock: string, recordTarget: boolean): Promise<void> {
    const region = await readRegion(tx, this.paths, id);
    const m = region?.mappings.find((x) => x.domid === domid);
    if (!region || !m || m.lock !== lock || m.state !== 'mapping') {
      throw new ManagerError({
        code: 'ESTALE', reason: 'lost-claim', id, domid, path: this.paths.mapping(id, domid),
        message: `${id}: the claim of d${domid} was changed by someone else while its hypercalls ran (now ${m ? `${m.state}, lock ${m.lock}` : 'gone'})`,
        hint: 'run xen-sshm reconcile, then check with xen-sshm ls',
      });
    }
    await writeMappingState(tx, this.paths, id, domid, 'mapped', null);
    if (role === 'owner') await writeRegionState(tx, this.paths, id, 'ready');
    await writeMirror(tx, this.paths, domid, id, mirrorOf(region, m));
    if (recordTarget) await writeTarget(tx, this.paths, domid, region.owner);
  }

  /** Removes this process's claim (apply failed before anything stayed mapped). */
  private async unclaim(id: string, domid: number, lock: string, cause: unknown): Promise<void> {
    try {
      await this.tx(async (tx) => {
        const region = await readRegion(tx, this.paths, id);
        const m = region?.mappings.find((x) => x.domid === domid);
        if (!region || !m || m.lock !== lock) return;
        if (domid === region.owner && region.mappings.length === 1) await removeRegion(tx, this.paths, id);
        else if (domid === region.owner) {
          await removeMapping(tx, this.paths, id, domid);
          await writeRegionState(tx, this.paths, id, 'orphaned');
        } else await removeMapping(tx, this.paths, id, domid);
      });
    } catch (e) {
      // Left for reconcile (the lock dies with this process); the first error is what matters.
      if (cause instanceof Error) (cause as Error & { rollbackError?: unknown }).rollbackError = e;
    }
  }

  // ---- hypercalls --------------------------------------------------------------------------------

  /** Calls fn on consecutive chunks of at most batchPages pages. */
  private async chunked(gfns: GfnList, fn: (chunk: Float64Array, start: number) => Promise<void>): Promise<void> {
    for (let start = 0; start < gfns.length; start += this.batchPages) {
      const n = Math.min(this.batchPages, gfns.length - start);
      const chunk = new Float64Array(n);
      for (let i = 0; i < n; i++) chunk[i] = gfns[start + i];
      await fn(chunk, start);
    }
  }

  private progress(id: string, domid: number, op: ProgressEvent['op'], total: number): (done: number, start?: number) => void {
    return (done, start = 0) => this.emit('progress', { id, domid, op, done: start + done, total });
  }

  /** Raises the owner's max memory so that `pages` more fit (XEN_DOMCTL_max_mem), if needed. */
  private async makeRoom(domid: number, pages: number): Promise<{ fromPages: number; toPages: number } | null> {
    const info = await this.hv.domainInfo(domid);
    if (!info || info.headroomPages >= pages) return null;
    const toPages = maxPagesFor(info, pages);
    await this.hv.setMaxMem(domid, toPages * 4);
    return { fromPages: info.maxPages, toPages };
  }

  /** Populates the owner's frames; on failure frees what this call populated, then explains. */
  private async populate(id: string, owner: number, region: RegionRecord, name: string | null): Promise<void> {
    const gfns = gfnsOf(region.begin, region.size);
    const report = this.progress(id, owner, 'populate', gfns.length);
    let populated = 0;
    try {
      await this.chunked(gfns, async (chunk, start) => {
        await this.hv.populatePhysmap(owner, chunk, (d) => report(d, start));
        populated = start + chunk.length;
      });
    } catch (e) {
      // populatePhysmap undid its own chunk; the chunks before it are whole.
      if (populated > 0) await this.hv.decreaseReservation(owner, gfns.subarray(0, populated)).catch(() => undefined);
      throw await this.hypercallError(e, id, owner, name, gfns.length);
    }
  }

  /** set_target when needed, then the borrower's pages in batches; undone on failure. */
  private async mapBorrower(id: string, domid: number, region: RegionRecord, m: MappingRecord, needSetTarget: boolean, targetRecorded: boolean): Promise<'done' | 'recorded' | undefined> {
    let setTarget: 'done' | 'recorded' | undefined = targetRecorded ? 'recorded' : undefined;
    if (needSetTarget) {
      try {
        await this.hv.setTarget(domid, region.owner);
        setTarget = 'done';
      } catch (e) {
        // EINVAL: the domain has a target already (perhaps from an apply that died before
        // recording it). Mapping tells whether it is this owner: Xen refuses with EPERM if not.
        if (!(e instanceof HypercallError && e.code === 'EINVAL')) throw await this.hypercallError(e, id, domid, null, 0);
        setTarget = 'done';
      }
    }
    const ownerGfns = gfnsOf(region.begin + m.offset, m.end - m.begin);
    const borrowerGfns = gfnsOf(m.begin, m.end - m.begin);
    const report = this.progress(id, domid, 'map', ownerGfns.length);
    let mapped = 0;
    try {
      for (let start = 0; start < ownerGfns.length; start += this.batchPages) {
        const n = Math.min(this.batchPages, ownerGfns.length - start);
        await this.hv.addToPhysmapForeign({
          borrower: domid, owner: region.owner,
          ownerGfns: ownerGfns.subarray(start, start + n), borrowerGfns: borrowerGfns.subarray(start, start + n),
          onProgress: (d) => report(d, start),
        });
        mapped = start + n;
      }
    } catch (e) {
      if (mapped > 0) await this.hv.removeFromPhysmap(domid, borrowerGfns.subarray(0, mapped), { missingOk: true }).catch(() => undefined);
      throw await this.hypercallError(e, id, domid, null, ownerGfns.length);
    }
    return setTarget;
  }

  /** Undoes a whole apply's hypercalls (the commit failed). */
  private async undoHypercalls(id: string, domid: number, role: MappingRole, region: RegionRecord, m: MappingRecord): Promise<void> {
    if (role === 'owner') await this.freeOwnerFrames(id, domid, gfnsOf(region.begin, region.size), true);
    else await this.unmapBorrower(id, domid, gfnsOf(m.begin, m.end - m.begin));
  }

  private async unmapBorrower(id: string, domid: number, gfns: Float64Array): Promise<void> {
    const report = this.progress(id, domid, 'unmap', gfns.length);
    await this.chunked(gfns, async (chunk, start) => {
      await this.hv.removeFromPhysmap(domid, chunk, { missingOk: true, onProgress: (d) => report(d, start) });
    });
  }

  /**
   * Frees the owner's frames at gfns. `unknownProgress`: an apply or release died part-way, so
   * some pages may not be populated: dom0 maps the pages first (MMAPBATCH_V2 reports each page
   * that holds no frame of the owner) and frees exactly the populated ones.
   */
  private async freeOwnerFrames(id: string, owner: number, gfns: Float64Array, unknownProgress: boolean): Promise<void> {
    const report = this.progress(id, owner, 'free', gfns.length);
    await this.chunked(gfns, async (chunk, start) => {
      if (!unknownProgress) {
        try {
          await this.hv.decreaseReservation(owner, chunk, (d) => report(d, start));
          return;
        } catch (e) {
          if (!(e instanceof HypercallError)) throw e;
          // Some page was not there: fall through to the exact path for this chunk.
        }
      }
      const present = await this.populatedSubset(owner, chunk);
      if (present.length > 0) await this.hv.decreaseReservation(owner, present);
      report(chunk.length, start);
    });
  }

  /** The gfns among `chunk` that hold a page of `domid` (told by mapping them into dom0). */
  private async populatedSubset(domid: number, chunk: Float64Array): Promise<Float64Array> {
    try {
      const m = await this.hv.mapForeign(domid, chunk);
      m.unmap();
      return chunk;
    } catch (e) {
      if (!(e instanceof HypercallError) || !e.pages) throw e;
      const refused = new Set(e.pages.map((p) => p.index));
      return chunk.filter((_g, i) => !refused.has(i));
    }
  }

  /** A HypercallError as a ManagerError saying what to do about it. */
  private async hypercallError(e: unknown, id: string, domid: number, name: string | null, pages: number): Promise<unknown> {
    if (!(e instanceof HypercallError)) return e;
    if (e.code === 'ENOMEM' && e.call.includes('populate_physmap')) {
      // Read after populate undid its pages: the headroom the region would have had.
      const info = await this.hv.domainInfo(domid).catch(() => null);
      if (info && info.headroomPages < pages) return this.memoryError([id], domid, name, pages, info, e);
      return new ManagerError({
        code: 'ENOMEM', reason: 'memory', id, domid, cause: e, message: `${id}: ${e.message}`,
        hint: 'the owner has room, so Xen itself is short of free memory: see `xl info` (free_memory)',
      });
    }
    const reason = e.code === 'EPERM' && e.call.includes('add_to_physmap') ? 'set-target' : 'hypercall';
    return new ManagerError({
      code: e.code, reason, id, domid, cause: e, message: `${id}: ${e.message}`,
      hint: reason === 'set-target'
        ? `Xen refused the mapping: d${domid}'s target is not the owner. Its set_target was made for another domain (never undone), or this Xen uses an XSM policy that denies it`
        : undefined,
    });
  }

  // =============================================================================== release

  /**
   * Releases what a domain holds: its borrowed mappings, then the regions it owns (orphaned
   * while borrowers remain, unless `force` releases them first). A domain that no longer runs
   * counts as already unmapped. Releasing what is not there does nothing.
   */
  async release(req: ReleaseRequest): Promise<ReleaseResult> {
    const regions = await readAllRegions(this.xs, this.paths);
    const wanted = (r: RegionRecord) => !req.ids || req.ids.includes(r.id);
    if (req.ids) {
      for (const id of req.ids) {
        if (!regions.some((r) => r.id === id)) {
          throw new ManagerError({ code: 'ENOENT', reason: 'not-found', id, domid: req.domid, path: this.paths.region(id), message: `no region ${id} under ${this.paths.root}` });
        }
      }
    }
    const entries: ReleasedEntry[] = [];
    for (const r of regions.filter(wanted)) {
      if (r.owner !== req.domid && r.mappings.some((m) => m.domid === req.domid)) {
        const out = await this.releaseMapping(r.id, req.domid, {});
        if (out) entries.push(out);
      }
    }
    for (const r of regions.filter(wanted)) {
      if (r.owner !== req.domid) continue;
      if (req.force) {
        for (const m of r.mappings) {
          if (m.domid === r.owner) continue;
          const out = await this.releaseMapping(r.id, m.domid, {});
          if (out) entries.push(out);
        }
      }
      const out = await this.releaseMapping(r.id, req.domid, {});
      if (out) entries.push(out);
    }
    return { domid: req.domid, entries };
  }

  /**
   * Releases one mapping: claim (state unmapping, our lock, mirror removed), hypercalls
   * (skipped for a domain that no longer runs), commit (records removed; the region goes with
   * its last mapping, or turns orphaned when the owner leaves before its borrowers).
   * `takeover`: the lock of a dead process whose intent this call finishes (reconcile).
   */
  private async releaseMapping(id: string, domid: number, opts: { takeover?: string }): Promise<ReleasedEntry | null> {
    const lock = ownLock();
    const claim = await this.waitFor(id, domid, () => this.tx((tx) => this.claimRelease(tx, id, domid, lock, opts.takeover)));
    if (claim.kind === 'absent') return null;
    const { region, mapping, role } = claim;
    const alive = await domainAlive(this.hv, domid);
    if (alive) {
      if (role === 'owner') {
        // An apply that never committed (state mapping) may have populated any prefix of the region.
        await this.freeOwnerFrames(id, domid, gfnsOf(region.begin, region.size), mapping.state !== 'mapped');
      } else {
        await this.unmapBorrower(id, domid, gfnsOf(mapping.begin, mapping.end - mapping.begin));
      }
    }
    const action = await this.tx((tx) => this.commitRelease(tx, id, domid, lock));
    return { id, domid, role, action, hypercalls: alive };
  }

  private async claimRelease(tx: XenstoreOps, id: string, domid: number, lock: string, takeover?: string): Promise<ReleaseClaim> {
    const region = await readRegion(tx, this.paths, id);
    const m = region?.mappings.find((x) => x.domid === domid);
    if (!region || !m) return { kind: 'absent' };
    if (m.lock !== null && m.lock !== lock && m.lock !== takeover) {
      const status = lockStatus(m.lock);
      if (status === 'alive') return { kind: 'wait', why: `d${domid}'s mapping is held by process ${m.lock} (state ${m.state})` };
      if (status === 'unknown') {
        throw new ManagerError({
          code: 'EBUSY', reason: 'busy', id, domid, path: this.paths.mappingField(id, domid, 'lock'),
          message: `${id}: d${domid}'s mapping is locked by ${m.lock}, a process of another host`,
          hint: 'check the other host',
        });
      }
      // A dead process's intent: releasing finishes it, exactly as reconcile would.
    }
    const role: MappingRole = domid === region.owner ? 'owner' : 'borrower';
    // The state before says how much is mapped: all of it ('mapped'), or an unknown part.
    const claimed: MappingRecord = { ...m, lock };
    await writeMappingState(tx, this.paths, id, domid, 'unmapping', lock);
    if (role === 'owner') await writeRegionState(tx, this.paths, id, 'releasing');
    await removeMirror(tx, this.paths, domid, id);
    return { kind: 'claimed', region, mapping: claimed, role };
  }

  private async commitRelease(tx: XenstoreOps, id: string, domid: number, lock: string): Promise<ReleaseAction> {
    const region = await readRegion(tx, this.paths, id);
    const m = region?.mappings.find((x) => x.domid === domid);
    if (!region || !m || m.lock !== lock) {
      throw new ManagerError({
        code: 'ESTALE', reason: 'lost-claim', id, domid, path: this.paths.mapping(id, domid),
        message: `${id}: the release claim of d${domid} was changed by someone else while its hypercalls ran`,
        hint: 'run xen-sshm reconcile, then check with xen-sshm ls',
      });
    }
    const others = region.mappings.filter((x) => x.domid !== domid);
    const ownerLeft = domid === region.owner || region.state === 'orphaned';
    await removeMirror(tx, this.paths, domid, id);
    if (ownerLeft && others.length === 0) {
      await removeRegion(tx, this.paths, id);
      return 'released';
    }
    await removeMapping(tx, this.paths, id, domid);
    if (domid === region.owner) {
      await writeRegionState(tx, this.paths, id, 'orphaned');
      return 'orphaned';
    }
    return 'released';
  }

  // =============================================================================== reconcile

  /**
   * Rolls back apply intents and finishes release intents whose locking process is gone; never
   * touches one whose process lives. With `deadDomains` (default), also releases what domains
   * that no longer run held (an owner with borrowers left turns its region orphaned).
   */
  async reconcile(opts: ReconcileOptions = {}): Promise<ReconcileReport> {
    const actions: ReconcileAction[] = [];
    const regions = await readAllRegions(this.xs, this.paths);
    const aliveCache = new Map<number, boolean>();
    const alive = async (d: number): Promise<boolean> => {
      if (!aliveCache.has(d)) aliveCache.set(d, await domainAlive(this.hv, d));
      return aliveCache.get(d)!;
    };
    // Borrowers first, so that an owner whose borrowers are all gone is released, not orphaned.
    const order = (r: RegionRecord) => [...r.mappings].sort((a, b) => Number(a.domid === r.owner) - Number(b.domid === r.owner));
    for (const r of regions) {
      for (const m of order(r)) {
        const role: MappingRole = m.domid === r.owner ? 'owner' : 'borrower';
        const base = { id: r.id, domid: m.domid, role, state: m.state };
        if (m.lock !== null) {
          const status = m.lock === ownLock() ? 'alive' : lockStatus(m.lock);
          if (status !== 'dead') {
            actions.push({ ...base, action: status === 'alive' ? 'skipped-live' : 'skipped-unknown', lock: m.lock });
            continue;
          }
          const out = await this.releaseMapping(r.id, m.domid, { takeover: m.lock });
          if (out) actions.push({ ...base, lock: m.lock, action: m.state === 'mapping' ? 'rolled-back' : 'completed-release' });
          continue;
        }
        if (opts.deadDomains !== false && !(await alive(m.domid))) {
          const out = await this.releaseMapping(r.id, m.domid, {});
          if (out) actions.push({ ...base, action: out.action === 'orphaned' ? 'orphaned' : 'released' });
        }
      }
    }
    return { actions };
  }

  // =============================================================================== list

  /** Every region with its mappings, and the domains involved (name, recorded set_target). */
  async list(): Promise<ListResult> {
    const regions = await readAllRegions(this.xs, this.paths);
    const domids = new Set<number>();
    for (const r of regions) {
      domids.add(r.owner);
      for (const m of r.mappings) domids.add(m.domid);
    }
    const known = new Map((await listDomains(this.xs)).map((d) => [d.domid, d.name]));
    const domains = await Promise.all(
      [...domids].sort((a, b) => a - b).map(async (domid) => ({ domid, name: known.get(domid) ?? null, target: await readTarget(this.xs, this.paths, domid) })),
    );
    return { root: this.paths.root, regions, domains };
  }

  /** One region's record, or a ManagerError ENOENT. */
  async region(id: string): Promise<RegionRecord> {
    const r = await readRegion(this.xs, this.paths, id);
    if (!r) throw new ManagerError({ code: 'ENOENT', reason: 'not-found', id, path: this.paths.region(id), message: `no region ${id} under ${this.paths.root}` });
    return r;
  }

  /** The mapping of one domain in a region (null when it has none). */
  async mapping(id: string, domid: number): Promise<MappingRecord | null> {
    return readMapping(this.xs, this.paths, id, domid);
  }
}

/** Re-exported for callers that check error classes without importing the config layer. */
export { ConfigError, XenstoreError };

/**
 * The max_pages an owner needs so that `pages` more frames fit: counted from what it holds, since
 * Xen refuses every allocation while tot_pages >= max_pages (the max may be below tot_pages).
 */
function maxPagesFor(info: DomainInfo, pages: number): number {
  return info.totPages + pages;
}
