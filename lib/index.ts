/**
 * xen-sshm: static shared memory between Xen domains. The public API of the package root,
 * every name listed (docs/api.md documents each; test/architecture/api.test.ts keeps the two
 * in step). The xenstore protocol is `xen-sshm/xenstore`, the hypervisor layer
 * `xen-sshm/hypervisor`.
 */

// Config (lib/config): xl config files, static shared memory entries, validation, the planner.
export {
  ConfigError,
  RULES as CONFIG_RULES,
  formatWarning,
  parseXlConfig,
  readXlConfig,
  XlConfig,
  XlString,
  parseSharedMemEntries,
  domainName,
  validateEntry,
  validateDomain,
  planConfigs,
  readDomains,
  planDomains,
  planToJSON,
  NO_RECORDS,
  checkConfigFiles,
} from './config';
export type {
  ConfigLocation,
  ConfigWarning,
  RuleId as ConfigRuleId,
  XlValue,
  XlList,
  XlSetting,
  XlStatement,
  ShmEntry,
  ShmRole,
  Plan,
  PlanRegion,
  PlanMapping,
  PlanResult,
  PlanInput,
  PlanOptions,
  EntryDecision,
  CurrentRecords,
  PeerRegion,
  PeerMapping,
  ReadDomain,
  ReadResult,
  CheckResult,
} from './config';

// Xen's shared vocabulary (lib/vocabulary.ts).
export { PAGE_SIZE, PAGES_PER_MIB, DOMID_FIRST_RESERVED, isDomid, PROTS, CACHE_POLICIES, SPELLINGS, MAX_ID_LENGTH } from './vocabulary';
export type { ShmProt, CachePolicy, ShmSpelling, MappingRole } from './vocabulary';

// Manager (lib/manager): apply, release, list, reconcile, daemon, region handles.
export {
  SharedMemoryManager,
  ManagerError,
  runDaemon,
  openRegion,
  hexdump,
  findDomainByName,
  listDomains,
  lockStatus,
  ownLock,
  OWNER_STEPS,
  BORROWER_STEPS,
  OWNER_RELEASE_STEPS,
  BORROWER_RELEASE_STEPS,
} from './manager';
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
  DomainSummary,
  ProgressEvent,
  ManagerEvents,
  DaemonOptions,
  DaemonEvent,
  RegionHandle,
  OpenRegionOptions,
  ManagerReason,
  ApplyStep,
  EntryWork,
  ReleaseStep,
  ReleaseWork,
} from './manager';

// Store (lib/store): the xenstore schema of static shared memory.
export { StoreError, StorePaths, DEFAULT_ROOT, dumpTree, sharedMemoryTree, readAllRegions, readRegion } from './store';
export type { RegionRecord, MappingRecord, MirrorRecord, RegionState, MappingState } from './store';

// Sandbox (lib/sandbox): a simulated host and a background in-memory xenstored in a folder.
export { Sandbox, defaultSandboxDir, createDomain as sandboxCreateDomain, destroyDomain as sandboxDestroyDomain, domainSpecFromConfig } from './sandbox';
export type { SandboxOptions, DomainSpec } from './sandbox';

// Hypervisor (the rest is `xen-sshm/hypervisor`): what a dom0 program needs to run the manager.
export { openPrivcmd, HypercallError } from './hypervisor';
