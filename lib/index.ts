/** xen-sshm: static shared memory between Xen domains. */
export {};
// Config (lib/config): xl config files, static shared memory entries, validation, plans.
export { ConfigError, RULES as CONFIG_RULES, parseXlConfig, readXlConfig, XlConfig, XlString, parseSharedMemEntries, domainName, validateEntry, validateDomain, planConfigs, planToJSON, checkConfigFiles } from './config';
export type { ConfigLocation, ConfigWarning, RuleId as ConfigRuleId, XlValue, XlList, XlSetting, XlStatement, ShmEntry, ShmRole, ShmProt, CachePolicy, ShmSpelling, Plan, PlanRegion, PlanMapping, PlanResult, CheckResult } from './config';
// Manager (lib/manager, lib/store, lib/sandbox): apply, release, list, reconcile, daemon, region handles, the sandbox.
export { SharedMemoryManager, ManagerError, runDaemon, openRegion, hexdump, findDomainByName, listDomains, lockStatus, ownLock } from './manager';
export type { ManagerOptions, ApplyRequest, ApplyResult, AppliedEntry, ReleaseRequest, ReleaseResult, ReleasedEntry, ReconcileOptions, ReconcileReport, ReconcileAction, ListResult, DomainSummary, ProgressEvent, DaemonOptions, DaemonEvent, RegionHandle, OpenRegionOptions, ManagerReason } from './manager';
export { StoreError, StorePaths, DEFAULT_ROOT, dumpTree, sharedMemoryTree, readAllRegions, readRegion } from './store';
export type { RegionRecord, MappingRecord, MirrorRecord, RegionState, MappingState } from './store';
export { Sandbox, defaultSandboxDir, createDomain as sandboxCreateDomain, destroyDomain as sandboxDestroyDomain, domainSpecFromConfig } from './sandbox';
export { openPrivcmd, HypercallError } from './hypervisor';
