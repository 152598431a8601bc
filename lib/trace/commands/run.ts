/**
 * `xs-trace [options] -- CMD ARGS`: run one command with XENSTORED_PATH pointing at a private
 * tracing proxy, print its traffic, exit with its status. Like strace, the trace goes to
 * stderr unless --output is given, so the command's own stdout stays usable in pipes.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { constants as osConstants } from 'node:os';
import { TraceError, usageError } from '../errors';
import { TraceProxy } from '../proxy';
import { CommonOptions, LIVE_BATCH_MS, outputFrom } from './options';
import { resolveUpstream } from './upstream';

export interface RunOptions extends CommonOptions {
  upstream?: string;
}

/** How long to wait, once the command exits, for connections its children still hold. */
const LINGER_MS = 500;

/** Runs the command; resolves with the exit status to use. */
export async function runCommand(argv: string[], o: RunOptions): Promise<number> {
  if (argv.length === 0) throw usageError('nothing to run: give a command after --, or --listen PATH', '--');
  const upstream = resolveUpstream(o.upstream, process.env);
  const writer = outputFrom(o, process.stderr, LIVE_BATCH_MS, { latency: true, bytes: true }, true);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xs-trace-'));
  const listenPath = path.join(dir, 'socket');
  let proxy: TraceProxy | undefined;
  try {
    proxy = await TraceProxy.listen({ listenPath, upstreamPath: upstream, onRecord: (r) => writer.write(r), decodeDelayMs: LIVE_BATCH_MS });
    const child = spawn(argv[0], argv.slice(1), {
      stdio: 'inherit',
      env: { ...process.env, XENSTORED_PATH: listenPath },
    });
    // ^C reaches the whole foreground process group: let the command decide; forward TERM/HUP.
    const forward = (sig: NodeJS.Signals) => () => {
      child.kill(sig);
    };
    const onInt = (): void => undefined;
    const onTerm = forward('SIGTERM');
    const onHup = forward('SIGHUP');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    process.on('SIGHUP', onHup);
    const status = await new Promise<number>((resolve, reject) => {
      child.once('error', (e: NodeJS.ErrnoException) => {
        // 127 like a shell when the command cannot be started.
        reject(new TraceError(e.code ?? 'EIO', `cannot run ${argv[0]}: ${e.message}`, { path: argv[0], cause: e, exitCode: 127 }));
      });
      child.once('exit', (code, signal) => {
        if (signal) resolve(128 + (osConstants.signals[signal] ?? 0));
        else resolve(code ?? 1);
      });
    }).finally(() => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      process.off('SIGHUP', onHup);
    });
    await proxy.close(LINGER_MS);
    proxy = undefined;
    return status;
  } finally {
    if (proxy) await proxy.close();
    await writer.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
