/**
 * A Hypervisor with hooks around every call: `before` sees the call first and may throw (the
 * call then fails with that error, never reaching the backend) or return a promise (the call
 * waits for it); `after` sees the outcome before the caller does. For fault and crash
 * injection, counting and tracing, given to the manager in place of the backend itself:
 *
 *   const hv = intercept(openPrivcmd(), { before: (c) => { if (c.method === 'setTarget') throw refusal; } });
 */
import type { Hypervisor } from './types';

/** Every method of the Hypervisor interface that talks to Xen (close and backend excluded). */
export type HypervisorMethod = Exclude<keyof Hypervisor, 'backend' | 'close'>;

export const HYPERVISOR_METHODS: readonly HypervisorMethod[] = [
  'xenVersion',
  'domctlInterfaceVersion',
  'domainInfo',
  'populatePhysmap',
  'decreaseReservation',
  'addToPhysmapForeign',
  'removeFromPhysmap',
  'setTarget',
  'setMaxMem',
  'mapForeign',
];

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

const pages = (g: ArrayLike<number>): string => `${g.length} page${g.length === 1 ? '' : 's'}`;

/** A short description of a call, naming its domains and page count. */
export function callLabel(method: HypervisorMethod, args: readonly unknown[]): string {
  const a = args as [unknown, unknown, unknown];
  switch (method) {
    case 'domainInfo':
      return `domainInfo d${a[0]}`;
    case 'populatePhysmap':
    case 'decreaseReservation':
    case 'removeFromPhysmap':
    case 'mapForeign':
      return `${method} d${a[0]} ${pages(a[1] as ArrayLike<number>)}`;
    case 'addToPhysmapForeign': {
      const r = a[0] as { owner: number; borrower: number; ownerGfns: ArrayLike<number> };
      return `addToPhysmapForeign d${r.owner}->d${r.borrower} ${pages(r.ownerGfns)}`;
    }
    case 'setTarget':
      return `setTarget d${a[0]}->d${a[1]}`;
    case 'setMaxMem':
      return `setMaxMem d${a[0]} ${a[1]} KiB`;
    default:
      return method;
  }
}

/** `hv` with `hooks` around each call. Closing the result closes `hv`. */
export function intercept(hv: Hypervisor, hooks: HypervisorHooks): Hypervisor {
  const wrap = (method: HypervisorMethod) =>
    async (...args: unknown[]): Promise<unknown> => {
      const call: InterceptedCall = { method, args, label: callLabel(method, args) };
      await hooks.before?.(call);
      let value: unknown;
      try {
        value = await (hv[method] as (...a: unknown[]) => Promise<unknown>).apply(hv, args);
      } catch (error) {
        hooks.after?.(call, { error });
        throw error;
      }
      hooks.after?.(call, { value });
      return value;
    };
  const out = { close: () => hv.close() } as Record<string, unknown>;
  Object.defineProperty(out, 'backend', { get: () => hv.backend, enumerable: true });
  for (const m of HYPERVISOR_METHODS) out[m] = wrap(m);
  return out as unknown as Hypervisor;
}
