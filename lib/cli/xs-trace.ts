#!/usr/bin/env node
/**
 * `xs-trace`: see every xenstore message a program exchanges. Wires the three modes up and
 * nothing else; each lives in lib/trace/commands/.
 *
 *   xs-trace [options] -- CMD ARGS          trace one command
 *   xs-trace [options] --listen PATH        proxy for any client
 *   xs-trace attach [options]               follow a running daemon's own log of every connection
 *   xs-trace detach [options]               repair what a killed attach left
 *   xs-trace read [options] FILE            read a daemon's log file
 */
import { Command } from 'commander';
import { addCommonOptions, CommonOptions } from '../trace/commands/options';
import { listen } from '../trace/commands/listen';
import { ReadOptions, readCommand } from '../trace/commands/read';
import { AttachOptions, DetachOptions, attachCommand, detachCommand } from '../trace/commands/attach';
import { ATTACH_HELP } from '../trace/commands/attach-help';
import { runCommand } from '../trace/commands/run';
import { usageError } from '../trace/errors';
import { boundMessage } from '../elide';
import { reportError } from './handle-error';

interface MainOptions extends CommonOptions {
  listen?: string;
  upstream?: string;
}

/**
 * commander's own messages (an unknown option...) echo input: bounded like every error. Its
 * errors are thrown (exitOverride) so that main() gives usage errors their exit status, 2.
 */
function bounded(cmd: Command): Command {
  return cmd.exitOverride().configureOutput({ outputError: (str, write) => write(boundMessage(str)) });
}

/** Prints an error through the shared handler (one format, one stream, for every command). */
function fail(err: unknown, json: boolean): number {
  return reportError(err, { json, program: 'xs-trace' });
}

/**
 * Builds the program. `withSubcommands` is false when `--` comes before any subcommand name,
 * so that `xs-trace -- read ...` runs a program called read instead of the subcommand.
 */
export function buildProgram(done: (status: number) => void, withSubcommands = true): Command {
  const program = new Command('xs-trace')
    .description('Trace the xenstore messages a program exchanges with xenstored, decoded.')
    .usage('[options] -- CMD [ARGS...]  |  --listen PATH [options]  |  attach [options]  |  detach  |  read FILE')
    .enablePositionalOptions()
    .passThroughOptions()
    .showHelpAfterError()
    .option('--listen <path>', 'proxy for any client on this Unix socket, until interrupted')
    .option('--upstream <path>', 'the xenstored socket (default: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket)')
    .argument('[command...]', 'the command to run with XENSTORED_PATH pointing at the tracing proxy');
  bounded(program);
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
  if (withSubcommands) {
    const att = new Command('attach')
      .description("follow a running xenstored's own log of every connection (guests' rings too), decoded; its logging is put back on exit")
      .option('--upstream <path>', 'the daemon\'s socket (default: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket)')
      .option('--pid <pid>', 'the daemon\'s process (default: the one listening on the socket, from /proc)')
      .option('--dir <dir>', 'where the attach folder with the daemon\'s log is made (default: the temporary folder); the daemon must see it')
      .option('--rotate-size <size>', 'move the daemon to a new log file beyond this size, deleting the old one once read (default 64M)')
      .option('--log', "also show the daemon's own log lines (wrl: statistics, store checks...)")
      .addHelpText('after', ATTACH_HELP);
    bounded(att);
    addCommonOptions(att);
    att.action(async (o: AttachOptions, cmd: Command) => {
      const all = { ...cmd.optsWithGlobals(), ...o } as AttachOptions;
      try {
        done(await attachCommand(all));
      } catch (e) {
        done(fail(e, all.json ?? false));
      }
    });
    program.addCommand(att);
    const det = new Command('detach')
      .description('repair what an xs-trace attach killed with SIGKILL left: the daemon logging into its folder; puts its logging back as that attach recorded')
      .option('--upstream <path>', 'the daemon\'s socket (default: as attach finds it)')
      .option('--pid <pid>', 'the daemon\'s process (default: from /proc)')
      .option('--dir <dir>', 'the folder attach folders were made in (default: the temporary folder)')
      .option('--force', 'repair even while the attach that changed the daemon still runs')
      .option('--json', 'print what was done as JSON');
    bounded(det);
    det.action(async (o: DetachOptions) => {
      try {
        done(await detachCommand(o));
      } catch (e) {
        done(fail(e, o.json ?? false));
      }
    });
    program.addCommand(det);

    const read = new Command('read')
      .description("show a daemon's log file like live traffic: C xenstored's trace (-T FILE, or an attach's log), oxenstored's access log")
      .argument('<file>', 'the trace file')
      .option('--log', "also show the daemon's own log lines (wrl: statistics, store checks...)");
    bounded(read);
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
    const si = args.findIndex((a) => a === 'read' || a === 'attach' || a === 'detach');
    const withSubcommands = !(dd >= 0 && (si < 0 || dd < si));
    const program = buildProgram(resolve, withSubcommands);
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
