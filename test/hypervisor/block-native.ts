/**
 * Preloaded (`node -r`, or NODE_OPTIONS=--require) by no-native.test.ts: every native addon
 * fails to load in this process, as on a machine where none could be built or installed.
 */
process.dlopen = ((module: unknown, filename: string): never => {
  throw Object.assign(new Error(`native addons are blocked in this process (${filename})`), { code: 'ERR_DLOPEN_FAILED' });
}) as typeof process.dlopen;
