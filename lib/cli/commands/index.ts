import type { Command } from 'commander';
import { registerCheck } from './check';
import { registerXenstored } from './xenstored';
import { registerApply } from './apply';
import { registerRelease } from './release';
import { registerLs } from './ls';
import { registerReconcile } from './reconcile';
import { registerDaemon } from './daemon';
import { registerPeek } from './peek';
import { registerDemo } from './demo-command';
import { registerCreate } from './create';
import { registerDestroy } from './destroy';
import { registerInstallUnits } from './install-units';

/** Every command module; each adds itself to the program. Order is the order in --help. */
export const commands: Array<(program: Command) => void> = [
  registerCheck,
  registerCreate,
  registerApply,
  registerRelease,
  registerDestroy,
  registerLs,
  registerPeek,
  registerReconcile,
  registerDaemon,
  registerInstallUnits,
  registerDemo,
  registerXenstored,
];
