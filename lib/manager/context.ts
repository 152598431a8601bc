/**
 * What every room of the manager shares: the client, the hypervisor, the record paths, the
 * transaction policy, and the wait for another live process's intent. The façade
 * (manager.ts) builds one context; apply.ts, release.ts, reconcile.ts and frames.ts take it.
 */
import type { TransactionOptions, XenstoreClient, XenstoreOps } from '../../xenstore-wire';
import type { Hypervisor, XenArch } from '../hypervisor/types';
import { StoreError, type MappingRecord, type StorePaths } from '../store';
import { lockStatus } from './lock';
import { lifecycle } from './refusals';
import type { ProgressEvent } from './types';

export interface ManagerContext {
  readonly paths: StorePaths;
  readonly xs: XenstoreClient;
  readonly hv: Hypervisor;
  /** How long to wait for another live process's intent on the same region. */
  readonly lockWaitMs: number;
  /** Pages per hypercall call (progress and crash granularity). */
  readonly batchPages: number;
  /** One transaction with the manager's retry policy (fn may run more than once). */
  tx<T>(fn: (tx: XenstoreOps) => Promise<T>): Promise<T>;
  /** The host's architecture, asked once. */
  xenArch(): Promise<XenArch>;
  progress(e: ProgressEvent): void;
  waiting(e: { id: string; domid: number; why: string }): void;
}

/** A claim that must wait for another live process. */
export interface Wait {
  kind: 'wait';
  why: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Re-runs `attempt` while it answers 'wait', up to lockWaitMs; then EBUSY. */
export async function waitFor<T extends { kind: string }>(ctx: ManagerContext, id: string, domid: number, attempt: () => Promise<T | Wait>): Promise<T> {
  const deadline = Date.now() + ctx.lockWaitMs;
  let delay = 5;
  for (;;) {
    const r = await attempt();
    if (r.kind !== 'wait') return r as T;
    const { why } = r as Wait;
    if (Date.now() >= deadline) throw lifecycle.stillBusy(ctx.paths, id, domid, why, ctx.lockWaitMs);
    ctx.waiting({ id, domid, why });
    await sleep(delay * (0.5 + Math.random()));
    delay = Math.min(200, delay * 2);
  }
}

/**
 * Tells why a locked intent blocks us: wait for a live one; a dead or foreign one is refused.
 * `m` was read inside a transaction, which may predate the commit that cleared the lock: a
 * process that finished and exited meanwhile looks dead. So a dead lock is read again outside
 * the transaction, and only refused if it is still there.
 */
export async function lockedBy(ctx: ManagerContext, id: string, domid: number, m: MappingRecord, what: string): Promise<Wait> {
  const status = lockStatus(m.lock!);
  if (status === 'alive') return { kind: 'wait', why: `${what} by process ${m.lock} (state ${m.state})` };
  if (status === 'dead') {
    const now = await ctx.xs.read(ctx.paths.mappingField(id, m.domid, 'lock')).then((b) => b.toString(), () => undefined);
    if (now !== m.lock) return { kind: 'wait', why: `${what}: its lock changed while this transaction read it` };
  }
  throw lifecycle.lockedDeadOrForeign(ctx.paths, id, domid, m, what, status);
}

/** Runs of a transaction that read a record with a field missing, before that error stands. */
const TORN_ATTEMPTS = 4;

/**
 * A transaction with the client's EAGAIN policy, also run again when it read a record with a
 * field missing. C xenstored's transactions read no snapshot: a burst of reads may straddle
 * another connection's commit (a region created or removed between two of its fields). That
 * commit makes ours conflict too, but the half-read record is refused before our commit could
 * say so. A record still missing a field after a few runs is really broken, and reported.
 */
export async function wholeRecordTransaction<T>(xs: XenstoreClient, fn: (tx: XenstoreOps) => Promise<T>, opts: TransactionOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await xs.transaction(fn, opts);
    } catch (e) {
      if (!(e instanceof StoreError && e.code === 'ENOENT') || attempt >= TORN_ATTEMPTS) throw e;
      await sleep(Math.random() * 5 * attempt);
    }
  }
}

/** Reports progress of one operation on one region: done counts from `start`. */
export function progressOf(ctx: ManagerContext, id: string, domid: number, op: ProgressEvent['op'], total: number): (done: number, start?: number) => void {
  return (done, start = 0) => ctx.progress({ id, domid, op, done: start + done, total });
}
