#!/usr/bin/env node
/**
 * `xen-sshm`: wires the commands up and nothing else. One file per command in ./commands; each
 * exports `register(program)` and loads what its action needs only when it runs, so that a
 * command loads no more than it uses (docs/notes/packaging.md has the start-up figures).
 *
 * Exit status (docs/manager.md): 0 success, 1 failure, 2 usage. A usage error is one line
 * naming what was wrong and where to look, never the whole help.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { commandOf, commands } from './commands';
import { reportError } from './handle-error';
import { addGlobalOptions } from './options';

/** This package's version, from its package.json (dist/lib/cli -> the package root). */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const EPILOG = `
Exit status: 0 success, 1 failure (a refusal, a failed step, an invalid config), 2 usage.
Global options (--json, --sandbox, --sandbox-dir) go before or after the command name.
Docs: README.md and docs/manager.md in the package.
`;

/** Commander's usage errors, thrown by exitOverride, with the command they belong to. */
class UsageExit extends Error {
  constructor(readonly commander: CommanderError, readonly commandPath: string) {
    super(commander.message);
  }
}

/**
 * The program. Given the command line, only the command it runs is registered (see
 * ./commands); without one, every command is.
 */
export function buildProgram(argv?: readonly string[]): Command {
  const program = new Command('xen-sshm')
    .description('Static shared memory between Xen domains, declared in xl config files.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help (also: xen-sshm COMMAND --help)')
    .showSuggestionAfterError()
    // Printed by main() as one line, with the command's name; help still goes to stdout.
    .configureOutput({ outputError: () => undefined })
    .configureHelp({ showGlobalOptions: true })
    .addHelpText('after', EPILOG);
  addGlobalOptions(program);
  // A command line that runs a known command (or --version) needs no other: an unknown one
  // cannot come up. Otherwise (help, an unknown command) every command is registered.
  const running = argv ? commandOf(argv) : null;
  for (const c of commands) if (running === null || c.name === running) c.load()(program);
  const path = (c: Command): string => (c.parent ? `${path(c.parent)} ${c.name()}` : c.name());
  for (const c of [program, ...program.commands]) {
    c.exitOverride((err) => {
      throw new UsageExit(err, path(c));
    });
  }
  return program;
}

/** A commander error as one line: "unknown option '--x' (Did you mean --json?)". */
function oneLine(message: string): string {
  return message.replace(/^error: /, '').split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

/** Runs the command line (without node and script) and resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  let program: Command;
  try {
    program = buildProgram(argv);
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (!(e instanceof UsageExit)) return reportError(e, { json });
    const c = e.commander;
    // --help and --version print and succeed; no command at all prints the help (on stderr).
    if (c.code === 'commander.helpDisplayed' || c.code === 'commander.version') return 0;
    if (c.code === 'commander.help') return 2;
    const where = e.commandPath === 'xen-sshm' ? 'xen-sshm --help' : `${e.commandPath} --help`;
    if (json) {
      process.stdout.write(JSON.stringify({ ok: false, error: { kind: 'usage', code: 'EINVAL', reason: c.code.replace(/^commander\./, ''), message: oneLine(c.message), hint: `see ${where}` } }, null, 2) + '\n');
    } else {
      process.stderr.write(`${e.commandPath}: ${oneLine(c.message)}; see '${where}'\n`);
    }
    return 2;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

if (require.main === module) {
  const json = process.argv.includes('--json');
  // A reader that went away (`xen-sshm ls | head -1`): the rest of the output is dropped, and
  // the command still finishes what it does (the demo removes its sandbox).
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') process.exit(reportError(e, { json }));
  });
  // Whatever escapes a command still goes through the one handler: no stack, bounded output.
  process.on('uncaughtException', (e) => process.exit(reportError(e, { json })));
  process.on('unhandledRejection', (e) => process.exit(reportError(e, { json })));
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
