/**
 * What every room of the manager shares: the client, the hypervisor, the record paths, the
 * transaction policy, and the wait for another live process's intent. The façade
 * (manager.ts) builds one context; apply.ts, release.ts, reconcile.ts and frames.ts take it.
 */
import type { XenstoreClient, XenstoreOps } from '../../xenstore-wire';
import type { Hypervisor, XenArch } from '../hypervisor/types';
import type { MappingRecord, StorePaths } from '../store';
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

/** Tells why a locked intent blocks us: wait for a live one; a dead or foreign one is refused. */
export function lockedBy(ctx: ManagerContext, id: string, domid: number, m: MappingRecord, what: string): Wait {
  const status = lockStatus(m.lock!);
  if (status === 'alive') return { kind: 'wait', why: `${what} by process ${m.lock} (state ${m.state})` };
  throw lifecycle.lockedDeadOrForeign(ctx.paths, id, domid, m, what, status);
}

/** Reports progress of one operation on one region: done counts from `start`. */
export function progressOf(ctx: ManagerContext, id: string, domid: number, op: ProgressEvent['op'], total: number): (done: number, start?: number) => void {
  return (done, start = 0) => ctx.progress({ id, domid, op, done: start + done, total });
}
