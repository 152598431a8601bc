/** The xenstore schema of static shared memory: paths, formats, typed records. */
export * from './schema';
export * from './records';
export { StoreError } from './errors';
export { dumpTree, sharedMemoryTree, sanitiseValue, type DumpOptions } from './dump';
export * from './domain-index';
export { mapWindowed, READ_WINDOW } from './pipeline';
