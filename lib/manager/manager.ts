/**
 * The static shared memory manager, as one object: turns a domain's config into shared memory
 * on a running host, with every piece of metadata changed in xenstore transactions. This file
 * is the façade; each job lives in its own room:
 *
 *   decide.ts     the config planner run against the records, and the manager's policy on it
 *   apply.ts      claim -> steps (hypercalls) -> commit, per entry; all or nothing per config
 *   release.ts    the mirror image, per mapping
 *   reconcile.ts  intents of dead processes, mappings of dead domains; list and lookups
 *   frames.ts     the hypercalls in batches, each undoing its own partial work
 *   refusals.ts   every ManagerError text, and the advice derived from lower layers' facts
 *
 * Test seams are not here: fault and crash injection wrap the client (ConnectOptions.interceptor)
 * and the hypervisor (lib/hypervisor/intercept.ts) before they are given to the manager.
 */
import { EventEmitter } from 'node:events';
import type { TransactionOptions, XenstoreClient, XenstoreOps } from '../../xenstore-wire';
import type { Hypervisor, XenArch } from '../hypervisor/types';
import { DEFAULT_ROOT, StorePaths, type MappingRecord, type RegionRecord } from '../store';
import { apply } from './apply';
import { wholeRecordTransaction, type ManagerContext } from './context';
import { list, mapping, reconcile, region } from './reconcile';
import { release } from './release';
import type { ApplyRequest, ApplyResult, ListResult, ManagerEvents, ManagerOptions, ReconcileOptions, ReconcileReport, ReleaseRequest, ReleaseResult } from './types';

export class SharedMemoryManager extends EventEmitter<ManagerEvents> {
  readonly paths: StorePaths;
  readonly xs: XenstoreClient;
  readonly hv: Hypervisor;
  private readonly ctx: ManagerContext;
  private arch?: XenArch;

  constructor(opts: ManagerOptions) {
    super();
    this.paths = new StorePaths(opts.root ?? DEFAULT_ROOT);
    this.xs = opts.xenstore;
    this.hv = opts.hypervisor;
    const txOptions: TransactionOptions = {
      maxAttempts: 200,
      baseDelayMs: 1,
      maxDelayMs: 100,
      ...(opts.transaction ?? {}),
      onRetry: (attempt, err) => {
        this.emit('retry', { attempt, code: err.code });
        opts.transaction?.onRetry?.(attempt, err);
      },
    };
    this.ctx = {
      paths: this.paths,
      xs: this.xs,
      hv: this.hv,
      lockWaitMs: opts.lockWaitMs ?? 30_000,
      batchPages: Math.max(1, opts.batchPages ?? 32768),
      tx: <T>(fn: (tx: XenstoreOps) => Promise<T>) => wholeRecordTransaction(this.xs, fn, txOptions),
      xenArch: async () => (this.arch ??= (await this.hv.xenVersion()).arch),
      progress: (e) => this.emit('progress', e),
      waiting: (e) => this.emit('wait', e),
    };
  }

  /** Nothing to release (the manager does not own the client or the hypervisor); kept for callers. */
  dispose(): void {}

  /**
   * Applies a domain's static shared memory entries. All or nothing: when an entry fails, the
   * entries this call created are released again before the error is thrown. Applying the same
   * config twice changes nothing the second time.
   */
  apply(req: ApplyRequest): Promise<ApplyResult> {
    return apply(this.ctx, req);
  }

  /**
   * Releases what a domain holds: its borrowed mappings, then the regions it owns (orphaned
   * while borrowers remain, unless `force` releases them first). A domain that no longer runs
   * counts as already unmapped. Releasing what is not there does nothing.
   */
  release(req: ReleaseRequest): Promise<ReleaseResult> {
    return release(this.ctx, req);
  }

  /**
   * Rolls back apply intents and finishes release intents whose locking process is gone; never
   * touches one whose process lives. With `deadDomains` (default), also releases what domains
   * that no longer run held (an owner with borrowers left turns its region orphaned).
   */
  reconcile(opts: ReconcileOptions = {}): Promise<ReconcileReport> {
    return reconcile(this.ctx, opts);
  }

  /** Every region with its mappings, and the domains involved (name, recorded set_target). */
  list(): Promise<ListResult> {
    return list(this.ctx);
  }

  /** One region's record, or a ManagerError ENOENT. */
  region(id: string): Promise<RegionRecord> {
    return region(this.ctx, id);
  }

  /** The mapping of one domain in a region (null when it has none). */
  mapping(id: string, domid: number): Promise<MappingRecord | null> {
    return mapping(this.ctx, id, domid);
  }
}
