import type { Command } from 'commander';
import { registerCheck } from './check';
import { registerXenstored } from './xenstored';

/** Every command module; each adds itself to the program. Order is the order in --help. */
export const commands: Array<(program: Command) => void> = [
  registerCheck,
  registerXenstored,
];
