/**
 * A Hypervisor with hooks around every call: `before` sees the call first and may throw (the
 * call then fails with that error, never reaching the backend) or return a promise (the call
 * waits for it); `after` sees the outcome before the caller does. For fault and crash
 * injection, counting and tracing, given to the manager in place of the backend itself:
 *
 *   const hv = intercept(openPrivcmd(), { before: (c) => { if (c.method === 'setTarget') throw refusal; } });
 */
import type { Hypervisor } from './types';

/** Every method of the Hypervisor interface that talks to Xen (close excluded). */
export type HypervisorMethod = Exclude<{ [K in keyof Hypervisor]: Hypervisor[K] extends (...args: never[]) => unknown ? K : never }[keyof Hypervisor], 'close'>;

/** Listed so that the compiler fails here when the interface gains a method (label it below). */
const METHODS: Record<HypervisorMethod, true> = {
  xenVersion: true,
  domctlInterfaceVersion: true,
  domainInfo: true,
  domainInfoList: true,
  populatePhysmap: true,
  decreaseReservation: true,
  addToPhysmapForeign: true,
  removeFromPhysmap: true,
  setTarget: true,
  setMaxMem: true,
  mapForeign: true,
  borrowerSupport: true,
  evtchnAllocUnbound: true,
  evtchnStatus: true,
};

export const HYPERVISOR_METHODS = Object.keys(METHODS) as readonly HypervisorMethod[];

export interface InterceptedCall {
  method: HypervisorMethod;
  args: readonly unknown[];
  /** 'populatePhysmap d1 256 pages', 'setTarget d3->d1' ...: for logs and labels. */
  label: string;
}

export interface HypervisorHooks {
  before?(call: InterceptedCall): void | Promise<void>;
  after?(call: InterceptedCall, outcome: { value?: unknown; error?: unknown }): void;
}

/** A GfnList's or a GfnSpan's page count: both have `length`. */
const pages = (g: { length: number }): string => `${g.length} page${g.length === 1 ? '' : 's'}`;

/** A short description of a call, naming its domains and page count. */
export function callLabel(method: HypervisorMethod, args: readonly unknown[]): string {
  const a = args as [unknown, unknown, unknown];
  switch (method) {
    case 'domainInfo':
      return `domainInfo d${a[0]}`;
    case 'domainInfoList':
      return `domainInfoList from d${a[0]}, at most ${a[1]}`;
    case 'populatePhysmap':
    case 'decreaseReservation':
    case 'removeFromPhysmap':
    case 'mapForeign':
      return `${method} d${a[0]} ${pages(a[1] as { length: number })}`;
    case 'addToPhysmapForeign': {
      const r = a[0] as { owner: number; borrower: number; ownerGfns: ArrayLike<number> };
      return `addToPhysmapForeign d${r.owner}->d${r.borrower} ${pages(r.ownerGfns)}`;
    }
    case 'setTarget':
      return `setTarget d${a[0]}->d${a[1]}`;
    case 'setMaxMem':
      return `setMaxMem d${a[0]} ${a[1]} KiB`;
    case 'borrowerSupport':
      return `borrowerSupport d${a[0]}`;
    case 'evtchnAllocUnbound':
      return `evtchnAllocUnbound d${a[0]} for d${a[1]}`;
    case 'evtchnStatus':
      return `evtchnStatus d${a[0]} port ${a[1]}`;
    default:
      return method;
  }
}

/**
 * `hv` with `hooks` around each call. Every method is wrapped, whatever the backend adds (a
 * Proxy, not a list); other properties and close() pass through.
 */
export function intercept(hv: Hypervisor, hooks: HypervisorHooks): Hypervisor {
  const wrapped = new Map<string, (...args: unknown[]) => unknown>();
  // Synchronous while the hooks are: a method that returns a value still returns it.
  const wrap = (method: string, fn: (...a: unknown[]) => unknown) =>
    (...args: unknown[]): unknown => {
      const call: InterceptedCall = { method: method as HypervisorMethod, args, label: callLabel(method as HypervisorMethod, args) };
      const run = (): unknown => {
        let result: unknown;
        try {
          result = fn.apply(hv, args);
        } catch (error) {
          hooks.after?.(call, { error });
          throw error;
        }
        if (!(result instanceof Promise)) {
          hooks.after?.(call, { value: result });
          return result;
        }
        return result.then(
          (value: unknown) => {
            hooks.after?.(call, { value });
            return value;
          },
          (error: unknown) => {
            hooks.after?.(call, { error });
            throw error;
          },
        );
      };
      let before: void | Promise<void>;
      try {
        before = hooks.before?.(call);
      } catch (e) {
        // Refused: every method of the interface is async, so the refusal is a rejection.
        return Promise.reject(e);
      }
      return before instanceof Promise ? before.then(run) : run();
    };
  return new Proxy(hv, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      if (typeof prop !== 'string' || prop === 'close' || prop === 'constructor') return (v as (...a: unknown[]) => unknown).bind(target);
      let w = wrapped.get(prop);
      if (!w) wrapped.set(prop, (w = wrap(prop, v as (...a: unknown[]) => unknown)));
      return w;
    },
  });
}
