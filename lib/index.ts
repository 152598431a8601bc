/** xen-sshm: static shared memory between Xen domains. */
export {};
// Config (lib/config): xl config files, static shared memory entries, validation, plans.
export { ConfigError, RULES as CONFIG_RULES, parseXlConfig, readXlConfig, XlConfig, XlString, parseSharedMemEntries, domainName, validateEntry, validateDomain, planConfigs, planToJSON, checkConfigFiles } from './config';
export type { ConfigLocation, ConfigWarning, RuleId as ConfigRuleId, XlValue, XlList, XlSetting, XlStatement, ShmEntry, ShmRole, ShmProt, CachePolicy, ShmSpelling, Plan, PlanRegion, PlanMapping, PlanResult, CheckResult } from './config';
