#!/usr/bin/env node
/**
 * `xen-sshm`: wires the commands up and nothing else. One file per command in ./commands;
 * each exports `register(program)`.
 */
import { Command } from 'commander';
import { commands } from './commands';
import { handleError } from './handle-error';

export function buildProgram(): Command {
  const program = new Command('xen-sshm')
    .description('Static shared memory between Xen domains, declared in xl config files.')
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) });
  for (const register of commands) register(program);
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err) => handleError(err, { json: process.argv.includes('--json') }));
}
