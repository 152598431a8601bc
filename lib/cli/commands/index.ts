/**
 * Every command, in the order of --help. Each module adds its command to the program; a module
 * is loaded only when its command may run or be shown: a run of one command registers that one
 * alone, which keeps the start-up of `xen-sshm check` to what check needs.
 */
import type { Command } from 'commander';

export interface CommandEntry {
  name: string;
  /** The module's register function (loads the module). */
  load: () => (program: Command) => void;
}


export const commands: CommandEntry[] = [
  { name: 'check', load: () => (require('./check') as typeof import('./check')).registerCheck },
  { name: 'create', load: () => (require('./create') as typeof import('./create')).registerCreate },
  { name: 'apply', load: () => (require('./apply') as typeof import('./apply')).registerApply },
  { name: 'release', load: () => (require('./release') as typeof import('./release')).registerRelease },
  { name: 'destroy', load: () => (require('./destroy') as typeof import('./destroy')).registerDestroy },
  { name: 'ls', load: () => (require('./ls') as typeof import('./ls')).registerLs },
  { name: 'peek', load: () => (require('./peek') as typeof import('./peek')).registerPeek },
  { name: 'reconcile', load: () => (require('./reconcile') as typeof import('./reconcile')).registerReconcile },
  { name: 'daemon', load: () => (require('./daemon') as typeof import('./daemon')).registerDaemon },
  { name: 'install-units', load: () => (require('./install-units') as typeof import('./install-units')).registerInstallUnits },
  { name: 'demo', load: () => (require('./demo-command') as typeof import('./demo-command')).registerDemo },
  { name: 'xenstored', load: () => (require('./xenstored') as typeof import('./xenstored')).registerXenstored },
];


/** Global options that take a value (their value is not a command name). */
const GLOBAL_WITH_VALUE = new Set(['--sandbox-dir']);

/**
 * The command a command line runs ('' for `--version`, which needs none), or null when it shows
 * the program's help or names no known command (then every command is registered in full).
 */
export function commandOf(argv: readonly string[]): string | null {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return null;
    if (a === '--version' || a === '-V') return '';
    if (a.startsWith('-')) {
      if (GLOBAL_WITH_VALUE.has(a)) i++;
      continue;
    }
    return commands.some((c) => c.name === a) ? a : null;
  }
  return null;
}
