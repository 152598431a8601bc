/** The static shared memory manager: apply, release, list, reconcile, daemon, region handles. */
export {
  SharedMemoryManager,
  type ManagerOptions,
  type ApplyRequest,
  type ApplyResult,
  type ApplyAction,
  type AppliedEntry,
  type ReleaseRequest,
  type ReleaseResult,
  type ReleasedEntry,
  type ReleaseAction,
  type ReconcileOptions,
  type ReconcileReport,
  type ReconcileAction,
  type ReconcileActionKind,
  type ListResult,
  type DomainSummary,
  type ProgressEvent,
  type ManagerEvents,
} from './manager';
export { ManagerError, type ManagerReason, type ManagerErrorInit } from './errors';
export { runDaemon, type DaemonOptions, type DaemonEvent } from './daemon';
export { openRegion, hexdump, type RegionHandle, type OpenRegionOptions } from './region';
export { domainName, listDomains, findDomainByName, domainAlive } from './domains';
export { ownLock, selfIdentity, formatLock, parseLock, lockStatus, processStartTime, type ProcessIdentity } from './lock';
export { Steps, crashPlanFromEnv, crashHook, instrumentXenstore, instrumentHypervisor, type StepHook, type StepInfo, type StepKind, type CrashPlan } from './steps';
