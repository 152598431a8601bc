/**
 * Steps: every xenstore request and every hypercall batch the manager makes, numbered from 1.
 * A hook sees each step before it is sent and after its answer came back. Tests use it to
 * fail a chosen step, and the crash-safety test to SIGKILL the process at a chosen step:
 *
 *   XEN_SSHM_CRASH_AT=17        SIGKILL just before step 17 is sent
 *   XEN_SSHM_CRASH_AT=17:after  SIGKILL just after step 17 was answered, before anyone sees it
 *
 * The environment variable is read only when a manager is created without an explicit hook,
 * and does nothing unless set.
 */
import { MessageType, messageTypeName } from '../../xenstore-wire/constants';
import { request } from '../../xenstore-wire/payload';
import type { XenstoreClient } from '../../xenstore-wire';
import type { Hypervisor } from '../hypervisor/types';

export type StepKind = 'xenstore' | 'hypercall';

export interface StepInfo {
  /** 1 for the first step of this manager. */
  n: number;
  kind: StepKind;
  /** 'WRITE /local/shared_mem/ID1/state', 'populatePhysmap d1 256 pages' ... */
  label: string;
}

export type StepHook = (step: StepInfo, phase: 'before' | 'after') => void;

export interface CrashPlan {
  at: number;
  when: 'before' | 'after';
}

export function crashPlanFromEnv(env: NodeJS.ProcessEnv = process.env): CrashPlan | null {
  const v = env.XEN_SSHM_CRASH_AT;
  if (!v) return null;
  const m = /^(\d+)(?::(before|after))?$/.exec(v.trim());
  if (!m || Number(m[1]) < 1) return null;
  return { at: Number(m[1]), when: (m[2] as 'before' | 'after' | undefined) ?? 'before' };
}

/** A hook that kills this process with SIGKILL (no cleanup of any kind) at the planned step. */
export function crashHook(plan: CrashPlan): StepHook {
  return (step, phase) => {
    if (step.n === plan.at && phase === plan.when) process.kill(process.pid, 'SIGKILL');
  };
}

export class Steps {
  count = 0;

  constructor(private readonly hook: StepHook) {}

  /**
   * Runs one step: the hook before (it may throw: the step then fails as if refused, through
   * `refuse` when given, else unsent), fn, the hook after.
   */
  run<T>(kind: StepKind, label: string, fn: () => Promise<T>, refuse?: (err: unknown) => Promise<T>): Promise<T> {
    const step: StepInfo = { n: ++this.count, kind, label };
    try {
      this.hook(step, 'before');
    } catch (e) {
      return refuse ? refuse(e) : Promise.reject(e);
    }
    const after = (): void => this.hook(step, 'after');
    return fn().then(
      (v) => {
        after();
        return v;
      },
      (e) => {
        after();
        throw e;
      },
    );
  }
}

/** The clients instrumented, with the original request function and every Steps attached. */
const instrumented = new WeakMap<XenstoreClient, { original: XenstoreClient['_request']; all: Set<Steps> }>();

/**
 * Counts every request `client` sends (transactions included) as a step of `steps`. Several
 * managers may instrument one client; each sees every request. Returns a function that removes
 * this instrumentation (the client is restored once none is left).
 */
export function instrumentXenstore(client: XenstoreClient, steps: Steps): () => void {
  let entry = instrumented.get(client);
  if (!entry) {
    const original = client._request;
    const all = new Set<Steps>();
    entry = { original, all };
    instrumented.set(client, entry);
    client._request = function (this: XenstoreClient, type, payload, txId, path) {
      const label = `${messageTypeName(type)}${path ? ` ${path}` : ''}`;
      // A refused TRANSACTION_END behaves as a daemon error reply does: the transaction is
      // gone (and nothing committed), so an abort is sent in its place.
      const refuse = type === MessageType.TRANSACTION_END && txId !== 0
        ? (e: unknown) => original.call(client, type, request.transactionEnd(false), txId, path).then(() => Promise.reject(e), () => Promise.reject(e))
        : undefined;
      let call = (): Promise<Buffer> => original.call(client, type, payload, txId, path);
      for (const st of all) {
        const inner = call;
        call = () => st.run('xenstore', label, inner, refuse);
      }
      return call();
    };
  }
  entry.all.add(steps);
  return () => {
    const e = instrumented.get(client);
    if (!e) return;
    e.all.delete(steps);
    if (e.all.size === 0) {
      client._request = e.original;
      instrumented.delete(client);
    }
  };
}

/** The same Hypervisor with every call counted as a step. */
export function instrumentHypervisor(hv: Hypervisor, steps: Steps): Hypervisor {
  const n = (g: ArrayLike<number>): string => `${g.length} page${g.length === 1 ? '' : 's'}`;
  return {
    get backend() {
      return hv.backend;
    },
    xenVersion: () => steps.run('hypercall', 'xenVersion', () => hv.xenVersion()),
    domctlInterfaceVersion: () => steps.run('hypercall', 'domctlInterfaceVersion', () => hv.domctlInterfaceVersion()),
    domainInfo: (domid) => steps.run('hypercall', `domainInfo d${domid}`, () => hv.domainInfo(domid)),
    populatePhysmap: (domid, gfns, p) => steps.run('hypercall', `populatePhysmap d${domid} ${n(gfns)}`, () => hv.populatePhysmap(domid, gfns, p)),
    decreaseReservation: (domid, gfns, p) => steps.run('hypercall', `decreaseReservation d${domid} ${n(gfns)}`, () => hv.decreaseReservation(domid, gfns, p)),
    addToPhysmapForeign: (req) => steps.run('hypercall', `addToPhysmapForeign d${req.owner}->d${req.borrower} ${n(req.ownerGfns)}`, () => hv.addToPhysmapForeign(req)),
    removeFromPhysmap: (domid, gfns, o) => steps.run('hypercall', `removeFromPhysmap d${domid} ${n(gfns)}`, () => hv.removeFromPhysmap(domid, gfns, o)),
    setTarget: (domid, target) => steps.run('hypercall', `setTarget d${domid}->d${target}`, () => hv.setTarget(domid, target)),
    setMaxMem: (domid, kib) => steps.run('hypercall', `setMaxMem d${domid} ${kib} KiB`, () => hv.setMaxMem(domid, kib)),
    mapForeign: (domid, gfns) => steps.run('hypercall', `mapForeign d${domid} ${n(gfns)}`, () => hv.mapForeign(domid, gfns)),
    close: () => hv.close(),
  };
}
