/** The sandbox: a simulated Xen host and a background in-memory xenstored kept in a folder. */
export { Sandbox, defaultSandboxDir, socketAnswers, type SandboxOptions } from './sandbox';
export { createDomain, destroyDomain, domainSpecFromConfig, resolveDomainArg, LIBXL_MAXMEM_SLACK_MIB, type DomainSpec, type CreatedDomain } from './toolstack';
export { SimGuest, type SimDoorbell } from './guest';
