/** xl config files and their static shared memory entries: read, validate, plan. */
export { ConfigError, RULES, isRuleId, formatWarning } from './errors';
export type { ConfigLocation, ConfigWarning, ConfigErrorInit, RuleId } from './errors';
export { parseXlConfig, readXlConfig, decodeConfigBytes, XlConfig, XlString } from './xl-reader';
export type { XlValue, XlList, XlStatement, XlSetting, ParseOptions } from './xl-reader';
export { parseSharedMemEntries, domainName, STATIC_SHM_KEYS, ROLES, PROTS, CACHE_POLICIES } from './shm-entries';
export type { ShmEntry, ShmRole, ShmProt, CachePolicy, ShmSpelling, EntriesResult, StaticShmKey } from './shm-entries';
export { validateEntry, validateDomain, validateDomainEntries, MAX_ID_LENGTH, MAX_DOM0LESS_ID_LENGTH } from './validate';
export type { ValidateOptions, DomainValidation } from './validate';
export { planConfigs, readDomains, planDomains, planToJSON, NO_RECORDS } from './plan';
export type { Plan, PlanRegion, PlanMapping, PlanResult, PlanInput, PlanOptions, EntryDecision, ReadDomain, ReadResult, CurrentRecords, PeerRegion, PeerMapping } from './plan';
export { parseEntryNumber, hex, humanSize, PAGE_SIZE, U64_MAX } from './numbers';
export { checkConfigFiles } from './check';
export type { CheckResult } from './check';
