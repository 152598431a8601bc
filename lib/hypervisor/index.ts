/**
 * The hypervisor layer: the only place xen-sshm touches Xen. `openHypervisor()` gives the
 * Hypervisor interface (types.ts) over the real host (privcmd) or a simulated one (sim).
 */
import { PrivcmdTransport, type PrivcmdOptions } from './privcmd';
import { SimHypervisor, type SimOptions } from './sim';
import type { Hypervisor } from './types';
import { XenHypervisor } from './xen';

export * from './types';
export * from './errors';
export * as abi from './abi';
export { XenHypervisor, gfnRange, RESERVATION_BATCH, REMOVE_MULTICALL_BATCH } from './xen';
export { PrivcmdTransport, PRIVCMD_PATH, HYPERCALL_PATH, missingPrivcmdMessage, type PrivcmdOptions } from './privcmd';
export { SimHypervisor, xenHostPresent, type SimOptions, type GuestView, type SimDomainSpec, type SimDomainView, type PhysmapEntry } from './sim';
export type { XenTransport, HypercallBuffer } from './transport';
export { intercept, callLabel, HYPERVISOR_METHODS, type HypervisorHooks, type HypervisorMethod, type InterceptedCall } from './intercept';

export type OpenOptions = ({ backend: 'privcmd' } & PrivcmdOptions) | ({ backend: 'sim' } & SimOptions);

/**
 * Opens a backend. There is no automatic choice: the caller names the backend, so the sim is
 * never picked silently on a real Xen host (and refuses to run there unless allowOnXenHost).
 * privcmd fails with a HypercallError (code ENOENT, path /dev/xen/privcmd) where Xen is absent.
 */
export function openHypervisor(opts: OpenOptions): Hypervisor {
  if (opts.backend === 'sim') return new SimHypervisor(opts);
  return new XenHypervisor(new PrivcmdTransport(opts));
}

/** Shortcut for the real host. */
export function openPrivcmd(opts: PrivcmdOptions = {}): Hypervisor {
  return new XenHypervisor(new PrivcmdTransport(opts));
}
