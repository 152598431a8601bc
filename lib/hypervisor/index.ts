/**
 * The hypervisor layer (`xen-sshm/hypervisor`): the only place xen-sshm touches Xen.
 * `openHypervisor()` gives the Hypervisor interface (types.ts) over the real host (privcmd) or a
 * simulated one (sim). Every name exported here is public and documented in docs/hypervisor.md;
 * nothing is re-exported by wildcard.
 */
import { PrivcmdTransport, type PrivcmdOptions } from './privcmd';
import { SimHypervisor, type SimOptions } from './sim';
import type { Hypervisor } from './types';
import { XenHypervisor } from './xen';

export type {
  BorrowerSupport,
  DomainInfo,
  EvtchnStatus,
  ForeignMapping,
  ForeignMapRequest,
  GfnList,
  GfnSpan,
  Hypervisor,
  ProgressCallback,
  RemoveOptions,
  XenArch,
  XenVersionInfo,
} from './types';
export { HypercallError, errnoName, errnoOf, describePages, type HypercallErrorInit, type HypercallReason, type PageError } from './errors';
export * as abi from './abi';
export { XenHypervisor, gfnRange, gfnSpan, RESERVATION_BATCH, REMOVE_MULTICALL_BATCH, HYPERCALL_BUFFER_BYTES, EXTENT_ORDER_2M, DOMAIN_INFO_LIST_MAX, type PopulateStats } from './xen';
export { PrivcmdTransport, PRIVCMD_PATH, HYPERCALL_PATH, missingPrivcmdMessage, type PrivcmdOptions } from './privcmd';
export { SimHypervisor, xenHostPresent, type SimOptions, type GuestView, type SimDomainSpec, type SimDomainView, type PhysmapEntry } from './sim';
export type { XenTransport, HypercallBuffer, MappedFrames } from './transport';
export { intercept, callLabel, HYPERVISOR_METHODS, type HypervisorHooks, type HypervisorMethod, type InterceptedCall } from './intercept';
export { rulesFor, parseRelease, SIM_RELEASES, X86_TRANSLATED_FOREIGN_MAPS, GETDOMAININFO_EXACT, SET_TARGET_HVM_FIRST, ARM_FOREIGN_SELF_EPERM, pointRelease, type XenRelease, type XenRules, type ReleaseRule, type SimRelease } from './releases';

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
export function openPrivcmd(opts: PrivcmdOptions = {}): XenHypervisor {
  return new XenHypervisor(new PrivcmdTransport(opts));
}
