/**
 * Steps: every xenstore request and every hypercall a manager makes, numbered from 1, seen by
 * a hook before it is sent and after its answer came back. Built on the two explicit seams, the
 * client's `interceptor` option and lib/hypervisor/intercept.ts: tests fail a chosen step with
 * it, and the crash-safety child SIGKILLs itself at one:
 *
 *   XEN_SSHM_CRASH_AT=17        SIGKILL just before step 17 is sent
 *   XEN_SSHM_CRASH_AT=17:after  SIGKILL just after step 17 was answered, before anyone sees it
 *
 * (read by the test child, crash-child.ts; no production code knows about it).
 */
import type { RequestInterceptor } from '../../xenstore-wire';
import type { HypervisorHooks, InterceptedCall } from '../../lib/hypervisor/intercept';

export type StepKind = 'xenstore' | 'hypercall';

export interface StepInfo {
  /** 1 for the first step. */
  n: number;
  kind: StepKind;
  /** 'WRITE /local/shared_mem/ID1/state', 'populatePhysmap d1 256 pages' ... */
  label: string;
}

/** Called before (it may throw: the step then fails as if refused) and after each step. */
export type StepHook = (step: StepInfo, phase: 'before' | 'after') => void;

export class Steps {
  count = 0;
  private readonly calls = new WeakMap<InterceptedCall, StepInfo>();

  constructor(private readonly hook: StepHook) {}

  /** For ConnectOptions.interceptor: each request is a step. */
  readonly interceptor: RequestInterceptor = (req) => {
    const step: StepInfo = { n: ++this.count, kind: 'xenstore', label: `${req.op}${req.path ? ` ${req.path}` : ''}` };
    this.hook(step, 'before');
    return () => this.hook(step, 'after');
  };

  /** For intercept(hv, hooks): each hypervisor call is a step. */
  readonly hypervisorHooks: HypervisorHooks = {
    before: (call) => {
      const step: StepInfo = { n: ++this.count, kind: 'hypercall', label: call.label };
      this.calls.set(call, step);
      this.hook(step, 'before');
    },
    after: (call) => {
      const step = this.calls.get(call);
      if (step) this.hook(step, 'after');
    },
  };
}

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
