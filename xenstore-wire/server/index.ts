/**
 * The in-memory xenstored (issue 3): Xen 4.17 C xenstored semantics in one Node process.
 * `startServer()` gives a daemon on a Unix socket; `XenstoredCore` is the model without I/O.
 */
export { startServer, XenstoreServer, seededRandom } from './server';
export type { ServerOptions, FaultOptions } from './server';
export { XenstoredCore, DEFAULT_QUOTAS, DOMID_SELF } from './core';
export type { Quotas, DomainOracle, CoreOptions, XsPerm, StoredNode, TreeChange } from './core';
export { XenstoredServerError } from './errors';
export { saveTree, loadTree, TreeJournal, removeStaleTemporaries } from './persist';
export { XEN_RELEASES, DEFAULT_RELEASE, isXenRelease } from './release';
export type { XenRelease } from './release';
