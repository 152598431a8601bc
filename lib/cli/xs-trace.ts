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
import { TraceError } from '../trace/errors';

interface MainOptions extends CommonOptions {
  listen?: string;
  upstream?: string;
}

/** Prints an error (as JSON with --json) and returns the exit status. */
export function reportError(err: unknown, json: boolean): number {
  const e = err as { message?: string; code?: string; kind?: string; toJSON?: () => unknown };
  if (json) {
    const body = typeof e?.toJSON === 'function' ? e.toJSON() : { kind: e?.kind ?? 'error', code: e?.code, message: e?.message ?? String(err) };
    process.stderr.write(JSON.stringify({ ok: false, error: body }) + '\n');
  } else {
    process.stderr.write(`xs-trace: ${e?.message ?? String(err)}\n`);
  }
  // 127 like a shell when the command cannot be found.
  return err instanceof TraceError && err.code === 'ENOENT' && err.option === undefined && e?.message?.startsWith('cannot run') ? 127 : 1;
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
        if (argv.length > 0) throw new TraceError('EINVAL', '--listen and a command are exclusive', { option: '--listen' });
        done(await listen({ ...o, listen: o.listen }));
      } else {
        done(await runCommand(argv, o));
      }
    } catch (e) {
      done(reportError(e, o.json ?? false));
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
        done(reportError(e, all.json ?? false));
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
      // commander already printed help or the usage error.
      resolve(typeof e?.exitCode === 'number' ? e.exitCode : 1);
    });
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then((status) => {
    process.exitCode = status;
  });
}
