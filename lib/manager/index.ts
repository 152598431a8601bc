/** The static shared memory manager: apply, release, list, reconcile, daemon, region handles. */
export { SharedMemoryManager } from './manager';
export type {
  ManagerOptions,
  ApplyRequest,
  ApplyResult,
  ApplyAction,
  AppliedEntry,
  ReleaseRequest,
  ReleaseResult,
  ReleasedEntry,
  ReleaseAction,
  ReconcileOptions,
  ReconcileReport,
  ReconcileAction,
  ReconcileActionKind,
  ListResult,
  PortListing,
  DomainSummary,
  ProgressEvent,
  ManagerEvents,
} from './types';
export { ManagerError, type ManagerReason, type ManagerErrorInit } from './errors';
export { runDaemon, type DaemonOptions, type DaemonEvent } from './daemon';
export { openRegion, hexdump, type RegionHandle, type OpenRegionOptions } from './region';
export { domainName, listDomains, findDomainByName, domainAlive } from './domains';
export { ownLock, selfIdentity, formatLock, parseLock, lockStatus, processStartTime, type ProcessIdentity } from './lock';
export type { PortLiveState } from './doorbells';
export { OWNER_STEPS, BORROWER_STEPS, type ApplyStep, type EntryWork } from './apply';
export { OWNER_RELEASE_STEPS, BORROWER_RELEASE_STEPS, type ReleaseStep, type ReleaseWork } from './release';
