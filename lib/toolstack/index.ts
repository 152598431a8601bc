/**
 * Toolstacks (xl on a real host, the sandbox's) and the create/destroy operations over them.
 */
export * from './types';
export { XlToolstack, type XlToolstackOptions } from './xl';
export { createDomainWithShm, destroyDomainWithShm, type CreateRequest, type CreateResult, type DestroyRequest, type DestroyResult } from './lifecycle';
