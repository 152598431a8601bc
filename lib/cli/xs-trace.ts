#!/usr/bin/env node
/**
 * `xs-trace`: see every xenstore message a program exchanges. Wires the three modes up and
 * nothing else; each lives in lib/trace/commands/.
 *
 *   xs-trace [options] -- CMD ARGS          trace one command
 *   xs-trace [options] --listen PATH        proxy for any client
 *   xs-trace read [options] FILE            read a C xenstored trace file
 */
import { Command } from 'commander';
import { addCommonOptions, CommonOptions } from '../trace/commands/options';
import { listen } from '../trace/commands/listen';
import { ReadOptions, readCommand } from '../trace/commands/read';
import { runCommand } from '../trace/commands/run';
import { usageError } from '../trace/errors';
import { reportError } from './handle-error';

interface MainOptions extends CommonOptions {
  listen?: string;
  upstream?: string;
}

/** Prints an error through the shared handler (one format, one stream, for every command). */
function fail(err: unknown, json: boolean): number {
  return reportError(err, { json, program: 'xs-trace' });
}

/**
 * Builds the program. `withRead` is false when `--` comes before any `read`, so that
 * `xs-trace -- read ...` runs a program called read instead of the subcommand.
 */
export function buildProgram(done: (status: number) => void, withRead = true): Command {
  const program = new Command('xs-trace')
    .description('Trace the xenstore messages a program exchanges with xenstored, decoded.')
    .usage('[options] -- CMD [ARGS...]  |  --listen PATH [options]  |  read FILE')
    .enablePositionalOptions()
    .passThroughOptions()
    .showHelpAfterError()
    .option('--listen <path>', 'proxy for any client on this Unix socket, until interrupted')
    .option('--upstream <path>', 'the xenstored socket (default: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket)')
    .argument('[command...]', 'the command to run with XENSTORED_PATH pointing at the tracing proxy');
  addCommonOptions(program);
  program.action(async (argv: string[], o: MainOptions) => {
    try {
      if (o.listen !== undefined) {
        if (argv.length > 0) throw usageError('--listen and a command are exclusive', '--listen');
        done(await listen({ ...o, listen: o.listen }));
      } else {
        done(await runCommand(argv, o));
      }
    } catch (e) {
      done(fail(e, o.json ?? false));
    }
  });
  if (withRead) {
    const read = new Command('read')
      .description('show a C xenstored trace file (xenstored -T FILE) like live traffic')
      .argument('<file>', 'the trace file')
      .option('--log', "also show the daemon's own log lines (wrl: statistics, store checks...)");
    addCommonOptions(read);
    read.action(async (file: string, o: ReadOptions, cmd: Command) => {
      const all = { ...cmd.optsWithGlobals(), ...o } as ReadOptions;
      try {
        done(await readCommand(file, all));
      } catch (e) {
        done(fail(e, all.json ?? false));
      }
    });
    program.addCommand(read);
  }
  return program;
}

/** Entry point; resolves with the exit status. */
export function main(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const dd = args.indexOf('--');
    const ri = args.indexOf('read');
    const withRead = !(dd >= 0 && (ri < 0 || dd < ri));
    const program = buildProgram(resolve, withRead);
    program.exitOverride();
    program.parseAsync(args, { from: 'user' }).catch((e: { exitCode?: number; code?: string }) => {
      // commander already printed the help or the usage error: 0 for help, 2 for a usage error.
      if (typeof e?.code === 'string' && e.code.startsWith('commander.')) {
        resolve(e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2);
      } else {
        resolve(fail(e, args.includes('--json')));
      }
    });
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then((status) => {
    process.exitCode = status;
  });
}
